package tlsstate

import (
	"bytes"
	"crypto/tls"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"
)

// failsafe bounds every wait in the tests. It is not used to synchronise:
// waits end on channels or on polled conditions; it only turns a hang into
// a failure.
const failsafe = 20 * time.Second

// feedMode says how the test loop cuts each socket read into Feed calls.
type feedMode int

const (
	feedWhole  feedMode = iota
	feedBytes           // one byte per Feed
	feedRandom          // random chunks, seeded
)

func (m feedMode) String() string {
	return [...]string{"whole", "bytes", "random"}[m]
}

// loop plays the engine: one goroutine owns the Conn, feeds it what a
// reader goroutine got from the socket, writes Out bytes back in order
// through one queue, and calls Feed(nil) on Wake.
type loop struct {
	t     testing.TB
	conn  *Conn
	sock  net.Conn
	mode  feedMode
	rng   *rand.Rand
	echo  chan []byte // non-nil: plaintext is echoed by a separate goroutine via Write
	dst   []byte
	calls chan func()
	in    chan []byte
	wake  chan struct{}
	flush chan struct{}
	quit  chan struct{}
	done  chan struct{} // closed when the loop goroutine has returned

	established chan struct{} // closed when Feed first leaves the Conn Established
	failed      chan struct{} // closed when Feed first returns an error

	qmu   sync.Mutex
	queue []byte

	mu        sync.Mutex
	err       error      // first Feed error
	failHello *HelloInfo // Hello() when Feed failed, as the engine would log it
	plain     bytes.Buffer
	outCalls  int
	feeds     int // Feed calls with bytes
	fed       int // bytes fed
	detached  bool
	stopOnce  sync.Once
	wg        sync.WaitGroup
}

type loopOpts struct {
	mode feedMode
	seed uint64
	echo bool
	opts Options
	// manual: no t.Cleanup; the caller calls stop or release. Lets a
	// memory measurement drop every reference to the loop.
	manual bool
}

func startLoop(t testing.TB, sock net.Conn, cfg *tls.Config, lo loopOpts) *loop {
	l := &loop{
		t:           t,
		sock:        sock,
		mode:        lo.mode,
		rng:         rand.New(rand.NewPCG(lo.seed, 0x9e3779b97f4a7c15)),
		calls:       make(chan func()),
		in:          make(chan []byte, 16),
		wake:        make(chan struct{}, 1),
		flush:       make(chan struct{}, 1),
		quit:        make(chan struct{}),
		done:        make(chan struct{}),
		established: make(chan struct{}),
		failed:      make(chan struct{}),
	}
	l.conn = Server(cfg, lo.opts, Hooks{Out: l.out, Wake: func() { signal(l.wake) }})
	if lo.echo {
		l.echo = make(chan []byte, 64)
		l.wg.Add(1)
		go l.echoWriter()
	}
	l.wg.Add(2)
	go l.reader()
	go l.run()
	if !lo.manual {
		t.Cleanup(l.stop)
	}
	return l
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (l *loop) out(p []byte) {
	l.qmu.Lock()
	l.queue = append(l.queue, p...)
	l.qmu.Unlock()
	l.mu.Lock()
	l.outCalls++
	l.mu.Unlock()
	signal(l.flush)
}

func (l *loop) reader() {
	defer l.wg.Done()
	buf := make([]byte, 16<<10)
	for {
		n, err := l.sock.Read(buf)
		if n > 0 {
			select {
			case l.in <- bytes.Clone(buf[:n]):
			case <-l.done:
				return
			}
		}
		if err != nil {
			select {
			case l.in <- nil: // EOF marker
			case <-l.done:
			}
			return
		}
	}
}

func (l *loop) echoWriter() {
	defer l.wg.Done()
	for p := range l.echo {
		if _, err := l.conn.Write(p); err != nil {
			return
		}
	}
}

func (l *loop) run() {
	defer l.wg.Done()
	defer close(l.done)
	for {
		select {
		case b := <-l.in:
			if b == nil {
				l.teardown()
				return
			}
			for len(b) > 0 && !l.hasErr() {
				n := len(b)
				switch l.mode {
				case feedBytes:
					n = 1
				case feedRandom:
					n = min(n, 1+l.rng.IntN(700))
				}
				l.feed(b[:n])
				b = b[n:]
			}
		case <-l.wake:
			l.feed(nil)
		case <-l.flush:
			l.flushOut()
		case f := <-l.calls:
			f()
			if l.isDetached() {
				return
			}
		case <-l.quit:
			l.teardown()
			return
		}
		if l.hasErr() {
			// Like the engine: send what is queued (an alert), then close.
			l.flushOut()
			l.teardown()
			return
		}
	}
}

func (l *loop) feed(p []byte) {
	if len(p) > 0 {
		l.mu.Lock()
		l.feeds++
		l.fed += len(p)
		l.mu.Unlock()
	}
	dst, err := l.conn.Feed(p, l.dst[:0])
	l.dst = dst[:0]
	if len(dst) > 0 {
		l.mu.Lock()
		l.plain.Write(dst)
		l.mu.Unlock()
		if l.echo != nil {
			l.echo <- bytes.Clone(dst)
		}
	}
	if err != nil {
		l.mu.Lock()
		first := l.err == nil
		if first {
			l.err = err
			l.failHello = l.conn.Hello()
		}
		l.mu.Unlock()
		if first {
			close(l.failed)
		}
		return
	}
	if l.conn.Phase() == Established {
		select {
		case <-l.established:
		default:
			close(l.established)
		}
	}
}

func (l *loop) flushOut() {
	l.qmu.Lock()
	q := l.queue
	l.queue = nil
	l.qmu.Unlock()
	if len(q) > 0 {
		l.sock.Write(q) // errors surface on the client side
	}
}

func (l *loop) teardown() {
	l.conn.Close()
	l.sock.Close()
	if l.echo != nil {
		close(l.echo)
	}
}

func (l *loop) hasErr() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err != nil
}

func (l *loop) isDetached() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.detached
}

// Err is the first error Feed returned.
func (l *loop) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

func (l *loop) Plain() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.plain.Bytes())
}

func (l *loop) FailHello() *HelloInfo {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failHello
}

// Feeds reports the Feed calls that carried bytes, and the bytes.
func (l *loop) Feeds() (calls, bytes int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.feeds, l.fed
}

func (l *loop) OutCalls() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.outCalls
}

// call runs f on the loop goroutine and waits for it.
func (l *loop) call(f func()) {
	ran := make(chan struct{})
	select {
	case l.calls <- func() { f(); close(ran) }:
		<-ran
	case <-l.done:
		l.t.Fatal("loop is gone")
	}
}

// detach ends the loop goroutine without closing anything; the caller then
// owns the Conn (and becomes its loop). The reader goroutine stays blocked
// on the socket until stop closes it.
func (l *loop) detach() {
	l.call(func() {
		l.mu.Lock()
		l.detached = true
		l.mu.Unlock()
	})
	<-l.done
}

// stop ends the loop and waits for all its goroutines.
func (l *loop) stop() {
	l.stopOnce.Do(func() {
		close(l.quit)
		select {
		case <-l.done:
		case <-time.After(failsafe):
			l.t.Error("loop did not stop")
		}
		l.conn.Close()
		l.sock.Close()
		if l.isDetached() && l.echo != nil {
			close(l.echo)
		}
		l.wg.Wait()
	})
}

// release ends a detached loop's reader by closing the transport, leaving
// the Conn open.
func (l *loop) release() {
	l.sock.Close()
	l.wg.Wait()
}

func (l *loop) waitEstablished(t testing.TB) {
	t.Helper()
	select {
	case <-l.established:
	case <-l.failed:
		t.Fatalf("handshake failed: %v", l.Err())
	case <-time.After(failsafe):
		t.Fatal("timed out waiting for Established")
	}
}

func (l *loop) waitFailed(t testing.TB) error {
	t.Helper()
	select {
	case <-l.failed:
		return l.Err()
	case <-time.After(failsafe):
		t.Fatal("timed out waiting for a Feed error")
	}
	return nil
}

// tcpPair returns the two ends of a loopback TCP connection on an
// ephemeral port.
func tcpPair(t testing.TB) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		c   net.Conn
		err error
	}
	acc := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		acc <- res{c, err}
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-acc
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { client.Close(); r.c.Close() })
	return client, r.c
}

// memPipe is one direction of an in-memory connection with an unbounded
// buffer: writes never block, so a test whose client stops reading cannot
// wedge the loop.
type memPipe struct {
	mu     sync.Mutex
	cond   sync.Cond
	buf    []byte
	closed bool
}

func newMemPipe() *memPipe {
	p := &memPipe{}
	p.cond.L = &p.mu
	return p
}

type memConn struct {
	r, w *memPipe
}

func memPair() (a, b *memConn) {
	x, y := newMemPipe(), newMemPipe()
	return &memConn{r: x, w: y}, &memConn{r: y, w: x}
}

func (c *memConn) Read(b []byte) (int, error) {
	p := c.r
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.buf) == 0 && !p.closed {
		p.cond.Wait()
	}
	if len(p.buf) == 0 {
		return 0, io.EOF
	}
	n := copy(b, p.buf)
	p.buf = p.buf[n:]
	if len(p.buf) == 0 {
		p.buf = nil
	}
	return n, nil
}

func (c *memConn) Write(b []byte) (int, error) {
	p := c.w
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return 0, net.ErrClosed
	}
	p.buf = append(p.buf, b...)
	p.cond.Broadcast()
	return len(b), nil
}

func (c *memConn) Close() error {
	for _, p := range []*memPipe{c.r, c.w} {
		p.mu.Lock()
		p.closed = true
		p.cond.Broadcast()
		p.mu.Unlock()
	}
	return nil
}

func (c *memConn) LocalAddr() net.Addr                { return noAddr{} }
func (c *memConn) RemoteAddr() net.Addr               { return noAddr{} }
func (c *memConn) SetDeadline(t time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(t time.Time) error { return nil }

// captureConn diverts writes into a buffer once capturing is switched on,
// so a benchmark can collect a client's ciphertext and feed it by hand.
type captureConn struct {
	net.Conn
	mu      sync.Mutex
	capture *bytes.Buffer
}

func (c *captureConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	buf := c.capture
	c.mu.Unlock()
	if buf != nil {
		return buf.Write(b)
	}
	return c.Conn.Write(b)
}

func (c *captureConn) startCapture() *bytes.Buffer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.capture = new(bytes.Buffer)
	return c.capture
}

// handshakeGoroutines counts live handshake goroutines by their entry
// function, which is exact where runtime.NumGoroutine also counts test
// machinery.
func handshakeGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return bytes.Count(buf[:n], []byte("tlsstate.(*Conn).runHandshake("))
		}
		buf = make([]byte, 2*len(buf))
	}
}

// captureHello returns the first flight (the ClientHello records) a client
// sends, by running hs over an in-memory conn and stopping it after the
// hello.
func captureHello(t testing.TB, hs func(net.Conn) error) []byte {
	t.Helper()
	a, b := memPair()
	done := make(chan struct{})
	go func() {
		defer close(done)
		hs(a)
	}()
	var got []byte
	buf := make([]byte, 4096)
	for {
		n, err := b.Read(buf)
		got = append(got, buf[:n]...)
		msg, _, serr := scanHello(got, 1<<20)
		if serr != nil {
			t.Fatalf("captured bytes are not a hello: %v", serr)
		}
		if msg != nil {
			break
		}
		if err != nil {
			t.Fatalf("client stopped before its hello was complete: %v", err)
		}
	}
	b.Close()
	<-done
	return got
}

func goClientHello(t testing.TB, cfg *tls.Config) []byte {
	return captureHello(t, func(c net.Conn) error { return tls.Client(c, cfg).Handshake() })
}

// directConn is a Conn driven by the test goroutine itself, for unit tests
// that need no handshake partner.
type directConn struct {
	*Conn
	mu  sync.Mutex
	out []byte
}

func newDirect(opts Options) *directConn {
	d := &directConn{}
	d.Conn = Server(serverConfig("ecdsa", tls.VersionTLS13), opts, Hooks{
		Out: func(p []byte) {
			d.mu.Lock()
			d.out = append(d.out, p...)
			d.mu.Unlock()
		},
	})
	return d
}

func (d *directConn) Out() []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return bytes.Clone(d.out)
}
