package enroll_test

import (
	"archive/zip"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"cotd/configs"
	"cotd/engine/enginetest"
	"cotd/engine/enroll"
	"cotd/tlsstate/pki"
)

// Guessing from one address is locked out after the free failures; the
// real user, from another address, still enrolls.
func TestFailedLoginsAreThrottled(t *testing.T) {
	e := start(t, func(c *configs.Config) { c.Enroll.FreeFailures = 3 })
	attacker := e.client() // 127.0.0.1
	for i := 0; i < 4; i++ {
		if r := e.do(attacker, "GET", "/Marti/api/tls/config", "alice", "guess"+strconv.Itoa(i), nil, nil); r.status != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d", i, r.status)
		}
	}
	r := e.do(attacker, "GET", "/Marti/api/tls/config", "alice", alicePW, nil, nil)
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Fatalf("after 4 failures, even the right password: %d (Retry-After %q), want 429", r.status, r.header.Get("Retry-After"))
	}
	if got := e.en.Stats().Refused[enroll.RefusedThrottled].Value(); got != 1 {
		t.Errorf("throttled counted %d", got)
	}
	var m strings.Builder
	if err := e.en.WriteMetrics(&m); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`cotd_enroll_refused_total{reason="throttled"} 1`, `cotd_enroll_refused_total{reason="bad_credentials"} 4`} {
		if !strings.Contains(m.String(), want) {
			t.Errorf("metrics lack %s:\n%s", want, m.String())
		}
	}
	owner := e.clientFrom("127.0.0.2")
	r = e.do(owner, "POST", "/Marti/api/tls/signClient/v2", "alice", alicePW, csrBody(t, ecKey(t), "alice", "", ""), nil)
	if r.status != http.StatusOK {
		t.Errorf("alice from another address: %d %s, want 200", r.status, r.body)
	}
}

func TestCSRChecks(t *testing.T) {
	e := start(t, func(c *configs.Config) { c.Enroll.MaxBodyBytes = 8192 })
	c := e.client()
	sign := func(body []byte, accept string) (int, string) {
		r := e.do(c, "POST", "/Marti/api/tls/signClient/v2", "alice", alicePW, body, map[string]string{"Accept": accept})
		return r.status, string(r.body)
	}
	pemCSR := csrBody(t, ecKey(t), "alice", "", "")
	withHeaders := "-----BEGIN CERTIFICATE REQUEST-----\n" + string(pemCSR) + "\n-----END CERTIFICATE REQUEST-----\n"
	for _, tc := range []struct {
		name   string
		body   []byte
		accept string
		status int
		why    enroll.Refusal
	}{
		{"CN of another user", csrBody(t, ecKey(t), "carol", "", ""), "", http.StatusForbidden, enroll.RefusedWrongCN},
		{"RSA 1024", csrBody(t, rsaKey(t, 1024), "alice", "", ""), "", http.StatusBadRequest, enroll.RefusedKey},
		{"not a CSR", []byte("aGVsbG8gd29ybGQ="), "", http.StatusBadRequest, enroll.RefusedBadCSR},
		{"tampered CSR", tamper(pemCSR), "", http.StatusBadRequest, enroll.RefusedBadCSR},
		{"too large", bytes.Repeat([]byte("A"), 9000), "", http.StatusRequestEntityTooLarge, enroll.RefusedTooLarge},
		{"unanswerable Accept", pemCSR, "text/html", http.StatusNotAcceptable, enroll.RefusedAccept},
	} {
		before := e.en.Stats().Refused[tc.why].Value()
		if status, body := sign(tc.body, tc.accept); status != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.name, status, body, tc.status)
		}
		if e.en.Stats().Refused[tc.why].Value() != before+1 {
			t.Errorf("%s: not counted as %s", tc.name, tc.why)
		}
	}
	if recs, _ := e.en.Store().Certs("alice"); len(recs) != 0 {
		t.Errorf("refused requests left records: %+v", recs)
	}
	// PEM headers are accepted too (TAK Server strips them).
	if status, body := sign([]byte(withHeaders), "application/xml"); status != http.StatusOK {
		t.Errorf("CSR with PEM lines: %d %s", status, body)
	}
	if r := e.do(c, "GET", "/Marti/api/tls/signClient/v2", "alice", alicePW, nil, nil); r.status != http.StatusMethodNotAllowed {
		t.Errorf("GET signClient/v2: %d", r.status)
	}
}

// tamper flips a character in the middle of the base64 text.
func tamper(b []byte) []byte {
	out := bytes.Clone(b)
	i := len(out) / 2
	for out[i] == '\n' {
		i++
	}
	if out[i] == 'A' {
		out[i] = 'B'
	} else {
		out[i] = 'A'
	}
	return out
}

func TestEnrollmentProfilePackage(t *testing.T) {
	dir := t.TempDir()
	pref := `<?xml version="1.0"?><preferences><preference version="1" name="com.atakmap.app_preferences"><entry key="locationTeam" class="class java.lang.String">Cyan</entry></preference></preferences>`
	if err := os.WriteFile(filepath.Join(dir, "team.pref"), []byte(pref), 0o644); err != nil {
		t.Fatal(err)
	}
	e := start(t, func(c *configs.Config) { c.Enroll.ProfileDir = dir })
	r := e.do(e.client(), "GET", "/Marti/api/tls/profile/enrollment?clientUid=A-1", "alice", alicePW, nil, nil)
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/zip" ||
		!strings.Contains(r.header.Get("Content-Disposition"), "profile.zip") {
		t.Fatalf("profile: %d %v", r.status, r.header)
	}
	zr, err := zip.NewReader(bytes.NewReader(r.body), int64(len(r.body)))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		files[f.Name], _ = io.ReadAll(rc)
		rc.Close()
	}
	if string(files["team.pref"]) != pref {
		t.Errorf("team.pref: %q", files["team.pref"])
	}
	var m struct {
		Params []struct {
			Name  string `xml:"name,attr"`
			Value string `xml:"value,attr"`
		} `xml:"Configuration>Parameter"`
	}
	if err := xml.Unmarshal(files["MANIFEST/manifest.xml"], &m); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, p := range m.Params {
		got[p.Name] = p.Value
	}
	if got["name"] != "Enrollment" || got["onReceiveImport"] != "true" || got["onReceiveDelete"] != "true" || got["uid"] == "" {
		t.Errorf("manifest %v", got)
	}
}

// A users file broken mid-edit leaves the last good one answering; a
// state file that cannot be read is the server's failure (500), not the
// caller's (no 401, no throttling).
func TestBrokenFilesAreNotTheCallersFault(t *testing.T) {
	e := start(t, nil)
	c := e.client()
	if r := e.do(c, "GET", "/Marti/api/tls/config", "alice", alicePW, nil, nil); r.status != http.StatusOK {
		t.Fatalf("before: %d", r.status)
	}
	if err := os.WriteFile(e.users, []byte("[[user]]\nname = \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := e.do(c, "GET", "/Marti/api/tls/config", "alice", alicePW, nil, nil); r.status != http.StatusOK {
		t.Errorf("with a broken users file: %d, want the last good file to answer", r.status)
	}
	state := filepath.Join(filepath.Dir(e.users), "enrollment.json")
	if err := os.WriteFile(state, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 8; i++ { // more than free_failures: none may count
		if r := e.do(c, "GET", "/Marti/api/tls/config", "alice", alicePW, nil, nil); r.status != http.StatusInternalServerError {
			t.Fatalf("with a corrupt state file: %d, want 500", r.status)
		}
	}
	if got := e.en.Stats().Refused[enroll.RefusedInternal].Value(); got != 8 {
		t.Errorf("internal counted %d", got)
	}
	if err := os.WriteFile(state, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := e.do(c, "GET", "/Marti/api/tls/config", "alice", alicePW, nil, nil); r.status != http.StatusOK {
		t.Errorf("after the state file is repaired: %d (throttled by the server's own failures?)", r.status)
	}
}

// enroll.cert serves another certificate on the enrollment port (a public
// one for ATAK's quick connect), while the answer still carries the CA
// that signs client certificates.
func TestEnrollmentServesItsOwnCertificate(t *testing.T) {
	public, err := pki.NewCA("Public Root", pki.KeyECDSAP256, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	site, err := public.IssueServer("tak.example", []string{"127.0.0.1"}, pki.KeyECDSAP256, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certPath, keyPath, err := pki.Save(dir, "public", site)
	if err != nil {
		t.Fatal(err)
	}
	e := start(t, func(c *configs.Config) { c.Enroll.Cert, c.Enroll.Key = certPath, keyPath })
	pool := x509.NewCertPool()
	pool.AddCert(public.Cert)
	publicTrust := &http.Client{Timeout: enginetest.Wait, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	r := e.do(publicTrust, "POST", "/Marti/api/tls/signClient/v2", "alice", alicePW, csrBody(t, ecKey(t), "alice", "", ""), nil)
	if r.status != http.StatusOK || !strings.Contains(string(r.body), `"ca0"`) {
		t.Fatalf("through the public certificate: %d %s", r.status, r.body)
	}
	if _, err := e.client().Get(e.base + "/Marti/api/tls/config"); err == nil {
		t.Error("the enrollment port still presents the stream's certificate")
	}
}
