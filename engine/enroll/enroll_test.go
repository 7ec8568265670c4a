package enroll_test

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"encoding/xml"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"cotd/configs"
	"cotd/engine/auth"
	"cotd/engine/enginetest"
	"cotd/engine/enroll"
)

// ATAK 5.5: tls/config (XML, certificateConfig with nameEntries), then
// signClient/v2 asking for XML, then the enrollment profile, then the
// stream with the new certificate.
func TestATAK55EnrollsWithXMLAndStreams(t *testing.T) {
	for _, b := range backends {
		t.Run(b, func(t *testing.T) { testATAK55EnrollsWithXMLAndStreams(t, b) })
	}
}

func testATAK55EnrollsWithXMLAndStreams(t *testing.T, backend string) {
	e := startWith(t, backend, nil)
	c := e.client()

	r := e.do(c, "GET", "/Marti/api/tls/config", "alice", alicePW, nil, nil)
	if r.status != http.StatusOK {
		t.Fatalf("tls/config: %d %s", r.status, r.body)
	}
	var cfg struct {
		XMLName      xml.Name
		ValidityDays int `xml:"validityDays,attr"`
		NameEntries  *struct {
			Entries []struct {
				Name  string `xml:"name,attr"`
				Value string `xml:"value,attr"`
			} `xml:"nameEntry"`
		} `xml:"nameEntries"`
	}
	if err := xml.Unmarshal(r.body, &cfg); err != nil {
		t.Fatalf("tls/config: %v\n%s", err, r.body)
	}
	if cfg.XMLName.Local != "certificateConfig" || cfg.NameEntries == nil {
		t.Fatalf("ATAK 5.5 needs root certificateConfig with nameEntries:\n%s", r.body)
	}
	if cfg.ValidityDays != 365 {
		t.Errorf("validityDays %d", cfg.ValidityDays)
	}
	var o, ou string
	for _, ne := range cfg.NameEntries.Entries {
		switch ne.Name {
		case "O":
			o = ne.Value
		case "OU":
			ou = ne.Value
		}
	}
	if o != "Example Org" || ou != "Blue Team" {
		t.Errorf("name entries %+v", cfg.NameEntries.Entries)
	}

	key := rsaKey(t, 2048) // ATAK makes 4096 bits; 2048 keeps the race run short
	r = e.do(c, "POST", "/Marti/api/tls/signClient/v2?clientUid=ANDROID-55&version=5.5.1.8", "alice", alicePW,
		csrBody(t, key, "alice", o, ou), map[string]string{"Accept": "application/xml", "Content-Type": "application/octet-stream"})
	if r.status != http.StatusOK {
		t.Fatalf("signClient/v2: %d %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/xml") {
		t.Errorf("Content-Type %q", ct)
	}
	var enr struct {
		XMLName    xml.Name `xml:"enrollment"`
		SignedCert []string `xml:"signedCert"`
		CA         []string `xml:"ca"`
	}
	if err := xml.Unmarshal(r.body, &enr); err != nil {
		t.Fatalf("enrollment XML: %v\n%s", err, r.body)
	}
	if len(enr.SignedCert) != 1 || len(enr.CA) == 0 {
		t.Fatalf("commo wants exactly one signedCert and the CAs:\n%s", r.body)
	}
	cert := e.checkIssued(wrappedDER(t, enr.SignedCert[0]), "alice", key)
	if ca := wrappedDER(t, enr.CA[0]); !slices.Equal(ca, e.ca.Cert.Raw) {
		t.Error("first <ca> is not the CA certificate")
	}

	r = e.do(c, "GET", "/Marti/api/tls/profile/enrollment?clientUid=ANDROID-55", "alice", alicePW, nil, nil)
	if r.status != http.StatusNoContent {
		t.Errorf("profile without enroll.profile_dir: %d, want 204", r.status)
	}

	recs, err := e.en.Store().Certs("alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Serial != cert.SerialNumber.String() || recs[0].ClientUID != "ANDROID-55" ||
		!recs[0].NotAfter.Equal(cert.NotAfter) || !recs[0].Revoked.IsZero() {
		t.Errorf("records %+v", recs)
	}
	if got := e.en.Stats().Issued.Value(); got != 1 {
		t.Errorf("issued counter %d", got)
	}
	e.stream(cert, key, "ANDROID-55")
}

// ATAK 4.x: signClient (v1) answers a PKCS#12 whose alias signedCert is
// the certificate and every other alias a CA, password atakatak.
func TestATAK4EnrollsWithPKCS12AndStreams(t *testing.T) {
	e := start(t, nil)
	key := rsaKey(t, 2048)
	r := e.do(e.client(), "POST", "/Marti/api/tls/signClient?clientUid=ANDROID-46&version=4.6.0", "carol", carolPW,
		csrBody(t, key, "carol", "", ""), nil)
	if r.status != http.StatusOK {
		t.Fatalf("signClient: %d %s", r.status, r.body)
	}
	// Go's PKCS#12 readers drop aliases; OpenSSL, an independent reader,
	// shows them as Java's KeyStore (ATAK) sees them.
	byAlias := p12Aliases(t, r.body, "atakatak")
	if byAlias["signedCert"] == nil || byAlias["ca0"] == nil || len(byAlias) != 2 {
		t.Fatalf("aliases %v, want signedCert and ca0", slices.Collect(mapKeys(byAlias)))
	}
	if !slices.Equal(byAlias["ca0"].Bytes, e.ca.Cert.Raw) {
		t.Error("ca0 is not the CA")
	}
	cert := e.checkIssued(byAlias["signedCert"].Bytes, "carol", key)
	e.stream(cert, key, "ANDROID-46")
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// iTAK: signClient/v2 with JSON (no Accept, as TAK Server's default), an
// ECDSA key, then the stream.
func TestITAKEnrollsWithJSONAndStreams(t *testing.T) {
	e := start(t, nil)
	key := ecKey(t)
	for _, accept := range []string{"", "application/json"} {
		r := e.do(e.client(), "POST", "/Marti/api/tls/signClient/v2?clientUid=ITAK-1", "alice", alicePW,
			csrBody(t, key, "alice", "Example Org", "Blue Team"), map[string]string{"Accept": accept})
		if r.status != http.StatusOK {
			t.Fatalf("Accept %q: %d %s", accept, r.status, r.body)
		}
		var m map[string]string
		if err := json.Unmarshal(r.body, &m); err != nil {
			t.Fatalf("JSON: %v\n%s", err, r.body)
		}
		if m["signedCert"] == "" || m["ca0"] == "" {
			t.Fatalf("keys %v", slices.Collect(mapKeys(m)))
		}
		if !slices.Equal(wrappedDER(t, m["ca0"]), e.ca.Cert.Raw) {
			t.Error("ca0 is not the CA")
		}
		cert := e.checkIssued(wrappedDER(t, m["signedCert"]), "alice", key)
		if accept == "" {
			continue
		}
		e.stream(cert, key, "ITAK-1")
	}
	if recs, _ := e.en.Store().Certs("alice"); len(recs) != 2 {
		t.Errorf("%d records, want one per issued certificate", len(recs))
	}
}

func TestWrongPasswordAndDisabledUserGet401(t *testing.T) {
	e := start(t, nil)
	c := e.client()
	body := csrBody(t, ecKey(t), "alice", "", "")
	cases := []struct{ name, user, pw string }{
		{"wrong password", "alice", "nope"},
		{"unknown user", "mallory", "x"},
		{"disabled user with the right password", "bob", bobPW},
		{"certificate-only user with an empty password", "dave", ""},
	}
	for _, tc := range cases {
		r := e.do(c, "POST", "/Marti/api/tls/signClient/v2", tc.user, tc.pw, body, nil)
		if r.status != http.StatusUnauthorized || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic") {
			t.Errorf("%s: %d %q, want 401 with a Basic challenge", tc.name, r.status, r.header.Get("WWW-Authenticate"))
		}
	}
	if r := e.do(c, "GET", "/Marti/api/tls/config", "", "", nil, nil); r.status != http.StatusUnauthorized {
		t.Errorf("no credentials: %d", r.status)
	}
	if got := e.en.Stats().Refused[enroll.RefusedBadCredentials].Value(); got != uint64(len(cases)) {
		t.Errorf("bad_credentials counted %d, want %d", got, len(cases))
	}
	if n, _ := e.en.Store().Certs("alice"); len(n) != 0 {
		t.Errorf("records after refusals: %+v", n)
	}

	// Disabling alice in the file applies at the next request, no reload.
	if r := e.do(c, "GET", "/Marti/api/tls/config", "alice", alicePW, nil, nil); r.status != http.StatusOK {
		t.Fatalf("alice before disable: %d", r.status)
	}
	if err := auth.Update(e.users, func(us []auth.User) ([]auth.User, error) {
		for i := range us {
			if us[i].Name == "alice" {
				us[i].Disabled = true
			}
		}
		return us, nil
	}); err != nil {
		t.Fatal(err)
	}
	if r := e.do(c, "POST", "/Marti/api/tls/signClient/v2", "alice", alicePW, body, nil); r.status != http.StatusUnauthorized {
		t.Errorf("disabled alice: %d, want 401", r.status)
	}
}

func TestTokenWorksOnce(t *testing.T) {
	for _, b := range backends {
		t.Run(b, func(t *testing.T) { testTokenWorksOnce(t, b) })
	}
}

func testTokenWorksOnce(t *testing.T, backend string) {
	e := startWith(t, backend, nil)
	c := e.client()
	token, err := enroll.NewToken(e.en.Store(), "dave", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if r := e.do(c, "GET", "/Marti/api/tls/config", "dave", token, nil, nil); r.status != http.StatusOK {
		t.Fatalf("config with the token: %d %s", r.status, r.body)
	}
	if r := e.do(c, "GET", "/Marti/api/tls/config", "alice", token, nil, nil); r.status != http.StatusUnauthorized {
		t.Errorf("dave's token as alice's password: %d", r.status)
	}
	key := ecKey(t)
	r := e.do(c, "POST", "/Marti/api/tls/signClient/v2?clientUid=QR-1", "dave", token, csrBody(t, key, "dave", "", ""),
		map[string]string{"Accept": "application/xml"})
	if r.status != http.StatusOK {
		t.Fatalf("first signing with the token: %d %s", r.status, r.body)
	}
	// ATAK fetches the profile right after, with the same credentials.
	if r := e.do(c, "GET", "/Marti/api/tls/profile/enrollment?clientUid=QR-1", "dave", token, nil, nil); r.status != http.StatusNoContent {
		t.Errorf("profile just after signing: %d", r.status)
	}
	r = e.do(c, "POST", "/Marti/api/tls/signClient/v2?clientUid=QR-2", "dave", token, csrBody(t, ecKey(t), "dave", "", ""), nil)
	if r.status != http.StatusUnauthorized {
		t.Errorf("second signing with the same token: %d, want 401", r.status)
	}
	if got := e.en.Stats().Refused[enroll.RefusedTokenUsed].Value(); got != 1 {
		t.Errorf("token_used counted %d", got)
	}
	if recs, _ := e.en.Store().Certs("dave"); len(recs) != 1 || recs[0].ClientUID != "QR-1" {
		t.Errorf("records %+v", recs)
	}
	expired, err := enroll.NewToken(e.en.Store(), "dave", time.Nanosecond, time.Now().Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if r := e.do(c, "GET", "/Marti/api/tls/config", "dave", expired, nil, nil); r.status != http.StatusUnauthorized {
		t.Errorf("expired token: %d", r.status)
	}
}

// Revocation: the connected client is closed (reason revoked), and the
// handshake refuses its certificate afterwards, resumption included.
func TestRevokedCertificateIsDroppedAndRefused(t *testing.T) {
	for _, b := range backends {
		t.Run(b, func(t *testing.T) { testRevokedCertificateIsDroppedAndRefused(t, b) })
	}
}

func testRevokedCertificateIsDroppedAndRefused(t *testing.T, backend string) {
	e := startWith(t, backend, nil)
	key := ecKey(t)
	r := e.do(e.client(), "POST", "/Marti/api/tls/signClient/v2?clientUid=REV-1", "alice", alicePW,
		csrBody(t, key, "alice", "", ""), nil)
	if r.status != http.StatusOK {
		t.Fatalf("sign: %d %s", r.status, r.body)
	}
	var m map[string]string
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatal(err)
	}
	cert := e.checkIssued(wrappedDER(t, m["signedCert"]), "alice", key)
	cache := tls.NewLRUClientSessionCache(4)
	conn := enginetest.DialTLS(t, e.h.TLSAddr(), e.tlsConfig(cert, key, cache))
	conn.SendEvent(enginetest.SA("REV-1", "REV", "a-f-G-U-C"))
	enginetest.Eventually(t, "alice to join", func() bool {
		for _, c := range e.h.Srv.Directory().Clients() {
			if c.Identity == "alice" && c.UID == "REV-1" {
				return true
			}
		}
		return false
	})
	// carol stays connected: only alice's certificate is revoked.
	carolKey := ecKey(t)
	r = e.do(e.client(), "POST", "/Marti/api/tls/signClient/v2", "carol", carolPW, csrBody(t, carolKey, "carol", "", ""), nil)
	if err := json.Unmarshal(r.body, &m); err != nil || r.status != http.StatusOK {
		t.Fatalf("carol: %d %v", r.status, err)
	}
	carolCert := e.checkIssued(wrappedDER(t, m["signedCert"]), "carol", carolKey)
	carol := e.stream(carolCert, carolKey, "CAROL-1")

	revoked, err := enroll.Revoke(e.en.Store(), e.ca, e.crl, enroll.RevokeSelector{User: "alice"}, time.Now())
	if err != nil || len(revoked) != 1 || revoked[0].Serial != cert.SerialNumber.String() {
		t.Fatalf("revoke: %+v %v", revoked, err)
	}
	conn.Closed()
	enginetest.Eventually(t, "the close to be counted as revoked", func() bool {
		return strings.Contains(e.h.Metrics(t), `cotd_closes_total{reason="revoked"} 1`)
	})
	// Counted by the watcher once Disconnect returned.
	enginetest.Eventually(t, "the revoked disconnect to be counted", func() bool { return e.en.Stats().Revoked.Value() == 1 })

	// The handshake now refuses the certificate, with the session ticket
	// the first connection left in cache too. With TLS 1.3 the refusal
	// arrives after the client's half, on the first read.
	again, err := enginetest.TryDialTLS(e.h.TLSAddr(), e.tlsConfig(cert, key, cache))
	if err == nil {
		_ = again.SetReadDeadline(time.Now().Add(enginetest.Wait))
		_, err = again.Read(make([]byte, 1))
		again.Close()
	}
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("revoked certificate: %v, want a refused handshake", err)
	}
	// carol was not touched: what she sends still streams.
	listener := enginetest.Dial(t, e.h.TCPAddr())
	enginetest.Eventually(t, "the listener to join", func() bool { return len(e.h.Srv.Directory().Clients()) >= 2 })
	carol.SendEvent(enginetest.SA("CAROL-2", "C2", "a-f-G-U-C"))
	listener.Expect("carol's SA after alice's revocation", enginetest.UID("CAROL-2"))
}

func TestEnrollmentRefusesToStartWithoutCAKey(t *testing.T) {
	p := enginetest.NewPKI(t, 0)
	users := filepath.Join(t.TempDir(), "users.toml")
	if err := auth.Save(users, []auth.User{{Name: "alice"}}); err != nil {
		t.Fatal(err)
	}
	cfg := configs.Default()
	cfg.TLS.Addr, cfg.TLS.Cert, cfg.TLS.Key, cfg.TLS.CA = "127.0.0.1:0", p.CertPath, p.KeyPath, p.CAPath
	cfg.Auth.UsersFile = users
	cfg.Enroll.Addr = "127.0.0.1:0"
	_, err := enroll.New(cfg, enroll.Deps{})
	if !errors.Is(err, enroll.ErrNoCAKey) || !strings.Contains(err.Error(), "tls.ca_key") {
		t.Errorf("New without tls.ca_key: %v", err)
	}
}

// p12Aliases reads every certificate of a PKCS#12 file with its
// friendlyName, through openssl.
func p12Aliases(t *testing.T, p12 []byte, password string) map[string]*pem.Block {
	t.Helper()
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatalf("openssl reads the PKCS#12 aliases here: %v", err)
	}
	path := filepath.Join(t.TempDir(), "answer.p12")
	if err := os.WriteFile(path, p12, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "pkcs12", "-in", path, "-passin", "pass:"+password, "-nokeys").CombinedOutput()
	if err != nil {
		t.Fatalf("openssl pkcs12 (password %q): %v\n%s", password, err, out)
	}
	aliases := map[string]*pem.Block{}
	alias := ""
	for rest := out; ; {
		i := bytes.Index(rest, []byte("-----BEGIN"))
		if i < 0 {
			break
		}
		for _, line := range strings.Split(string(rest[:i]), "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "friendlyName: "); ok {
				alias = v
			}
		}
		var b *pem.Block
		b, rest = pem.Decode(rest[i:])
		if b == nil {
			t.Fatalf("openssl output:\n%s", out)
		}
		if _, dup := aliases[alias]; dup {
			t.Errorf("alias %q twice", alias)
		}
		aliases[alias] = b
		alias = ""
	}
	return aliases
}
