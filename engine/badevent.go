package engine

import (
	"errors"
	"time"

	"cotd/cot"
)

// Bad events: documents that are wrong in themselves while the stream around them is intact.
// They are dropped one by one, counted, and logged at most once a minute per connection; the
// connection stays open, unlike a framing error, after which the stream cannot be trusted.

// BadEventReason says why one inbound event was dropped with its connection left open. It
// names a cause, not a state: no transitions.
type BadEventReason uint8

// The bad-event reasons, counted in cotd_bad_events_total.
const (
	// BadEventEmbeddedEnd: an XML event holds "</event" other than as its own end tag, or a
	// v1 event's xmlDetail holds "</event" or "</auth" (cot.ErrEmbeddedEventEnd). TAK
	// clients cut their streams there, so forwarding it would deliver a forged event.
	BadEventEmbeddedEnd BadEventReason = iota
	// BadEventTime: a routed event's time, start or stale is unreadable or implausibly far
	// from now, e.g. microseconds where milliseconds belong (cot.ErrImplausibleTime).
	BadEventTime
	numBadEventReasons
)

var badEventReasonNames = [numBadEventReasons]string{"embedded_event_end", "implausible_time"}

func (r BadEventReason) String() string {
	if r < numBadEventReasons {
		return badEventReasonNames[r]
	}
	return "unknown"
}

// badEventOf classifies err; ok is false for errors that condemn the stream.
func badEventOf(err error) (r BadEventReason, ok bool) {
	switch {
	case errors.Is(err, cot.ErrEmbeddedEventEnd):
		return BadEventEmbeddedEnd, true
	case errors.Is(err, cot.ErrImplausibleTime):
		return BadEventTime, true
	}
	return 0, false
}

// badEventLogEvery is how often one connection may log a dropped event: a client that sends
// nothing but bad events costs one line a minute, however fast it sends.
const badEventLogEvery = time.Minute

// badEventLog is a connection's rate limit on dropped-event log lines. Loop-owned.
type badEventLog struct {
	last   int64  // unix nanos of the last line; 0 before the first
	missed uint64 // events dropped since the last line without one of their own
}

// scan reads the header of one inbound document into h and judges its times. Control
// events (pings, protocol negotiation) are answered or consumed on the loop and never
// routed, so their times do not matter and are not judged: a client with a wrong clock keeps
// its keep-alive.
func (ss *session) scan(doc []byte, h *cot.Header) error {
	if err := cot.ScanHeader(doc, h); err != nil {
		return err
	}
	if h.Kind != cot.DocEvent || cot.IsControl(h.Type) {
		return nil
	}
	return h.CheckTimes(time.Unix(0, ss.readTime()))
}

// readTime is when the input in hand was read (unix nanos): readAt, or the
// clock for a document fed before any read stamped one.
func (ss *session) readTime() int64 {
	if ss.readAt != 0 {
		return ss.readAt
	}
	return time.Now().UnixNano()
}

// refuse handles an error about one inbound document. A bad event is dropped, counted and
// logged (rate-limited) and refuse returns nil, so the framer goes on with the next
// document; any other error is returned as a framing error that closes the connection as
// bad_frame.
func (ss *session) refuse(err error) error {
	r, ok := badEventOf(err)
	if !ok {
		return &errFrame{reason: ReasonBadFrame, err: err}
	}
	ss.srv.stats.BadEvents[r].Inc()
	now := ss.readTime()
	l := &ss.badEvents
	if l.last != 0 && now-l.last < int64(badEventLogEvery) {
		l.missed++
		return nil
	}
	ss.logger().Warn().Err(err).Str("bad_event", r.String()).Uint64("dropped_unlogged", l.missed).
		Msg("event dropped; connection kept")
	l.last, l.missed = now, 0
	return nil
}
