package main

import (
	"bytes"
	"crypto/rsa"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"cotd/tlsstate/pki"
)

func runCerts(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return runMain(t, append([]string{"certs"}, args...)...)
}

func TestCertsFlow(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")

	// Before the CA exists, server and client say how to make one.
	for _, args := range [][]string{
		{"server", "--dir", dir, "--host", "tak.lan"},
		{"client", "--dir", dir, "--name", "alice"},
		{"node", "--dir", dir, "--name", "n1", "--host", "n1.lan"},
	} {
		code, _, stderr := runCerts(t, args...)
		if code != 1 || !strings.Contains(stderr, "run `cotd certs ca --dir "+dir+"` first") {
			t.Errorf("%v without CA: code %d, stderr %q", args[0], code, stderr)
		}
	}

	code, stdout, stderr := runCerts(t, "ca", "--dir", dir, "--cn", "Team CA")
	if code != 0 {
		t.Fatalf("ca: %d %s", code, stderr)
	}
	if !strings.Contains(stdout, filepath.Join(dir, "ca.pem")) {
		t.Errorf("ca output %q", stdout)
	}
	ca, err := pki.LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if ca.Cert.Subject.CommonName != "Team CA" {
		t.Errorf("CA CN %q", ca.Cert.Subject.CommonName)
	}
	certsCheckPerm(t, filepath.Join(dir, "ca.key"), 0o600)

	// The CA is never overwritten.
	if code, _, stderr := runCerts(t, "ca", "--dir", dir); code != 1 || !strings.Contains(stderr, "already exists") {
		t.Errorf("second ca: %d %q", code, stderr)
	}

	if code, _, stderr := runCerts(t, "server", "--dir", dir, "--host", "tak.lan, 10.0.0.2"); code != 0 {
		t.Fatalf("server: %d %s", code, stderr)
	}
	srv, err := pki.Load(filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key"))
	if err != nil {
		t.Fatal(err)
	}
	if srv.Cert.CheckSignatureFrom(ca.Cert) != nil || srv.Cert.Subject.CommonName != "tak.lan" ||
		len(srv.Cert.DNSNames) != 1 || len(srv.Cert.IPAddresses) != 1 {
		t.Errorf("server cert: CN %q DNS %v IP %v", srv.Cert.Subject.CommonName, srv.Cert.DNSNames, srv.Cert.IPAddresses)
	}

	// A cluster node: one certificate for both ends of a route, under
	// nodes/ so that it cannot take the place of a user's or the server's.
	code, stdout, stderr = runCerts(t, "node", "--dir", dir, "--name", "server", "--host", "n1.lan, 10.0.0.7")
	if code != 0 {
		t.Fatalf("node: %d %s", code, stderr)
	}
	nodeCert, nodeKey := pki.Paths(filepath.Join(dir, "nodes"), "server")
	if stdout != "wrote "+nodeCert+"\nwrote "+nodeKey+"\n" {
		t.Errorf("node output %q", stdout)
	}
	node, err := pki.Load(nodeCert, nodeKey)
	if err != nil {
		t.Fatal(err)
	}
	if node.Cert.CheckSignatureFrom(ca.Cert) != nil || node.Cert.Subject.CommonName != "server" || !nodeUsages(node.Cert) ||
		len(node.Cert.DNSNames) != 1 || node.Cert.DNSNames[0] != "n1.lan" || len(node.Cert.IPAddresses) != 1 || node.Cert.IPAddresses[0].String() != "10.0.0.7" {
		t.Errorf("node cert: CN %q EKU %v DNS %v IP %v", node.Cert.Subject.CommonName, node.Cert.ExtKeyUsage, node.Cert.DNSNames, node.Cert.IPAddresses)
	}
	certsCheckPerm(t, nodeKey, 0o600)
	if after, err := pki.Load(filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key")); err != nil || !after.Cert.Equal(srv.Cert) {
		t.Errorf("a node named server replaced the server certificate (%v)", err)
	}

	// Client without a package.
	if code, _, stderr := runCerts(t, "client", "--dir", dir, "--name", "alice", "--days", "30"); code != 0 {
		t.Fatalf("client: %d %s", code, stderr)
	}
	alice, err := pki.Load(filepath.Join(dir, "alice.pem"), filepath.Join(dir, "alice.key"))
	if err != nil {
		t.Fatal(err)
	}
	if alice.Cert.Subject.CommonName != "alice" || alice.Cert.NotAfter.Sub(alice.Cert.NotBefore) != 30*24*time.Hour {
		t.Errorf("alice: CN %q validity %v", alice.Cert.Subject.CommonName, alice.Cert.NotAfter.Sub(alice.Cert.NotBefore))
	}
	p12, err := os.ReadFile(filepath.Join(dir, "alice.p12"))
	if err != nil {
		t.Fatal(err)
	}
	if _, cert, cas, err := pkcs12.DecodeChain(p12, "atakatak"); err != nil || !cert.Equal(alice.Cert) || len(cas) != 1 {
		t.Errorf("alice.p12: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "alice.zip")); err == nil {
		t.Error("alice.zip written without --package")
	}

	// Client with a data package, RSA, another password.
	code, stdout, stderr = runCerts(t, "client", "--dir", dir, "--name", "bob", "--rsa", "--password", "pw",
		"--package", "--server-host", "tak.lan", "--server-port", "8090")
	if code != 0 {
		t.Fatalf("client --package: %d %s", code, stderr)
	}
	for _, f := range []string{"bob.pem", "bob.key", "bob.p12", "bob.zip"} {
		if !strings.Contains(stdout, filepath.Join(dir, f)) {
			t.Errorf("output lacks %s: %q", f, stdout)
		}
	}
	certsCheckPerm(t, filepath.Join(dir, "bob.zip"), 0o600)
	certsCheckPerm(t, filepath.Join(dir, "bob.p12"), 0o600)
	bob, err := pki.Load(filepath.Join(dir, "bob.pem"), filepath.Join(dir, "bob.key"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := bob.Key.(*rsa.PrivateKey); !ok {
		t.Errorf("--rsa gave %T", bob.Key)
	}
	// Existing keys are not replaced without --force; with it, they are.
	for _, c := range []struct {
		args []string
		key  string
	}{
		{[]string{"server", "--dir", dir, "--host", "tak.lan"}, "server.key"},
		{[]string{"client", "--dir", dir, "--name", "alice"}, "alice.key"},
		{[]string{"node", "--dir", dir, "--name", "server", "--host", "n1.lan"}, filepath.Join("nodes", "server.key")},
	} {
		keyPath := filepath.Join(dir, c.key)
		before, err := os.ReadFile(keyPath)
		if err != nil {
			t.Fatal(err)
		}
		code, _, stderr := runCerts(t, c.args...)
		if code != 1 || !strings.Contains(stderr, "already exists") || !strings.Contains(stderr, "--force") {
			t.Errorf("%v over existing files: code %d, stderr %q", c.args, code, stderr)
		}
		if after, _ := os.ReadFile(keyPath); !bytes.Equal(after, before) {
			t.Errorf("%v without --force replaced %s", c.args, c.key)
		}
		if code, _, stderr := runCerts(t, append(c.args, "--force")...); code != 0 {
			t.Errorf("%v --force: code %d, stderr %q", c.args, code, stderr)
		}
		if after, _ := os.ReadFile(keyPath); bytes.Equal(after, before) {
			t.Errorf("%v --force did not replace %s", c.args, c.key)
		}
	}

	zip, err := os.ReadFile(filepath.Join(dir, "bob.zip"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(zip, []byte("MANIFEST/manifest.xml")) {
		t.Error("bob.zip has no manifest")
	}
}

func TestCertsUsage(t *testing.T) {
	dir := t.TempDir()
	tests := [][]string{
		{},
		{"bogus"},
		{"ca"},
		{"ca", "--dir", dir, "--host", "x"}, // --host is not a ca flag
		{"ca", "--dir", dir, "extra"},
		{"ca", "--dir", dir, "--days", "-1"},
		{"server", "--dir", dir},
		{"server", "--dir", dir, "--host", " , "},
		{"client", "--dir", dir},
		{"client", "--dir", dir, "--name", "a", "--package"},
		{"client", "--dir", dir, "--name", "a", "--server-host", "h"},
		{"client", "--dir", dir, "--name", "a", "--package", "--server-host", "h", "--server-port", "70000"},
		{"client", "--dir", dir, "--name", "a", "--nope"},
		{"node", "--dir", dir, "--name", "n1"},
		{"node", "--dir", dir, "--host", "n1.lan"},
		{"node", "--dir", dir, "--name", "../n1", "--host", "n1.lan"},
		{"node", "--dir", dir, "--name", "n1", "--host", "n1.lan", "--package"},
	}
	for _, args := range tests {
		code, stdout, stderr := runCerts(t, args...)
		if code != 2 {
			t.Errorf("%v: code %d, want 2", args, code)
		}
		if stdout != "" || stderr == "" {
			t.Errorf("%v: stdout %q stderr %q", args, stdout, stderr)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("usage errors wrote files: %v", entries)
	}

	code, stdout, _ := runCerts(t, "help")
	if code != 0 || !strings.Contains(stdout, "cotd certs client") || !strings.Contains(stdout, "cotd certs node") {
		t.Errorf("help: %d %q", code, stdout)
	}
}

func certsCheckPerm(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s mode %o, want %o", filepath.Base(path), got, want)
	}
}
