package web

import (
	"sync"
	"time"
)

// SampleEvery is how often the charts take a sample.
const SampleEvery = 10 * time.Second

// Counters is what the wiring hands the console from the engine's metrics:
// cumulative counters since start (they only go up) and one gauge.
type Counters struct {
	// Connections open now.
	Connections int64
	// Deliveries: messages queued to recipients.
	Deliveries uint64
	// Drops: messages lost anywhere on the way (full queues, slow
	// consumers).
	Drops uint64
	// Handshakes: TLS handshakes finished, of any result.
	Handshakes uint64
}

// sample is one point of the charts. The per-interval series are nil in
// the first sample and after a counter went backwards (a restart of the
// source): there is no honest difference to show.
type sample struct {
	AtMillis    int64    `json:"at"`
	Connections int64    `json:"connections"`
	Deliveries  *float64 `json:"deliveries"` // per second over the interval
	Drops       *uint64  `json:"drops"`      // in the interval
	Handshakes  *uint64  `json:"handshakes"` // in the interval
}

// sampler keeps a ring of samples: the last history of them.
type sampler struct {
	counters func() Counters

	mu     sync.Mutex
	ring   []sample
	next   int
	full   bool
	prev   Counters
	prevAt time.Time
	have   bool
}

func newSampler(n int, counters func() Counters) *sampler {
	if n < 1 {
		n = 1
	}
	return &sampler{counters: counters, ring: make([]sample, n)}
}

// take reads the counters at now, records the sample and returns it.
func (s *sampler) take(now time.Time) sample {
	c := s.counters()
	s.mu.Lock()
	defer s.mu.Unlock()
	sm := sample{AtMillis: now.UnixMilli(), Connections: c.Connections}
	if s.have && now.After(s.prevAt) && c.Deliveries >= s.prev.Deliveries &&
		c.Drops >= s.prev.Drops && c.Handshakes >= s.prev.Handshakes {
		rate := float64(c.Deliveries-s.prev.Deliveries) / now.Sub(s.prevAt).Seconds()
		drops, hs := c.Drops-s.prev.Drops, c.Handshakes-s.prev.Handshakes
		sm.Deliveries, sm.Drops, sm.Handshakes = &rate, &drops, &hs
	}
	s.prev, s.prevAt, s.have = c, now, true
	s.ring[s.next] = sm
	s.next++
	if s.next == len(s.ring) {
		s.next, s.full = 0, true
	}
	return sm
}

// samples returns the recorded samples, oldest first.
func (s *sampler) samples() []sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.full {
		return append([]sample{}, s.ring[:s.next]...)
	}
	out := make([]sample, 0, len(s.ring))
	out = append(out, s.ring[s.next:]...)
	return append(out, s.ring[:s.next]...)
}
