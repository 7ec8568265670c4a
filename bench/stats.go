package bench

import (
	"sync/atomic"
	"time"
)

// stats are the run's live counters and histograms. Every field is safe from any
// goroutine; the sampler reads them once a second for the time series.
type stats struct {
	// Connects of honest clients (TCP connect plus, for TLS, handshake).
	attempts, connected atomic.Int64
	// firstDial and lastSetup (unix nanos) bound the connect wave: the first
	// dial started and the last connect (with its handshake) completed.
	firstDial, lastSetup atomic.Int64
	connect              *Histogram // TCP connect
	handshake            *Histogram // TLS handshake
	setup                *Histogram // connect + handshake
	// handshakes by library and version: [transport][0] TLS 1.2, [transport][1] TLS 1.3.
	handshakes [numTransports][2]atomic.Int64
	open       atomic.Int64 // honest connections open
	leaves     atomic.Int64 // planned disconnects (reconnect storms)

	errors [numErrorKinds]atomic.Int64

	sent      [numMsgKinds]atomic.Int64
	delivered [numMsgKinds]atomic.Int64 // tagged deliveries, owed or not
	pings     atomic.Int64
	pongs     atomic.Int64
	pingRTT   *Histogram
	deletes   atomic.Int64 // t-x-d-d received
	offers    atomic.Int64 // t-x-takp-v received
	// TAK protocol v1 negotiation of the v1 clients: requests sent, responses granting and
	// refusing them.
	v1Requests, v1Granted, v1Refused atomic.Int64
	untagged                         atomic.Int64 // other events without a bench tag (e.g. foreign traffic)

	latency *Histogram                // end-to-end delivery latency
	byTrans [numTransports]*Histogram // the same by the recipient's transport
	window  atomic.Pointer[Histogram] // the same, for the current second only
	late    atomic.Int64              // deliveries slower than measure.window
	echo    atomic.Int64              // a client's own message delivered back to it
	misrout atomic.Int64              // a directed chat delivered to a non-destination
	bounced atomic.Int64              // own directed chats returned as b-t-f-s (no recipient)

	stalledConnects atomic.Int64
	stalledOpen     atomic.Int64
	stalledClosed   atomic.Int64 // stalled connections the server closed
	stalledLife     *Histogram   // how long the server let a stalled connection live
}

func newStats() *stats {
	s := &stats{
		connect:     NewHistogram(),
		handshake:   NewHistogram(),
		setup:       NewHistogram(),
		pingRTT:     NewHistogram(),
		latency:     NewHistogram(),
		stalledLife: NewHistogram(),
	}
	for i := range s.byTrans {
		s.byTrans[i] = NewHistogram()
	}
	s.window.Store(NewHistogram())
	return s
}

func (s *stats) fail(k ErrorKind) { s.errors[k].Add(1) }

func (s *stats) errorTotal() int64 {
	var n int64
	for i := range s.errors {
		n += s.errors[i].Load()
	}
	return n
}

func (s *stats) sentTotal() int64 {
	var n int64
	for i := range s.sent {
		n += s.sent[i].Load()
	}
	return n
}

func (s *stats) deliveredTotal() int64 {
	var n int64
	for i := range s.delivered {
		n += s.delivered[i].Load()
	}
	return n
}

// Sample is one second of a run, for the charts.
type Sample struct {
	// T is the end of the second, in seconds since the start.
	T float64 `json:"t"`
	// Open honest connections and open stalled connections at T.
	Open    int64 `json:"open"`
	Stalled int64 `json:"stalled"`
	// Per second: successful connects, messages sent, deliveries, errors.
	Connects  int64 `json:"connects"`
	Sent      int64 `json:"sent"`
	Delivered int64 `json:"delivered"`
	Errors    int64 `json:"errors"`
	// Delivery latency of this second's deliveries, milliseconds.
	P50 float64 `json:"p50_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
	// ServerCPU is the server's CPU time (utime+stime from /proc) since it started, in
	// seconds, read at T; -1 when no server process is sampled. The difference between two
	// samples over the deliveries between them is the CPU a delivery cost (CostReport).
	ServerCPU float64 `json:"server_cpu_s"`
}

// sampler turns the counters into one Sample per second.
type sampler struct {
	st    *stats
	start time.Time
	spare *Histogram
	last  struct{ connects, sent, delivered, errors int64 }
}

func newSampler(st *stats, start time.Time) *sampler {
	return &sampler{st: st, start: start, spare: NewHistogram()}
}

// sample closes the second ending at now.
func (p *sampler) sample(now time.Time) Sample {
	st := p.st
	old := st.window.Swap(p.spare)
	snap := old.Snapshot()
	old.Reset()
	p.spare = old
	c, s, d, e := st.connected.Load(), st.sentTotal(), st.deliveredTotal(), st.errorTotal()
	out := Sample{
		T:         now.Sub(p.start).Seconds(),
		Open:      st.open.Load(),
		Stalled:   st.stalledOpen.Load(),
		Connects:  c - p.last.connects,
		Sent:      s - p.last.sent,
		Delivered: d - p.last.delivered,
		Errors:    e - p.last.errors,
		P50:       ms(snap.Quantile(0.5)),
		P99:       ms(snap.Quantile(0.99)),
		Max:       ms(snap.Max),
	}
	p.last.connects, p.last.sent, p.last.delivered, p.last.errors = c, s, d, e
	return out
}

// storeMin and storeMax keep the extreme of v seen so far in a.
func storeMin(a *atomic.Int64, v int64) {
	for {
		old := a.Load()
		if (old != 0 && old <= v) || a.CompareAndSwap(old, v) {
			return
		}
	}
}

func storeMax(a *atomic.Int64, v int64) {
	for {
		old := a.Load()
		if old >= v || a.CompareAndSwap(old, v) {
			return
		}
	}
}
