package pki

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"strings"
	"time"
)

const (
	// DefaultCAValidity is the CA lifetime used when NewCA gets zero.
	DefaultCAValidity = 10 * 365 * 24 * time.Hour

	// DefaultLeafValidity is the server and client lifetime used when
	// IssueServer or IssueClient gets zero: 825 days, the most iOS/macOS
	// (iTAK) accept for a TLS server certificate (Apple, "Requirements for
	// trusted certificates in iOS 13 and macOS 10.15").
	DefaultLeafValidity = 825 * 24 * time.Hour

	// clockSkew back-dates NotBefore: handsets in the field often run minutes
	// to hours behind, and a certificate "not yet valid" fails the handshake
	// with an error users cannot act on.
	clockSkew = time.Hour
)

// Bundle is a certificate with its private key, parsed and as PEM. Key is
// nil for a bundle that only carries a certificate. Treat a Bundle as
// immutable.
type Bundle struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte // "CERTIFICATE" block(s); the first is Cert
	KeyPEM  []byte // one private key block (PKCS#8 for generated keys)
}

// TLSCertificate returns b as a crypto/tls certificate (leaf only, with
// Leaf set), for tls.Config.Certificates.
func (b *Bundle) TLSCertificate() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{b.Cert.Raw}, PrivateKey: b.Key, Leaf: b.Cert}
}

// NewCA makes a self-signed root CA that signs leaves directly (MaxPathLen
// 0). validFor zero means DefaultCAValidity.
func NewCA(cn string, kt KeyType, validFor time.Duration) (*Bundle, error) {
	return newCA(cn, kt, validFor, time.Now())
}

// IssueServer makes a TLS server certificate signed by b. Each host becomes
// an IP SAN if it parses as an IP address, a DNS SAN otherwise; there must be
// at least one (clients, iTAK in particular, match SANs, not the CN). cn
// empty means hosts[0]. validFor zero means DefaultLeafValidity.
func (b *Bundle) IssueServer(cn string, hosts []string, kt KeyType, validFor time.Duration) (*Bundle, error) {
	return b.issueServer(cn, hosts, kt, validFor, time.Now())
}

// IssueNode makes a cluster node's certificate signed by b: like
// IssueServer (hosts become SANs, at least one), but good for both the
// serverAuth and clientAuth extended key usages, because a NATS route is
// dialled by one node and accepted by the other and each end presents the
// same certificate. cn is the node name and must not be empty. validFor
// zero means DefaultLeafValidity.
func (b *Bundle) IssueNode(cn string, hosts []string, kt KeyType, validFor time.Duration) (*Bundle, error) {
	if strings.TrimSpace(cn) == "" {
		return nil, fmt.Errorf("%w: empty node name", ErrName)
	}
	return b.issueHosts(cn, hosts, kt, validFor, time.Now(),
		x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
}

// IssueClient makes a TLS client certificate signed by b whose CN is the TAK
// user name. validFor zero means DefaultLeafValidity.
func (b *Bundle) IssueClient(cn string, kt KeyType, validFor time.Duration) (*Bundle, error) {
	return b.issueClient(cn, kt, validFor, time.Now())
}

// ExpiresWithin reports whether cert is no longer valid at now+d; with d
// zero, whether it has expired. Like crypto/x509, a certificate is still
// valid at the instant NotAfter.
func ExpiresWithin(cert *x509.Certificate, d time.Duration, now time.Time) bool {
	return now.Add(d).After(cert.NotAfter)
}

// TimeLeft returns how long cert stays valid after now; negative once it has
// expired.
func TimeLeft(cert *x509.Certificate, now time.Time) time.Duration {
	return cert.NotAfter.Sub(now)
}

func newCA(cn string, kt KeyType, validFor time.Duration, now time.Time) (*Bundle, error) {
	if strings.TrimSpace(cn) == "" {
		return nil, fmt.Errorf("%w: empty CA common name", ErrName)
	}
	tmpl, err := baseTemplate(cn, validFor, DefaultCAValidity, now)
	if err != nil {
		return nil, err
	}
	tmpl.IsCA = true
	tmpl.BasicConstraintsValid = true
	tmpl.MaxPathLenZero = true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	key, err := kt.generate()
	if err != nil {
		return nil, err
	}
	return sign(tmpl, tmpl, key, key)
}

func (b *Bundle) issueServer(cn string, hosts []string, kt KeyType, validFor time.Duration, now time.Time) (*Bundle, error) {
	return b.issueHosts(cn, hosts, kt, validFor, now, x509.ExtKeyUsageServerAuth)
}

// issueHosts makes a leaf whose SANs are hosts, for the extended key usages
// eku (a server's, or a cluster node's).
func (b *Bundle) issueHosts(cn string, hosts []string, kt KeyType, validFor time.Duration, now time.Time, eku ...x509.ExtKeyUsage) (*Bundle, error) {
	if len(hosts) == 0 {
		return nil, ErrNoHosts
	}
	if cn == "" {
		cn = hosts[0]
	}
	tmpl, err := b.leafTemplate(cn, validFor, now)
	if err != nil {
		return nil, err
	}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		switch ip := net.ParseIP(h); {
		case h == "":
			return nil, fmt.Errorf("%w: empty host", ErrNoHosts)
		case ip != nil:
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		default:
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	tmpl.ExtKeyUsage = eku
	return b.issue(tmpl, kt)
}

func (b *Bundle) issueClient(cn string, kt KeyType, validFor time.Duration, now time.Time) (*Bundle, error) {
	if strings.TrimSpace(cn) == "" {
		return nil, fmt.Errorf("%w: empty user name", ErrName)
	}
	tmpl, err := b.leafTemplate(cn, validFor, now)
	if err != nil {
		return nil, err
	}
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	return b.issue(tmpl, kt)
}

// leafTemplate checks that b can issue and clamps the leaf's NotAfter to the
// CA's: a leaf that outlives its CA would fail verification anyway, later and
// more confusingly.
func (b *Bundle) leafTemplate(cn string, validFor time.Duration, now time.Time) (*x509.Certificate, error) {
	if b == nil || b.Cert == nil || b.Key == nil || !b.Cert.IsCA {
		return nil, ErrNotCA
	}
	tmpl, err := baseTemplate(cn, validFor, DefaultLeafValidity, now)
	if err != nil {
		return nil, err
	}
	if tmpl.NotAfter.After(b.Cert.NotAfter) {
		tmpl.NotAfter = b.Cert.NotAfter
	}
	return tmpl, nil
}

func (b *Bundle) issue(tmpl *x509.Certificate, kt KeyType) (*Bundle, error) {
	key, err := kt.generate()
	if err != nil {
		return nil, err
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	if _, ok := key.(*rsa.PrivateKey); ok {
		// RSA key transport (TLS 1.2 non-ECDHE suites) encrypts to the key.
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	return sign(tmpl, b.Cert, key, b.Key)
}

// baseTemplate fills what every certificate shares. The validity period,
// NotBefore to NotAfter, is exactly validFor, which keeps DefaultLeafValidity
// within Apple's limit even with NotBefore back-dated.
func baseTemplate(cn string, validFor, def time.Duration, now time.Time) (*x509.Certificate, error) {
	if validFor < 0 {
		return nil, fmt.Errorf("%w: %v", ErrValidity, validFor)
	}
	if validFor == 0 {
		validFor = def
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	notBefore := now.Add(-clockSkew).UTC().Truncate(time.Second)
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    notBefore,
		NotAfter:     notBefore.Add(validFor),
	}, nil
}

// newSerial returns a random positive 128-bit serial (RFC 5280 allows up to
// 20 octets; 16 random bytes plus a sign octet fit).
func newSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, err
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

func sign(tmpl, parent *x509.Certificate, key, parentKey crypto.Signer) (*Bundle, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &Bundle{
		Cert:    cert,
		Key:     key,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}
