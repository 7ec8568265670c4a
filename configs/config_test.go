package configs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultsMatchDocumentedValues(t *testing.T) {
	c := Default()
	checks := []struct {
		name      string
		got, want any
	}{
		{"tcp.addr", c.TCP.Addr, "0.0.0.0:8087"},
		{"tls.addr", c.TLS.Addr, "0.0.0.0:8089"},
		{"tls.handshake_timeout", c.TLS.HandshakeTimeout.Duration, 10 * time.Second},
		{"limits.idle_timeout", c.Limits.IdleTimeout.Duration, 90 * time.Second},
		{"limits.max_frame_bytes", c.Limits.MaxFrameBytes, 1 << 20},
		{"limits.write_timeout", c.Limits.WriteTimeout.Duration, 60 * time.Second},
		{"broker.shards", c.Broker.Shards, 0},
		{"sa.replay", c.SA.Replay, true},
		{"admin.addr", c.Admin.Addr, "127.0.0.1:8088"},
		{"log.level", c.Log.Level, "info"},
		{"log.format", c.Log.Format, "auto"},
		{"server.advertise_host", c.Server.AdvertiseHost, ""},
		{"server.procs", c.Server.Procs, 0},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s = %v, want %v", ck.name, ck.got, ck.want)
		}
	}
	if !c.TLSEnabled() || !c.TLSDev() {
		t.Error("by default TLS runs on generated development certificates")
	}
}

func TestPartialFileKeepsOtherDefaults(t *testing.T) {
	c, err := Parse([]byte("[tcp]\naddr = \"127.0.0.1:0\"\n[limits]\nidle_timeout = \"2m\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.TCP.Addr != "127.0.0.1:0" || c.Limits.IdleTimeout.Duration != 2*time.Minute {
		t.Errorf("overrides not applied: %+v", c)
	}
	if c.Limits.WriteTimeout.Duration != 60*time.Second || c.Limits.MaxFrameBytes != 1<<20 {
		t.Errorf("defaults lost: %+v", c.Limits)
	}
}

func TestEveryProblemReportedAtOnce(t *testing.T) {
	in := `
[tcp]
addr = "nonsense"
adr = "typo"
[limits]
idle_timeout = "90"
[log]
level = "loud"
format = "xml"
[bogus]
x = 1
`
	_, err := Parse([]byte(in))
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("want ErrInvalid, got %v", err)
	}
	msg := err.Error()
	for _, want := range []string{`"tcp.adr"`, `"bogus.x"`, "tcp.addr", "limits.idle_timeout", "log.level", "log.format"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not mention %s:\n%s", want, msg)
		}
	}
}

// Every bad duration is its own message, named by its key: one does not
// stop the decoder before the others.
func TestEveryBadDurationReported(t *testing.T) {
	in := "[tls]\nhandshake_timeout = \"10\"\n[limits]\nidle_timeout = \"soon\"\nwrite_timeout = \"60\"\ndrain_timeout = \"5 s\"\n"
	_, err := Parse([]byte(in))
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("want ErrInvalid, got %v", err)
	}
	msg := err.Error()
	for _, key := range []string{"tls.handshake_timeout", "limits.idle_timeout", "limits.write_timeout", "limits.drain_timeout"} {
		if strings.Count(msg, key+":") != 1 {
			t.Errorf("want one message for %s:\n%s", key, msg)
		}
	}
}

// TestBadDurationInOptionalSection: a duration in a section that is a pointer
// ([cluster]) is checked like any other, not read as 0 (its default).
func TestBadDurationInOptionalSection(t *testing.T) {
	_, err := Parse([]byte("[cluster]\nnode = \"a-1\"\nlisten = \"0.0.0.0:7422\"\ndead_after = \"15\"\n"))
	if !errors.Is(err, ErrInvalid) || strings.Count(err.Error(), "cluster.dead_after:") != 1 {
		t.Fatalf("want one message for cluster.dead_after, got %v", err)
	}
}

// TestBadDurationReportedOnce: a duration without a unit is one problem, not
// also "must be positive", in the sections that check their own durations.
func TestBadDurationReportedOnce(t *testing.T) {
	_, err := Parse([]byte("[enroll]\nvalidity = \"15\"\n[store]\ndrain_timeout = \"5\"\n[web]\nhistory = \"60\"\n"))
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("want ErrInvalid, got %v", err)
	}
	for _, key := range []string{"enroll.validity", "store.drain_timeout", "web.history"} {
		if strings.Count(err.Error(), key) != 1 {
			t.Errorf("want one message for %s:\n%v", key, err)
		}
	}
}

func TestAdvertiseHostChecked(t *testing.T) {
	for _, h := range []string{"tak.example.org", "10.0.0.5"} {
		if _, err := Parse([]byte("[server]\nadvertise_host = \"" + h + "\"\n")); err != nil {
			t.Errorf("%s refused: %v", h, err)
		}
	}
	for _, h := range []string{"10.0.0.5:8089", "fe80::1", "http://x", "a b"} {
		_, err := Parse([]byte("[server]\nadvertise_host = \"" + h + "\"\n"))
		if err == nil || !strings.Contains(err.Error(), "server.advertise_host") {
			t.Errorf("%s: %v", h, err)
		}
	}
}

func TestProcsChecked(t *testing.T) {
	if c, err := Parse([]byte("[server]\nprocs = 6\n")); err != nil || c.Server.Procs != 6 {
		t.Errorf("procs = 6: %v", err)
	}
	for _, n := range []string{"-1", "5000"} {
		_, err := Parse([]byte("[server]\nprocs = " + n + "\n"))
		if err == nil || !strings.Contains(err.Error(), "server.procs") {
			t.Errorf("procs = %s: %v", n, err)
		}
	}
}

func TestDurationsNeedUnits(t *testing.T) {
	for _, in := range []string{`idle_timeout = "90"`, `idle_timeout = "soon"`, `idle_timeout = "-5s"`} {
		_, err := Parse([]byte("[limits]\n" + in + "\n"))
		if err == nil {
			t.Errorf("%s accepted", in)
		}
	}
}

func TestLimitsChecked(t *testing.T) {
	cases := map[string]string{
		"soft above hard": "[limits]\noutbound_soft_bytes = 100\noutbound_hard_bytes = 50\n",
		"tiny frame":      "[limits]\nmax_frame_bytes = 10\n",
		"no listener":     "[tcp]\naddr = \"\"\n[tls]\naddr = \"\"\n",
		"half tls":        "[tls]\ncert = \"/x.pem\"\n",
		"negative shards": "[broker]\nshards = -1\n",
	}
	for name, in := range cases {
		if _, err := Parse([]byte(in)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.toml")
	if err := os.WriteFile(p, []byte("[log]\nlevel = \"x\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(p)
	if err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("error should name %s: %v", p, err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.toml")); !errors.Is(err, ErrInvalid) {
		t.Fatalf("missing file: %v", err)
	}
}

func TestWebDefaultsAndChecks(t *testing.T) {
	c := Default()
	if !c.Web.Enabled || c.Web.History.Duration != time.Hour || c.Web.ViewerQueue != 256 ||
		c.Web.ChatCallsign != "cotd" || !strings.Contains(c.Web.Tiles, "openstreetmap") {
		t.Errorf("web defaults: %+v", c.Web)
	}
	if _, err := Parse([]byte("[web]\ntiles = \"\"\n")); err != nil {
		t.Errorf("tiles = \"\" (plain grid) refused: %v", err)
	}
	_, err := Parse([]byte("[web]\nhistory = \"10s\"\nviewer_queue = 1\nchat_callsign = \" \"\ntiles = \"http://x/a.png\"\n"))
	for _, want := range []string{"web.history", "web.viewer_queue", "web.chat_callsign", "web.tiles"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %s", err, want)
		}
	}
	if _, err := Parse([]byte("[web]\nenabled = false\nviewer_queue = 1\n")); err != nil {
		t.Errorf("a disabled console's settings are checked: %v", err)
	}
}

func TestMartiDefaultsAndChecks(t *testing.T) {
	c := Default()
	m := c.Marti
	if m.HTTPSAddr != "0.0.0.0:8443" || m.HTTPAddr != "" || m.ExternalURL != "" || m.MaxUploadBytes != 400<<20 ||
		m.FilesDir != "cotd-data/files" || m.ReadHeaderTimeout.Duration != 10*time.Second ||
		m.BodyTimeout.Duration != 30*time.Second || m.IdleTimeout.Duration != 2*time.Minute || m.MaxConnections != 4096 {
		t.Errorf("marti defaults %+v", m)
	}
	if !c.MartiHTTPSEnabled() {
		t.Error("8443 is served by default, on the development certificates")
	}
	c.TLS.DevCerts = false
	if c.MartiHTTPSEnabled() {
		t.Error("8443 without any certificate")
	}
	_, err := Parse([]byte(`[marti]
https_addr = "x"
http_addr = "127.0.0.1:8443"
external_url = "tak.example"
max_upload_bytes = 0
files_dir = ""
body_timeout = "0s"
max_connections = 0
`))
	for _, want := range []string{"marti.https_addr", "marti.external_url", "marti.max_upload_bytes", "marti.files_dir", "marti.body_timeout", "marti.max_connections"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("no complaint about %s in %v", want, err)
		}
	}
	if _, err := Parse([]byte("[marti]\nhttps_addr = \"0.0.0.0:8443\"\nhttp_addr = \"0.0.0.0:8443\"\n")); err == nil || !strings.Contains(err.Error(), "share port") {
		t.Errorf("two marti listeners on one port: %v", err)
	}
}

func TestClusterSection(t *testing.T) {
	c, err := Parse([]byte(""))
	if err != nil {
		t.Fatal(err)
	}
	if c.Cluster != nil {
		t.Fatalf("no [cluster] section, but Cluster = %+v: a single node must run no NATS", c.Cluster)
	}
	c, err = Parse([]byte("[cluster]\nnode = \"a-1\"\nlisten = \"0.0.0.0:7422\"\nroutes = [\"nats-route://b:7422\"]\ndead_after = \"5s\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Cluster == nil || c.Cluster.Node != "a-1" || c.Cluster.DeadAfter.Duration != 5*time.Second || len(c.Cluster.Routes) != 1 {
		t.Fatalf("cluster = %+v", c.Cluster)
	}
	_, err = Parse([]byte("[cluster]\nnode = \"a.b\"\nnats_url = \"nats://x:4222\"\nlisten = \"0.0.0.0:7422\"\nroutes = [\"b:7422\"]\n" +
		"cert = \"c.pem\"\nuser = \"u\"\ndead_after = \"-1s\"\nqueue = -1\n"))
	if err == nil {
		t.Fatal("a bad [cluster] section was accepted")
	}
	for _, want := range []string{"cluster.node", "cluster.nats_url excludes", "nats-route://", "cluster.cert and cluster.key",
		"cluster.user and cluster.password", "cluster.dead_after", "cluster.queue"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q: %v", want, err)
		}
	}
}
