package tlsstate

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"sync"
	"sync/atomic"
	"time"

	utls "github.com/refraction-networking/utls"
)

const (
	testServerName = "cotd.test"
	testClientCN   = "eud-alpha"
)

// testPKI is generated once per test binary: RSA-2048 key generation is slow
// enough to matter under -race.
type testPKI struct {
	pool        *x509.CertPool // the trusted CA
	serverECDSA tls.Certificate
	serverRSA   tls.Certificate
	client      tls.Certificate // CN testClientCN, signed by the trusted CA
	clientKey   crypto.Signer
	otherCA     tls.Certificate // signed by an untrusted CA
	expired     tls.Certificate // trusted CA, NotAfter in the past
}

var pkiOnce = sync.OnceValue(newTestPKI)

var serial atomic.Int64

func newTestPKI() *testPKI {
	ca, caKey := newCA("cotd test CA")
	other, otherKey := newCA("someone else's CA")
	now := time.Now()
	p := &testPKI{pool: x509.NewCertPool()}
	p.pool.AddCert(ca)

	p.serverECDSA = leaf(ca, caKey, ecKey(), "server", true, now.Add(-time.Hour), now.Add(24*time.Hour))
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	p.serverRSA = leaf(ca, caKey, rsaKey, "server", true, now.Add(-time.Hour), now.Add(24*time.Hour))
	p.clientKey = ecKey()
	p.client = leaf(ca, caKey, p.clientKey, testClientCN, false, now.Add(-time.Hour), now.Add(24*time.Hour))
	p.otherCA = leaf(other, otherKey, ecKey(), "intruder", false, now.Add(-time.Hour), now.Add(24*time.Hour))
	p.expired = leaf(ca, caKey, ecKey(), "eud-expired", false, now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	return p
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

func ecKey() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	return k
}

func newCA(name string) (*x509.Certificate, crypto.Signer) {
	key := ecKey()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial.Add(1)),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	must(err)
	cert, err := x509.ParseCertificate(der)
	must(err)
	return cert, key
}

func leaf(ca *x509.Certificate, caKey crypto.Signer, key crypto.Signer, cn string, server bool, notBefore, notAfter time.Time) tls.Certificate {
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if _, isRSA := key.(*rsa.PrivateKey); isRSA {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames = []string{testServerName}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	must(err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// serverConfig is the mTLS configuration the engine will use: client
// certificates required and verified against the CA.
func serverConfig(key string, maxVersion uint16) *tls.Config {
	p := pkiOnce()
	cert := p.serverECDSA
	if key == "rsa" {
		cert = p.serverRSA
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    p.pool,
		MinVersion:   tls.VersionTLS12,
		MaxVersion:   maxVersion,
	}
}

func clientConfig(cert *tls.Certificate, version uint16) *tls.Config {
	cfg := &tls.Config{
		RootCAs:    pkiOnce().pool,
		ServerName: testServerName,
		MinVersion: version,
		MaxVersion: version,
	}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return cfg
}

// androidConfig is a utls client config carrying the valid client certificate.
func androidConfig() *utls.Config {
	p := pkiOnce()
	return &utls.Config{
		RootCAs:      p.pool,
		ServerName:   testServerName,
		Certificates: []utls.Certificate{{Certificate: p.client.Certificate, PrivateKey: p.clientKey}},
	}
}
