package engine

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"cotd/configs"
	"cotd/engine/admin"
	"cotd/tlsstate/pki"
)

// newTestServer builds (does not run) a server on loopback with
// kernel-chosen ports and no TLS listener unless mutate adds one.
func newTestServer(t testing.TB, mutate func(*configs.Config)) *Server {
	t.Helper()
	cfg := configs.Default()
	cfg.TCP.Addr = "127.0.0.1:0"
	cfg.TLS.Addr = ""
	cfg.Admin.Addr = "127.0.0.1:0"
	if mutate != nil {
		mutate(cfg)
	}
	s, err := New(cfg, zerolog.Nop())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	s.HandleAdmin(admin.New(admin.Options{Directory: s.Directory(), Metrics: s.WriteMetrics, Ready: s.Readiness}))
	return s
}

func get(h http.Handler, path string) (int, string) {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

func TestReadyzFollowsTheListeners(t *testing.T) {
	s := newTestServer(t, func(c *configs.Config) { c.Admin.Addr = "" })
	h := s.adminHandler()

	if code, body := get(h, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "listeners not up") {
		t.Errorf("before Run: /readyz = %d %q, want 503 naming the listeners", code, body)
	}
	if code, body := get(h, "/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("before Run: /healthz = %d %q, want 200 ok: the process serves", code, body)
	}
	if code, _ := get(h, "/metrics"); code != http.StatusOK {
		t.Errorf("before Run: /metrics = %d", code)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	select {
	case <-s.Ready():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("not ready")
	}
	if code, body := get(h, "/readyz"); code != http.StatusOK || body != "ready\n" {
		t.Errorf("after Ready: /readyz = %d %q, want 200 ready", code, body)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if code, body := get(h, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "draining") {
		t.Errorf("after shutdown: /readyz = %d %q, want 503 draining", code, body)
	}
}

// testPKI is a CA with a server certificate for 127.0.0.1, saved in dir.
type testPKI struct {
	ca                        *pki.Bundle
	caPath, certPath, keyPath string
	pool                      *x509.CertPool
}

func newTestPKI(t *testing.T, name string) *testPKI {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	ca, err := pki.NewCA(name+" CA", pki.KeyECDSAP256, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	caPath, _, err := pki.Save(dir, "ca", ca)
	if err != nil {
		t.Fatal(err)
	}
	p := &testPKI{ca: ca, caPath: caPath, pool: x509.NewCertPool()}
	p.pool.AddCert(ca.Cert)
	p.issueServer(t)
	return p
}

// issueServer (re)writes the server certificate and returns it.
func (p *testPKI) issueServer(t *testing.T) *x509.Certificate {
	t.Helper()
	srv, err := p.ca.IssueServer("cotd", []string{"127.0.0.1"}, pki.KeyECDSAP256, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if p.certPath, p.keyPath, err = pki.Save(filepath.Dir(p.caPath), "server", srv); err != nil {
		t.Fatal(err)
	}
	return srv.Cert
}

func (p *testPKI) clientCert(t *testing.T, cn string) tls.Certificate {
	t.Helper()
	b, err := p.ca.IssueClient(cn, pki.KeyECDSAP256, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return b.TLSCertificate()
}

// serveAdmin serves the admin handler on listenAdmin's listener, as Run does.
func serveAdmin(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := s.listenAdmin()
	if err != nil {
		t.Fatalf("listenAdmin: %v", err)
	}
	hs := &http.Server{Handler: s.adminHandler(), ReadHeaderTimeout: 5 * time.Second, ErrorLog: s.adminErrorLog()}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })
	return ln.Addr().String()
}

// tlsGet fetches path over a fresh TLS connection that trusts roots and
// presents cert, if given, even when the server asks for another CA's (Go's
// client would otherwise quietly send none). It returns the server's leaf
// certificate too.
func tlsGet(addr, path string, roots *x509.CertPool, cert ...tls.Certificate) (int, string, *x509.Certificate, error) {
	cfg := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}
	if len(cert) > 0 {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert[0], nil }
	}
	tr := &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + addr + path)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.TLS.PeerCertificates[0], err
}

func TestAdminRequiresAClientCertificate(t *testing.T) {
	stream := newTestPKI(t, "stream")
	admin := newTestPKI(t, "admin")
	s := newTestServer(t, func(c *configs.Config) {
		c.TLS.Addr = "127.0.0.1:0"
		c.TLS.Cert, c.TLS.Key, c.TLS.CA = stream.certPath, stream.keyPath, stream.caPath
		c.Admin.ClientCA = admin.caPath
	})
	addr := serveAdmin(t, s)

	if _, _, _, err := tlsGet(addr, "/api/clients", stream.pool); err == nil {
		t.Error("a client without a certificate was served")
	}
	if _, _, _, err := tlsGet(addr, "/api/clients", stream.pool, stream.clientCert(t, "eud")); err == nil {
		t.Error("a client certificate from the streaming CA, not admin.client_ca, was accepted")
	}
	code, body, leaf, err := tlsGet(addr, "/api/clients", stream.pool, admin.clientCert(t, "ops"))
	if err != nil || code != http.StatusOK || strings.TrimSpace(body) != "[]" {
		t.Fatalf("with an admin certificate: %d %q %v", code, body, err)
	}
	if want := leafOf(t, stream.certPath); !bytes.Equal(leaf.Raw, want) {
		t.Error("the admin listener does not present the server's TLS certificate")
	}
	if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP was served on the TLS admin listener")
		}
	}

	// SIGHUP's reload reaches the admin listener too.
	fresh := stream.issueServer(t)
	if err := s.ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	_, _, leaf, err = tlsGet(addr, "/healthz", stream.pool, admin.clientCert(t, "ops"))
	if err != nil {
		t.Fatal(err)
	}
	if leaf.SerialNumber.Cmp(fresh.SerialNumber) != 0 {
		t.Error("after ReloadTLS the admin listener still presents the old certificate")
	}
}

// leafOf reads the first certificate of a PEM file.
func leafOf(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	return blk.Bytes
}

func TestAdminTLSWithoutTheStreamingListener(t *testing.T) {
	admin := newTestPKI(t, "admin")
	t.Run("development certificate", func(t *testing.T) {
		devDir := filepath.Join(t.TempDir(), "dev")
		s := newTestServer(t, func(c *configs.Config) {
			c.TLS.DevCerts, c.TLS.DevDir = true, devDir
			c.Admin.ClientCA = admin.caPath
		})
		addr := serveAdmin(t, s)
		caPEM, err := os.ReadFile(filepath.Join(devDir, "ca.pem"))
		if err != nil {
			t.Fatalf("no development CA was made: %v", err)
		}
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(caPEM)
		if code, _, _, err := tlsGet(addr, "/healthz", roots, admin.clientCert(t, "ops")); err != nil || code != http.StatusOK {
			t.Fatalf("/healthz: %d %v", code, err)
		}
	})
	t.Run("configured certificate", func(t *testing.T) {
		stream := newTestPKI(t, "stream")
		s := newTestServer(t, func(c *configs.Config) {
			c.TLS.Cert, c.TLS.Key, c.TLS.CA = stream.certPath, stream.keyPath, stream.caPath
			c.Admin.ClientCA = admin.caPath
		})
		addr := serveAdmin(t, s)
		if code, _, _, err := tlsGet(addr, "/healthz", stream.pool, admin.clientCert(t, "ops")); err != nil || code != http.StatusOK {
			t.Fatalf("/healthz: %d %v", code, err)
		}
	})
	t.Run("no certificate at all", func(t *testing.T) {
		// Refused at configuration time, before any socket opens.
		c := configs.Default()
		c.TLS.DevCerts = false
		c.Admin.ClientCA = admin.caPath
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "admin.client_ca needs a server certificate") {
			t.Errorf("Validate = %v", err)
		}
	})
	t.Run("client_ca that is not PEM", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "ca.pem")
		if err := os.WriteFile(bad, []byte("not a certificate"), 0o600); err != nil {
			t.Fatal(err)
		}
		s := newTestServer(t, func(c *configs.Config) {
			c.TLS.DevDir = filepath.Join(t.TempDir(), "dev")
			c.Admin.ClientCA = bad
		})
		if _, err := s.listenAdmin(); !errors.Is(err, errAdminClientCA) {
			t.Errorf("err = %v, want errAdminClientCA", err)
		}
	})
}

func TestAdminWithoutClientCAIsPlainHTTP(t *testing.T) {
	s := newTestServer(t, nil)
	if cfg, err := s.adminTLSConfig(); cfg != nil || err != nil {
		t.Fatalf("adminTLSConfig = %v, %v; want nil, nil", cfg, err)
	}
	addr := serveAdmin(t, s)
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz = %d", resp.StatusCode)
	}
}
