package main

import (
	"archive/zip"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/xml"
	"image/png"
	"io"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	qrcode "github.com/skip2/go-qrcode"
	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"cotd/engine/enroll"
	"cotd/tlsstate/pki"
)

func TestUsersTokenPrintsPayloadAndWritesQR(t *testing.T) {
	dir := t.TempDir()
	users := filepath.Join(dir, "users.toml")
	if code, _, stderr := runUsers(t, "", "add", "--file", users, "--name", "alice"); code != 0 {
		t.Fatal(stderr)
	}
	qr := filepath.Join(dir, "alice.png")
	code, stdout, stderr := runUsers(t, "", "token", "--file", users, "--name", "alice", "--host", "tak.example", "--ttl", "2h", "--qr", qr)
	if code != 0 {
		t.Fatalf("token: %d %s", code, stderr)
	}
	m := regexp.MustCompile(`(?m)^qr:\s+(tak://\S+)$`).FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("no QR payload in %q", stdout)
	}
	u, err := url.Parse(m[1])
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if u.Scheme != "tak" || u.Host != "com.atakmap.app" || u.Path != "/enroll" || q.Get("host") != "tak.example" || q.Get("username") != "alice" {
		t.Errorf("payload %s", m[1])
	}
	token := q.Get("token")
	if !strings.Contains(stdout, "token:   "+token+"\n") || len(token) != 32 {
		t.Errorf("token %q in %q", token, stdout)
	}
	// The token is stored (hashed) next to the users file and valid once.
	st := enroll.NewFileStore(filepath.Join(dir, "enrollment.json"))
	if s, err := st.CheckToken("alice", token, time.Now()); err != nil || s != enroll.TokenUnused {
		t.Errorf("stored token: %v %v", s, err)
	}
	if raw, _ := os.ReadFile(filepath.Join(dir, "enrollment.json")); bytes.Contains(raw, []byte(token)) {
		t.Error("the state file holds the token itself")
	}
	// The PNG is the QR code of exactly that payload.
	f, err := os.Open(qr)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("QR file: %v", err)
	}
	want, err := qrcode.New(m[1], qrcode.Medium)
	if err != nil {
		t.Fatal(err)
	}
	bitmap := want.Bitmap()
	size, n := img.Bounds().Dx(), len(bitmap)
	if size < n {
		t.Fatalf("image %dpx for %d modules", size, n)
	}
	for y := range bitmap {
		for x := range bitmap[y] {
			// The centre pixel of each module (the library scales modules
			// to pixels by nearest neighbour).
			px, py := (2*x+1)*size/(2*n), (2*y+1)*size/(2*n)
			r, _, _, _ := img.At(px, py).RGBA()
			if dark := r < 0x8000; dark != bitmap[y][x] {
				t.Fatalf("module (%d,%d) differs from the payload's QR code", x, y)
			}
		}
	}

	// Refusals: unknown or disabled user.
	if code, _, stderr := runUsers(t, "", "token", "--file", users, "--name", "mallory", "--host", "h", "--qr", qr); code != 1 || !strings.Contains(stderr, "no user") {
		t.Errorf("unknown user: %d %q", code, stderr)
	}
}

func TestCertsEnrollPackage(t *testing.T) {
	dir := t.TempDir()
	if code, _, stderr := runCerts(t, "ca", "--dir", dir, "--cn", "Team CA"); code != 0 {
		t.Fatal(stderr)
	}
	code, stdout, stderr := runCerts(t, "enroll-package", "--dir", dir, "--server-host", "tak.example", "--enroll-port", "9446")
	if code != 0 {
		t.Fatalf("enroll-package: %d %s", code, stderr)
	}
	ca, err := pki.LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		file     string
		manifest bool
	}{{"tak.example-enroll.zip", true}, {"tak.example-enroll-itak.zip", false}} {
		path := filepath.Join(dir, tc.file)
		if !strings.Contains(stdout, path) {
			t.Errorf("%s not reported in %q", path, stdout)
		}
		files := readZip(t, path)
		if _, ok := files["MANIFEST/manifest.xml"]; ok != tc.manifest {
			t.Errorf("%s: MANIFEST present %v, want %v", tc.file, ok, tc.manifest)
		}
		certs, err := pkcs12.DecodeTrustStore(files["truststore.p12"], "atakatak")
		if err != nil || len(certs) != 1 || !certs[0].Equal(ca.Cert) {
			t.Errorf("%s: trust store %v %v", tc.file, certs, err)
		}
		prefs := prefEntries(t, files["config.pref"])
		for key, want := range map[string]string{
			"cot_streams/connectString0":                                "tak.example:8089:ssl|class java.lang.String",
			"cot_streams/enrollForCertificateWithTrust0":                "true|class java.lang.Boolean",
			"cot_streams/useAuth0":                                      "true|class java.lang.Boolean",
			"cot_streams/cacheCreds0":                                   "Cache credentials|class java.lang.String",
			"cot_streams/caLocation0":                                   "cert/truststore.p12|class java.lang.String",
			"cot_streams/caPassword0":                                   "atakatak|class java.lang.String",
			"com.atakmap.app_preferences/apiCertEnrollmentPort":         "9446|class java.lang.String",
			"com.atakmap.app_preferences/caLocation":                    "cert/truststore.p12|class java.lang.String",
			"com.atakmap.app_preferences/certificateLocation":           "",
			"cot_streams/certificateLocation0":                          "",
			"com.atakmap.app_preferences/displayServerConnectionWidget": "true|class java.lang.Boolean",
		} {
			if got := prefs[key]; got != want {
				t.Errorf("%s: %s = %q, want %q", tc.file, key, got, want)
			}
		}
	}
}

func readZip(t *testing.T, path string) map[string][]byte {
	t.Helper()
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	files := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		files[f.Name], _ = io.ReadAll(rc)
		rc.Close()
	}
	return files
}

// prefEntries maps "group/key" to "value|class".
func prefEntries(t *testing.T, data []byte) map[string]string {
	t.Helper()
	var p struct {
		Groups []struct {
			Name    string `xml:"name,attr"`
			Entries []struct {
				Key   string `xml:"key,attr"`
				Class string `xml:"class,attr"`
				Value string `xml:",chardata"`
			} `xml:"entry"`
		} `xml:"preference"`
	}
	if err := xml.Unmarshal(data, &p); err != nil {
		t.Fatalf("config.pref: %v\n%s", err, data)
	}
	out := map[string]string{}
	for _, g := range p.Groups {
		for _, e := range g.Entries {
			out[g.Name+"/"+e.Key] = e.Value + "|" + e.Class
		}
	}
	return out
}

// revoke by name and by serial, and `users disable` revoking, all write a
// CRL signed by the CA that lists the serials: with the records in the
// database (SQLite, [store] on) and in the state file ([store] off).
func TestCertsRevokeAndDisable(t *testing.T) {
	for _, backend := range []string{"sqlite", "file"} {
		t.Run(backend, func(t *testing.T) { testRevokeAndDisable(t, backend) })
	}
}

func testRevokeAndDisable(t *testing.T, backend string) {
	dir := t.TempDir()
	certs := filepath.Join(dir, "certs")
	if code, _, stderr := runCerts(t, "ca", "--dir", certs); code != 0 {
		t.Fatal(stderr)
	}
	users := filepath.Join(dir, "users.toml")
	for _, n := range []string{"alice", "bob"} {
		if code, _, stderr := runUsers(t, "", "add", "--file", users, "--name", n); code != 0 {
			t.Fatal(stderr)
		}
	}
	caPath, caKey := pki.Paths(certs, pki.CAName)
	crl := filepath.Join(dir, "crl.pem")
	cfgPath := filepath.Join(dir, "cotd.toml")
	cfg := "[tls]\ndev_certs = false\ncert = " + q(caPath) + "\nkey = " + q(caKey) + "\nca = " + q(caPath) +
		"\nca_key = " + q(caKey) + "\n[auth]\nusers_file = " + q(users) + "\n"
	if backend == "sqlite" {
		cfg += "[store]\npath = " + q(filepath.Join(dir, "cotd.db")) + "\n"
	} else {
		cfg += "[store]\nenabled = false\n"
	}
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCerts(t, "crl", "--config", cfgPath); code != 1 || !strings.Contains(stderr, "tls.crl") {
		t.Errorf("crl without tls.crl: %d %q", code, stderr)
	}
	// With tls.ca_key, tls.crl may name a file cotd has not written yet.
	cfg = strings.Replace(cfg, "[auth]", "crl = "+q(crl)+"\n[auth]", 1)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, stdout, stderr := runCerts(t, "crl", "--config", cfgPath); code != 0 || !strings.Contains(stdout, crl) {
		t.Fatalf("crl: %d %q %q", code, stdout, stderr)
	}
	loaded, err := loadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	st, closeStore, err := openStore(loaded, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, isDB := st.(*enroll.DBStore); isDB != (backend == "sqlite") {
		t.Fatalf("%s: store %T", backend, st)
	}
	ca, err := pki.LoadCA(certs)
	if err != nil {
		t.Fatal(err)
	}
	// Two certificates of alice, one of bob, as enrollment records them.
	serials := map[string]string{}
	for _, n := range []string{"alice", "alice", "bob"} {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: n}}, key)
		csr, _ := x509.ParseCertificateRequest(der)
		cert, err := ca.SignClientCSR(csr, pkix.Name{CommonName: n}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.RecordCert(enroll.CertRecord{User: n, Serial: cert.SerialNumber.String(), Issued: time.Now(), NotAfter: cert.NotAfter}); err != nil {
			t.Fatal(err)
		}
		serials[cert.SerialNumber.String()] = n
	}
	closeStore()
	if got := crlSerials(t, crl, ca); len(got) != 0 {
		t.Fatalf("fresh CRL lists %v", got)
	}

	code, stdout, stderr := runCerts(t, "revoke", "--config", cfgPath, "alice")
	if code != 0 {
		t.Fatalf("revoke alice: %d %s", code, stderr)
	}
	if strings.Count(stdout, "revoked serial") != 2 {
		t.Errorf("revoke output %q", stdout)
	}
	got := crlSerials(t, crl, ca)
	for s, n := range serials {
		if got[s] != (n == "alice") {
			t.Errorf("serial of %s listed %v", n, got[s])
		}
	}

	// disable bob: his certificate is revoked too (revoke_on_disable).
	code, stdout, stderr = runUsers(t, "", "disable", "--file", users, "--name", "bob", "--config", cfgPath)
	if code != 0 || !strings.Contains(stdout, "revoked serial") {
		t.Fatalf("disable bob: %d %q %q", code, stdout, stderr)
	}
	got = crlSerials(t, crl, ca)
	if len(got) != 3 {
		t.Errorf("after disabling bob the CRL lists %d serials, want 3", len(got))
	}

	// A serial cotd never issued, in openssl's hex form.
	foreign := big.NewInt(0xABCDEF)
	if code, _, stderr := runCerts(t, "revoke", "--config", cfgPath, "AB:CD:EF"); code != 0 {
		t.Fatalf("revoke by serial: %d %s", code, stderr)
	}
	if !crlSerials(t, crl, ca)[foreign.String()] {
		t.Error("hex serial not in the CRL")
	}
	if code, _, stderr := runCerts(t, "revoke", "--config", cfgPath, "nobody"); code != 1 || !strings.Contains(stderr, "not a serial") {
		t.Errorf("revoke nobody: %d %q", code, stderr)
	}
}

func q(s string) string { return `"` + s + `"` }

func crlSerials(t *testing.T, path string, ca *pki.Bundle) map[string]bool {
	t.Helper()
	crl, err := pki.ReadCRL(path, ca.Cert)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, e := range crl.RevokedCertificateEntries {
		out[e.SerialNumber.String()] = true
	}
	return out
}
