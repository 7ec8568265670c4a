// Package enginetest starts a real cotd engine on loopback and plays TAK
// clients against it, recording what each client receives. Tests use it to
// check behaviour over real sockets; nothing here is a fake of the server.
package enginetest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"cotd/configs"
	"cotd/cot"
	"cotd/cot/takproto"
	"cotd/engine"
	"cotd/engine/admin"
	"cotd/engine/auth"
	"cotd/engine/store"
	"cotd/engine/storefeed"
	"cotd/internal/poll"
)

// Wait is how long an expectation waits before failing. It is a bound on a
// failure, not a measurement: a passing test never waits this long. It is
// generous because CI runs every package under the race detector at once on
// two cores, where a slow step can take seconds.
const Wait = 20 * time.Second

// Harness is one running server.
type Harness struct {
	Srv  *engine.Server
	Cfg  *configs.Config
	Logs *SyncBuffer
	// Store and Feed are set when the configuration enables the store
	// (off unless mutate turns it on; its SQLite file is in the test's
	// temporary directory unless mutate names another or a URL). They are
	// closed after the server stops, as cmd/cotd does.
	Store *store.DB
	Feed  *storefeed.Feed

	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// Start runs a server on 127.0.0.1 with kernel-chosen ports. mutate may
// change the configuration first. The server stops when the test ends.
func Start(t testing.TB, mutate func(*configs.Config)) *Harness {
	t.Helper()
	return StartWith(t, Options{Mutate: mutate})
}

// Options are what StartWith adds to Start.
type Options struct {
	// Mutate may change the configuration first.
	Mutate func(*configs.Config)
	// Console, when set, builds the handler the admin listener serves at
	// "/" behind its auth (admin.Options.Console), as cmd/cotd mounts the
	// web console; it is called once, after engine.New and before Run.
	Console func(*engine.Server) http.Handler
}

// StartWith is Start with Options.
func StartWith(t testing.TB, o Options) *Harness {
	t.Helper()
	mutate := o.Mutate
	cfg := configs.Default()
	cfg.TCP.Addr = "127.0.0.1:0"
	cfg.TLS.Addr = "" // StartTLS turns it on with certificates of its own
	cfg.Admin.Addr = "127.0.0.1:0"
	cfg.Log.Level = "debug"
	cfg.Store.Enabled = false
	cfg.Store.Path = filepath.Join(t.TempDir(), "cotd.db")
	if mutate != nil {
		mutate(cfg)
	}
	logs := &SyncBuffer{}
	var w io.Writer = logs
	if os.Getenv("COTD_TEST_LOG") != "" {
		w = io.MultiWriter(logs, os.Stderr)
	}
	log := zerolog.New(w).With().Timestamp().Logger()
	srv, err := engine.New(cfg, log)
	if err != nil {
		t.Fatalf("engine.New: %v", err)
	}
	h := &Harness{Srv: srv, Cfg: cfg, Logs: logs, done: make(chan error, 1)}
	if cfg.Store.Enabled {
		h.startStore(t, log)
	}
	// As cmd/cotd wires it, with the same logger (tests read its audit lines).
	ao := admin.Options{Directory: srv.Directory(), Metrics: srv.WriteMetrics, Ready: srv.Readiness,
		Pprof: cfg.Admin.Pprof, Log: log, Hosts: cfg.Admin.AllowedHosts}
	if o.Console != nil {
		ao.Console = o.Console(srv)
	}
	if cfg.Admin.BasicUser != "" {
		ao.Authorize = auth.BasicChecker(cfg.Admin.BasicUser, cfg.Admin.BasicPasswordHash)
	}
	srv.HandleAdmin(admin.New(ao))
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- srv.Run(ctx) }()
	select {
	case <-srv.Ready():
	case err := <-h.done:
		t.Fatalf("server did not start: %v", err)
	case <-time.After(Wait):
		t.Fatal("server did not become ready")
	}
	t.Cleanup(func() { _ = h.Stop() })
	return h
}

// startStore opens the store the configuration names and starts its feed
// on the server's Directory, as cmd/cotd does.
func (h *Harness) startStore(t testing.TB, log zerolog.Logger) {
	t.Helper()
	db, err := store.Open(context.Background(), h.Cfg.Store, store.Options{Log: log})
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	f, err := storefeed.Start(context.Background(), storefeed.Options{
		Directory: h.Srv.Directory(), Store: db, Config: h.Cfg.Store, Log: log})
	if err != nil {
		_ = db.Close(context.Background())
		t.Fatalf("storefeed.Start: %v", err)
	}
	h.Store, h.Feed = db, f
	h.Srv.AddMetrics(func(w io.Writer) error {
		if err := db.WriteMetrics(w); err != nil {
			return err
		}
		return f.WriteMetrics(w)
	})
}

// Stop shuts the server down gracefully (then the feed and the store, if
// any) and returns the first error.
func (h *Harness) Stop() error {
	h.once.Do(func() {
		h.cancel()
		select {
		case h.err = <-h.done:
		case <-time.After(30 * time.Second):
			h.err = fmt.Errorf("server did not stop")
		}
		if h.Feed != nil {
			ctx, cancel := context.WithTimeout(context.Background(), Wait)
			defer cancel()
			h.err = errors.Join(h.err, h.Feed.Close(ctx), h.Store.Close(ctx))
		}
	})
	return h.err
}

// TCPAddr is the plain listener's address.
func (h *Harness) TCPAddr() string { return h.Srv.Addr(engine.ListenerTCP).String() }

// TLSAddr is the TLS listener's address.
func (h *Harness) TLSAddr() string { return h.Srv.Addr(engine.ListenerTLS).String() }

// Metrics fetches /metrics over HTTP from the admin listener.
func (h *Harness) Metrics(t testing.TB) string {
	t.Helper()
	resp, err := http.Get("http://" + h.Srv.AdminAddr().String() + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Eventually polls cond until it holds or Wait passes (internal/poll, the
// project's one poll helper).
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	poll.Until(t, what, Wait, cond)
}

// EventuallyWithin is Eventually with another bound, for a fact that is
// due later than Wait from now (a configured deadline still running).
func EventuallyWithin(t testing.TB, what string, within time.Duration, cond func() bool) {
	t.Helper()
	poll.Until(t, what, within, cond)
}

// Event is one document a client received.
type Event struct {
	Raw []byte
	H   cot.Header
}

// Client is a TAK client on a real TCP connection.
type Client struct {
	t    testing.TB
	Conn net.Conn

	// v1 is set once the client switched to TAK protocol v1 (see Negotiate).
	v1 atomic.Bool

	mu     sync.Mutex
	cond   *sync.Cond
	events []Event
	taken  []bool // events already returned by Expect
	err    error  // why the reader stopped
}

// Dial connects a client to addr and starts recording what it receives.
func Dial(t testing.TB, addr string) *Client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, Wait)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	return Wrap(t, conn)
}

// DialTLS connects over TLS with cfg, completes the handshake, and starts
// recording what the client receives.
func DialTLS(t testing.TB, addr string, cfg *tls.Config) *Client {
	t.Helper()
	c, err := TryDialTLS(addr, cfg)
	if err != nil {
		t.Fatalf("tls dial %s: %v", addr, err)
	}
	return Wrap(t, c)
}

// TryDialTLS dials and completes a TLS handshake, returning its error. With
// TLS 1.3 the server's verdict on the client certificate arrives after the
// client's handshake ends, so a refusal may also surface on the first read.
func TryDialTLS(addr string, cfg *tls.Config) (*tls.Conn, error) {
	d := &net.Dialer{Timeout: Wait}
	conn, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	return conn, nil
}

// Wrap starts recording what conn receives.
func Wrap(t testing.TB, conn net.Conn) *Client { return start(t, conn, false) }

// start records what conn receives, as TAK protocol v1 frames from the
// first byte when v1 is set.
func start(t testing.TB, conn net.Conn, v1 bool) *Client {
	c := &Client{t: t, Conn: conn}
	c.v1.Store(v1)
	c.cond = sync.NewCond(&c.mu)
	go c.read()
	t.Cleanup(func() { _ = conn.Close() })
	return c
}

// DialSilent connects without reading: the socket's receive buffer fills and
// the server sees a client that never reads.
func DialSilent(t testing.TB, addr string) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, Wait)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4096)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func (c *Client) read() {
	r := takproto.NewClientReader(8<<20, c.v1.Load())
	buf := make([]byte, 64<<10)
	var err error
	for err == nil {
		var n int
		n, err = c.Conn.Read(buf)
		if n == 0 {
			continue
		}
		if ferr := r.Feed(buf[:n], func(doc []byte) error {
			// Before the response is recorded: whoever sees it sends v1 next.
			if r.V1() {
				c.v1.Store(true)
			}
			c.record(bytes.Clone(doc))
			return nil
		}); ferr != nil {
			err = ferr
		}
	}
	c.mu.Lock()
	c.err = err
	c.cond.Broadcast()
	c.mu.Unlock()
}

// record scans and stores one received event.
func (c *Client) record(doc []byte) Event {
	ev := Event{Raw: doc}
	if err := cot.ScanHeader(ev.Raw, &ev.H); err != nil {
		ev.H.Type = "unparsable"
	}
	c.mu.Lock()
	c.events = append(c.events, ev)
	c.taken = append(c.taken, false)
	c.cond.Broadcast()
	c.mu.Unlock()
	return ev
}

// V1 reports whether the client has switched to TAK protocol v1.
func (c *Client) V1() bool { return c.v1.Load() }

// SendEvent sends an XML event in the client's current wire format: as it
// is, or converted to one v1 frame once the client switched.
func (c *Client) SendEvent(xml string) {
	c.t.Helper()
	if !c.v1.Load() {
		c.Send(xml)
		return
	}
	var m takproto.TakMessage
	doc := xml
	if i := strings.Index(doc, "<event"); i > 0 {
		doc = doc[i:] // a declaration has no place in v1
	}
	if err := takproto.FromXML([]byte(doc), &m); err != nil {
		c.t.Fatalf("convert to v1: %v", err)
	}
	if _, err := c.Conn.Write(takproto.AppendMessageFrame(nil, &m)); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// Negotiate waits for the server's offer of TAK protocol v1 and asks for
// it; the reader switches when the response says true. It returns the
// response.
func (c *Client) Negotiate() Event {
	c.t.Helper()
	offer := c.Expect("protocol offer", Type(cot.TypeTakpOffer))
	c.Send(string(takproto.AppendRequest(nil, offer.H.UID, takproto.ProtocolVersion, time.Now())))
	return c.Expect("protocol response", Type(cot.TypeTakpResponse))
}

// DialV1 connects to a listener that speaks v1 from the first byte.
func DialV1(t testing.TB, addr string) *Client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, Wait)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	return start(t, conn, true)
}

// Send writes raw bytes.
func (c *Client) Send(s string) {
	c.t.Helper()
	if _, err := c.Conn.Write([]byte(s)); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// Expect returns the earliest received event that matches and that no
// earlier Expect returned, waiting for it up to Wait.
func (c *Client) Expect(what string, match func(*cot.Header) bool) Event {
	c.t.Helper()
	ev, ok := c.await(match)
	if !ok {
		c.t.Fatalf("did not receive %s; got %d events: %s", what, len(c.Events()), c.summary())
	}
	return ev
}

func (c *Client) await(match func(*cot.Header) bool) (Event, bool) {
	deadline := time.Now().Add(Wait)
	timer := time.AfterFunc(Wait, func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	defer timer.Stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		for i := range c.events {
			if !c.taken[i] && match(&c.events[i].H) {
				c.taken[i] = true
				return c.events[i], true
			}
		}
		if c.err != nil || time.Now().After(deadline) {
			return Event{}, false
		}
		c.cond.Wait()
	}
}

// Closed waits until the server closes the connection and returns why the
// reader stopped (io.EOF or a reset), or fails after Wait.
func (c *Client) Closed() error {
	c.t.Helper()
	deadline := time.Now().Add(Wait)
	timer := time.AfterFunc(Wait, func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	defer timer.Stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.err == nil {
		if time.Now().After(deadline) {
			c.t.Fatal("connection still open")
		}
		c.cond.Wait()
	}
	return c.err
}

// Events returns everything received so far.
func (c *Client) Events() []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Event(nil), c.events...)
}

// Received reports whether any event received so far matches.
func (c *Client) Received(match func(*cot.Header) bool) bool {
	for _, ev := range c.Events() {
		if match(&ev.H) {
			return true
		}
	}
	return false
}

func (c *Client) summary() string {
	var b strings.Builder
	for i, ev := range c.Events() {
		if i == 20 {
			b.WriteString(" …")
			break
		}
		fmt.Fprintf(&b, " [%s %s]", ev.H.Type, ev.H.UID)
	}
	return b.String()
}

// UID matches an event by uid.
func UID(uid string) func(*cot.Header) bool {
	return func(h *cot.Header) bool { return h.UID == uid }
}

// Type matches an event by type.
func Type(typ string) func(*cot.Header) bool {
	return func(h *cot.Header) bool { return h.Type == typ }
}

// SyncBuffer is a bytes.Buffer safe for concurrent writes (the server's log).
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Joined waits until n clients are registered with the broker. A dial
// returns once the kernel accepted the connection; the event loop may open
// it a moment later, and a broadcast sent before that does not reach it.
func (h *Harness) Joined(t testing.TB, n int) {
	t.Helper()
	Eventually(t, fmt.Sprintf("%d clients joined", n), func() bool { return h.Srv.Broker().Count() == n })
}

// Sample finds one series (name with its labels, as written) in Prometheus
// text.
func Sample(text, series string) (float64, bool) {
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

// WaitSample waits until series reads want on /metrics.
func (h *Harness) WaitSample(t testing.TB, series string, want float64) {
	t.Helper()
	Eventually(t, series+" = "+strconv.FormatFloat(want, 'g', -1, 64), func() bool {
		v, ok := Sample(h.Metrics(t), series)
		return ok && v == want
	})
}
