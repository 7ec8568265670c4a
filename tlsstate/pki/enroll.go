package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"slices"
	"strings"
	"time"

	pkcs12 "software.sslmate.com/src/go-pkcs12"
)

// CSRPolicy says which keys SignCSR accepts.
type CSRPolicy struct {
	// MinRSABits is the smallest RSA modulus; zero means 2048.
	MinRSABits int
}

// maxRSABits bounds the RSA keys accepted: larger ones only cost the
// server (and every peer) time on each handshake.
const maxRSABits = 8192

// ParseCSR reads a certificate signing request as TAK clients send it:
// base64 DER with or without line breaks and with or without PEM header
// lines, or raw DER. Its self-signature is checked.
func ParseCSR(body []byte) (*x509.CertificateRequest, error) {
	der := body
	if b, _ := pem.Decode(body); b != nil {
		der = b.Bytes
	} else if s := strings.Join(strings.Fields(string(body)), ""); s != "" {
		if d, err := base64.StdEncoding.DecodeString(s); err == nil {
			der = d
		}
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCSR, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: signature: %w", ErrCSR, err)
	}
	return csr, nil
}

// CheckKey reports whether the CSR's public key is one TAK clients and
// this server's TLS stack both handle: RSA of at least p.MinRSABits (and
// at most 8192) or ECDSA on P-256, P-384 or P-521.
func (p CSRPolicy) CheckKey(csr *x509.CertificateRequest) error {
	minBits := p.MinRSABits
	if minBits == 0 {
		minBits = 2048
	}
	switch k := csr.PublicKey.(type) {
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n < minBits || n > maxRSABits {
			return fmt.Errorf("%w: RSA key of %d bits (want %d to %d)", ErrCSRKey, n, minBits, maxRSABits)
		}
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
		default:
			return fmt.Errorf("%w: ECDSA curve %s", ErrCSRKey, k.Curve.Params().Name)
		}
	default:
		return fmt.Errorf("%w: %T (want RSA or ECDSA)", ErrCSRKey, csr.PublicKey)
	}
	return nil
}

// SignClientCSR issues a client certificate for csr's key with subject
// (the caller decides it: a CSR's own subject is the client's wish, not
// an authority), valid for validFor from now but never past the CA.
func (b *Bundle) SignClientCSR(csr *x509.CertificateRequest, subject pkix.Name, validFor time.Duration) (*x509.Certificate, error) {
	if strings.TrimSpace(subject.CommonName) == "" {
		return nil, fmt.Errorf("%w: empty user name", ErrName)
	}
	tmpl, err := b.leafTemplate(subject.CommonName, validFor, time.Now())
	if err != nil {
		return nil, err
	}
	tmpl.Subject = subject
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	if _, ok := csr.PublicKey.(*rsa.PublicKey); ok {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, b.Cert, csr.PublicKey, b.Key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// NamedCert is a certificate and the alias it is stored under.
type NamedCert struct {
	Alias string
	Cert  *x509.Certificate
}

// CertsP12 encodes certificates without keys, each under its alias (a
// PKCS#12 friendly name): TAK Server's signClient answer, where ATAK 4.x
// takes the alias "signedCert" as its certificate and every other alias as
// a CA. password empty means DefaultP12Password.
func CertsP12(certs []NamedCert, password string) ([]byte, error) {
	if password == "" {
		password = DefaultP12Password
	}
	entries := make([]pkcs12.TrustStoreEntry, len(certs))
	for i, c := range certs {
		entries[i] = pkcs12.TrustStoreEntry{Cert: c.Cert, FriendlyName: c.Alias}
	}
	der, err := p12Encoder.EncodeTrustStoreEntries(entries, password)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrP12, err)
	}
	return der, nil
}

// Base64Wrapped is DER as TAK Server's signClient/v2 sends it: base64
// broken every 64 characters with "\n", no PEM header or footer.
func Base64Wrapped(der []byte) string {
	s := base64.StdEncoding.EncodeToString(der)
	var b strings.Builder
	for len(s) > 64 {
		b.WriteString(s[:64])
		b.WriteByte('\n')
		s = s[64:]
	}
	b.WriteString(s)
	return b.String()
}

// Revoked is one CRL entry.
type Revoked struct {
	Serial *big.Int
	At     time.Time
}

// crlLifetime is how long a CRL says it stays current. cotd itself never
// lets a CRL lapse (it checks only the signature), and it rewrites the
// list on every revocation; other readers get a year's grace.
const crlLifetime = 365 * 24 * time.Hour

// CreateCRL returns a PEM CRL signed by ca listing entries, numbered
// number.
func (b *Bundle) CreateCRL(entries []Revoked, number *big.Int, now time.Time) ([]byte, error) {
	if b == nil || b.Cert == nil || b.Key == nil || !b.Cert.IsCA {
		return nil, ErrNotCA
	}
	tmpl := &x509.RevocationList{
		Number:     number,
		ThisUpdate: now.Add(-clockSkew).UTC().Truncate(time.Second),
		NextUpdate: now.Add(crlLifetime).UTC().Truncate(time.Second),
	}
	for _, e := range entries {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries,
			x509.RevocationListEntry{SerialNumber: e.Serial, RevocationTime: e.At.UTC().Truncate(time.Second)})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, b.Cert, b.Key)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCRL, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), nil
}

// ReadCRL reads a CRL file (PEM or DER) and checks that ca signed it.
func ReadCRL(path string, ca *x509.Certificate) (*x509.RevocationList, error) {
	crl, err := parseCRLFile(path)
	if err != nil {
		return nil, err
	}
	if err := crl.CheckSignatureFrom(ca); err != nil {
		return nil, fmt.Errorf("%w: %s is not signed by %q: %w", ErrCRL, path, ca.Subject.CommonName, err)
	}
	return crl, nil
}

// RevokedSerials reads a CRL file (PEM or DER) that one of the certificates
// in caPEM signed and returns its revoked serial numbers (decimal strings),
// the set a TLS listener checks client certificates against. The streaming
// listener and the Marti API both trust the tls.ca file, which may hold
// several CAs, so this takes the file's bytes rather than one certificate.
// A file that cannot be read is returned unwrapped, so that errors.Is(err,
// fs.ErrNotExist) tells a CRL not yet written from a bad one.
func RevokedSerials(path string, caPEM []byte) (map[string]bool, error) {
	crl, err := parseCRLFile(path)
	if err != nil {
		return nil, err
	}
	cas, _ := parseCerts(caPEM)
	if !slices.ContainsFunc(cas, func(ca *x509.Certificate) bool { return crl.CheckSignatureFrom(ca) == nil }) {
		return nil, fmt.Errorf("%w: %s is not signed by a certificate in the CA file", ErrCRL, path)
	}
	out := make(map[string]bool, len(crl.RevokedCertificateEntries))
	for _, e := range crl.RevokedCertificateEntries {
		out[e.SerialNumber.String()] = true
	}
	return out, nil
}

// parseCRLFile reads and parses a CRL, PEM or DER, without checking who
// signed it.
func parseCRLFile(path string) (*x509.RevocationList, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if b, _ := pem.Decode(raw); b != nil {
		raw = b.Bytes
	}
	crl, err := x509.ParseRevocationList(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCRL, path, err)
	}
	return crl, nil
}

// WriteFileAtomic writes data to path so that readers see the old file or
// the whole new one.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	return writeFileAtomic(path, data, perm)
}
