package engine

import (
	"sync/atomic"

	"github.com/panjf2000/gnet/v2"
)

// inboundBudget is a connection's allowance of inbound bytes and events
// (limits.inbound_*): two token buckets, refilled from the loop's coarse
// clock. Loop only.
//
// gnet cannot stop reading a socket, so a connection over its budget is
// not read from its inbound buffer: what it sends waits there unframed and
// unrouted, in order, until the buckets refill (the wheel wakes it every
// tick). What waits is bounded: past limits.inbound_burst_bytes the sender
// is closed rate_limited. A flooder therefore reaches the others at the
// budget's rate at most, and is gone within a burst's worth of excess.
type inboundBudget struct {
	bytes, events float64 // tokens; events may go negative (a read holds several)
	last          int64   // the wheel's clock at the last refill
	// throttled: the connection has unread input waiting for tokens; the
	// wheel wakes it every tick.
	throttled bool
	// noisy is what the broker was last told (Client.SetNoisy).
	noisy bool
}

// budgetOn reports whether any inbound budget is configured.
func (s *Server) budgetOn() bool {
	lim := &s.cfg.Limits
	return lim.InboundBytesPerSec > 0 || lim.InboundEventsPerSec > 0
}

// resetBudget fills the buckets at open: a client starts with a burst.
func (ss *session) resetBudget(now int64) {
	lim := &ss.srv.cfg.Limits
	ss.budget = inboundBudget{bytes: float64(lim.InboundBurstBytes), events: float64(lim.InboundBurstEvents), last: now}
}

func (b *inboundBudget) refill(now int64, perSec, burst int, tokens *float64) {
	if perSec <= 0 {
		*tokens = float64(burst) // off: always full
		return
	}
	*tokens = min(*tokens+float64(now-b.last)/1e9*float64(perSec), float64(burst))
}

// admitInbound decides how many of the avail buffered inbound bytes the
// loop may take now: 0 while the budget is spent. ok is false when the
// sender is to be closed, rate_limited: it kept sending while over its
// budget until more than a burst waited unread.
func (ss *session) admitInbound(avail int) (n int, ok bool) {
	lim := &ss.srv.cfg.Limits
	b := &ss.budget
	now := ss.lp.wheel.now
	if now > b.last {
		b.refill(now, lim.InboundBytesPerSec, lim.InboundBurstBytes, &b.bytes)
		b.refill(now, lim.InboundEventsPerSec, lim.InboundBurstEvents, &b.events)
		b.last = now
	}
	if b.bytes >= 1 && b.events > 0 {
		b.throttled = false
		return min(avail, int(b.bytes)), true
	}
	if avail > lim.InboundBurstBytes {
		if ss.reason.CompareAndSwap(uint32(reasonUnset), uint32(ReasonRateLimited)) {
			ss.logger().Warn().Int("unread_bytes", avail).Int("bytes_per_sec", lim.InboundBytesPerSec).
				Int("events_per_sec", lim.InboundEventsPerSec).Msg("over the inbound budget with more than a burst unread; closing")
		}
		return 0, false
	}
	if !b.throttled && avail > 0 {
		b.throttled = true
		ss.srv.stats.Throttled.Inc()
		ss.lp.wheel.schedule(&ss.tm, ss.nextDeadline())
	}
	return 0, true
}

// readInbound takes what the budget allows of c's buffered input. ok is
// false when the connection is to close.
func (ss *session) readInbound(c gnet.Conn) (buf []byte, ok bool) {
	if !ss.srv.budgetOn() {
		buf, _ = c.Next(-1)
		return buf, true
	}
	n, ok := ss.admitInbound(c.InboundBuffered())
	if !ok || n == 0 {
		return nil, ok // Next(0) would take everything
	}
	buf, _ = c.Next(n)
	ss.budget.bytes -= float64(len(buf))
	ss.markNoisy()
	return buf, true
}

// noisyShare is the part of its burst a sender may spend above its
// sustained rate before its messages are noisy: 100 events or 200 KiB of
// the default bursts.
const noisyShare = 0.1

// markNoisy tells the broker whether the client has spent more than a
// noisy share of its burst (noisyShare) beyond its sustained rate: a busy
// ATAK never does, a flooder soon does. Its messages are then the first a
// recipient short of room drops (session.admitLocked). The share is small,
// so that several flooders' first bursts together cannot fill an honest
// client's queue to its soft limit. Called after each read and each event.
func (ss *session) markNoisy() {
	lim := &ss.srv.cfg.Limits
	b := &ss.budget
	noisy := (lim.InboundBytesPerSec > 0 && b.bytes < float64(lim.InboundBurstBytes)*(1-noisyShare)) ||
		(lim.InboundEventsPerSec > 0 && b.events < float64(lim.InboundBurstEvents)*(1-noisyShare))
	if noisy != b.noisy {
		b.noisy = noisy
		ss.client.SetNoisy(noisy)
	}
}

// partialBudget is the server-wide account of inbound bytes held in
// partial frames: the framers' unfinished documents plus input left
// unread in gnet's buffers. Past limits.max_partial_bytes the connection
// holding the most is closed (partial_frames): 400 clients each holding
// an unterminated megabyte must not cost the server 400 MB.
type partialBudget struct {
	total atomic.Int64
	// victim is the connection being closed for the budget, until its
	// OnClose gives its bytes back: one eviction at a time, so that a
	// burst of reads over the budget closes one connection, not many.
	victim atomic.Pointer[session]
}

// notePartial updates the account with what the connection holds after a
// read. Loop only.
func (ss *session) notePartial(c gnet.Conn) {
	held := int64(c.InboundBuffered())
	switch {
	case ss.framer != nil:
		held += int64(ss.framer.Buffered())
	case ss.v1 != nil:
		held += int64(ss.v1.Buffered())
	}
	d := held - ss.partial.Load()
	if d == 0 {
		return
	}
	ss.partial.Store(held)
	s := ss.srv
	if total := s.partials.total.Add(d); d > 0 && total > int64(s.cfg.Limits.MaxPartialBytes) {
		s.evictPartial(total)
	}
}

// releasePartial gives a closed connection's bytes back. Loop only.
func (ss *session) releasePartial() {
	s := ss.srv
	s.partials.total.Add(-ss.partial.Swap(0))
	s.partials.victim.CompareAndSwap(ss, nil)
}

// evictPartial closes the connection holding the most partial bytes. It
// walks the sessions, which only an attack makes happen, and at most once
// per eviction.
func (s *Server) evictPartial(total int64) {
	if s.partials.victim.Load() != nil {
		return // one is closing already
	}
	var victim *session
	var most int64
	s.sessions.Range(func(_, v any) bool {
		ss := v.(*session)
		if p := ss.partial.Load(); p > most && ss.reason.Load() == uint32(reasonUnset) {
			victim, most = ss, p
		}
		return true
	})
	if victim == nil || !s.partials.victim.CompareAndSwap(nil, victim) {
		return
	}
	if !victim.closeWith(ReasonPartialFrames) {
		s.partials.victim.CompareAndSwap(victim, nil)
		return
	}
	victim.logger().Warn().Int64("partial_bytes", most).Int64("all_partial_bytes", total).
		Int("max_partial_bytes", s.cfg.Limits.MaxPartialBytes).
		Msg("server-wide partial-frame budget exceeded; closing the connection holding the most")
}
