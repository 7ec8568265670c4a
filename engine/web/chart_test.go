package web

import (
	"testing"
	"time"
)

func TestSamplerRatesAndRing(t *testing.T) {
	var c Counters
	s := newSampler(3, func() Counters { return c })
	t0 := time.Unix(1000, 0)
	first := s.take(t0)
	if first.Deliveries != nil || first.Drops != nil || first.Handshakes != nil {
		t.Fatalf("the first sample has no interval, got %+v", first)
	}
	c = Counters{Connections: 4, Deliveries: 200, Drops: 3, Handshakes: 5}
	got := s.take(t0.Add(10 * time.Second))
	if got.Connections != 4 || *got.Deliveries != 20 || *got.Drops != 3 || *got.Handshakes != 5 {
		t.Fatalf("second sample %+v", got)
	}
	c.Deliveries = 100 // the source restarted: no honest rate
	if got := s.take(t0.Add(20 * time.Second)); got.Deliveries != nil {
		t.Fatalf("a counter going back gave a rate: %+v", *got.Deliveries)
	}
	c.Deliveries = 150
	s.take(t0.Add(30 * time.Second))
	all := s.samples()
	if len(all) != 3 || all[0].AtMillis != t0.Add(10*time.Second).UnixMilli() || all[2].AtMillis != t0.Add(30*time.Second).UnixMilli() {
		t.Fatalf("ring keeps the last 3, oldest first: %+v", all)
	}
	if *all[2].Deliveries != 5 {
		t.Fatalf("rate after the restart: %v", *all[2].Deliveries)
	}
}
