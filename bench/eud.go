package bench

import (
	"context"
	"crypto/tls"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"time"

	"cotd/cot"
	"cotd/cot/takproto"
)

// readBuf is each connection's read buffer: small, because 10,000 of them must fit, and a
// frame larger than it is carried across reads by the framer.
const readBuf = 8 << 10

// maxInboundFrame caps what a simulated client accepts in one event (commo drops events over
// 64 KiB; cotbench allows more so that a large event shows as a delivery, not an error).
const maxInboundFrame = 1 << 20

// eud is one simulated end-user device. Its goroutine connects, reads and reconnects; its
// sends happen on its shard.
type eud struct {
	r       *runner
	n       int // client number: uid BENCH-n, callsign Bn
	tr      transport
	stalled bool
	storm   bool             // takes part in reconnect storms
	v1      bool             // asks for TAK protocol v1 when offered
	cert    *tls.Certificate // its own client certificate; nil: the shared one
	shard   *shard
	sess    atomic.Pointer[session]
	seq     uint64 // message sequence; shard goroutine only
}

// session is one connection of an eud, from established to closed.
type session struct {
	e         *eud
	raw, conn net.Conn
	acct      *account // nil for stalled clients
	begin     int64    // unix nanoseconds when established

	lastRecv atomic.Int64 // unix nanoseconds of the last bytes received
	pingSent atomic.Int64 // unix nanoseconds of the last ping, 0 once answered
	leaving  atomic.Bool  // a planned disconnect was asked for
	closed   atomic.Bool  // the reader finished

	// Owned by the shard (gen, genFired under its mutex, the rest by its goroutine).
	gen, genFired                        uint32
	nextSA, nextChat, nextDM, nextMarker int64
	lastPing                             int64
	sentSA, rxTimedOut                   bool

	// writeFailed is set by the shard when a send failed (and counted); the reader then
	// does not count the same failure again.
	writeFailed atomic.Bool

	// TAK protocol v1 (v1 clients): the reader stores the uid of the server's offer and
	// files the session to fire; the shard sends the request and from then on writes v1
	// (outV1, shard goroutine only). The reader switches when the response grants it.
	offer atomic.Pointer[string]
	outV1 bool
}

// run is the eud's goroutine: wait for its first connect time, connect, serve the
// connection, and reconnect after a planned disconnect or a failure, until the send phase
// ends or the run stops.
func (e *eud) run(ctx context.Context, startAt time.Time) {
	defer e.r.wg.Done()
	if !sleepCtx(ctx, time.Until(startAt)) {
		return
	}
	if e.stalled {
		e.runStalled(ctx)
		return
	}
	r := e.r
	for ctx.Err() == nil && time.Now().Before(r.sendEnd) {
		res := r.dialer.dial(ctx, e.tr, e.cert, e.n)
		if r.stopping.Load() {
			if res.raw != nil {
				_ = res.raw.Close()
			}
			return
		}
		r.st.attempts.Add(1)
		storeMin(&r.st.firstDial, time.Now().UnixNano())
		if res.err != nil {
			r.st.fail(res.fail)
			r.log.Debug().Int("client", e.n).Stringer("transport", e.tr).Stringer("kind", res.fail).Err(res.err).Msg("connect failed")
			if r.sc.Connect.RetryDelay.Duration == 0 || !sleepCtx(ctx, r.sc.Connect.RetryDelay.Duration) {
				return
			}
			continue
		}
		r.st.connected.Add(1)
		storeMax(&r.st.lastSetup, time.Now().UnixNano())
		r.st.connect.RecordDuration(res.connect)
		r.st.setup.RecordDuration(res.connect + res.handshake)
		if e.tr != transportTCP {
			r.st.handshake.RecordDuration(res.handshake)
			v := 0
			if res.version >= 0x0304 {
				v = 1
			}
			r.st.handshakes[e.tr][v].Add(1)
		}
		planned := e.serve(res)
		if !planned {
			if r.sc.Connect.RetryDelay.Duration == 0 || !sleepCtx(ctx, r.sc.Connect.RetryDelay.Duration) {
				return
			}
			continue
		}
		if !sleepCtx(ctx, r.sc.Reconnect.Offline.Duration) {
			return
		}
	}
}

// serve runs one established connection until it ends and reports whether the end was
// planned (a reconnect storm or the end of the run).
func (e *eud) serve(res dialResult) (planned bool) {
	r := e.r
	now := time.Now().UnixNano()
	s := &session{e: e, raw: res.raw, conn: res.conn, acct: newAccount(r.groupOf(e.n)), begin: now}
	s.lastRecv.Store(now)
	s.nextSA = now
	if r.sc.SA.Interval.Duration == 0 {
		s.nextSA = math.MaxInt64 // idle clients: no SA
	}
	s.nextChat = now + randPart(r.sc.Chat.AllInterval.Duration)
	s.nextDM = now + randPart(r.sc.Chat.DirectedInterval.Duration)
	s.nextMarker = now + randPart(r.sc.Markers.Interval.Duration)
	e.sess.Store(s)
	r.st.open.Add(1)
	if r.stopping.Load() {
		// The run stopped between the dial and here; stop closes what it finds in sess,
		// and this connection may have been stored after it looked.
		_ = s.raw.Close()
	}
	e.shard.schedule(s, now)

	err := e.read(s)
	end := time.Now().UnixNano()
	s.closed.Store(true)
	_ = s.raw.Close()
	e.sess.CompareAndSwap(s, nil)
	r.ledger.close(s.acct, e.n, end)
	r.st.open.Add(-1)
	switch {
	case r.stopping.Load():
		return true
	case s.leaving.Load():
		r.st.leaves.Add(1)
		return true
	case s.writeFailed.Load():
		return false // counted by the shard
	}
	kind := ErrBadFrame
	if !isFramerError(err) {
		kind = classifyRead(err)
	}
	r.st.fail(kind)
	r.log.Debug().Int("client", e.n).Stringer("kind", kind).Err(err).Msg("connection ended")
	return false
}

// framerErr marks an error from the framer, so that the reader can tell it from a read
// error.
type framerErr struct{ err error }

func (f framerErr) Error() string { return f.err.Error() }
func (f framerErr) Unwrap() error { return f.err }

func isFramerError(err error) bool {
	_, ok := err.(framerErr)
	return ok
}

// read reads and accounts everything that arrives on s until the connection fails or is
// closed: XML, and TAK protocol v1 frames from the byte after a granted response.
func (e *eud) read(s *session) error {
	in := takproto.NewClientReader(maxInboundFrame, false)
	buf := make([]byte, readBuf)
	var h cot.Header
	for {
		n, err := s.conn.Read(buf)
		if n > 0 {
			now := time.Now().UnixNano()
			s.lastRecv.Store(now)
			if ferr := in.Feed(buf[:n], func(doc []byte) error {
				e.r.onDoc(s, doc, &h, now)
				return nil
			}); ferr != nil {
				return framerErr{ferr}
			}
		}
		if err != nil {
			return err
		}
	}
}

// onDoc accounts one event received on s at now.
func (r *runner) onDoc(s *session, doc []byte, h *cot.Header, now int64) {
	if r.stopping.Load() {
		// The run is over; what arrives while the clients close (disconnect notices of
		// each other, mostly) is not part of it.
		return
	}
	st := r.st
	if err := cot.ScanHeader(doc, h); err != nil {
		st.fail(ErrBadFrame)
		return
	}
	switch h.Type {
	case cot.TypeTakpOffer:
		st.offers.Add(1)
		if s.e.v1 && s.offer.Load() == nil {
			// Asked for on the shard, which owns the writes; at once, not at the next SA.
			uid := h.UID
			s.offer.Store(&uid)
			s.e.shard.schedule(s, now)
		}
		return
	case cot.TypeTakpResponse:
		if _, granted, ok := takproto.ParseResponse(doc); ok && granted {
			st.v1Granted.Add(1)
		} else {
			st.v1Refused.Add(1)
		}
		return
	case cot.TypePong:
		st.pongs.Add(1)
		if sent := s.pingSent.Swap(0); sent != 0 {
			st.pingRTT.Record(now - sent)
		}
		return
	case cot.TypeDelete:
		st.deletes.Add(1)
		return
	}
	tag, ok := parseTag(doc)
	if !ok {
		st.untagged.Add(1)
		return
	}
	e := s.e
	switch {
	case h.Type == cot.TypeChatDeliveryFailure && tag.src == e.n:
		// The server found nobody to deliver a directed chat to and returned it, as TAK
		// Server does; the destination was offline, so nothing was owed.
		st.bounced.Add(1)
		return
	case tag.src == e.n:
		st.echo.Add(1)
		return
	case tag.kind == kindDirected && tag.dst != e.n:
		st.misrout.Add(1)
		return
	case r.groupOf(tag.src) != r.groupOf(e.n):
		// Another group's traffic: the server leaked it across groups.
		st.misrout.Add(1)
		return
	}
	st.delivered[tag.kind].Add(1)
	lat := now - tag.ts
	if tag.ts >= s.begin {
		// Older events are replays (latest SA) of what was sent before this connection;
		// their age is not a delivery latency.
		st.latency.Record(lat)
		st.byTrans[e.tr].Record(lat)
		st.window.Load().Record(lat)
		if lat > int64(r.sc.Measure.Window.Duration) {
			st.late.Add(1)
		}
	}
	r.ledger.received(s.acct, tag.ts, tag.kind == kindDirected)
}

// fire sends what is due on s and returns when s is next due; ok is false when s needs no
// more sends (closed, leaving, failed, or the send phase is over). Shard goroutine only.
func (sh *shard) fire(s *session) (next int64, ok bool) {
	r, e := sh.r, s.e
	if s.closed.Load() || s.writeFailed.Load() {
		return 0, false
	}
	if s.leaving.Load() {
		sh.leave(s)
		return 0, false
	}
	nowT := time.Now()
	now := nowT.UnixNano()
	if !nowT.Before(r.sendEnd) || r.stopping.Load() {
		return 0, false
	}
	sc := r.sc
	type sentMsg struct {
		kind msgKind
		dst  int
	}
	var msgs [5]sentMsg
	nm := 0
	b := sh.buf[:0]
	if e.v1 && !s.outV1 {
		if uid := s.offer.Load(); uid != nil {
			// The request is the last XML: the server reads v1 from the next byte.
			b = takproto.AppendRequest(b, *uid, takproto.ProtocolVersion, nowT)
			s.outV1 = true
			r.st.v1Requests.Add(1)
		}
	}
	if sc.SA.Interval.Duration > 0 && now >= s.nextSA {
		e.seq++
		from := len(b)
		b = sh.wire(s, appendSA(b, e.n, e.seq, nowT), from)
		msgs[nm] = sentMsg{kindSA, -1}
		nm++
		s.nextSA = now + jittered(sc.SA.Interval.Duration, sc.SA.Jitter)
	}
	if d := sc.Chat.AllInterval.Duration; d > 0 && now >= s.nextChat {
		e.seq++
		from := len(b)
		b = sh.wire(s, appendChat(b, e.n, e.seq, nowT, -1), from)
		msgs[nm] = sentMsg{kindChat, -1}
		nm++
		s.nextChat = now + jittered(d, sc.Chat.Jitter)
	}
	if d := sc.Chat.DirectedInterval.Duration; d > 0 && now >= s.nextDM {
		// To someone in its own group, the only clients it reaches; alone there, to no one.
		if dst, ok := r.groupPeer(e.n); ok {
			e.seq++
			from := len(b)
			b = sh.wire(s, appendChat(b, e.n, e.seq, nowT, dst), from)
			msgs[nm] = sentMsg{kindDirected, dst}
			nm++
		}
		s.nextDM = now + jittered(d, sc.Chat.Jitter)
	}
	if d := sc.Markers.Interval.Duration; d > 0 && now >= s.nextMarker {
		e.seq++
		from := len(b)
		b = sh.wire(s, appendMarker(b, e.n, e.seq, nowT), from)
		msgs[nm] = sentMsg{kindMarker, -1}
		nm++
		s.nextMarker = now + jittered(d, sc.Markers.Jitter)
	}
	silence := now - s.lastRecv.Load()
	ping := silence >= int64(sc.Ping.Silence.Duration) && now-s.lastPing >= int64(sc.Ping.Repeat.Duration)
	if ping {
		from := len(b)
		b = sh.wire(s, appendPing(b, e.n, nowT), from)
		s.lastPing = now
		// Before the write: the pong may be read before Write returns.
		s.pingSent.Store(now)
	}
	if rx := int64(sc.Ping.RxTimeout.Duration); rx > 0 {
		if silence >= rx && !s.rxTimedOut {
			r.st.fail(ErrRxTimeout)
		}
		s.rxTimedOut = silence >= rx
	}
	sh.buf = b[:0]
	if len(b) > 0 {
		_ = s.conn.SetWriteDeadline(nowT.Add(sc.Connect.WriteTimeout.Duration))
		if _, err := s.conn.Write(b); err != nil {
			if !s.closed.Load() && !s.leaving.Load() && !r.stopping.Load() {
				s.writeFailed.Store(true)
				r.st.fail(classifyWrite(err))
				r.log.Debug().Int("client", e.n).Err(err).Msg("write failed")
			}
			_ = s.raw.Close()
			return 0, false
		}
		if ping {
			r.st.pings.Add(1)
		}
		for _, m := range msgs[:nm] {
			r.st.sent[m.kind].Add(1)
			if m.kind == kindDirected {
				if dst := r.euds[m.dst].sess.Load(); dst != nil {
					r.ledger.owedDirected(dst.acct, now)
				}
				continue
			}
			r.ledger.sent(s.acct, now)
			if m.kind == kindSA && !s.sentSA {
				s.sentSA = true
				r.ledger.firstSA(s.acct, now)
			}
		}
	}
	next = s.nextSA
	if sc.Chat.AllInterval.Duration > 0 {
		next = min(next, s.nextChat)
	}
	if sc.Chat.DirectedInterval.Duration > 0 {
		next = min(next, s.nextDM)
	}
	if sc.Markers.Interval.Duration > 0 {
		next = min(next, s.nextMarker)
	}
	pingAt := max(s.lastRecv.Load()+int64(sc.Ping.Silence.Duration), s.lastPing+int64(sc.Ping.Repeat.Duration))
	next = min(next, pingAt, r.sendEnd.UnixNano())
	return max(next, now+int64(time.Millisecond)), true
}

// wire turns the XML event just appended at b[from:] into one TAK protocol v1 frame once s
// speaks v1; it leaves b as it is on XML. Shard goroutine only.
func (sh *shard) wire(s *session, b []byte, from int) []byte {
	if !s.outV1 {
		return b
	}
	sh.xml = append(sh.xml[:0], b[from:]...)
	if err := takproto.FromXML(sh.xml, &sh.tm); err != nil {
		// The harness's own events always convert; one that does not is a harness bug,
		// which must not pass for a server's.
		panic(fmt.Sprintf("bench: own event does not convert to v1: %v", err))
	}
	return takproto.AppendMessageFrame(b[:from], &sh.tm)
}

// leave ends s as a reconnect storm asks: a close of the write side (FIN, after a TLS
// close_notify) so that what was sent still reaches the server, or a reset when the storm
// is abrupt. The reader then sees the server close and the eud redials after the offline
// time.
func (sh *shard) leave(s *session) {
	if sh.r.sc.Reconnect.Abrupt {
		if tc, ok := s.raw.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		_ = s.raw.Close()
		return
	}
	if cw, ok := s.conn.(interface{ CloseWrite() error }); ok && s.conn != s.raw {
		_ = s.conn.SetWriteDeadline(time.Now().Add(time.Second))
		_ = cw.CloseWrite()
	}
	if tc, ok := s.raw.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	// A server that does not close after the client's FIN is not waited for long.
	_ = s.raw.SetReadDeadline(time.Now().Add(2 * time.Second))
}

// runStalled is a stalled client: connect, send nothing (or half a ClientHello), read and
// discard until the server closes, then come back, until the send phase ends.
func (e *eud) runStalled(ctx context.Context) {
	r := e.r
	addr := pick(r.dialer.tcpAddrs, e.n)
	if r.sc.Stalled.Mode == StallHalfHello || addr == "" {
		addr = pick(r.dialer.tlsAddrs, e.n)
	}
	buf := make([]byte, 512)
	for ctx.Err() == nil && time.Now().Before(r.sendEnd) {
		nd := net.Dialer{Timeout: r.sc.Connect.Timeout.Duration}
		c, err := nd.DialContext(ctx, "tcp", addr)
		if err != nil {
			if !sleepCtx(ctx, time.Second) {
				return
			}
			continue
		}
		began := time.Now()
		s := &session{e: e, raw: c, conn: c, begin: began.UnixNano()}
		e.sess.Store(s)
		r.st.stalledConnects.Add(1)
		r.st.stalledOpen.Add(1)
		if r.stopping.Load() {
			_ = c.Close()
		}
		if r.sc.Stalled.Mode == StallHalfHello {
			_, _ = c.Write(r.dialer.halfHello)
		}
		for {
			if _, err = c.Read(buf); err != nil {
				break
			}
		}
		_ = c.Close()
		e.sess.CompareAndSwap(s, nil)
		r.st.stalledOpen.Add(-1)
		if r.stopping.Load() {
			return
		}
		r.st.stalledClosed.Add(1)
		r.st.stalledLife.RecordDuration(time.Since(began))
		if !sleepCtx(ctx, time.Second) {
			return
		}
	}
}

// jittered is d varied uniformly by ±j (a fraction of d).
func jittered(d time.Duration, j float64) int64 {
	return int64(float64(d) * (1 + j*(2*rand.Float64()-1)))
}

// randPart is a uniformly random part of d: the first send of a periodic kind, so that the
// clients' sends of one kind do not all fall together.
func randPart(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return rand.Int64N(int64(d))
}

// sleepCtx sleeps for d and reports whether ctx is still live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
