package engine

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/rs/zerolog"

	"cotd/cot"
	"cotd/cot/takproto"
	"cotd/engine/broker"
	"cotd/tlsstate"
)

// iovMax is the kernel's limit on buffers per writev; gnet passes our slice
// straight through, so a longer batch is written in pieces.
const iovMax = 1024

// session is one connection. Fields under "loop-owned" are touched only on
// the connection's event loop; the outbound queue is shared with the broker
// shards that deliver to it.
type session struct {
	id     uint64
	srv    *Server
	c      gnet.Conn
	ln     *listener
	remote string // the peer's address; immutable, unlike gnet's, which goes at close
	client *broker.Client
	opened time.Time
	// tls is nil on the plain listener.
	tls *tlsstate.Conn
	// established is set on the loop once the TLS handshake is done (from
	// the start on plain TCP); it tells the TLS output hook that the
	// handshake goroutine is gone.
	established atomic.Bool
	// userName is the name groups are looked up by (certificate CN or
	// <auth> user); nil before the client is identified.
	userName atomic.Pointer[string]
	// authDone carries a password check's answer from its goroutine.
	authDone atomic.Pointer[authResult]
	// wmu orders the choice of wire format with the write (see write).
	wmu sync.Mutex
	// outV1: events to this client are TAK protocol v1 frames. Changed
	// under wmu; atomic so that the admin API can read it.
	outV1 atomic.Bool
	// curRecv stamps ciphertext with the read time of the message being
	// encrypted; best effort when two shards write to one client at once.
	curRecv atomic.Int64

	// loop-owned
	lp           *loop
	tm           timer
	framer       *cot.XMLFramer   // XML input; nil once the client speaks v1
	v1           *takproto.Framer // v1 input; nil while the client speaks XML
	curV1        []byte           // the v1 payload being handled, for Publish
	offerUID     string           // uid of the v1 offer sent, "" when none
	lastRead     int64            // unix nanos of the last inbound bytes (the wheel's coarse clock)
	hsDeadline   int64            // TLS handshake deadline; 0 when none
	auth         authState
	authDeadline int64    // <auth> check deadline; 0 when none
	held         [][]byte // documents that arrived while <auth> was checked
	heldBytes    int
	sent         uint64 // bytes handed to gnet's socket buffer, ever
	stallAt      int64  // when unwritten output was last seen making no progress; 0 when flowing
	stallMark    uint64 // bytes known written (sent - buffered) at stallAt
	readAt       int64  // unix nanos of the current read, stamped on what it routes
	spare        []outItem

	// The outbound queue: appended by any goroutine, drained by the loop.
	mu         sync.Mutex
	pend       []outItem
	pendBytes  int
	cbuf       []byte // TLS: ciphertext arena the pend items point into
	wakeQueued bool
	closing    bool

	pendingN atomic.Int64 // == pendBytes, readable without mu
	buffered atomic.Int64 // gnet's unwritten bytes at the last flush
	reason   atomic.Uint32

	// bytesIn counts what the client sent; written on the loop, atomic
	// because Directory snapshots read it.
	bytesIn atomic.Uint64
	// drain is the SA replay's wait for the queue to drain (drain.go);
	// nil until a replay first waits.
	drain atomic.Pointer[drainSignal]
}

// outItem is one queued write; recv is when the server read the frame it
// carries (0 for server-made events), for the read-to-write delay metric.
type outItem struct {
	b    []byte
	recv int64
}

// queued is what the connection owes its client: queued plus unwritten.
func (ss *session) queued() int64 { return ss.pendingN.Load() + ss.buffered.Load() }

// Deliver implements broker.Outbox. It runs on shard goroutines.
func (ss *session) Deliver(m *broker.Message) broker.Verdict {
	return ss.write(m, true)
}

// write queues one event in the connection's wire format: XML or TAK
// protocol v1, as is on plain TCP, encrypted into records on TLS. wmu
// makes choosing the format and queueing one step, so that nothing encoded
// as XML lands behind the response that switched the client to v1. wake is
// false on the loop, which flushes at the end of its callback anyway.
func (ss *session) write(m *broker.Message, wake bool) broker.Verdict {
	if v := ss.admit(len(m.XML), m.Position); v != broker.Queued {
		return v
	}
	ss.wmu.Lock()
	defer ss.wmu.Unlock()
	b := m.XML
	if ss.outV1.Load() {
		if b = m.V1(); b == nil {
			return broker.DroppedUnencodable
		}
	}
	return ss.put(b, m.Recv, wake)
}

// put queues bytes already in the wire format; wmu is held.
func (ss *session) put(b []byte, recv int64, wake bool) broker.Verdict {
	if ss.tls == nil {
		return ss.enqueue(b, recv, wake)
	}
	ss.curRecv.Store(recv)
	// Encrypting here, on the sender's shard, spreads the per-recipient
	// cost over the shards; tls.Conn orders concurrent writers itself.
	if _, err := ss.tls.Write(b); err != nil {
		return broker.DroppedClosed
	}
	return broker.Queued
}

// sendLocal sends an event the server makes for this client alone (pong,
// protocol offer). Loop or any goroutine.
func (ss *session) sendLocal(xml []byte, recv int64, wake bool) {
	ss.write(ss.srv.broker.NewMessage(xml, "", false, recv, nil), wake)
}

// tlsOut is the TLS hook that receives ciphertext in wire order, from the
// handshake goroutine, the loop, or a shard encrypting a delivery. It
// copies into the queue's arena; budget checks happened before encrypting.
func (ss *session) tlsOut(p []byte) {
	ss.mu.Lock()
	if ss.closing {
		ss.mu.Unlock()
		return
	}
	start := len(ss.cbuf)
	ss.cbuf = append(ss.cbuf, p...)
	ss.pend = append(ss.pend, outItem{b: ss.cbuf[start:len(ss.cbuf):len(ss.cbuf)], recv: ss.curRecv.Load()})
	ss.pendBytes += len(p)
	needFlush := !ss.wakeQueued
	ss.wakeQueued = true
	ss.mu.Unlock()
	ss.pendingN.Add(int64(len(p)))
	if needFlush {
		ss.lp.markDirty(ss)
	}
}

// admit applies the back-pressure policy to a message of n bytes.
func (ss *session) admit(n int, droppable bool) broker.Verdict {
	lim := &ss.srv.cfg.Limits
	q := ss.queued()
	if droppable && q > int64(lim.OutboundSoftBytes) {
		return broker.DroppedBackpressure
	}
	if q+int64(n) > int64(lim.OutboundHardBytes) {
		if ss.closeWith(ReasonSlowConsumer) {
			ss.logger().Warn().Int64("queued_bytes", q).Msg("outbound hard limit reached; closing slow consumer")
		}
		return broker.DroppedSlowConsumer
	}
	return broker.Queued
}

// enqueue appends p to the plain outbound queue; the budget was checked.
func (ss *session) enqueue(p []byte, recv int64, wake bool) broker.Verdict {
	ss.mu.Lock()
	if ss.closing {
		ss.mu.Unlock()
		return broker.DroppedClosed
	}
	ss.pend = append(ss.pend, outItem{b: p, recv: recv})
	ss.pendBytes += len(p)
	needFlush := wake && !ss.wakeQueued
	if wake {
		ss.wakeQueued = true
	}
	ss.mu.Unlock()
	ss.pendingN.Add(int64(len(p)))
	if needFlush {
		ss.lp.markDirty(ss)
	}
	return broker.Queued
}

// closeWith is the one way to close a connection from outside its loop's
// callbacks (timers, broker, admin). The first reason wins. It reports
// whether this call set the reason.
func (ss *session) closeWith(r CloseReason) bool {
	if !ss.reason.CompareAndSwap(uint32(reasonUnset), uint32(r)) {
		return false
	}
	_ = ss.c.Close()
	return true
}

// flush moves the queue into gnet in writev batches. Loop only.
func (ss *session) flush() {
	ss.mu.Lock()
	if ss.closing {
		ss.mu.Unlock()
		return
	}
	bufs, n := ss.pend, ss.pendBytes
	ss.pend, ss.pendBytes, ss.wakeQueued = ss.spare, 0, false
	// The arena's bytes stay alive through bufs; new ciphertext starts a
	// fresh arena, so an idle connection keeps none.
	ss.cbuf = nil
	ss.mu.Unlock()
	ss.spare = nil
	if len(bufs) > 0 {
		now := time.Now().UnixNano()
		delay := ss.srv.stats.Delay
		for i := 0; i < len(bufs); i += iovMax {
			iov := ss.lp.iov[:0]
			for _, it := range bufs[i:min(i+iovMax, len(bufs))] {
				iov = append(iov, it.b)
				if it.recv != 0 {
					delay.Observe(float64(now-it.recv) / 1e9)
				}
			}
			_, err := ss.c.Writev(iov)
			clear(iov)
			ss.lp.iov = iov[:0]
			if err != nil {
				// gnet has closed the connection (and run OnClose).
				return
			}
		}
		ss.sent += uint64(n)
		ss.pendingN.Add(-int64(n))
		ss.srv.stats.BytesOut.Add(uint64(n))
		clear(bufs)
		// Keep a small queue slice for reuse; a burst's big one goes, so
		// that thousands of idle connections hold little.
		if cap(bufs) <= 64 {
			ss.spare = bufs[:0]
		}
	}
	ob := ss.c.OutboundBuffered()
	ss.buffered.Store(int64(ob))
	ss.notifyDrained()
	switch {
	case ob == 0:
		ss.stallAt = 0
	case ss.stallAt == 0:
		ss.stallAt = ss.lp.wheel.now
		ss.stallMark = ss.sent - uint64(ob)
		ss.lp.wheel.schedule(&ss.tm, ss.nextDeadline())
	}
}

// nextDeadline is the earliest of the connection's deadlines.
func (ss *session) nextDeadline() int64 {
	lim := &ss.srv.cfg.Limits
	d := ss.lastRead + int64(lim.IdleTimeout.Duration)
	if ss.hsDeadline != 0 && ss.hsDeadline < d {
		d = ss.hsDeadline
	}
	if ss.authDeadline != 0 && ss.authDeadline < d {
		d = ss.authDeadline
	}
	if ss.stallAt != 0 {
		// gnet drains its buffer on writable events without telling us,
		// and admit judges the queue by the unwritten bytes seen at the
		// last flush. Look again every tick while output is unwritten:
		// otherwise a client that reads its backlog but sends nothing
		// would have its position reports refused as over the soft limit
		// until the write timeout came round.
		d = min(d, ss.lp.wheel.now+tickNanos)
	}
	return d
}

// expire runs on the loop when the connection's timer comes due.
func (ss *session) expire(now int64) {
	if ss.reason.Load() != uint32(reasonUnset) {
		return
	}
	lim := &ss.srv.cfg.Limits
	if ss.hsDeadline != 0 && now >= ss.hsDeadline {
		ss.closeWith(ReasonHandshakeTimeout)
		return
	}
	if ss.authDeadline != 0 && now >= ss.authDeadline {
		if ss.closeWith(ReasonAuthFailed) {
			ss.logger().Warn().Msg("auth not checked in time; closing")
		}
		return
	}
	if ss.stallAt != 0 {
		ob := ss.c.OutboundBuffered()
		ss.buffered.Store(int64(ob))
		ss.notifyDrained()
		written := ss.sent - uint64(ob)
		switch {
		case ob == 0:
			ss.stallAt = 0
		case written > ss.stallMark:
			ss.stallAt, ss.stallMark = now, written
		case now-ss.stallAt >= int64(lim.WriteTimeout.Duration):
			if ss.closeWith(ReasonSlowConsumer) {
				ss.logger().Warn().Int("unwritten_bytes", ob).Dur("write_timeout", lim.WriteTimeout.Duration).
					Msg("no write progress; closing slow consumer")
			}
			return
		}
	}
	if now-ss.lastRead >= int64(lim.IdleTimeout.Duration) {
		ss.closeWith(ReasonIdle)
		return
	}
	ss.lp.wheel.schedule(&ss.tm, ss.nextDeadline())
}

// errFrame carries the close reason of a framing failure out of the
// framer's callback.
type errFrame struct {
	reason CloseReason
	err    error
}

func (e *errFrame) Error() string { return e.err.Error() }
func (e *errFrame) Unwrap() error { return e.err }

// feed frames plaintext and handles each document. Loop only. When a
// document switches the client to TAK protocol v1, the rest of p is
// already v1.
func (ss *session) feed(p []byte) error {
	if ss.v1 != nil {
		return ss.v1.Feed(p, ss.onV1)
	}
	err := ss.framer.Feed(p, ss.onDoc)
	if !errors.Is(err, errSwitchV1) {
		return err
	}
	rest := p[len(p)-ss.framer.Unread():]
	ss.inputV1()
	return ss.v1.Feed(rest, ss.onV1)
}

func (ss *session) onDoc(doc []byte) error {
	st := &ss.srv.stats
	h := &ss.lp.hdr // scratch of the loop: one header per loop, not per connection
	if err := cot.ScanHeader(doc, h); err != nil {
		return &errFrame{reason: ReasonBadFrame, err: err}
	}
	if ss.auth == authPending {
		return ss.hold(doc)
	}
	if h.Kind == cot.DocAuth {
		st.FramesIn[KindAuth].Inc()
		switch {
		case ss.srv.users.Load() == nil:
			ss.logger().Debug().Msg("<auth> ignored: no users file")
		case ss.auth == authDone:
			ss.logger().Debug().Msg("second <auth> ignored")
		default:
			ss.startAuth(h.AuthUsername, h.AuthPassword)
		}
		return nil
	}
	switch {
	case h.Type == cot.TypePing:
		st.FramesIn[KindPing].Inc()
		ss.sendLocal(cot.Pong(time.Now()), ss.readAt, false)
		st.Pongs.Inc()
		return nil
	case h.Type == cot.TypeTakpRequest:
		st.FramesIn[KindControl].Inc()
		return ss.negotiate(doc)
	case cot.IsControl(h.Type):
		st.FramesIn[KindControl].Inc()
		return nil
	case h.IsSA():
		st.FramesIn[KindSA].Inc()
	case strings.HasPrefix(h.Type, cot.TypeChat):
		st.FramesIn[KindChat].Inc()
	default:
		st.FramesIn[KindOther].Inc()
	}
	ss.publish(h, doc) // directory.go: the broker, then any subscribers
	return nil
}

// reasonFor maps a framing error to its close reason.
func reasonFor(err error) CloseReason {
	var ef *errFrame
	switch {
	case errors.As(err, &ef):
		return ef.reason
	case errors.Is(err, cot.ErrFrameTooLarge):
		return ReasonFrameTooLarge
	default:
		return ReasonBadFrame
	}
}

// logger returns a logger carrying the connection's identity. It is made
// when something is logged (a handful of times in a connection's life)
// rather than kept: ten thousand idle connections would otherwise hold ten
// thousand context buffers.
func (ss *session) logger() *zerolog.Logger {
	lc := ss.srv.log.With().Uint64("conn", ss.id).Str("remote", ss.remote).Str("listener", ss.ln.kind.String())
	// Who it is, as far as known when the line is written: the certificate
	// CN after the handshake, the device uid and callsign after its first SA.
	if ss.tls != nil {
		if cn := ss.tls.PeerCN(); cn != "" {
			lc = lc.Str("cn", cn)
		}
	}
	if ss.client != nil {
		if id := ss.client.Identity(); id.UID != "" {
			lc = lc.Str("uid", id.UID).Str("callsign", id.Callsign)
		}
	}
	l := lc.Logger()
	return &l
}
