package enroll_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"

	"cotd/configs"
	"cotd/engine/auth"
	"cotd/engine/enginetest"
	"cotd/engine/enroll"
	"cotd/engine/store"
	"cotd/tlsstate/pki"
)

// env is a running stream server (mutual TLS, users file, CRL) and the
// enrollment service beside it, both on loopback ports from the kernel.
type env struct {
	t     *testing.T
	pki   *enginetest.PKI
	h     *enginetest.Harness
	en    *enroll.Server
	users string
	crl   string
	base  string // https://127.0.0.1:port
	ca    *pki.Bundle
}

// The users every test has: alice and carol may enroll, bob is disabled,
// dave has no password (certificate only, enrolls with a token).
const (
	alicePW = "alice-secret"
	carolPW = "carol-secret"
	bobPW   = "bob-secret"
)

func start(t *testing.T, mutate func(*configs.Config)) *env {
	t.Helper()
	return startWith(t, "file", mutate)
}

// backends are where certificate records may live: the state file, or the
// process's database (engine/store on SQLite).
var backends = []string{"file", "sqlite"}

// startWith starts the servers with certificate records in backend.
func startWith(t *testing.T, backend string, mutate func(*configs.Config)) *env {
	t.Helper()
	p := enginetest.NewPKI(t, pki.KeyECDSAP256)
	dir := t.TempDir()
	e := &env{t: t, pki: p, users: filepath.Join(dir, "users.toml"), crl: filepath.Join(dir, "crl.pem")}
	var users []auth.User
	for _, u := range []struct {
		name, pw string
		disabled bool
	}{{"alice", alicePW, false}, {"carol", carolPW, false}, {"bob", bobPW, true}, {"dave", "", false}} {
		x := auth.User{Name: u.name, Disabled: u.disabled}
		if u.pw != "" {
			// The lowest cost: every request checks a password, and bcrypt
			// at the default cost takes seconds under the race detector.
			h, err := bcrypt.GenerateFromPassword([]byte(u.pw), bcrypt.MinCost)
			if err != nil {
				t.Fatal(err)
			}
			x.PasswordHash = string(h)
		}
		users = append(users, x)
	}
	if err := auth.Save(e.users, users); err != nil {
		t.Fatal(err)
	}
	_, caKey := pki.Paths(filepath.Dir(p.CAPath), pki.CAName)
	ca, err := pki.Load(p.CAPath, caKey)
	if err != nil {
		t.Fatal(err)
	}
	e.ca = ca
	// tls.crl must exist at start, as an operator's would (`cotd certs crl`).
	if err := enroll.WriteCRL(enroll.NewFileStore(filepath.Join(dir, "enrollment.json")), ca, e.crl, time.Now()); err != nil {
		t.Fatal(err)
	}
	e.h = enginetest.StartTLS(t, p, func(c *configs.Config) {
		c.Auth.UsersFile = e.users
		c.TLS.CRL = e.crl
		c.TLS.CAKey = caKey
		c.Enroll.Addr = "127.0.0.1:0"
		c.Enroll.O, c.Enroll.OU = "Example Org", "Blue Team"
		// Polled, not slept on: tests wait for what the poll causes.
		c.Enroll.CRLCheck = configs.Duration{Duration: 20 * time.Millisecond}
		if mutate != nil {
			mutate(c)
		}
	})
	deps := enroll.Deps{Directory: e.h.Srv.Directory(), ReloadTLS: e.h.Srv.ReloadTLS,
		Log: zerolog.New(e.h.Logs).With().Str("component", "enroll").Logger()}
	if backend == "sqlite" {
		sc := configs.Default().Store
		sc.Path = filepath.Join(dir, "cotd.db")
		db, err := store.Open(context.Background(), sc, store.Options{Log: deps.Log})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close(context.Background()) })
		deps.Certs = db
	}
	en, err := enroll.New(e.h.Cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	if err := en.Listen(); err != nil {
		t.Fatal(err)
	}
	e.en = en
	e.base = "https://" + en.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- en.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("enroll.Run: %v", err)
		}
	})
	return e
}

// client is an HTTPS client that trusts the test CA, as a device with the
// enrollment data package's trust store does.
func (e *env) client() *http.Client {
	return &http.Client{Timeout: enginetest.Wait, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: e.pki.Pool},
	}}
}

// clientFrom is a client whose connections come from local address ip
// (any 127/8 address reaches a loopback listener on Linux).
func (e *env) clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: enginetest.Wait}
	return &http.Client{Timeout: enginetest.Wait, Transport: &http.Transport{
		DialContext:     d.DialContext,
		TLSClientConfig: &tls.Config{RootCAs: e.pki.Pool},
	}}
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (e *env) do(c *http.Client, method, path, user, pw string, body []byte, header map[string]string) reply {
	e.t.Helper()
	req, err := http.NewRequest(method, e.base+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pw)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return reply{resp.StatusCode, resp.Header, b}
}

// csrBody makes a key and a CSR for cn with the given extra subject, and
// encodes it as ATAK does: PEM without its BEGIN/END lines.
func csrBody(t *testing.T, key crypto.Signer, cn string, org, unit string) []byte {
	t.Helper()
	subj := pkix.Name{CommonName: cn}
	if org != "" {
		subj.Organization = []string{org}
	}
	if unit != "" {
		subj.OrganizationalUnit = []string{unit}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: subj}, key)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), "\n") {
		if !strings.HasPrefix(l, "-----") {
			lines = append(lines, l)
		}
	}
	return []byte(strings.Join(lines, "\n"))
}

func rsaKey(t *testing.T, bits int) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func ecKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// wrappedDER decodes a signClient/v2 value: base64 in lines of at most
// 64 characters, no PEM lines.
func wrappedDER(t *testing.T, s string) []byte {
	t.Helper()
	if strings.Contains(s, "-----") {
		t.Errorf("value has PEM lines: %q", s)
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if len(l) > 64 || (i < len(lines)-1 && len(l) != 64) {
			t.Errorf("line %d is %d characters, want 64 (the last at most 64)", i, len(l))
		}
	}
	der, err := base64.StdEncoding.DecodeString(strings.Join(lines, ""))
	if err != nil {
		t.Fatalf("base64: %v", err)
	}
	return der
}

// checkIssued checks a certificate the server issued for user with key.
func (e *env) checkIssued(der []byte, user string, key crypto.Signer) *x509.Certificate {
	e.t.Helper()
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		e.t.Fatalf("signedCert: %v", err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: e.pki.Pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		e.t.Errorf("issued certificate does not verify as a client certificate of the CA: %v", err)
	}
	if cert.Subject.CommonName != user || len(cert.Subject.Organization) != 1 || cert.Subject.Organization[0] != "Example Org" ||
		len(cert.Subject.OrganizationalUnit) != 1 || cert.Subject.OrganizationalUnit[0] != "Blue Team" {
		e.t.Errorf("subject %v", cert.Subject)
	}
	if pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(key.Public()) {
		e.t.Error("issued certificate is not for the CSR's key")
	}
	return cert
}

// stream connects to the TLS stream port with the issued certificate and
// proves it streams: an SA it sends reaches a plain TCP client.
func (e *env) stream(cert *x509.Certificate, key crypto.Signer, uid string) *enginetest.Client {
	e.t.Helper()
	before := len(e.h.Srv.Directory().Clients())
	listener := enginetest.Dial(e.t, e.h.TCPAddr())
	// Barrier: the listener joined routing before anything is sent to it.
	enginetest.Eventually(e.t, "the listener to join", func() bool { return len(e.h.Srv.Directory().Clients()) > before })
	c := enginetest.DialTLS(e.t, e.h.TLSAddr(), e.tlsConfig(cert, key, nil))
	c.SendEvent(enginetest.SA(uid, "CS-"+uid, "a-f-G-U-C"))
	listener.Expect("the enrolled client's SA", enginetest.UID(uid))
	return c
}

func (e *env) tlsConfig(cert *x509.Certificate, key crypto.Signer, cache tls.ClientSessionCache) *tls.Config {
	return &tls.Config{RootCAs: e.pki.Pool, ClientSessionCache: cache,
		Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}}}
}
