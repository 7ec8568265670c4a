package directory

import "testing"

func TestQueueDropsWhenFullAndStopsAtClose(t *testing.T) {
	closed := 0
	q := NewQueue("t", KindsOf(Join, Leave), 2, func() { closed++ })
	if !q.Wants(Join) || q.Wants(SA) {
		t.Fatalf("Wants: join %v sa %v, want true false", q.Wants(Join), q.Wants(SA))
	}
	for i := range 3 {
		ok := q.Offer(Event{Kind: Join, Reason: string(rune('a' + i))})
		if want := i < 2; ok != want {
			t.Fatalf("offer %d: %v, want %v", i, ok, want)
		}
	}
	if q.Dropped() != 1 || q.Len() != 2 {
		t.Fatalf("dropped %d len %d, want 1 2", q.Dropped(), q.Len())
	}
	if ev := <-q.C(); ev.Reason != "a" {
		t.Fatalf("first event %q, want a (FIFO)", ev.Reason)
	}
	q.Close()
	q.Close()
	if closed != 1 {
		t.Fatalf("onClose ran %d times, want 1", closed)
	}
	if q.Offer(Event{Kind: Join}) || q.Dropped() != 1 {
		t.Fatalf("a closed queue took an event or counted a drop")
	}
	n := 0
	for range q.C() {
		n++
	}
	if n != 1 {
		t.Fatalf("drained %d after close, want the 1 left", n)
	}
}

func TestKinds(t *testing.T) {
	s := KindsOf(SA, Routed)
	if !s.Has(SA) || !s.Has(Routed) || s.Has(Join) || !AllKinds.Has(Leave) {
		t.Fatalf("kind set %b wrong", s)
	}
	if Leave.String() != "leave" || Kind(99).String() != "unknown" {
		t.Fatalf("String: %q %q", Leave, Kind(99))
	}
}
