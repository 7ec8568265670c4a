package bench

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// PKI is a throw-away certificate authority for one run against a spawned cotd: a CA, a
// server certificate for loopback and one client certificate that every TLS client
// presents. Keys are ECDSA P-256, the cheapest handshake for the server (about 0.5 ms of
// server CPU each on this box, against 1.3-1.65 ms for RSA-2048).
type PKI struct {
	CA     *x509.Certificate
	CAPEM  []byte
	Server KeyPair
	Client KeyPair

	caKey *ecdsa.PrivateKey
}

// KeyPair is a certificate and its key, as PEM and ready for crypto/tls.
type KeyPair struct {
	CertPEM, KeyPEM []byte
	TLS             tls.Certificate
}

// PKIFiles are the paths WriteFiles wrote.
type PKIFiles struct {
	CA, ServerCert, ServerKey, ClientCert, ClientKey string
}

// certValidity is long enough for any run; clockSkew back-dates NotBefore so that a
// certificate is valid the moment it is made, whatever the rounding.
const (
	certValidity = 48 * time.Hour
	clockSkew    = time.Hour
)

// NewPKI makes a CA, a server certificate for localhost, 127.0.0.1 and ::1, and a client
// certificate whose CN (the TAK user name) is clientCN. now dates them.
func NewPKI(now time.Time, clientCN string) (*PKI, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "cotbench CA", Organization: []string{"cotbench"}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(certValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("bench: CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	p := &PKI{CA: ca, CAPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), caKey: caKey}
	if p.Server, err = p.issue(now, "localhost", x509.ExtKeyUsageServerAuth, true); err != nil {
		return nil, err
	}
	if p.Client, err = p.issue(now, clientCN, x509.ExtKeyUsageClientAuth, false); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *PKI) issue(now time.Time, cn string, usage x509.ExtKeyUsage, server bool) (KeyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return KeyPair{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"cotbench"}},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     now.Add(certValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	if server {
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.CA, &key.PublicKey, p.caKey)
	if err != nil {
		return KeyPair{}, fmt.Errorf("bench: certificate %q: %w", cn, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return KeyPair{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return KeyPair{}, err
	}
	return KeyPair{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		TLS:     tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf},
	}, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		// crypto/rand does not fail on Linux; a fixed serial would still be a valid
		// certificate for a throw-away CA.
		return big.NewInt(1)
	}
	return n.Add(n, big.NewInt(1))
}

// Material is what the run's TLS clients present and trust.
func (p *PKI) Material() *TLSMaterial {
	roots := x509.NewCertPool()
	roots.AddCert(p.CA)
	return &TLSMaterial{Cert: p.Client.TLS, Roots: roots}
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

// WriteFiles writes the CA, server and client PEM files into dir (keys mode 0600).
func (p *PKI) WriteFiles(dir string) (PKIFiles, error) {
	f := PKIFiles{
		CA:         filepath.Join(dir, "ca.pem"),
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
