package enginetest

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"

	"cotd/configs"
	"cotd/tlsstate/pki"
)

// PKI is a throw-away certificate authority for one test, with a server
// certificate for 127.0.0.1 and ::1 saved where a server config can name it.
type PKI struct {
	CA                        *pki.Bundle
	CAPath, CertPath, KeyPath string
	Pool                      *x509.CertPool
	kt                        pki.KeyType
}

// NewPKI creates a CA and a server certificate of key type kt.
func NewPKI(t testing.TB, kt pki.KeyType) *PKI {
	t.Helper()
	dir := t.TempDir()
	ca, err := pki.NewCA("cotd test CA", kt, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ca.IssueServer("cotd test server", []string{"127.0.0.1", "::1", "localhost"}, kt, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	caPath, _, err := pki.Save(dir, "ca", ca)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath, err := pki.Save(dir, "server", srv)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return &PKI{CA: ca, CAPath: caPath, CertPath: certPath, KeyPath: keyPath, Pool: pool, kt: kt}
}

// ClientCert issues a client certificate with common name cn, valid for
// validFor (a tiny value gives an already expired certificate).
func (p *PKI) ClientCert(t testing.TB, cn string, validFor time.Duration) tls.Certificate {
	t.Helper()
	b, err := p.CA.IssueClient(cn, p.kt, validFor)
	if err != nil {
		t.Fatal(err)
	}
	return b.TLSCertificate()
}

// Client returns a TLS config for a client named cn that trusts the CA.
func (p *PKI) Client(t testing.TB, cn string) *tls.Config {
	t.Helper()
	return p.ClientWith(p.ClientCert(t, cn, 24*time.Hour))
}

// ClientWith returns a TLS config presenting cert (none when cert is empty).
func (p *PKI) ClientWith(cert tls.Certificate) *tls.Config {
	cfg := &tls.Config{RootCAs: p.Pool, ServerName: "127.0.0.1", ClientSessionCache: tls.NewLRUClientSessionCache(8)}
	if cert.Certificate != nil {
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg
}

// StartTLS runs a server with a TLS listener on 127.0.0.1 using p.
func StartTLS(t testing.TB, p *PKI, mutate func(*configs.Config)) *Harness {
	t.Helper()
	return Start(t, func(c *configs.Config) {
		c.TLS.Addr = "127.0.0.1:0"
		c.TLS.Cert, c.TLS.Key, c.TLS.CA = p.CertPath, p.KeyPath, p.CAPath
		if mutate != nil {
			mutate(c)
		}
	})
}
