package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func csrDER(t *testing.T, key any, cn string) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// Every form a TAK client may send parses: PEM, base64 with and without
// line breaks, raw DER.
func TestParseCSRForms(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der := csrDER(t, key, "alice")
	b64 := base64.StdEncoding.EncodeToString(der)
	for name, body := range map[string][]byte{
		"pem":     pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
		"base64":  []byte(b64),
		"wrapped": []byte(Base64Wrapped(der) + "\r\n"),
		"der":     der,
	} {
		csr, err := ParseCSR(body)
		if err != nil || csr.Subject.CommonName != "alice" {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, body := range map[string][]byte{"empty": nil, "junk": []byte("not a csr"), "truncated": der[:len(der)/2]} {
		if _, err := ParseCSR(body); !errors.Is(err, ErrCSR) {
			t.Errorf("%s: %v, want ErrCSR", name, err)
		}
	}
}

func TestBase64Wrapped(t *testing.T) {
	for _, n := range []int{0, 1, 47, 48, 49, 96, 500} { // 48 bytes = 64 characters
		der := bytes.Repeat([]byte{0xA5}, n)
		got := Base64Wrapped(der)
		lines := strings.Split(got, "\n")
		for i, l := range lines {
			if len(l) > 64 || (i < len(lines)-1 && len(l) != 64) || l == "" && n > 0 {
				t.Errorf("%d bytes: line %d is %q", n, i, l)
			}
		}
		if back, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(got, "\n", "")); err != nil || !bytes.Equal(back, der) {
			t.Errorf("%d bytes: round trip %v", n, err)
		}
	}
}

func TestCSRPolicyCheckKey(t *testing.T) {
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	for name, tc := range map[string]struct {
		key any
		ok  bool
	}{"P-384": {p384, true}, "P-224": {p224, false}, "Ed25519": {ed, false}} {
		csr, err := x509.ParseCertificateRequest(csrDER(t, tc.key, "a"))
		if err != nil {
			t.Fatal(err)
		}
		if err := (CSRPolicy{}).CheckKey(csr); (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrCSRKey)) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// The issued certificate takes the subject the server decides, is for the
// CSR's key, and never outlives the CA.
func TestSignClientCSR(t *testing.T) {
	ca, err := NewCA("Team CA", KeyECDSAP256, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.ParseCertificateRequest(csrDER(t, key, "alice"))
	cert, err := ca.SignClientCSR(csr, pkix.Name{CommonName: "alice", Organization: []string{"Org"}}, 365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if cert.NotAfter.After(ca.Cert.NotAfter) || cert.Subject.Organization[0] != "Org" || !cert.PublicKey.(*ecdsa.PublicKey).Equal(&key.PublicKey) {
		t.Errorf("certificate %v until %v (CA until %v)", cert.Subject, cert.NotAfter, ca.Cert.NotAfter)
	}
	if len(cert.ExtKeyUsage) != 1 || cert.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Errorf("usage %v", cert.ExtKeyUsage)
	}
	if _, err := ca.SignClientCSR(csr, pkix.Name{}, time.Hour); !errors.Is(err, ErrName) {
		t.Errorf("empty CN: %v", err)
	}
}

func TestCRLRoundTrip(t *testing.T) {
	ca, _ := NewCA("Team CA", KeyECDSAP256, 24*time.Hour)
	other, _ := NewCA("Other CA", KeyECDSAP256, 24*time.Hour)
	path := filepath.Join(t.TempDir(), "crl.pem")
	now := time.Now()
	data, err := ca.CreateCRL([]Revoked{{Serial: big.NewInt(7), At: now}, {Serial: big.NewInt(9), At: now}}, big.NewInt(3), now)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	crl, err := ReadCRL(path, ca.Cert)
	if err != nil || len(crl.RevokedCertificateEntries) != 2 || crl.Number.Int64() != 3 {
		t.Fatalf("read back: %v %+v", err, crl)
	}
	if _, err := ReadCRL(path, other.Cert); !errors.Is(err, ErrCRL) {
		t.Errorf("another CA's check: %v", err)
	}
	leaf, _ := ca.IssueClient("x", KeyECDSAP256, 24*time.Hour)
	if _, err := leaf.CreateCRL(nil, big.NewInt(1), now); !errors.Is(err, ErrNotCA) {
		t.Errorf("CRL by a leaf: %v", err)
	}
}

// RevokedSerials trusts a CRL signed by any certificate of the CA file (an
// operator's tls.ca may hold several), refuses one signed by none, and
// passes a missing file through so callers can tell "not written yet".
func TestRevokedSerials(t *testing.T) {
	ca, _ := NewCA("Team CA", KeyECDSAP256, 24*time.Hour)
	other, _ := NewCA("Other CA", KeyECDSAP256, 24*time.Hour)
	dir := t.TempDir()
	path := filepath.Join(dir, "crl.pem")
	now := time.Now()
	data, err := ca.CreateCRL([]Revoked{{Serial: big.NewInt(7), At: now}, {Serial: big.NewInt(9), At: now}}, big.NewInt(3), now)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	// The signer is the second certificate in the file.
	got, err := RevokedSerials(path, append(append([]byte{}, other.CertPEM...), ca.CertPEM...))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got["7"] || !got["9"] {
		t.Errorf("revoked = %v, want 7 and 9", got)
	}
	if _, err := RevokedSerials(path, other.CertPEM); !errors.Is(err, ErrCRL) {
		t.Errorf("CRL no certificate in the file signed: %v, want ErrCRL", err)
	}
	if _, err := RevokedSerials(filepath.Join(dir, "none.pem"), ca.CertPEM); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing CRL: %v, want fs.ErrNotExist", err)
	}
	bad := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(bad, []byte("not a crl"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := RevokedSerials(bad, ca.CertPEM); !errors.Is(err, ErrCRL) {
		t.Errorf("garbage CRL: %v, want ErrCRL", err)
	}
}

func TestEnrollPackageRefusals(t *testing.T) {
	ok := EnrollPackageSpec{Host: "tak.example", TruststoreP12: []byte{1}}
	for name, mutate := range map[string]func(*EnrollPackageSpec){
		"no host":       func(s *EnrollPackageSpec) { s.Host = "" },
		"host:port":     func(s *EnrollPackageSpec) { s.Host = "tak.example:8089" },
		"no truststore": func(s *EnrollPackageSpec) { s.TruststoreP12 = nil },
		"enroll port":   func(s *EnrollPackageSpec) { s.EnrollPort = 70000 },
	} {
		spec := ok
		mutate(&spec)
		for _, write := range []func(*bytes.Buffer, EnrollPackageSpec) error{
			func(b *bytes.Buffer, s EnrollPackageSpec) error { return EnrollDataPackage(b, s) },
			func(b *bytes.Buffer, s EnrollPackageSpec) error { return ITAKEnrollPackage(b, s) },
		} {
			if err := write(&bytes.Buffer{}, spec); !errors.Is(err, ErrPackage) {
				t.Errorf("%s: %v", name, err)
			}
		}
	}
}
