package engine_test

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	utls "github.com/refraction-networking/utls"

	"cotd/configs"
	"cotd/cot"
	"cotd/engine"
	et "cotd/engine/enginetest"
	"cotd/tlsstate/pki"
)

func TestTLSClientsSeeEachOther(t *testing.T) {
	for _, kt := range []pki.KeyType{pki.KeyECDSAP256, pki.KeyRSA2048} {
		for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
			t.Run(kt.String()+"/"+tls.VersionName(v), func(t *testing.T) {
				p := et.NewPKI(t, kt)
				h := et.StartTLS(t, p, nil)
				ca, cb := p.Client(t, "alpha"), p.Client(t, "bravo")
				ca.MaxVersion, cb.MaxVersion = v, v
				a := et.DialTLS(t, h.TLSAddr(), ca)
				b := et.DialTLS(t, h.TLSAddr(), cb)
				// Plain and TLS clients share one broker.
				c := et.Dial(t, h.TCPAddr())
				h.Joined(t, 3)
				a.Send(et.SA("A", "ALPHA", "a-f-G-U-C"))
				b.Expect("A over TLS", et.UID("A"))
				c.Expect("A on plain TCP", et.UID("A"))
				c.Send(et.Chat("from-tcp", strings.Repeat("long ", 4000), nil, nil))
				a.Expect("a 20 KB chat from TCP", et.UID("from-tcp"))
				b.Send(et.Ping("B"))
				b.Expect("pong over TLS", et.Type(cot.TypePong))
				if !strings.Contains(h.Logs.String(), `"cn":"alpha"`) {
					t.Error("the client certificate's CN is not logged")
				}
				if n := h.Srv.Stats().Handshakes[engine.HandshakeOK].Value(); n != 2 {
					t.Errorf("ok handshakes = %d", n)
				}
			})
		}
	}
}

func TestTLSRefusesBadCertificates(t *testing.T) {
	p := et.NewPKI(t, pki.KeyECDSAP256)
	other := et.NewPKI(t, pki.KeyECDSAP256)
	h := et.StartTLS(t, p, nil)
	good := et.DialTLS(t, h.TLSAddr(), p.Client(t, "good"))
	watcher := et.Dial(t, h.TCPAddr())
	h.Joined(t, 2)

	bad := map[string]*tls.Config{
		"other CA": p.ClientWith(other.ClientCert(t, "intruder", 24*time.Hour)),
		"expired":  p.ClientWith(p.ClientCert(t, "stale", time.Nanosecond)),
		"none":     p.ClientWith(tls.Certificate{}),
	}
	for name, cfg := range bad {
		conn, err := et.TryDialTLS(h.TLSAddr(), cfg)
		if err == nil {
			// TLS 1.3: the client finished first; the refusal arrives as
			// an alert on the first read.
			_, _ = conn.Write([]byte(et.Marker("from-" + strings.ReplaceAll(name, " ", "-"))))
			_ = conn.SetReadDeadline(time.Now().Add(et.Wait))
			_, err = io.ReadAll(conn)
			_ = conn.Close()
			if err == nil {
				err = io.EOF
			}
		}
		t.Logf("%s: client saw %v", name, err)
	}
	et.Eventually(t, "three failed handshakes counted", func() bool {
		return h.Srv.Stats().Handshakes[engine.HandshakeFailed].Value() == 3
	})
	if n := h.Srv.Stats().Closes[engine.ReasonTLSError].Value(); n != 3 {
		t.Errorf("tls_error closes = %d, want 3", n)
	}
	logs := h.Logs.String()
	for _, want := range []string{"tls handshake failed", "unknown authority", "expired", "certificate"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	good.Send(et.Marker("still-flowing"))
	watcher.Expect("traffic from the good client", et.UID("still-flowing"))
	for _, ev := range watcher.Events() {
		if strings.HasPrefix(ev.H.UID, "from-") {
			t.Errorf("an event from a refused client was routed: %s", ev.H.UID)
		}
	}
}

func TestPlaintextOnTLSPortIsRefused(t *testing.T) {
	p := et.NewPKI(t, pki.KeyECDSAP256)
	h := et.StartTLS(t, p, nil)
	c := et.Dial(t, h.TLSAddr())
	c.Send(et.SA("X", "X", "a-f-G"))
	c.Closed()
	et.Eventually(t, "not_tls counted", func() bool {
		return h.Srv.Stats().Closes[engine.ReasonNotTLS].Value() == 1
	})
	if h.Srv.Stats().Handshakes[engine.HandshakeNotTLS].Value() != 1 {
		t.Error("handshake result not_tls not counted")
	}
	if !strings.Contains(h.Logs.String(), "plaintext on TLS port") {
		t.Error("not logged as plaintext on the TLS port")
	}
}

// helloBytes returns the first TLS record a real client sends: its
// ClientHello.
func helloBytes(t *testing.T, cfg *tls.Config) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() { _ = tls.Client(a, cfg).Handshake() }()
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(b, hdr); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
	if _, err := io.ReadFull(b, body); err != nil {
		t.Fatal(err)
	}
	return append(hdr, body...)
}

// The failure cotd exists to prevent: stalled clients must not delay honest
// ones. 200 connections stall in three ways while 300 honest mTLS clients
// connect; every honest client gets through (and is answered) while all the
// stalled ones are still open, and the stalled ones are closed at the
// handshake deadline, counted.
//
// The deadline is generous (30 s for 300 handshakes, which take a few
// seconds on two loaded cores under the race detector), and the honest
// clients' certificates are issued before anything is timed, so that only a
// server that lets the stalled delay the honest can make it fail.
func TestStalledHandshakesDoNotDelayHonestClients(t *testing.T) {
	const stalled, honest = 200, 300
	const deadline = 30 * time.Second
	p := et.NewPKI(t, pki.KeyECDSAP256)
	honestCfgs := make([]*tls.Config, honest)
	for i := range honestCfgs {
		honestCfgs[i] = p.ClientWith(p.ClientCert(t, "honest", 24*time.Hour))
	}
	h := et.StartTLS(t, p, func(c *configs.Config) {
		c.TLS.HandshakeTimeout = configs.Duration{Duration: deadline}
		c.Log.Level = "info"
	})
	hello := helloBytes(t, p.Client(t, "hello-source"))
	var flights sync.WaitGroup
	for i := range stalled {
		conn, err := net.Dial("tcp", h.TLSAddr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		switch i % 3 {
		case 0: // connects and sends nothing
		case 1: // half a ClientHello
			if _, err := conn.Write(hello[:len(hello)/2]); err != nil {
				t.Fatal(err)
			}
		case 2: // a whole hello, reads the server's first flight, stops
			if _, err := conn.Write(hello); err != nil {
				t.Fatal(err)
			}
			flights.Add(1)
			go func() {
				defer flights.Done()
				_, _ = conn.Read(make([]byte, 1))
			}()
		}
	}
	flights.Wait()
	et.Eventually(t, "stalled connections open", func() bool { return h.Srv.Census().Sessions == stalled })

	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, honest)
	for i := range honest {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := et.TryDialTLS(h.TLSAddr(), honestCfgs[i])
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close()
			// A ping answered proves the session is live, not just the
			// client's half of the handshake.
			if _, err := conn.Write([]byte(et.Ping("H"))); err != nil {
				errs <- err
				return
			}
			_ = conn.SetReadDeadline(time.Now().Add(et.Wait))
			buf := make([]byte, 4096)
			got := ""
			for !strings.Contains(got, cot.TypePong) {
				n, err := conn.Read(buf)
				if err != nil {
					errs <- err
					return
				}
				got += string(buf[:n])
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("honest client failed: %v", err)
	}
	took := time.Since(start)
	t.Logf("%d honest mTLS clients connected and answered in %v beside %d stalled ones", honest, took, stalled)
	if n := h.Srv.Stats().Closes[engine.ReasonHandshakeTimeout].Value(); n != 0 {
		t.Fatalf("%d stalled connections already timed out: the honest clients took %v, as long as the deadline", n, took)
	}
	// They were opened before start, so they are due within the deadline.
	et.EventuallyWithin(t, "stalled connections closed at the deadline", deadline+et.Wait, func() bool {
		return h.Srv.Stats().Closes[engine.ReasonHandshakeTimeout].Value() == stalled
	})
	if n := h.Srv.Stats().Handshakes[engine.HandshakeTimeout].Value(); n != stalled {
		t.Errorf("handshake timeouts counted %d, want %d", n, stalled)
	}
	if n := h.Srv.Stats().Handshakes[engine.HandshakeOK].Value(); n != honest {
		t.Errorf("ok handshakes %d, want %d", n, honest)
	}
}

func TestTLSBurstOfConcurrentHandshakes(t *testing.T) {
	n := 2000
	if testing.Short() {
		n = 200
	}
	p := et.NewPKI(t, pki.KeyECDSAP256)
	h := et.StartTLS(t, p, func(c *configs.Config) {
		// Under the race detector a 2,000-client burst on two cores takes
		// tens of seconds; the deadline is not what this test is about.
		c.TLS.HandshakeTimeout = configs.Duration{Duration: 2 * time.Minute}
		c.Log.Level = "warn"
	})
	cert := p.ClientCert(t, "burst", 24*time.Hour)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	conns := make(chan net.Conn, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := &net.Dialer{Timeout: 2 * time.Minute}
			conn, err := tls.DialWithDialer(d, "tcp", h.TLSAddr(), p.ClientWith(cert))
			if err != nil {
				errs <- err
				return
			}
			conns <- conn
		}()
	}
	wg.Wait()
	close(errs)
	close(conns)
	for err := range errs {
		t.Errorf("handshake failed: %v", err)
	}
	et.Eventually(t, "every handshake completed on the server", func() bool {
		return h.Srv.Stats().Handshakes[engine.HandshakeOK].Value() == uint64(n)
	})
	for c := range conns {
		_ = c.Close()
	}
}

// A TLS 1.2-only Android client (utls's OkHttp parrot) completes mTLS and
// exchanges events.
func TestAndroidClientTLS12(t *testing.T) {
	p := et.NewPKI(t, pki.KeyECDSAP256)
	h := et.StartTLS(t, p, nil)
	cert := p.ClientCert(t, "android", 24*time.Hour)
	raw, err := net.Dial("tcp", h.TLSAddr())
	if err != nil {
		t.Fatal(err)
	}
	uc := utls.UClient(raw, &utls.Config{
		RootCAs:      p.Pool,
		ServerName:   "127.0.0.1",
		Certificates: []utls.Certificate{{Certificate: cert.Certificate, PrivateKey: cert.PrivateKey}},
	}, utls.HelloAndroid_11_OkHttp)
	if err := uc.Handshake(); err != nil {
		t.Fatalf("android handshake: %v", err)
	}
	if v := uc.ConnectionState().Version; v != utls.VersionTLS12 {
		t.Errorf("negotiated %x, want TLS 1.2", v)
	}
	android := et.Wrap(t, uc)
	other := et.DialTLS(t, h.TLSAddr(), p.Client(t, "other"))
	h.Joined(t, 2)
	android.Send(et.SA("ANDROID-1", "DROID", "a-f-G-U-C"))
	other.Expect("android's SA", et.UID("ANDROID-1"))
	other.Send(et.SA("OTHER", "OTHER", "a-f-G-U-C"))
	android.Expect("the other's SA", et.UID("OTHER"))
}

// dribble writes every byte in its own write call.
type dribble struct{ net.Conn }

func (d dribble) Write(p []byte) (int, error) {
	for i := range p {
		if _, err := d.Conn.Write(p[i : i+1]); err != nil {
			return i, err
		}
	}
	return len(p), nil
}

func TestTLSBytesOneAtATime(t *testing.T) {
	p := et.NewPKI(t, pki.KeyECDSAP256)
	h := et.StartTLS(t, p, nil)
	raw, err := net.Dial("tcp", h.TLSAddr())
	if err != nil {
		t.Fatal(err)
	}
	_ = raw.(*net.TCPConn).SetNoDelay(true)
	conn := tls.Client(dribble{raw}, p.Client(t, "dribbler"))
	if err := conn.Handshake(); err != nil {
		t.Fatal(err)
	}
	c := et.Wrap(t, conn)
	watcher := et.Dial(t, h.TCPAddr())
	h.Joined(t, 2)
	c.Send(et.SA("DRIB", "DRIB", "a-f-G-U-C"))
	watcher.Expect("an SA sent a byte at a time over TLS", et.UID("DRIB"))
}

func TestTLSReloadSwapsTheCA(t *testing.T) {
	p := et.NewPKI(t, pki.KeyECDSAP256)
	h := et.StartTLS(t, p, nil)
	old := et.DialTLS(t, h.TLSAddr(), p.Client(t, "old"))
	h.Joined(t, 1)

	// Rewrite the files in place with a new CA and server certificate.
	next := et.NewPKI(t, pki.KeyECDSAP256)
	for from, to := range map[string]string{next.CAPath: p.CAPath, next.CertPath: p.CertPath, next.KeyPath: p.KeyPath} {
		copyFile(t, from, to)
	}
	if err := h.Srv.ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	fresh := et.DialTLS(t, h.TLSAddr(), next.Client(t, "new"))
	h.Joined(t, 2)
	fresh.Send(et.Marker("after-reload"))
	old.Expect("the connection from before the reload still works", et.UID("after-reload"))
	conn, err := et.TryDialTLS(h.TLSAddr(), p.Client(t, "old-ca"))
	if err == nil {
		_ = conn.Close()
		t.Error("a client of the replaced CA connected; it must not even trust the new server certificate")
	}
}

func TestTLSRefusesRevokedCertificate(t *testing.T) {
	p := et.NewPKI(t, pki.KeyECDSAP256)
	revoked := p.ClientCert(t, "revoked", 24*time.Hour)
	leaf, err := x509.ParseCertificate(revoked.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:     big.NewInt(1),
		ThisUpdate: time.Now().Add(-time.Minute),
		NextUpdate: time.Now().Add(time.Hour),
		RevokedCertificateEntries: []x509.RevocationListEntry{
			{SerialNumber: leaf.SerialNumber, RevocationTime: time.Now().Add(-time.Minute)},
		},
	}, p.CA.Cert, p.CA.Key)
	if err != nil {
		t.Fatal(err)
	}
	crl := filepath.Join(t.TempDir(), "ca.crl")
	if err := os.WriteFile(crl, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	h := et.StartTLS(t, p, func(c *configs.Config) { c.TLS.CRL = crl })
	if conn, err := et.TryDialTLS(h.TLSAddr(), p.ClientWith(revoked)); err == nil {
		_ = conn.SetReadDeadline(time.Now().Add(et.Wait))
		_, _ = io.ReadAll(conn) // TLS 1.3: the refusal arrives after the client's Finished
		_ = conn.Close()
	}
	et.Eventually(t, "revoked certificate refused", func() bool {
		return h.Srv.Stats().Handshakes[engine.HandshakeFailed].Value() == 1
	})
	if !strings.Contains(h.Logs.String(), "revoked") {
		t.Error("the refusal does not say the certificate was revoked")
	}
	et.DialTLS(t, h.TLSAddr(), p.Client(t, "fine")) // everyone else still connects
	h.Joined(t, 1)
}
