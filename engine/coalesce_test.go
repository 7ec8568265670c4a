package engine

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"cotd/configs"
	"cotd/engine/broker"
)

// coalesced makes a fixture whose loop coalesces with delay and a byte
// threshold of 100, on a clock the test moves.
func coalesced(t *testing.T, delay time.Duration) (*fixture, *int64) {
	t.Helper()
	f := newFixture(t, 1<<20)
	f.ss.srv.cfg.Output.CoalesceDelay = configs.Duration{Duration: delay}
	f.ss.srv.cfg.Output.CoalesceBytes = 100
	clock := new(int64)
	*clock = 1_000_000 * int64(time.Second)
	f.ss.lp.now = func() int64 { return *clock }
	t.Cleanup(func() { f.ss.lp.timer.Stop() })
	return f, clock
}

// A loop that has been quiet writes at once; a busy one holds a client's
// messages for the delay and writes them in one writev; a client with the
// byte threshold queued is written without waiting.
func TestCoalescing(t *testing.T) {
	f, clock := coalesced(t, time.Hour) // the timer never fires in this test
	if f.deliver("<lone/>", false); f.el.waiting() != 1 {
		t.Fatal("a lone message to a quiet loop was held")
	}
	f.el.run(t)
	*clock += int64(time.Millisecond)
	for i := range 3 {
		if f.deliver(fmt.Sprintf("<m%d/>", i), false); f.el.waiting() != 0 {
			t.Fatalf("message %d, a millisecond after a pass, was not held for the delay", i)
		}
	}
	// Another client on the same loop waits for the same pass.
	other := newSession(f.ss.srv, &fakeWire{room: 1 << 20}, f.ss.ln, f.ss.lp, 2, "192.0.2.2:40000")
	other.Deliver(broker.NewMessage([]byte("<o/>"), "", false, 0, nil))
	if f.el.waiting() != 0 {
		t.Fatal("a second client's message asked for a pass of its own")
	}
	// Crossing 100 queued bytes hurries the pass.
	f.deliver(chunk('x', 90), false)
	if n := f.el.waiting(); n != 1 {
		t.Fatalf("a client past the byte threshold asked for %d passes, want 1 at once", n)
	}
	writes := f.w.writevs
	f.el.run(t)
	if got, want := f.w.socket(), "<lone/><m0/><m1/><m2/>"+chunk('x', 90); got != want {
		t.Errorf("socket got %q, want %q", got, want)
	}
	if f.w.writevs != writes+1 {
		t.Errorf("the held messages took %d writevs, want 1", f.w.writevs-writes)
	}
	if got := other.c.(*fakeWire).socket(); got != "<o/>" {
		t.Errorf("the other client got %q from the pass", got)
	}
}

// The wait for a pass never exceeds the delay and is what is left of it
// since the last pass; past it, the pass is at once.
func TestCoalescingWaitIsBounded(t *testing.T) {
	f, clock := coalesced(t, 20*time.Millisecond)
	lp := f.ss.lp
	delay := int64(20 * time.Millisecond)
	lp.lastPass = *clock
	*clock += int64(5 * time.Millisecond)
	lp.mu.Lock()
	ask, wait := lp.planLocked(false, delay)
	lp.pending = false
	lp.mu.Unlock()
	if ask || wait != 15*time.Millisecond {
		t.Errorf("5 ms after a pass: ask %v, wait %v; want the remaining 15ms", ask, wait)
	}
	*clock += int64(20 * time.Millisecond)
	lp.mu.Lock()
	ask, wait = lp.planLocked(false, delay)
	lp.mu.Unlock()
	if !ask || wait != 0 {
		t.Errorf("25 ms after a pass: ask %v, wait %v; want a pass at once", ask, wait)
	}
}

// A held message is written when the delay is up, without anything else
// happening: the timer asks the loop for the pass.
func TestCoalescingTimerMakesThePass(t *testing.T) {
	f, clock := coalesced(t, 20*time.Millisecond)
	f.ss.lp.lastPass = *clock // a pass just now: the next one waits
	f.deliver("<held/>", false)
	select {
	case <-f.el.asked:
	case <-time.After(10 * time.Second):
		t.Fatal("the held message's pass was never asked for")
	}
	f.el.run(t)
	if got := f.w.socket(); got != "<held/>" {
		t.Errorf("socket got %q", got)
	}
}

// Records the TLS layer makes outside a flush (an alert, a key update's
// answer) carry earlier sequence numbers than the plaintext still queued
// will get when sealed, so they are queued ahead of it.
func TestTLSRecordsGoAheadOfPlaintextToSeal(t *testing.T) {
	f := newFixture(t, 1<<20)
	f.deliver("<plain-1/>", false)
	f.ss.tlsOut([]byte("REC-A"))
	f.deliver("<plain-2/>", false)
	f.ss.tlsOut([]byte("REC-B"))
	var order []string
	for _, it := range f.ss.out.queue {
		order = append(order, string(it.b))
	}
	if got, want := strings.Join(order, " "), "REC-A REC-B <plain-1/> <plain-2/>"; got != want {
		t.Errorf("queue order %q, want %q", got, want)
	}
	if f.ss.out.sealed != 2 {
		t.Errorf("sealed = %d, want 2", f.ss.out.sealed)
	}
}
