package pki

import (
	"archive/zip"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestEnsureDev(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")
	hosts := []string{"tak.lan", "192.168.7.3", "127.0.0.1"}
	now := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)

	first, created, err := ensureDev(dir, hosts, KeyECDSAP256, "", now)
	if err != nil {
		t.Fatal(err)
	}
	if !created {
		t.Fatal("first call did not create")
	}
	if first.CACert != filepath.Join(dir, "ca.pem") || first.ServerCert != filepath.Join(dir, "server.pem") ||
		first.ServerKey != filepath.Join(dir, "server.key") || first.FirstClientPackage != filepath.Join(dir, "cotd-user-1.zip") {
		t.Errorf("paths: %+v", first)
	}
	if first.CA.Cert.Subject.CommonName != DevCAName {
		t.Errorf("CA CN %q", first.CA.Cert.Subject.CommonName)
	}
	if !slices.Equal(first.Server.Cert.DNSNames, []string{"tak.lan"}) || len(first.Server.Cert.IPAddresses) != 2 {
		t.Errorf("server SANs %v %v", first.Server.Cert.DNSNames, first.Server.Cert.IPAddresses)
	}

	checkMode(t, dir, 0o700)
	for name, mode := range map[string]os.FileMode{
		"ca.pem": 0o644, "ca.key": 0o600, "server.pem": 0o644, "server.key": 0o600,
		"cotd-user-1.pem": 0o644, "cotd-user-1.key": 0o600, "cotd-user-1.p12": 0o600, "cotd-user-1.zip": 0o600,
	} {
		checkMode(t, filepath.Join(dir, name), mode)
	}

	// The first client is issued by the CA and its package points at the LAN
	// address.
	client, err := Load(filepath.Join(dir, "cotd-user-1.pem"), filepath.Join(dir, "cotd-user-1.key"))
	if err != nil {
		t.Fatal(err)
	}
	if client.Cert.Subject.CommonName != DevClientName || client.Cert.CheckSignatureFrom(first.CA.Cert) != nil {
		t.Error("first client not issued by the dev CA")
	}
	if got := packagedConnect(t, first.FirstClientPackage); got != "192.168.7.3:8089:ssl" {
		t.Errorf("package connects to %q", got)
	}

	// Second call: same certificates, nothing created, files untouched.
	before, _ := os.ReadFile(first.ServerKey)
	second, created, err := ensureDev(dir, []string{"other.host"}, KeyRSA2048, "", now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if created {
		t.Error("second call created")
	}
	if second.CA.Cert.SerialNumber.Cmp(first.CA.Cert.SerialNumber) != 0 ||
		second.Server.Cert.SerialNumber.Cmp(first.Server.Cert.SerialNumber) != 0 {
		t.Error("second call loaded different certificates")
	}
	if second.FirstClientPackage != first.FirstClientPackage {
		t.Errorf("package %q", second.FirstClientPackage)
	}
	if after, _ := os.ReadFile(second.ServerKey); string(after) != string(before) {
		t.Error("server key rewritten")
	}

	// Once the package has been handed out and deleted, it is not reported.
	if err := os.Remove(first.FirstClientPackage); err != nil {
		t.Fatal(err)
	}
	third, _, err := EnsureDev(dir, nil, KeyECDSAP256)
	if err != nil || third.FirstClientPackage != "" {
		t.Errorf("after removing the package: %q, %v", third.FirstClientPackage, err)
	}
}

func TestEnsureDevIncomplete(t *testing.T) {
	dir := t.TempDir()
	if _, err := CreateCA(dir, "lonely", KeyECDSAP256, 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := EnsureDev(dir, []string{"localhost"}, KeyECDSAP256); !errors.Is(err, ErrIncompleteDev) {
		t.Fatalf("CA only: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "server.pem")); err == nil {
		t.Error("EnsureDev wrote into an incomplete directory")
	}

	// A server certificate from another CA is refused.
	other := newChain(t, KeyECDSAP256)
	if _, _, err := Save(dir, ServerName, other.server); err != nil {
		t.Fatal(err)
	}
	if _, _, err := EnsureDev(dir, nil, KeyECDSAP256); !errors.Is(err, ErrNotIssued) {
		t.Errorf("foreign server certificate: %v", err)
	}

	if _, _, err := EnsureDev("", nil, KeyECDSAP256); !errors.Is(err, ErrName) {
		t.Errorf("empty dir: %v", err)
	}
}

func TestDefaultHosts(t *testing.T) {
	hosts := DefaultHosts()
	for _, want := range []string{"localhost", "127.0.0.1", "::1"} {
		if !slices.Contains(hosts, want) {
			t.Errorf("%v lacks %s", hosts, want)
		}
	}
	if name, err := os.Hostname(); err == nil && !slices.Contains(hosts, name) {
		t.Errorf("%v lacks hostname %s", hosts, name)
	}
	seen := map[string]bool{}
	for _, h := range hosts {
		if seen[h] {
			t.Errorf("%s listed twice", h)
		}
		seen[h] = true
		if ip := net.ParseIP(h); ip != nil && ip.To4() == nil && ip.IsLinkLocalUnicast() {
			t.Errorf("IPv6 link-local %s listed", h)
		}
	}
}

func TestPackageHost(t *testing.T) {
	tests := []struct {
		hosts []string
		want  string
	}{
		{[]string{"box", "localhost", "127.0.0.1", "::1", "fd00::2", "10.1.2.3"}, "10.1.2.3"},
		{[]string{"localhost", "127.0.0.1", "box.lan"}, "box.lan"},
		{[]string{"localhost", "::1"}, "127.0.0.1"},
	}
	for _, tt := range tests {
		if got := packageHost(tt.hosts); got != tt.want {
			t.Errorf("packageHost(%v) = %q, want %q", tt.hosts, got, tt.want)
		}
	}
}

// packagedConnect returns connectString0 from the package at path.
func packagedConnect(t *testing.T, path string) string {
	t.Helper()
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	data, err := zr.Open(prefEntry)
	if err != nil {
		t.Fatal(err)
	}
	defer data.Close()
	var p readPrefs
	if err := xmlDecode(data, &p); err != nil {
		t.Fatal(err)
	}
	v, _, _ := p.get("cot_streams", "connectString0")
	return v
}

// With an advertised address, the first client's package points at it and
// the server certificate covers it, whatever the machine's addresses are.
func TestEnsureDevForAdvertisedHost(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")
	d, created, err := EnsureDevFor(dir, []string{"box", "10.1.2.3"}, KeyECDSAP256, "tak.example.test")
	if err != nil || !created {
		t.Fatalf("EnsureDevFor: %v (created %v)", err, created)
	}
	if got := packagedConnect(t, d.FirstClientPackage); got != "tak.example.test:8089:ssl" {
		t.Errorf("package connects to %q", got)
	}
	if err := d.Server.Cert.VerifyHostname("tak.example.test"); err != nil {
		t.Errorf("server certificate: %v", err)
	}
}
