package tlsstate

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	utls "github.com/refraction-networking/utls"

	"cotd/internal/poll"
)

var versions = []struct {
	name string
	v    uint16
}{{"TLS12", tls.VersionTLS12}, {"TLS13", tls.VersionTLS13}}

// payloads returns messages of assorted sizes: a byte, a CoT-sized event,
// one just over a record, and several records' worth.
func payloads(seed uint64) [][]byte {
	rng := rand.New(rand.NewPCG(seed, 2))
	var out [][]byte
	for _, n := range []int{1, 300, 1500, 16384 + 1, 40000} {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		out = append(out, p)
	}
	return out
}

// clientEcho writes msgs one after another and reads the echo concurrently
// (so neither side can fill the socket buffers and stall), then checks it.
func clientEcho(t *testing.T, c io.ReadWriter, msgs [][]byte) {
	t.Helper()
	want := bytes.Join(msgs, nil)
	got := make([]byte, len(want))
	readErr := make(chan error, 1)
	go func() {
		_, err := io.ReadFull(c, got)
		readErr <- err
	}()
	for _, m := range msgs {
		if _, err := c.Write(m); err != nil {
			t.Fatalf("client write: %v", err)
		}
	}
	select {
	case err := <-readErr:
		if err != nil {
			t.Fatalf("client read: %v", err)
		}
	case <-time.After(failsafe):
		t.Fatal("timed out reading the echo")
	}
	if !bytes.Equal(got, want) {
		t.Fatal("echo differs from what was sent")
	}
}

// TestMTLSMatrix runs full mTLS handshakes for each version and server key
// with the ciphertext fed whole, one byte at a time and in random chunks,
// then echoes data both ways and checks what the server saw.
func TestMTLSMatrix(t *testing.T) {
	p := pkiOnce()
	for _, ver := range versions {
		for _, key := range []string{"ecdsa", "rsa"} {
			for _, mode := range []feedMode{feedWhole, feedBytes, feedRandom} {
				t.Run(fmt.Sprintf("%s/%s/%s", ver.name, key, mode), func(t *testing.T) {
					client, server := tcpPair(t)
					l := startLoop(t, server, serverConfig(key, tls.VersionTLS13), loopOpts{mode: mode, seed: 42, echo: true})
					tc := tls.Client(client, clientConfig(&p.client, ver.v))
					if err := tc.Handshake(); err != nil {
						t.Fatalf("client handshake: %v", err)
					}
					l.waitEstablished(t)

					cs := l.conn.ConnectionState()
					if cs.Version != ver.v || !cs.HandshakeComplete || cs.DidResume {
						t.Errorf("server state: version %x complete %v resumed %v", cs.Version, cs.HandshakeComplete, cs.DidResume)
					}
					if got := l.conn.PeerCN(); got != testClientCN {
						t.Errorf("PeerCN = %q", got)
					}
					if h := l.conn.Hello(); h == nil || h.MaxVersion() != ver.v || h.JA3Hash == "" {
						t.Errorf("Hello = %+v", h)
					}
					if handshakeGoroutines() != 0 {
						// The goroutine reported before Wake, so it may still be
						// returning; it must be gone shortly.
						poll.Until(t, "handshake goroutine to exit", failsafe, func() bool { return handshakeGoroutines() == 0 })
					}

					msgs := payloads(7)
					clientEcho(t, tc, msgs)
					if got := l.Plain(); !bytes.Equal(got, bytes.Join(msgs, nil)) {
						t.Errorf("server plaintext: %d bytes, want %d", len(got), len(bytes.Join(msgs, nil)))
					}

					// Server-initiated data from a goroutine other than the loop.
					push := bytes.Repeat([]byte("<event/>"), 5000)
					go l.conn.Write(push)
					got := make([]byte, len(push))
					if _, err := io.ReadFull(tc, got); err != nil || !bytes.Equal(got, push) {
						t.Fatalf("server push: %v", err)
					}

					if calls, n := l.Feeds(); mode == feedBytes && calls != n || calls == 0 {
						t.Errorf("%s: %d Feed calls for %d bytes", mode, calls, n)
					}

					// close_notify ends the stream with io.EOF.
					tc.Close()
					if err := l.waitFailed(t); err != io.EOF {
						t.Errorf("after close_notify: %v, want io.EOF", err)
					}
				})
			}
		}
	}
}

// TestClientCertRejected: a certificate from another CA, an expired one and
// none at all all fail the handshake with ErrHandshake, and the handshake
// goroutine ends.
func TestClientCertRejected(t *testing.T) {
	p := pkiOnce()
	certs := []struct {
		name string
		cert *tls.Certificate
	}{{"other-ca", &p.otherCA}, {"expired", &p.expired}, {"none", nil}}
	for _, ver := range versions {
		for _, c := range certs {
			t.Run(ver.name+"/"+c.name, func(t *testing.T) {
				client, server := tcpPair(t)
				l := startLoop(t, server, serverConfig("ecdsa", tls.VersionTLS13), loopOpts{})
				tc := tls.Client(client, clientConfig(c.cert, ver.v))
				// A TLS 1.3 client finishes before the server has judged its
				// certificate; it learns of the rejection on its first read.
				herr := make(chan error, 1)
				go func() {
					err := tc.Handshake()
					if err == nil {
						_, err = tc.Read(make([]byte, 1))
					}
					herr <- err
				}()
				err := l.waitFailed(t)
				if !errors.Is(err, ErrHandshake) {
					t.Fatalf("err = %v, want ErrHandshake", err)
				}
				if l.FailHello() == nil {
					t.Error("Hello() is nil after a failed handshake; the engine logs it")
				}
				if l.conn.PeerCN() != "" {
					t.Errorf("PeerCN = %q after a failed handshake", l.conn.PeerCN())
				}
				poll.Until(t, "handshake goroutine to exit", failsafe, func() bool { return handshakeGoroutines() == 0 })
				select {
				case cerr := <-herr:
					if cerr == nil {
						t.Error("client saw no error")
					}
				case <-time.After(failsafe):
					t.Fatal("client did not see the failure")
				}
			})
		}
	}
}

// TestCloseDuringHandshake: the client sends its hello, reads the server's
// first flight and goes silent. Close (from another goroutine, or from the
// loop) must end the handshake goroutine, and nothing the test started may
// remain.
func TestCloseDuringHandshake(t *testing.T) {
	for _, from := range []string{"other-goroutine", "loop"} {
		t.Run(from, func(t *testing.T) {
			base := runtime.NumGoroutine()
			hello := goClientHello(t, clientConfig(&pkiOnce().client, tls.VersionTLS13))
			func() {
				a, b := memPair()
				l := startLoop(t, b, serverConfig("rsa", tls.VersionTLS13), loopOpts{})
				defer l.stop()
				a.Write(hello)
				// The server's flight arrives once the goroutine has written it.
				if n, err := a.Read(make([]byte, 1)); n != 1 {
					t.Fatalf("no server flight: %v", err)
				}
				if ph := l.conn.Phase(); ph != Handshaking {
					t.Fatalf("phase %v, want Handshaking", ph)
				}
				if n := handshakeGoroutines(); n != 1 {
					t.Fatalf("%d handshake goroutines, want 1", n)
				}
				if from == "loop" {
					l.call(l.conn.Close)
				} else {
					l.conn.Close()
				}
				poll.Until(t, "handshake goroutine to exit", failsafe, func() bool { return handshakeGoroutines() == 0 })
				if ph := l.conn.Phase(); ph != Closed {
					t.Errorf("phase %v after Close", ph)
				}
				l.call(func() {
					if _, err := l.conn.Feed([]byte{1}, nil); !errors.Is(err, ErrClosed) {
						t.Errorf("Feed after Close: %v", err)
					}
				})
				if _, err := l.conn.Write([]byte("x")); !errors.Is(err, ErrClosed) {
					t.Errorf("Write after Close: %v", err)
				}
				l.conn.Close() // idempotent
				a.Close()
			}()
			poll.Until(t, "goroutines to return to the baseline", failsafe, func() bool { return runtime.NumGoroutine() <= base })
		})
	}
}

// TestNoGoroutineWithoutHello: a connection that sends nothing, or only part
// of a hello, has no goroutine of its own.
func TestNoGoroutineWithoutHello(t *testing.T) {
	hello := goClientHello(t, clientConfig(nil, tls.VersionTLS13))
	d := newDirect(Options{})
	if _, err := d.Feed(hello[:len(hello)-1], nil); err != nil || d.Phase() != AwaitHello {
		t.Fatalf("partial hello: %v, %v", err, d.Phase())
	}
	if n := handshakeGoroutines(); n != 0 {
		t.Fatalf("%d handshake goroutines before the hello is complete", n)
	}
	d.Close()
	if d.Phase() != Closed || d.hello != nil {
		t.Errorf("Close kept state: phase %v, %d hello bytes", d.Phase(), len(d.hello))
	}
}

func TestWriteBeforeEstablished(t *testing.T) {
	d := newDirect(Options{})
	if _, err := d.Write([]byte("x")); !errors.Is(err, ErrNotEstablished) {
		t.Errorf("AwaitHello: %v", err)
	}
	if _, err := d.Feed(goClientHello(t, clientConfig(nil, tls.VersionTLS13)), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Write([]byte("x")); !errors.Is(err, ErrNotEstablished) {
		t.Errorf("Handshaking: %v", err)
	}
	if cs := d.ConnectionState(); cs.HandshakeComplete {
		t.Error("ConnectionState during the handshake should be zero")
	}
	d.Close()
	if _, err := d.Write([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Closed: %v", err)
	}
	poll.Until(t, "handshake goroutine to exit", failsafe, func() bool { return handshakeGoroutines() == 0 })
}

// TestInputOverflow: a client that floods during the handshake is cut off.
func TestInputOverflow(t *testing.T) {
	d := newDirect(Options{MaxPending: 1024})
	defer d.Close()
	if _, err := d.Feed(goClientHello(t, clientConfig(nil, tls.VersionTLS13)), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Feed(make([]byte, 2000), nil); !errors.Is(err, ErrInputOverflow) {
		t.Fatalf("err = %v, want ErrInputOverflow", err)
	}
	poll.Until(t, "handshake goroutine to exit", failsafe, func() bool { return handshakeGoroutines() == 0 })
}

// TestResumption: a second connection with the session from the first
// resumes, on both versions, and still reports the client's CN.
func TestResumption(t *testing.T) {
	p := pkiOnce()
	for _, ver := range versions {
		t.Run(ver.name, func(t *testing.T) {
			scfg := serverConfig("ecdsa", tls.VersionTLS13)
			ccfg := clientConfig(&p.client, ver.v)
			ccfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
			for i, wantResume := range []bool{false, true} {
				client, server := tcpPair(t)
				l := startLoop(t, server, scfg, loopOpts{echo: true, mode: feedRandom, seed: uint64(i)})
				tc := tls.Client(client, ccfg)
				if err := tc.Handshake(); err != nil {
					t.Fatal(err)
				}
				// TLS 1.3 tickets arrive after the handshake; reading the echo
				// makes the client process them.
				clientEcho(t, tc, [][]byte{[]byte("ping")})
				l.waitEstablished(t)
				if got := l.conn.ConnectionState().DidResume; got != wantResume {
					t.Errorf("connection %d: server DidResume = %v", i, got)
				}
				if got := tc.ConnectionState().DidResume; got != wantResume {
					t.Errorf("connection %d: client DidResume = %v", i, got)
				}
				if l.conn.PeerCN() != testClientCN {
					t.Errorf("connection %d: PeerCN = %q", i, l.conn.PeerCN())
				}
				tc.Close()
				l.stop()
			}
		})
	}
}

// TestAndroidOkHttp: a TLS 1.2-only client with the hello of Android 11's
// OkHttp (utls parrot) completes mTLS against both server keys.
func TestAndroidOkHttp(t *testing.T) {
	for _, key := range []string{"ecdsa", "rsa"} {
		t.Run(key, func(t *testing.T) {
			client, server := tcpPair(t)
			l := startLoop(t, server, serverConfig(key, tls.VersionTLS13), loopOpts{echo: true})
			uc := utls.UClient(client, androidConfig(), utls.HelloAndroid_11_OkHttp)
			if err := uc.Handshake(); err != nil {
				t.Fatalf("client handshake: %v", err)
			}
			l.waitEstablished(t)
			if v := l.conn.ConnectionState().Version; v != tls.VersionTLS12 {
				t.Errorf("version %x, want TLS 1.2", v)
			}
			if l.conn.PeerCN() != testClientCN {
				t.Errorf("PeerCN = %q", l.conn.PeerCN())
			}
			h := l.conn.Hello()
			if !slices.Equal(h.Versions, []uint16{tls.VersionTLS12}) || h.ServerName != testServerName {
				t.Errorf("Hello: versions %x, SNI %q", h.Versions, h.ServerName)
			}
			checkJA3(t, h)
			// Derived by hand from utls's HelloAndroid_11_OkHttp spec: 12
			// suites; SNI, EMS, renegotiation_info, groups, point formats,
			// status_request, signature_algorithms; X25519, P-256, P-384.
			const ja3 = "771,49195-49196-52393-49199-49200-52392-49171-49172-156-157-47-53,0-23-65281-10-11-5-13,29-23-24,0"
			if h.JA3 != ja3 {
				t.Errorf("JA3 = %s\nwant   %s", h.JA3, ja3)
			}
			clientEcho(t, uc, payloads(3))
		})
	}
}

// fragmentingConn re-frames the first record-layer write (the ClientHello)
// into tiny records, as some middleboxes and stacks do.
type fragmentingConn struct {
	net.Conn
	t    *testing.T
	once sync.Once
	size int
}

func (c *fragmentingConn) Write(b []byte) (int, error) {
	out := b
	c.once.Do(func() { out = refragment(c.t, b, c.size) })
	if _, err := c.Conn.Write(out); err != nil {
		return 0, err
	}
	return len(b), nil
}

func TestMultiRecordHello(t *testing.T) {
	p := pkiOnce()
	for _, ver := range versions {
		t.Run(ver.name, func(t *testing.T) {
			client, server := tcpPair(t)
			l := startLoop(t, server, serverConfig("ecdsa", tls.VersionTLS13), loopOpts{echo: true, mode: feedRandom, seed: 9})
			tc := tls.Client(&fragmentingConn{Conn: client, t: t, size: 90}, clientConfig(&p.client, ver.v))
			if err := tc.Handshake(); err != nil {
				t.Fatal(err)
			}
			l.waitEstablished(t)
			if h := l.conn.Hello(); h.Records < 2 {
				t.Errorf("hello seen in %d records", h.Records)
			}
			clientEcho(t, tc, payloads(5))
		})
	}
}

// establishedMem returns an Established Conn the caller drives directly
// (its loop detached), and a client whose writes are captured as
// ciphertext.
func establishedMem(t testing.TB, scfg, ccfg *tls.Config, manual bool) (*loop, *tls.Conn, *captureConn) {
	t.Helper()
	a, b := memPair()
	l := startLoop(t, b, scfg, loopOpts{manual: manual})
	cc := &captureConn{Conn: a}
	ccfg = ccfg.Clone()
	ccfg.DynamicRecordSizingDisabled = true
	tc := tls.Client(cc, ccfg)
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	l.waitEstablished(t)
	l.detach()
	if !manual {
		t.Cleanup(func() { a.Close() })
	}
	return l, tc, cc
}

// TestWouldBlockResumes pins the crypto/tls behaviour the Established phase
// relies on: a Temporary net.Error from the transport is not sticky, and a
// record cut anywhere (inside the header, inside the body) is completed by
// the next Feed.
func TestWouldBlockResumes(t *testing.T) {
	for _, ver := range versions {
		t.Run(ver.name, func(t *testing.T) {
			l, tc, cc := establishedMem(t, serverConfig("ecdsa", tls.VersionTLS13), clientConfig(&pkiOnce().client, ver.v), false)
			capture := cc.startCapture()
			msg := []byte("<event uid='resume'/>")
			tc.Write(msg)
			ct := bytes.Clone(capture.Bytes())
			capture.Reset()
			for _, cut := range []int{1, 3, 5, 6, len(ct) - 1} {
				if cut >= len(ct) {
					continue
				}
				got, err := l.conn.Feed(ct[:cut], nil)
				if err != nil || len(got) != 0 || l.conn.Phase() != Established {
					t.Fatalf("cut %d: got %q, %v, %v", cut, got, err, l.conn.Phase())
				}
				got, err = l.conn.Feed(ct[cut:], nil)
				if err != nil || !bytes.Equal(got, msg) {
					t.Fatalf("cut %d: after the rest: %q, %v", cut, got, err)
				}
				tc.Write(msg)
				ct = bytes.Clone(capture.Bytes())
				capture.Reset()
			}
			// Data and close_notify in one Feed: data first, then io.EOF, sticky.
			tc.Close()
			both := append(ct, capture.Bytes()...)
			got, err := l.conn.Feed(both, nil)
			if !bytes.Equal(got, msg) || err != io.EOF {
				t.Fatalf("data+close_notify: %q, %v", got, err)
			}
			if _, err := l.conn.Feed(nil, nil); err != io.EOF {
				t.Errorf("not sticky: %v", err)
			}
			if l.conn.Phase() != Closed {
				t.Errorf("phase %v", l.conn.Phase())
			}
		})
	}
}

// TestCorruptRecord: a flipped ciphertext bit is a protocol error (and the
// server sends a bad_record_mac alert through Out).
func TestCorruptRecord(t *testing.T) {
	l, tc, cc := establishedMem(t, serverConfig("ecdsa", tls.VersionTLS13), clientConfig(&pkiOnce().client, tls.VersionTLS13), false)
	capture := cc.startCapture()
	tc.Write([]byte("hello"))
	ct := capture.Bytes()
	ct[len(ct)-1] ^= 1
	before := l.OutCalls()
	if _, err := l.conn.Feed(ct, nil); !errors.Is(err, ErrProtocol) {
		t.Fatalf("err = %v, want ErrProtocol", err)
	}
	if l.OutCalls() == before {
		t.Error("no alert was sent")
	}
}

// TestConcurrentWriteAndClose exercises Write from several goroutines while
// the loop reads and another goroutine closes; run with -race.
func TestConcurrentWriteAndClose(t *testing.T) {
	l, tc, cc := establishedMem(t, serverConfig("ecdsa", tls.VersionTLS13), clientConfig(&pkiOnce().client, tls.VersionTLS13), false)
	capture := cc.startCapture()
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if _, err := l.conn.Write([]byte("<event/>")); err != nil {
					if !errors.Is(err, ErrClosed) {
						t.Errorf("Write: %v", err)
					}
					return
				}
			}
		}()
	}
	for i := range 50 {
		tc.Write([]byte("<event/>"))
		if _, err := l.conn.Feed(capture.Bytes(), nil); err != nil {
			// Once the closing goroutine has run, Feed reports ErrClosed.
			if errors.Is(err, ErrClosed) && i > 25 {
				break
			}
			t.Fatal(err)
		}
		capture.Reset()
		if i == 25 {
			go l.conn.Close()
		}
	}
	wg.Wait()
	if l.conn.Phase() != Closed || !l.conn.HandshakeComplete() {
		t.Errorf("after Close: phase %v, handshake complete %v; want closed and still true", l.conn.Phase(), l.conn.HandshakeComplete())
	}
}

// TestIdleConnMemory measures what an idle established mTLS connection
// retains on the server side: tlsstate, tls.Conn, the parsed client
// certificate. Clients, loops and transports are dropped before measuring,
// and all connections share one tls.Config, as in the engine. A Go 1.26
// client's TLS 1.3 hello carries a 1.2 KiB X25519MLKEM768 key share, which
// crypto/tls's read buffers keep the size of; "TLS13-X25519" is a classic
// hello like most phones send today.
func TestIdleConnMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates many connections")
	}
	p := pkiOnce()
	x25519 := clientConfig(&p.client, tls.VersionTLS13)
	x25519.CurvePreferences = []tls.CurveID{tls.X25519}
	cases := []struct {
		name string
		ccfg *tls.Config
	}{
		{"TLS12", clientConfig(&p.client, tls.VersionTLS12)},
		{"TLS13", clientConfig(&p.client, tls.VersionTLS13)},
		{"TLS13-X25519", x25519},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			const n = 200
			scfg := serverConfig("ecdsa", tls.VersionTLS13)
			idleConn(t, scfg, tc.ccfg).Close() // warm up ticket keys and pools
			conns := make([]*Conn, 0, n)
			before := heapInUse()
			for range n {
				conns = append(conns, idleConn(t, scfg, tc.ccfg))
			}
			withHello := heapInUse()
			for _, c := range conns {
				c.mu.Lock()
				c.info = nil
				c.mu.Unlock()
			}
			without := heapInUse()
			per := float64(withHello-before) / n
			hello := float64(withHello-without) / n
			t.Logf("%s: %.0f B per idle established conn (HelloInfo %.0f B of it)", tc.name, per, hello)
			// The race detector's runtime allocates beside the code under
			// test, by amounts that vary from run to run: under -race (make
			// test) the budget has a third more room, enough that only a real
			// regression crosses it; without -race it is exact.
			budget := 12 << 10
			if raceEnabled {
				budget = 16 << 10
			}
			if per > float64(budget) {
				t.Errorf("%.0f B per idle conn, over the %d KiB budget", per, budget>>10)
			}
			for _, c := range conns {
				if c.Phase() != Established {
					t.Fatalf("phase %v", c.Phase())
				}
				c.Close()
			}
		})
	}
}

// idleConn establishes one connection, passes one CoT-sized record through
// it, and returns the server Conn with every test reference dropped.
func idleConn(t *testing.T, scfg, ccfg *tls.Config) *Conn {
	l, tc, cc := establishedMem(t, scfg, ccfg, true)
	capture := cc.startCapture()
	tc.Write([]byte(`<event version="2.0" uid="ANDROID-1" type="a-f-G-U-C" how="m-g"><point lat="1" lon="2" hae="0" ce="9" le="9"/></event>`))
	if _, err := l.conn.Feed(capture.Bytes(), nil); err != nil {
		t.Fatal(err)
	}
	l.release()
	c := l.conn
	// The hooks (and the adapter's copy of Out) point at the test loop; the
	// engine's session is not part of tlsstate's cost.
	c.hooks = Hooks{Out: discard}
	c.ad.out = discard
	return c
}

func discard([]byte) {}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func TestReleaseHello(t *testing.T) {
	l, _, _ := establishedMem(t, serverConfig("ecdsa", tls.VersionTLS13), clientConfig(&pkiOnce().client, tls.VersionTLS13), false)
	if l.conn.Hello() == nil {
		t.Fatal("no hello summary after the handshake")
	}
	l.conn.ReleaseHello()
	if l.conn.Hello() != nil {
		t.Error("hello summary kept after ReleaseHello")
	}
	if l.conn.Phase() != Established || l.conn.PeerCN() == "" {
		t.Error("releasing the hello changed the connection")
	}
}

// CloseThen reports a failed handshake whose result no Feed has applied
// yet (the client hung up the moment it saw the alert), nothing for a good
// one, and nothing for a handshake it cut short itself.
func TestCloseThen(t *testing.T) {
	p := pkiOnce()
	for _, tc := range []struct {
		name  string
		cert  *tls.Certificate
		fail  bool
		stall bool // the client sends its hello and nothing more
	}{
		{"refused", &p.otherCA, true, false},
		{"good", &p.client, false, false},
		{"cut short", &p.client, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, server := tcpPair(t)
			woke := make(chan struct{}, 1)
			c := Server(serverConfig("ecdsa", tls.VersionTLS13), Options{}, Hooks{
				Out:  func(b []byte) { _, _ = server.Write(b) },
				Wake: func() { signal(woke) },
			})
			go func() {
				cc := tls.Client(client, clientConfig(tc.cert, tls.VersionTLS13))
				if cc.Handshake() == nil {
					_, _ = cc.Read(make([]byte, 1))
				}
			}()
			// Feed what the client sends until the handshake goroutine has
			// returned (or, to cut it short, until it has started), then
			// stop: its result is not applied.
			buf := make([]byte, 16<<10)
			deadline := time.Now().Add(failsafe)
			for done := false; !done; {
				select {
				case <-woke:
					done = true
					continue
				default:
				}
				if tc.stall && c.Phase() == Handshaking {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the handshake did not get far enough")
				}
				_ = server.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
				n, _ := server.Read(buf)
				if n > 0 {
					if _, err := c.Feed(buf[:n], nil); err != nil {
						t.Fatalf("Feed: %v", err)
					}
				}
			}
			if c.Phase() != Handshaking {
				t.Fatalf("phase %v: the result must not be applied without a Feed", c.Phase())
			}
			ended := make(chan error, 2)
			c.CloseThen(func(err error) { ended <- err })
			var err error
			select {
			case err = <-ended:
			case <-time.After(failsafe):
				t.Fatal("ended was not called")
			}
			if tc.fail != (err != nil) || (err != nil && !errors.Is(err, ErrHandshake)) {
				t.Fatalf("CloseThen reported %v, want failure %v", err, tc.fail)
			}
			poll.Until(t, "handshake goroutine to exit", failsafe, func() bool { return handshakeGoroutines() == 0 })
			select {
			case err := <-ended:
				t.Fatalf("ended called twice, again with %v", err)
			default:
			}
		})
	}
}
