package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/rs/zerolog"

	"cotd/configs"
	"cotd/engine/auth"
	"cotd/engine/broker"
	"cotd/engine/metrics"
	"cotd/tlsstate"
)

// minBacklog is the accept queue below which a reconnect burst of a few
// thousand EUDs can overflow; cotd warns under it.
const minBacklog = 4096

// Server is one cotd instance: the gnet engine, its listeners, the broker
// and the admin HTTP listener.
type Server struct {
	// Version is logged in the start-up banner; set it before Run.
	Version string

	cfg       *configs.Config
	log       zerolog.Logger
	broker    *broker.Broker
	stats     Stats
	listeners []*listener
	tls       *tlsFiles
	users     atomic.Pointer[auth.Directory] // the users file; nil when none is configured
	authSlots chan struct{}                  // bounds concurrent <auth> password checks
	authLimit *authLimiter                   // bounds waiting checks, backs off failing sources

	eng      gnet.Engine
	ready    chan struct{}
	nextID   atomic.Uint64
	draining atomic.Bool
	sessions sync.Map // uint64 -> *session
	partials partialBudget
	// conns counts open sessions, all listeners; maxConns bounds it
	// (limits.max_connections), so that accept never meets EMFILE.
	conns    atomic.Int64
	maxConns int64
	// backlog is every listener's listen backlog: somaxconn, or less when
	// the descriptor limit is tight (acceptBacklog).
	backlog int
	// somax and fdLimit are net.core.somaxconn and RLIMIT_NOFILE as read
	// at New, for the backlog and the start-up log.
	somax     int
	fdLimit   uint64
	refuseLog oncePer

	loops sync.Map // gnet.EventLoop -> *loop

	admin     *http.Server
	adminAddr net.Addr
	adminAPI  http.Handler // what the admin listener serves (HandleAdmin)

	dir   dirState    // Directory's subscribers, senders and active groups
	peers peerMetrics // peers' /metrics writers (AddMetrics)
}

// New checks cfg and builds a server; Run serves it.
func New(cfg *configs.Config, log zerolog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{
		stats: Stats{
			Delay:            metrics.NewHistogram(metrics.ExponentialBounds(50e-6, 2, 18)...),
			HandshakeSeconds: metrics.NewHistogram(metrics.ExponentialBounds(250e-6, 2, 16)...),
		},
		cfg:   cfg,
		log:   log,
		ready: make(chan struct{}),
		broker: broker.New(broker.Options{
			Shards: cfg.Broker.Shards,
			Inbox:  cfg.Broker.Inbox,
			Replay: cfg.SA.Replay,
			Log:    log.With().Str("component", "broker").Logger(),

			EncodeV1: encodeV1, // the broker knows no wire format but XML

			InboxBytes:       cfg.Broker.InboxBytes,
			TakeoverQuiet:    cfg.SA.TakeoverQuiet.Duration,
			MaxSAsPerClient:  cfg.SA.MaxPerConnection,
			MaxSAsPerGateway: cfg.SA.MaxPerGateway,
			MaxCachedSAs:     cfg.SA.MaxCached,
			DefaultStale:     cfg.SA.DefaultStale.Duration,
		}),
	}
	if cfg.TCP.Addr != "" {
		s.listeners = append(s.listeners, &listener{kind: ListenerTCP, addr: cfg.TCP.Addr})
	}
	if cfg.TLSEnabled() {
		cert, key, ca, err := tlsPaths(cfg, log)
		if err != nil {
			return nil, err
		}
		if s.tls, err = newTLSFiles(cert, key, ca, cfg.CRLPath(), cfg.TLS.CRL != "" && cfg.TLS.CAKey == ""); err != nil {
			return nil, fmt.Errorf("engine: %w", err)
		}
		s.listeners = append(s.listeners, &listener{kind: ListenerTLS, addr: cfg.TLS.Addr})
	}
	max, from, err := maxConnections(cfg.Limits.MaxConnections)
	if err != nil {
		return nil, err
	}
	s.maxConns = int64(max)
	s.somax, s.fdLimit = somaxconn(), descriptorLimit()
	s.backlog = acceptBacklog(s.somax, s.fdLimit, max)
	log.Info().Int("max_connections", max).Str("from", from).Msg("connection limit")
	s.authSlots = make(chan struct{}, runtime.GOMAXPROCS(0))
	s.authLimit = newAuthLimiter()
	if err := s.loadUsers(); err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	if err := distinctAddrs(s.listeners); err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	return s, nil
}

// Ready is closed once every listener is bound and accepting.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr is the bound address of a listener (valid after Ready), or nil.
func (s *Server) Addr(kind ListenerKind) net.Addr {
	for _, ln := range s.listeners {
		if ln.kind == kind && ln.bound != nil {
			return ln.bound
		}
	}
	return nil
}

// AdminAddr is the admin listener's bound address (after Ready), or nil.
func (s *Server) AdminAddr() net.Addr { return s.adminAddr }

// Census counts what the server holds for its connections; after every
// client left, all of it must be back to zero.
type Census struct {
	Sessions int // connections with a session
	Timers   int // timers filed on the loops' wheels
	Clients  int // clients joined to the broker
}

// Census takes a census; any goroutine.
func (s *Server) Census() Census {
	var c Census
	s.sessions.Range(func(_, _ any) bool { c.Sessions++; return true })
	s.loops.Range(func(_, v any) bool {
		c.Timers += int(v.(*loop).wheel.filed.Load())
		return true
	})
	c.Clients = s.broker.Count()
	return c
}

// Stats exposes the engine counters.
func (s *Server) Stats() *Stats { return &s.stats }

// Broker exposes the broker (for its counters and client list).
func (s *Server) Broker() *broker.Broker { return s.broker }

// Run serves until ctx ends, then shuts down gracefully: it stops taking
// connections, lets the broker route what it accepted, flushes queued
// output for up to limits.drain_timeout, and closes everything.
func (s *Server) Run(ctx context.Context) error {
	releaseGnetPool()
	if s.cfg.Admin.Addr != "" {
		ln, err := s.listenAdmin() // TLS with client certificates when admin.client_ca is set
		if err != nil {
			return err
		}
		s.adminAddr = ln.Addr()
		// No WriteTimeout: it would cut off a 30-second pprof CPU profile.
		s.admin = &http.Server{Handler: s.adminHandler(), ReadHeaderTimeout: 5 * time.Second,
			IdleTimeout: 2 * time.Minute, ErrorLog: s.adminErrorLog()}
		go func() { _ = s.admin.Serve(ln) }()
	}
	s.broker.Start()

	addrs := make([]string, len(s.listeners))
	for i, ln := range s.listeners {
		addrs[i] = "tcp://" + ln.addr
	}
	opts := []gnet.Option{
		gnet.WithMulticore(true),
		// One shared listening socket per address, accepted by gnet's
		// dedicated acceptor: SO_REUSEPORT would give every loop its own
		// socket, and with port 0 each would get a different port.
		gnet.WithReusePort(false),
		// A restart binds at once, whatever sockets of the last run
		// linger in TIME_WAIT or FIN_WAIT.
		gnet.WithReuseAddr(true),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay),
		gnet.WithLogger(gnetLogger{s.log.With().Str("component", "gnet").Logger()}),
	}
	if n := s.cfg.Limits.SocketSendBytes; n > 0 {
		// Set on the listener; Linux hands it down to accepted sockets.
		opts = append(opts, gnet.WithSocketSendBuffer(n))
	}
	errc := make(chan error, 1)
	go func() { errc <- gnet.Rotate((*reactor)(s), addrs, opts...) }()

	select {
	case err := <-errc:
		s.stopSide()
		if err == nil {
			err = errors.New("engine: gnet stopped before it booted")
		}
		return listenError(err, s.listeners)
	case <-s.ready:
	}

	defer s.loops.Range(func(_, v any) bool {
		v.(*loop).stopWheel()
		return true
	})

	select {
	case err := <-errc:
		s.stopSide()
		// Not asked to stop: whatever gnet says, this is a failure.
		if err == nil {
			err = ErrStopped
		} else {
			err = fmt.Errorf("%w: %w", ErrStopped, err)
		}
		return err
	case <-ctx.Done():
	}
	s.shutdown()
	err := <-errc
	s.stopSide()
	return err
}

// OnBoot logs the listeners with their effective backlog.
func (r *reactor) OnBoot(eng gnet.Engine) gnet.Action {
	s := (*Server)(r)
	s.eng = eng
	if err := resolveBound(eng, s.listeners); err != nil {
		s.log.Error().Err(err).Msg("cannot read bound listener addresses")
		return gnet.Shutdown
	}
	if s.backlog < s.somax {
		if err := s.shrinkBacklogs(); err != nil {
			s.log.Error().Err(err).Msg("cannot lower the listen backlog")
			return gnet.Shutdown
		}
	}
	s.banner(time.Now())
	close(s.ready)
	return gnet.None
}

// OnOpen sets up a session. It refuses new connections while draining.
func (r *reactor) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	s := (*Server)(r)
	if s.draining.Load() {
		s.stats.Refused[RefuseDraining].Inc()
		return nil, gnet.Close
	}
	if s.conns.Add(1) > s.maxConns {
		s.conns.Add(-1)
		if s.stats.Refused[RefuseMaxConnections].Inc(); s.refuseLog.Allow(time.Now()) {
			s.log.Warn().Int64("max_connections", s.maxConns).Str("remote", c.RemoteAddr().String()).
				Msg("connection limit reached; closing new connections at accept (logged once a minute)")
		}
		return nil, gnet.Close
	}
	ln := s.listenerOf(c)
	id := s.nextID.Add(1)
	lp := s.loopOf(c.EventLoop())
	lp.touch()
	ss := newSession(s, c, ln, lp, id, c.RemoteAddr().String())
	if ln.kind == ListenerTLS {
		// The deadline runs from accept, not from the first byte: a
		// client that sends nothing is as stalled as one that stops.
		ss.hsDeadline = time.Now().UnixNano() + int64(s.cfg.TLS.HandshakeTimeout.Duration)
		ss.tls = tlsstate.Server(s.tls.base, tlsstate.Options{LocalAddr: c.LocalAddr(), RemoteAddr: c.RemoteAddr()},
			tlsstate.Hooks{Out: ss.tlsOut, Wake: func() { _ = c.Wake(nil) }})
	}
	lp.wheel.schedule(&ss.tm, ss.nextDeadline())
	c.SetContext(ss)
	s.sessions.Store(id, ss)
	s.stats.Accepted[ln.kind].Inc()
	s.stats.Open[ln.kind].Add(1)
	if ss.tls != nil {
		s.stats.Handshaking[ln.kind].Add(1)
	}
	if s.log.GetLevel() <= zerolog.DebugLevel && zerolog.GlobalLevel() <= zerolog.DebugLevel {
		// logger() builds a context per call: an accept at info level
		// (every production server) must not pay for a line it drops.
		ss.logger().Debug().Msg("connection opened")
	}
	if ss.tls == nil {
		ss.established.Store(true)
		if s.protocolOf(ln) == configs.ProtocolProtobuf {
			ss.speakV1()
		}
		ss.startProtocol()
		s.broker.Join(ss.client)
		s.joined(ss)
	}
	return nil, gnet.None
}

// OnTraffic frames what arrived, answers control messages, hands the rest
// to the broker and flushes the outbound queue. It also runs on Wake, with
// nothing to read, just to flush.
func (r *reactor) OnTraffic(c gnet.Conn) gnet.Action {
	s := (*Server)(r)
	ss, ok := c.Context().(*session)
	if !ok {
		return gnet.Close
	}
	ss.lp.touch()
	buf, ok := ss.readInbound(c)
	if !ok {
		ss.flush()
		return gnet.Close
	}
	if len(buf) > 0 {
		ss.lastRead = ss.lp.wheel.now
		ss.client.Heard(ss.lastRead)
		ss.readAt = time.Now().UnixNano()
		ss.bytesIn.Add(uint64(len(buf)))
		s.stats.BytesIn.Add(uint64(len(buf)))
	}
	if ss.auth == authPending {
		if res := ss.authDone.Swap(nil); res != nil && !ss.finishAuth(res) {
			return gnet.Close
		}
	}
	var tlsErr error
	if ss.tls != nil {
		// Fed even with nothing read: after the handshake goroutine's Wake,
		// Feed(nil) is what moves the connection to Established.
		var plain []byte
		plain, tlsErr = ss.tls.Feed(buf, ss.lp.plain[:0])
		ss.lp.plain = plain[:0]
		if !ss.established.Load() && ss.tls.HandshakeComplete() && !ss.onEstablished() {
			return gnet.Close
		}
		buf = plain
	}
	if len(buf) > 0 {
		if err := ss.feed(buf); err != nil {
			r := reasonFor(err)
			ss.reason.CompareAndSwap(uint32(reasonUnset), uint32(r))
			ss.logger().Warn().Err(err).Str("reason", r.String()).Msg("bad input; closing connection")
			ss.flush()
			return gnet.Close
		}
	}
	// Plaintext decrypted before a TLS error was handled above: what the
	// client sent before failing is not lost.
	if tlsErr != nil {
		ss.failTLS(tlsErr)
		ss.flush()
		return gnet.Close
	}
	ss.notePartial(c)
	ss.flush()
	return gnet.None
}

// OnClose is the single place a connection's resources are released and
// its close counted.
func (r *reactor) OnClose(c gnet.Conn, err error) gnet.Action {
	s := (*Server)(r)
	ss, ok := c.Context().(*session)
	if !ok {
		return gnet.None
	}
	c.SetContext(nil)
	unsent := ss.closeOutbound()
	s.stats.UnsentBytes.Add(unsent)

	ss.lp.wheel.unlink(&ss.tm)
	s.sessions.Delete(ss.id)
	ss.releasePartial()
	ss.authGone.Store(true)
	if ss.client != nil {
		s.broker.Leave(ss.client)
	}
	s.stats.Open[ss.ln.kind].Add(-1)
	s.conns.Add(-1)
	if ss.tls != nil && !ss.established.Load() {
		s.stats.Handshaking[ss.ln.kind].Add(-1)
		if ss.reason.Load() == uint32(reasonUnset) {
			// Closed mid-handshake with no reason yet: the client hung up.
			// If its certificate had just been refused, it hung up on the
			// alert, possibly before the handshake goroutine that sent it
			// returned: the close is counted when that result is known (at
			// once, or when the goroutine returns), so a refusal is never
			// counted as a client that went away.
			ss.tls.CloseThen(func(hsErr error) { s.closed(ss, err, unsent, hsErr) })
			return gnet.None
		}
	}
	if ss.tls != nil {
		ss.tls.Close()
	}
	s.closed(ss, err, unsent, nil)
	return gnet.None
}

// closed counts and logs a connection's end: on the loop in OnClose, or on
// the handshake goroutine when OnClose had to wait for its result. ioErr is
// what gnet closed with; hsErr is a handshake failure the loop never fed.
func (s *Server) closed(ss *session, ioErr error, unsent uint64, hsErr error) {
	if hsErr != nil {
		ss.failTLS(hsErr)
	}
	r := CloseReason(ss.reason.Load())
	if r == reasonUnset {
		switch {
		case s.draining.Load():
			r = ReasonShutdown
		case ioErr == nil || errors.Is(ioErr, io.EOF):
			r = ReasonPeerClosed
		default:
			r = ReasonIOError
		}
		ss.reason.Store(uint32(r))
	}
	if ss.tls != nil && !ss.established.Load() {
		s.countHandshakeEnd(ss, r)
	}
	s.stats.Closes[r].Inc()
	if ss.client != nil && ss.client.Left() {
		s.left(ss, r)
	}
	ev := ss.logger().Info().Str("reason", r.String()).Dur("age", time.Since(ss.opened)).
		Uint64("bytes_in", ss.bytesIn.Load()).Uint64("bytes_out", ss.out.sent)
	if unsent > 0 {
		ev = ev.Uint64("unsent_bytes", unsent)
	}
	if ioErr != nil && r == ReasonIOError {
		ev = ev.Err(ioErr)
	}
	ev.Msg("connection closed")
}

func (s *Server) listenerOf(c gnet.Conn) *listener {
	if len(s.listeners) == 1 {
		return s.listeners[0]
	}
	port := localPort(c.Fd())
	for _, ln := range s.listeners {
		if ln.bound != nil && ln.bound.Port == port {
			return ln
		}
	}
	return s.listeners[0]
}

func (s *Server) loopOf(el gnet.EventLoop) *loop {
	if lp, ok := s.loops.Load(el); ok {
		return lp.(*loop)
	}
	v, loaded := s.loops.LoadOrStore(el, newLoop(el, time.Now().UnixNano()))
	lp := v.(*loop)
	if !loaded {
		lp.startWheel()
	}
	return lp
}

func fireTimer(t *timer, now int64) { t.owner.expire(now) }

// shutdown drains: refuse new connections, route what the broker holds,
// flush every queue while the drain timeout allows, then stop gnet.
func (s *Server) shutdown() {
	s.draining.Store(true)
	s.log.Info().Msg("shutting down: draining")
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Limits.DrainTimeout.Duration)
	defer cancel()
	if err := s.broker.Drain(ctx); err != nil {
		s.log.Warn().Err(err).Msg("broker did not drain in time")
	}
	for {
		var owed int64
		s.sessions.Range(func(_, v any) bool {
			ss := v.(*session)
			// A wake makes the loop flush and refresh what gnet still holds.
			_ = ss.c.Wake(nil)
			owed += ss.queued()
			return true
		})
		if owed == 0 {
			break
		}
		select {
		case <-ctx.Done():
			s.log.Warn().Int64("unsent_bytes", owed).Msg("drain timeout: closing with output still queued")
		case <-time.After(20 * time.Millisecond):
			continue
		}
		break
	}
	stopCtx, cancelStop := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelStop()
	if err := s.eng.Stop(stopCtx); err != nil {
		s.log.Warn().Err(err).Msg("engine stop")
	}
}

// stopSide stops what runs beside gnet: the broker and the admin listener.
func (s *Server) stopSide() {
	s.broker.Stop()
	if s.admin != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = s.admin.Shutdown(ctx)
	}
}

// gnetLogger sends gnet's own messages to zerolog.
type gnetLogger struct{ l zerolog.Logger }

func (g gnetLogger) Debugf(f string, a ...any) { g.l.Debug().Msgf(f, a...) }
func (g gnetLogger) Infof(f string, a ...any)  { g.l.Info().Msgf(f, a...) }
func (g gnetLogger) Warnf(f string, a ...any)  { g.l.Warn().Msgf(f, a...) }
func (g gnetLogger) Errorf(f string, a ...any) { g.l.Error().Msgf(f, a...) }
func (g gnetLogger) Fatalf(f string, a ...any) { g.l.Error().Msgf(f, a...) }
