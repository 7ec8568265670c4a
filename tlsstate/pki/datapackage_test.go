package pki

import (
	"archive/zip"
	"bytes"
	"encoding/xml"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	pkcs12 "software.sslmate.com/src/go-pkcs12"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// What a TAK client reads, parsed independently of the encoder's types.
type readManifest struct {
	XMLName xml.Name `xml:"MissionPackageManifest"`
	Version string   `xml:"version,attr"`
	Params  []struct {
		Name  string `xml:"name,attr"`
		Value string `xml:"value,attr"`
	} `xml:"Configuration>Parameter"`
	Contents []struct {
		ZipEntry string `xml:"zipEntry,attr"`
		Ignore   string `xml:"ignore,attr"`
	} `xml:"Contents>Content"`
}

type readPrefs struct {
	Groups []struct {
		Name    string `xml:"name,attr"`
		Entries []struct {
			Key   string `xml:"key,attr"`
			Class string `xml:"class,attr"`
			Value string `xml:",chardata"`
		} `xml:"entry"`
	} `xml:"preference"`
}

// get returns group/key's value and class.
func (p readPrefs) get(group, key string) (value, class string, ok bool) {
	for _, g := range p.Groups {
		if g.Name != group {
			continue
		}
		for _, e := range g.Entries {
			if e.Key == key {
				return e.Value, e.Class, true
			}
		}
	}
	return "", "", false
}

func xmlDecode(r io.Reader, v any) error { return xml.NewDecoder(r).Decode(v) }

func makePackage(t *testing.T, spec DataPackageSpec) map[string][]byte {
	t.Helper()
	var buf bytes.Buffer
	if err := DataPackage(&buf, spec); err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if _, dup := files[f.Name]; dup {
			t.Errorf("duplicate entry %s", f.Name)
		}
		files[f.Name] = data
	}
	return files
}

func TestDataPackage(t *testing.T) {
	c := chainFor(t, KeyECDSAP256)
	client, err := ClientP12(c.client, c.ca, "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	trust, err := TruststoreP12(c.ca, "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	files := makePackage(t, DataPackageSpec{
		Name: "Team <Blue>", Host: "tak.example", Port: 8443, Description: "R&D stream",
		ClientP12: client, TruststoreP12: trust, Password: "s3cret", ClientName: "eud-alpha",
	})

	// The manifest lists every other entry, and every entry it lists exists.
	var m readManifest
	if err := xml.Unmarshal(files[manifestEntry], &m); err != nil {
		t.Fatalf("manifest: %v\n%s", err, files[manifestEntry])
	}
	if m.Version != "2" {
		t.Errorf("manifest version %q", m.Version)
	}
	params := map[string]string{}
	for _, p := range m.Params {
		params[p.Name] = p.Value
	}
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(params["uid"]) {
		t.Errorf("uid %q is not a v4 UUID", params["uid"])
	}
	if params["name"] != "Team <Blue>" || params["onReceiveDelete"] != "true" {
		t.Errorf("configuration %v", params)
	}
	listed := map[string]bool{}
	for _, c := range m.Contents {
		if _, ok := files[c.ZipEntry]; !ok {
			t.Errorf("manifest lists missing entry %q", c.ZipEntry)
		}
		if c.Ignore != "false" {
			t.Errorf("%s ignore=%q", c.ZipEntry, c.Ignore)
		}
		listed[c.ZipEntry] = true
	}
	for name := range files {
		if name != manifestEntry && !listed[name] {
			t.Errorf("entry %q not in the manifest", name)
		}
	}
	for _, want := range []string{"config.pref", "truststore.p12", "eud-alpha.p12"} {
		if !listed[want] {
			t.Errorf("no %s", want)
		}
	}

	// ATAK's ImportPrefSort sniffs for these two strings.
	pref := files[prefEntry]
	if !bytes.Contains(pref, []byte("<preferences")) || !bytes.Contains(pref, []byte("<entry key")) {
		t.Errorf("pref would not be recognised:\n%s", pref)
	}
	var p readPrefs
	if err := xml.Unmarshal(pref, &p); err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct{ group, key, value, class string }{
		{"cot_streams", "count", "1", "class java.lang.Integer"},
		{"cot_streams", "description0", "R&D stream", "class java.lang.String"},
		{"cot_streams", "enabled0", "true", "class java.lang.Boolean"},
		{"cot_streams", "connectString0", "tak.example:8443:ssl", "class java.lang.String"},
		{"com.atakmap.app_preferences", "caLocation", "cert/truststore.p12", "class java.lang.String"},
		{"com.atakmap.app_preferences", "caPassword", "s3cret", "class java.lang.String"},
		{"com.atakmap.app_preferences", "certificateLocation", "cert/eud-alpha.p12", "class java.lang.String"},
		{"com.atakmap.app_preferences", "clientPassword", "s3cret", "class java.lang.String"},
	} {
		v, class, ok := p.get(w.group, w.key)
		if !ok || v != w.value || class != w.class {
			t.Errorf("%s/%s = %q (%s), want %q (%s)", w.group, w.key, v, class, w.value, w.class)
		}
	}

	// The .p12 files inside open with the password in the pref.
	if _, _, cas, err := pkcs12.DecodeChain(files["eud-alpha.p12"], "s3cret"); err != nil || len(cas) != 1 {
		t.Errorf("client .p12 in package: %v", err)
	}
	if certs, err := pkcs12.DecodeTrustStore(files[truststoreEntry], "s3cret"); err != nil || len(certs) != 1 {
		t.Errorf("truststore in package: %v", err)
	}
}

func TestDataPackageDefaults(t *testing.T) {
	files := makePackage(t, DataPackageSpec{Host: "192.168.1.20", ClientP12: []byte{1}, TruststoreP12: []byte{2}})
	var p readPrefs
	if err := xml.Unmarshal(files[prefEntry], &p); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{
		"connectString0": "192.168.1.20:8089:ssl",
		"description0":   "client@192.168.1.20",
	} {
		if v, _, _ := p.get("cot_streams", key); v != want {
			t.Errorf("%s = %q, want %q", key, v, want)
		}
	}
	for key, want := range map[string]string{
		"certificateLocation": "cert/client.p12",
		"caPassword":          "atakatak",
		"clientPassword":      "atakatak",
	} {
		if v, _, _ := p.get("com.atakmap.app_preferences", key); v != want {
			t.Errorf("%s = %q, want %q", key, v, want)
		}
	}
	if _, ok := files["client.p12"]; !ok {
		t.Error("no client.p12")
	}
}

func TestDataPackageErrors(t *testing.T) {
	ok := DataPackageSpec{Host: "tak.example", ClientP12: []byte{1}, TruststoreP12: []byte{2}}
	tests := map[string]func(*DataPackageSpec){
		"no host":        func(s *DataPackageSpec) { s.Host = " " },
		"IPv6 host":      func(s *DataPackageSpec) { s.Host = "fd00::1" },
		"host with port": func(s *DataPackageSpec) { s.Host = "tak.example:8089" },
		"port":           func(s *DataPackageSpec) { s.Port = 70000 },
		"no client":      func(s *DataPackageSpec) { s.ClientP12 = nil },
		"no truststore":  func(s *DataPackageSpec) { s.TruststoreP12 = nil },
		"client path":    func(s *DataPackageSpec) { s.ClientName = "a/b" },
		"client name":    func(s *DataPackageSpec) { s.ClientName = "truststore" },
	}
	for name, mutate := range tests {
		spec := ok
		mutate(&spec)
		if err := DataPackage(io.Discard, spec); !errors.Is(err, ErrPackage) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestPackageGolden pins the XML byte for byte; run with -update after an
// intended change and review the diff.
func TestPackageGolden(t *testing.T) {
	spec, err := DataPackageSpec{
		Host: "tak.example", Port: 8089, Description: "cotd tak.example",
		ClientP12: []byte{1}, TruststoreP12: []byte{2}, ClientName: "eud-alpha",
	}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	pref, err := prefXML(spec, "eud-alpha.p12")
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := manifestXML("9d2f1c3a-5b7e-4c1d-8a2b-3c4d5e6f7a8b", spec.Name,
		[]string{prefEntry, truststoreEntry, "eud-alpha.p12"})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "config.pref.golden", pref)
	golden(t, "manifest.xml.golden", manifest)

	// And the zip is reproducible given the uid and time.
	var a, b bytes.Buffer
	when := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := writeDataPackage(&a, spec, "u", when); err != nil {
		t.Fatal(err)
	}
	if err := writeDataPackage(&b, spec, "u", when); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("zip output not deterministic")
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n got:\n%s\nwant:\n%s", name, got, want)
	}
	if strings.Contains(string(got), "\r") {
		t.Errorf("%s has CR", name)
	}
}
