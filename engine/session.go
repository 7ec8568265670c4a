package engine

import (
	"errors"
	"slices"
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

// wire is what a session uses of its connection. gnet.Conn satisfies it;
// the unit tests give a fake, so that the queueing, back-pressure, flush
// and deadline decisions are tested without sockets.
type wire interface {
	// Writev hands bufs to the connection: written as far as the socket
	// takes them, the rest kept in the connection's buffer. An error means
	// the connection was closed. Loop only.
	Writev(bufs [][]byte) (int, error)
	// OutboundBuffered is what the connection holds unwritten. gnet drains
	// it on writable events without telling anyone. Loop only.
	OutboundBuffered() int
	// Close closes asynchronously: OnClose follows on the loop. Any goroutine.
	Close() error
	// Wake runs OnTraffic on the loop with nothing read. Any goroutine.
	Wake(cb gnet.AsyncCallback) error
}

// session is one connection. Its state is grouped by who may touch it:
//   - the fields of session itself are fixed at open or shared by design
//     (atomics);
//   - inbound and deadlines belong to the connection's event loop alone.
//     They are embedded: a loop-owned field needs no reminder at the call
//     site;
//   - out, the outbound queue, is shared with the broker shards that
//     deliver to the connection. It is named, so that every access to
//     shared state reads as ss.out.
type session struct {
	id     uint64
	srv    *Server
	c      wire
	ln     *listener
	lp     *loop     // the connection's event loop
	remote string    // the peer's address; immutable, unlike gnet's, which goes at close
	opened time.Time // when the connection was accepted
	client *broker.Client
	// tls is nil on the plain listener.
	tls *tlsstate.Conn
	// established is set on the loop once the TLS handshake is done (from
	// the start on plain TCP); it tells the TLS output hook that the
	// handshake goroutine is gone.
	established atomic.Bool
	// userName is the name groups are looked up by (certificate CN or
	// <auth> user); nil before the client is identified.
	userName atomic.Pointer[string]
	// outV1: events to this client are TAK protocol v1 frames. Changed
	// (once, from false to true) under out.mu, with the response that
	// switches the client queued in the same step; atomic so that write can
	// encode before taking the lock and the admin API can read it.
	outV1 atomic.Bool
	// reason is the CloseReason; the first one set wins (closeWith).
	reason atomic.Uint32

	inbound
	deadlines
	out outbound
}

// inbound is what the loop keeps about the client's input. Loop only,
// except authDone.
type inbound struct {
	framer   *cot.XMLFramer   // XML input; nil once the client speaks v1
	v1       *takproto.Framer // v1 input; nil while the client speaks XML
	curV1    []byte           // the v1 payload being handled, for Publish
	offerUID string           // uid of the v1 offer sent, "" when none
	lastRead int64            // the wheel's coarse clock at the last inbound bytes, for the idle deadline
	readAt   int64            // unix nanos of the current read, stamped on what it routes
	// bytesIn counts the bytes read from the socket, ever (ciphertext on
	// TLS); written on the loop, atomic because Directory snapshots read it.
	bytesIn atomic.Uint64
	auth    authState // where the client is with its <auth>
	// authDone carries a password check's answer from its goroutine to
	// the loop; the one field here written off the loop.
	authDone atomic.Pointer[authResult]
	// authGone is set at close: a password check still waiting for a
	// slot is skipped. Written on the loop, read by the check.
	authGone  atomic.Bool
	held      [][]byte    // documents that arrived while <auth> was checked
	heldBytes int         // the sum of held's lengths, bounded by maxHeldBytes
	badEvents badEventLog // rate limit of the dropped-event log line
	budget    inboundBudget
	// partial is what the connection holds in partial frames and unread
	// input (notePartial); written on the loop, read by evictPartial.
	partial atomic.Int64
}

// deadlines are the connection's timer and what it watches. Loop only.
type deadlines struct {
	tm           timer // the connection's place on its loop's wheel, at the earliest deadline
	hsDeadline   int64 // TLS handshake deadline, unix nanos; 0 when none
	authDeadline int64 // <auth> check deadline, unix nanos; 0 when none
	// stallAt is when unwritten output was last seen making no progress
	// (the wheel's clock); 0 while nothing is unwritten.
	stallAt int64
	// stallMark is out.sent less what was unwritten at stallAt: the bytes
	// known written to the socket then. Progress is a later, higher mark.
	stallMark uint64
}

// outbound is the connection's queue: appended by the shards (and the
// loop, and the TLS handshake goroutine), drained by the loop's flush.
//
// A delivery takes mu once and makes no other atomic write: the
// back-pressure figures are plain fields under mu, read there by the
// delivery's admission check, and the rare readers elsewhere (metrics, the
// directory, a waiting SA replay) take mu too. The loop takes it twice per
// flush, whatever the number of messages flushed.
type outbound struct {
	mu sync.Mutex
	// queue is what waits to be handed to the connection, in wire order.
	// Under mu.
	queue []outItem
	// arena holds the ciphertext that TLS queue items point into. Under mu.
	arena []byte
	// sealed counts the items at the head of queue that are TLS records
	// already (handshake flights, alerts); the items after them are
	// plaintext that flush seals. Always 0 on plain TCP. Under mu.
	sealed int
	// flushAsked: the session is on its loop's dirty list and will be
	// flushed; whoever sets it asks the loop. Under mu.
	flushAsked bool
	// closing: OnClose has run; nothing more is queued. Under mu.
	closing bool
	// queued counts the bytes in queue and those being written by a
	// flush: added by writers, taken off by flush after its writev. Under
	// mu. It is exact, and a byte is always counted here or in unwritten,
	// never in neither.
	queued int64
	// unwritten is the connection's unwritten bytes as last read by the
	// loop (at a flush, or a tick while output is unwritten). Only a flush
	// adds to the connection's buffer, so it is an upper bound on the
	// real figure, stale by at most one tick. Written by the loop under mu.
	unwritten int64
	// sealing is set while flush encrypts this connection's plaintext on
	// the loop: the records come back through tlsOut on the same
	// goroutine and go straight into the loop's scratch, not the queue.
	sealing atomic.Bool

	// drain is the SA replay's wait for the queue to drain (drain.go);
	// nil until a replay first waits.
	drain atomic.Pointer[drainSignal]

	// spare is the last flushed queue's slice, kept for reuse. Loop only.
	spare []outItem
	// sent is the bytes handed to the connection, ever. Loop only.
	sent uint64
}

// outItem is one queued write; recv is when the server read the frame it
// carries (0 for server-made events), for the read-to-write delay metric.
type outItem struct {
	b    []byte
	recv int64
}

// newSession makes the session of a connection accepted on lp; the caller
// sets up TLS, files the timer and publishes the session.
func newSession(s *Server, c wire, ln *listener, lp *loop, id uint64, remote string) *session {
	ss := &session{id: id, srv: s, c: c, ln: ln, lp: lp, remote: remote, opened: time.Now()}
	ss.framer = cot.NewXMLFramer(s.cfg.Limits.MaxFrameBytes)
	ss.lastRead = lp.wheel.now
	ss.resetBudget(lp.wheel.now)
	ss.tm = timer{slot: -1, owner: ss}
	ss.client = broker.NewClient(id, ss, s.listenerMembership(ln))
	return ss
}

// queued is what the connection owes its client, queued plus unwritten:
// an upper bound, exact after a flush. Any goroutine; not on the delivery
// path, which reads the figures under the lock it holds anyway. On a loop
// (a directory snapshot) it takes the lock the loop's flush takes too, held
// by anyone only for an append.
func (ss *session) queued() int64 {
	o := &ss.out
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.queued + o.unwritten
}

// Deliver implements broker.Outbox. It runs on shard goroutines.
func (ss *session) Deliver(m *broker.Message) broker.Verdict {
	return ss.write(m, true)
}

// write queues one event in the connection's wire format, XML or TAK
// protocol v1 (on TLS as plaintext, which flush seals into records). The
// format is chosen, and the v1 frame made, before the lock; under it, the
// choice is checked against outV1, which changes only under the same lock
// with the response that switched the client queued in that step, so that
// nothing encoded as XML lands behind that response. wake is false on the
// loop, which flushes at the end of its callback anyway.
func (ss *session) write(m *broker.Message, wake bool) broker.Verdict {
	v1 := ss.outV1.Load()
	b := m.XML
	if v1 {
		if b = m.V1(); b == nil {
			return broker.DroppedUnencodable
		}
	}
	o := &ss.out
	o.mu.Lock()
	if !v1 && ss.outV1.Load() {
		// Switched to v1 between the look and the lock. The switch is
		// one way: the second try takes the v1 branch and stays there.
		o.mu.Unlock()
		return ss.write(m, wake)
	}
	v := ss.admitLocked(len(b), m.Position, m.Noisy)
	ask := askNothing
	if v == broker.Queued {
		ask = ss.appendLocked(b, m.Recv, wake)
	}
	q := o.queued
	o.mu.Unlock()
	ss.afterQueue(v, ask, q)
	return v
}

// sendLocal sends an event the server makes for this client alone (pong,
// protocol offer). Loop or any goroutine.
func (ss *session) sendLocal(xml []byte, recv int64, wake bool) {
	ss.write(ss.srv.broker.NewMessage(xml, "", false, recv, nil), wake)
}

// tlsOut is the TLS hook that receives ciphertext in wire order: from the
// handshake goroutine (flights), from the loop while it reads (alerts, a
// key update's answer), or from flush sealing the queue's plaintext. p is
// only valid during the call.
func (ss *session) tlsOut(p []byte) {
	o := &ss.out
	if o.sealing.Load() {
		// flush's own Write, on the loop: the records go out with this
		// flush.
		ss.lp.sealed = append(ss.lp.sealed, p...)
		return
	}
	o.mu.Lock()
	if o.closing {
		o.mu.Unlock()
		return
	}
	start := len(o.arena)
	o.arena = append(o.arena, p...)
	// A record made now carries an earlier sequence number than any the
	// plaintext still queued will get when it is sealed, so it goes on the
	// wire before that plaintext.
	o.queue = slices.Insert(o.queue, o.sealed, outItem{b: o.arena[start:len(o.arena):len(o.arena)]})
	o.sealed++
	o.queued += int64(len(p))
	needFlush := !o.flushAsked
	o.flushAsked = true
	o.mu.Unlock()
	if needFlush {
		// Handshake flights are not held for coalescing.
		ss.lp.markDirty(ss, true)
	}
}

// admitLocked applies the back-pressure policy to a message of n bytes,
// on the sender's goroutine, with out.mu held.
//
// The soft limit is judged by queued plus unwritten, which can overstate
// the backlog by what the socket took since the loop last looked (at most
// a tick). The hard limit is judged here only by the queue, which is exact:
// a message that would put the queue alone over the limit closes the
// client (afterQueue does, out of the lock). Whether the queue plus what
// the connection really holds unwritten is over it is decided by flush,
// which reads that figure; a client that drained its backlog since the
// last look is not closed on a stale one.
//
// A noisy sender's message (one spending its inbound budget fast) is
// refused once the queue holds half the soft limit: such senders together
// get at most that share of a recipient's room, and cannot push it over
// the soft limit, where the others' positions would be dropped, nor to the
// hard limit, where it would be closed.
func (ss *session) admitLocked(n int, droppable, noisy bool) broker.Verdict {
	o := &ss.out
	lim := &ss.srv.cfg.Limits
	switch {
	case o.closing:
		return broker.DroppedClosed
	case noisy && o.queued+o.unwritten > int64(lim.OutboundSoftBytes/2):
		return broker.DroppedNoisy
	case droppable && o.queued+o.unwritten > int64(lim.OutboundSoftBytes):
		return broker.DroppedBackpressure
	case o.queued+int64(n) > int64(lim.OutboundHardBytes):
		return broker.DroppedSlowConsumer
	}
	return broker.Queued
}

// flushAsk is what a queued message asks of the loop, once the queue's lock
// is released.
type flushAsk uint8

const (
	// askNothing: the session is on the dirty list already, or the loop
	// queued the message and flushes at the end of its callback.
	askNothing flushAsk = iota
	// askPass: put the session on the dirty list for the next pass.
	askPass
	// askPassNow: the same, and the pass at once (the queue is full
	// enough to write).
	askPassNow
	// askHurry: the session is on the list already; its queue just
	// crossed output.coalesce_bytes, so the pass should not wait.
	askHurry
)

// appendLocked appends p to the queue, out.mu held; the budget was
// checked. It returns what to ask of the loop.
func (ss *session) appendLocked(p []byte, recv int64, wake bool) flushAsk {
	o := &ss.out
	o.queue = append(o.queue, outItem{b: p, recv: recv})
	o.queued += int64(len(p))
	if !wake {
		return askNothing
	}
	// Enough queued to fill a writev (a TLS record): write without waiting
	// for the coalescing delay. Asked once, as the queue crosses the mark.
	thr := int64(ss.srv.cfg.Output.CoalesceBytes)
	full := o.queued >= thr
	switch {
	case !o.flushAsked:
		o.flushAsked = true
		if full {
			return askPassNow
		}
		return askPass
	case full && o.queued-int64(len(p)) < thr:
		return askHurry
	}
	return askNothing
}

// afterQueue does, out of the queue's lock, what queueing a message asked
// for: the loop's attention, or closing a client the message would have
// put over the hard limit (q is the queue then).
func (ss *session) afterQueue(v broker.Verdict, ask flushAsk, q int64) {
	switch ask {
	case askPass:
		ss.lp.markDirty(ss, false)
	case askPassNow:
		ss.lp.markDirty(ss, true)
	case askHurry:
		ss.lp.hurry()
	}
	if v == broker.DroppedSlowConsumer && ss.closeWith(ReasonSlowConsumerBytes) {
		ss.logger().Warn().Int64("queued_bytes", q).Int("hard_bytes", ss.srv.cfg.Limits.OutboundHardBytes).
			Msg("outbound hard limit reached; closing slow consumer")
	}
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

// flush moves the queue into the connection in writev batches. Loop only.
//
// It is where hard-limit closes are decided: the connection's unwritten
// bytes are read here, on the loop, so the decision rests on what the
// client really owes, not on a figure from the last look.
//
// On TLS, the plaintext queued since the last flush is sealed here in one
// Write, into records of up to 16 KiB, and goes out in the same writev as
// the records queued before it.
func (ss *session) flush() { ss.flushAt(0) }

// flushAt is flush with the time of the loop's pass (unix nanos) for the
// read-to-write delay metric, so that a pass reads the clock once rather
// than once per connection; 0 reads it here.
func (ss *session) flushAt(now int64) {
	o := &ss.out
	ob := ss.c.OutboundBuffered()
	o.mu.Lock()
	if o.closing {
		o.mu.Unlock()
		return
	}
	bufs, n, sealed := o.queue, o.queued, o.sealed
	if hard := int64(ss.srv.cfg.Limits.OutboundHardBytes); len(bufs) > 0 && int64(ob)+n > hard {
		// Left in the queue: OnClose counts it as unsent.
		o.mu.Unlock()
		ss.overHardLimit(ob, bufs, n, hard)
		return
	}
	o.queue, o.flushAsked, o.sealed = o.spare, false, 0
	// The arena's bytes stay alive through bufs; new ciphertext starts a
	// fresh arena, so an idle connection keeps none.
	o.arena = nil
	o.mu.Unlock()
	o.spare = nil
	if len(bufs) > 0 {
		if now == 0 {
			now = time.Now().UnixNano()
		}
		// Observed in the loop's tally and committed once for the flush:
		// a few atomic adds per flush, not three per message.
		delay := ss.lp.delayTally(ss.srv.stats.Delay)
		for _, it := range bufs {
			if it.recv != 0 {
				delay.Observe(float64(now-it.recv) / 1e9)
			}
		}
		delay.Commit()
		keep := len(bufs)
		if ss.tls != nil && sealed < len(bufs) {
			bufs = ss.seal(bufs, sealed)
		}
		var wrote uint64
		for i := 0; i < len(bufs); i += iovMax {
			iov := ss.lp.iov[:0]
			for _, it := range bufs[i:min(i+iovMax, len(bufs))] {
				iov = append(iov, it.b)
				wrote += uint64(len(it.b))
			}
			_, err := ss.c.Writev(iov)
			clear(iov)
			ss.lp.iov = iov[:0]
			if err != nil {
				// gnet has closed the connection (and run OnClose).
				return
			}
		}
		// gnet copied what the socket did not take: the records can go.
		ss.lp.sealed = ss.lp.sealed[:0]
		o.sent += wrote
		ss.srv.stats.BytesOut.Add(wrote)
		bufs = bufs[:keep]
		clear(bufs)
		// Keep a small queue slice for reuse; a burst's big one goes, so
		// that thousands of idle connections hold little.
		if cap(bufs) <= 64 {
			o.spare = bufs[:0]
		}
	}
	ob = ss.settle(n)
	switch {
	case ob == 0:
		ss.stallAt = 0
	case ss.stallAt == 0:
		ss.stallAt = ss.lp.wheel.now
		ss.stallMark = o.sent - uint64(ob)
		ss.lp.wheel.schedule(&ss.tm, ss.nextDeadline())
	}
}

// settle reads what the connection holds unwritten and records it, taking
// off queued the done bytes a flush just handed over: one step under the
// lock, so that those bytes leave queued as they join unwritten (those the
// socket did not take), never counted in neither. A replay waiting for the
// queue to drain is told if the client now owes less than the soft limit.
// It returns the unwritten bytes. Loop only.
func (ss *session) settle(done int64) int {
	ob := ss.c.OutboundBuffered()
	o := &ss.out
	o.mu.Lock()
	o.unwritten = int64(ob)
	o.queued -= done
	owed := o.queued + o.unwritten
	o.mu.Unlock()
	ss.notifyDrained(owed)
	return ob
}

// maxSealScratch bounds the seal buffers a loop keeps between flushes; a
// burst's larger ones go.
const maxSealScratch = 256 << 10

// seal encrypts the plaintext items bufs[sealed:] in one Write and returns
// bufs with them replaced by the records made, in the loop's scratch.
// Loop only. If the TLS layer refuses (the connection is closing), the
// plaintext is dropped and counted as unsent.
func (ss *session) seal(bufs []outItem, sealed int) []outItem {
	lp := ss.lp
	if cap(lp.seal) > maxSealScratch {
		lp.seal = nil
	}
	if cap(lp.sealed) > maxSealScratch {
		lp.sealed = nil
	}
	pt := lp.seal[:0]
	for _, it := range bufs[sealed:] {
		pt = append(pt, it.b...)
	}
	lp.seal = pt[:0]
	lp.sealed = lp.sealed[:0]
	ss.out.sealing.Store(true)
	_, err := ss.tls.Write(pt)
	ss.out.sealing.Store(false)
	bufs = bufs[:sealed]
	if err != nil {
		ss.srv.stats.UnsentBytes.Add(uint64(len(pt)))
		return bufs
	}
	return append(bufs, outItem{b: lp.sealed})
}

// overHardLimit closes a client whose unwritten bytes ob plus the queue
// bufs are over the hard limit. The messages from the one that crosses the
// limit on are counted as dropped for it (they were queued, but are not
// written); the rest of the queue is unsent output, counted at close.
func (ss *session) overHardLimit(ob int, bufs []outItem, queued, hard int64) {
	if !ss.closeWith(ReasonSlowConsumerBytes) {
		return // already closing; counted by whoever closed it
	}
	total, k := int64(ob), 0
	for ; k < len(bufs); k++ {
		if total += int64(len(bufs[k].b)); total > hard {
			break
		}
	}
	ss.srv.broker.Stats().Drops[broker.DropSlowConsumer].Add(uint64(len(bufs) - k))
	ss.logger().Warn().Int("unwritten_bytes", ob).Int64("queued_bytes", queued).
		Int64("hard_bytes", hard).Msg("outbound hard limit reached; closing slow consumer")
}

// closeOutbound shuts the queue when the connection has closed (OnClose)
// and returns what the client was owed and never got: the queue not yet
// flushed plus the connection's unwritten buffer. gnet makes one last
// non-blocking write after OnClose, so the figure is an upper bound; it is
// what an administrator needs to see that a slow consumer's close lost
// data. Loop only.
func (ss *session) closeOutbound() (unsent uint64) {
	o := &ss.out
	o.mu.Lock()
	o.closing = true
	unsent = uint64(o.queued) + uint64(ss.c.OutboundBuffered())
	o.queue, o.spare, o.arena = nil, nil, nil
	o.queued, o.unwritten = 0, 0
	o.mu.Unlock()
	return unsent
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
		// and admit judges the soft limit by the unwritten bytes last
		// seen. Look again every tick while output is unwritten:
		// otherwise a client that reads its backlog but sends nothing
		// would have its position reports refused as over the soft limit
		// until the write timeout came round.
		d = min(d, ss.lp.wheel.now+tickNanos)
	}
	if ss.budget.throttled {
		// Unread input waits for tokens: look again every tick.
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
		ob := ss.settle(0)
		written := ss.out.sent - uint64(ob)
		switch {
		case ob == 0:
			ss.stallAt = 0
		case written > ss.stallMark:
			ss.stallAt, ss.stallMark = now, written
		case now-ss.stallAt >= int64(lim.WriteTimeout.Duration):
			if ss.closeWith(ReasonSlowConsumerStalled) {
				ss.logger().Warn().Int("unwritten_bytes", ob).Dur("write_timeout", lim.WriteTimeout.Duration).
					Msg("no write progress; closing slow consumer")
			}
			return
		}
	}
	if ss.budget.throttled {
		// The buckets refill as the wheel turns; OnTraffic reads on.
		ss.lastRead = now // waiting on us is not idleness
		_ = ss.c.Wake(nil)
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
	if ss.srv.budgetOn() {
		ss.budget.events--
		ss.markNoisy()
	}
	h := &ss.lp.hdr // scratch of the loop: one header per loop, not per connection
	if err := ss.scan(doc, h); err != nil {
		return ss.refuse(err)
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
			lc = lc.Str("uid", clipLog(id.UID)).Str("callsign", clipLog(id.Callsign))
		}
	}
	l := lc.Logger()
	return &l
}

// maxLogString bounds a client-supplied string in a log line: a 1 MB
// callsign must not become a 1 MB log line.
const maxLogString = 256

// clipLog returns s cut to maxLogString bytes, marked when cut.
func clipLog(s string) string {
	if len(s) > maxLogString {
		return s[:maxLogString] + "…"
	}
	return s
}
