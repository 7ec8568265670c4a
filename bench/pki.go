package bench

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"time"

	"cotd/tlsstate/pki"
)

// PKI is a throw-away certificate authority for one run against a spawned cotd: a CA, a
// server certificate for loopback and one client certificate that every TLS client
// presents, or with transport.client_certs = "per_client" one issued per client. Keys are ECDSA P-256, the cheapest handshake for the server (about 0.5 ms of
// server CPU each on this box, against 1.3-1.65 ms for RSA-2048).
type PKI struct {
	CA     *x509.Certificate
	CAPEM  []byte
	Server KeyPair
	Client KeyPair
	ca     *pki.Bundle // issues per-client certificates
}

// KeyPair is a certificate and its key, as PEM and ready for crypto/tls.
type KeyPair struct {
	CertPEM, KeyPEM []byte
	TLS             tls.Certificate
}

// PKIFiles are the paths WriteFiles wrote.
type PKIFiles struct {
	CA, CAKey, ServerCert, ServerKey, ClientCert, ClientKey string
}

// certValidity is long enough for any run.
const certValidity = 48 * time.Hour

// NewPKI makes a CA, a server certificate for localhost, 127.0.0.1 and ::1, and a client
// certificate whose CN (the TAK user name) is clientCN, with cotd's own certificate code.
func NewPKI(clientCN string) (*PKI, error) {
	ca, err := pki.NewCA("cotbench CA", pki.KeyECDSAP256, certValidity)
	if err != nil {
		return nil, err
	}
	srv, err := ca.IssueServer("cotbench server", []string{"localhost", "127.0.0.1", "::1"}, pki.KeyECDSAP256, certValidity)
	if err != nil {
		return nil, err
	}
	cl, err := ca.IssueClient(clientCN, pki.KeyECDSAP256, certValidity)
	if err != nil {
		return nil, err
	}
	return &PKI{CA: ca.Cert, CAPEM: ca.CertPEM, Server: keyPair(srv), Client: keyPair(cl), ca: ca}, nil
}

func keyPair(b *pki.Bundle) KeyPair {
	return KeyPair{CertPEM: b.CertPEM, KeyPEM: b.KeyPEM, TLS: b.TLSCertificate()}
}

// Material is what the run's TLS clients present and trust.
func (p *PKI) Material() *TLSMaterial {
	roots := x509.NewCertPool()
	roots.AddCert(p.CA)
	return &TLSMaterial{Cert: p.Client.TLS, Roots: roots, Issue: issuer(p.ca)}
}

// ServerConfig is a mutual-TLS server configuration for the PKI's server certificate
// (tests use it for a stand-in TLS server).
func (p *PKI) ServerConfig() *tls.Config {
	roots := x509.NewCertPool()
	roots.AddCert(p.CA)
	return &tls.Config{
		Certificates: []tls.Certificate{p.Server.TLS},
		ClientCAs:    roots,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}
}

// WriteFiles writes the CA (with its key), server and client PEM files into dir (keys
// mode 0600).
func (p *PKI) WriteFiles(dir string) (PKIFiles, error) {
	f := PKIFiles{
		CA:         filepath.Join(dir, "ca.pem"),
		CAKey:      filepath.Join(dir, "ca.key"),
		ServerCert: filepath.Join(dir, "server.pem"),
		ServerKey:  filepath.Join(dir, "server.key"),
		ClientCert: filepath.Join(dir, "client.pem"),
		ClientKey:  filepath.Join(dir, "client.key"),
	}
	for _, w := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{f.CA, p.CAPEM, 0o644},
		{f.CAKey, p.ca.KeyPEM, 0o600},
		{f.ServerCert, p.Server.CertPEM, 0o644},
		{f.ServerKey, p.Server.KeyPEM, 0o600},
		{f.ClientCert, p.Client.CertPEM, 0o644},
		{f.ClientKey, p.Client.KeyPEM, 0o600},
	} {
		if err := os.WriteFile(w.path, w.data, w.mode); err != nil {
			return PKIFiles{}, err
		}
	}
	return f, nil
}
