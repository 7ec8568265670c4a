package bench

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cotd/configs"
)

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o644) }

// The config written for a spawned cotd is one cotd accepts, with only the keys set.
func TestSpawnConfigValidates(t *testing.T) {
	pki, err := NewPKI("cotbench")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files, err := pki.WriteFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	users := filepath.Join(dir, "users.toml")
	if err := os.WriteFile(users, GroupUsers(4, 2), 0o600); err != nil {
		t.Fatal(err)
	}
	st := DefaultScenario().Spawn
	st.HandshakeTimeout, st.IdleTimeout = dur(3*time.Second), dur(time.Minute)
	st.OutboundSoftBytes, st.OutboundHardBytes = 1<<20, 4<<20
	data := spawnConfig("127.0.0.1:1001", "127.0.0.1:1002", "127.0.0.1:1003", files, users, st)
	cfg, err := configs.Parse(data)
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	if cfg.TCP.Addr != "127.0.0.1:1001" || cfg.TLS.Addr != "127.0.0.1:1002" || cfg.Admin.Addr != "127.0.0.1:1003" ||
		cfg.TLS.Cert != files.ServerCert || cfg.TLS.CA != files.CA || cfg.TLS.HandshakeTimeout.Duration != 3*time.Second ||
		cfg.Limits.IdleTimeout.Duration != time.Minute || cfg.Limits.OutboundHardBytes != 4<<20 || cfg.Limits.WriteTimeout != configs.Default().Limits.WriteTimeout ||
		cfg.Auth.UsersFile != users {
		t.Errorf("config %+v", cfg)
	}
	tcpOnly := spawnConfig("127.0.0.1:1001", "", "127.0.0.1:1003", PKIFiles{}, "", DefaultScenario().Spawn)
	if cfg, err := configs.Parse(tcpOnly); err != nil || cfg.TLSEnabled() || cfg.Auth.UsersFile != "" {
		t.Errorf("tcp-only config: %v\n%s", err, tcpOnly)
	}
}

func TestPKIChains(t *testing.T) {
	p, err := NewPKI("B7")
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(p.CA)
	if _, err := p.Server.TLS.Leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "localhost"}); err != nil {
		t.Errorf("server: %v", err)
	}
	if _, err := p.Client.TLS.Leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client: %v", err)
	}
	if p.Client.TLS.Leaf.Subject.CommonName != "B7" {
		t.Errorf("client CN %q", p.Client.TLS.Leaf.Subject.CommonName)
	}
	if err := verifyChain(roots)([][]byte{p.Server.TLS.Certificate[0]}, nil); err != nil {
		t.Errorf("verifyChain: %v", err)
	}
	other, _ := NewPKI("x")
	if err := verifyChain(roots)([][]byte{other.Server.TLS.Certificate[0]}, nil); err == nil {
		t.Error("verifyChain accepted a foreign server")
	}
	files, err := p.WriteFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadTLSMaterial(files.ClientCert, files.ClientKey, files.CA, ""); err != nil {
		t.Errorf("LoadTLSMaterial: %v", err)
	}
	if fi, err := os.Stat(files.ClientKey); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("client key mode %v %v", fi.Mode(), err)
	}
}

func TestPromTextAndDelta(t *testing.T) {
	before, err := parsePromText(strings.NewReader("# HELP x\ncotd_deliveries_total 10\ncotd_connections_open{listener=\"tcp\"} 3\n"))
	if err != nil {
		t.Fatal(err)
	}
	after, err := parsePromText(strings.NewReader(`cotd_deliveries_total 110
cotd_connections_open{listener="tcp"} 0
cotd_closes_total{reason="idle"} 4 1700000000
cotd_delay_seconds_bucket{le="0.1"} 7
cotd_delay_seconds_count 7
garbage line
`))
	if err != nil {
		t.Fatal(err)
	}
	d := metricsDelta(before, after)
	want := map[string]float64{"cotd_deliveries_total": 100, `cotd_connections_open{listener="tcp"}`: 0, `cotd_closes_total{reason="idle"}`: 4, "cotd_delay_seconds_count": 7}
	if len(d) != len(want) {
		t.Errorf("delta %v, want %v", d, want)
	}
	for k, v := range want {
		if d[k] != v {
			t.Errorf("%s = %v, want %v", k, d[k], v)
		}
	}
}

func TestLastLogError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cotd.log")
	log := `{"level":"info","message":"cotd starting"}
{"level":"error","error":"engine: the TLS listener is not built yet","message":"cannot start"}
`
	if err := writeFile(path, log); err != nil {
		t.Fatal(err)
	}
	if got := lastLogError(path); got != "cannot start: engine: the TLS listener is not built yet" {
		t.Errorf("got %q", got)
	}
	if err := writeFile(path, "panic: boom\n"); err != nil {
		t.Fatal(err)
	}
	if got := lastLogError(path); got != "panic: boom" {
		t.Errorf("got %q", got)
	}
}

func TestProcStatParsing(t *testing.T) {
	stat := []byte("1234 (cot d (x)) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 100 0 0")
	if n, err := cpuTicks(stat); err != nil || n != 300 {
		t.Errorf("cpuTicks = %d, %v; want 300", n, err)
	}
	status := []byte("Name:\tcotd\nVmRSS:\t   20480 kB\nThreads:\t9\n")
	if statusField(status, "VmRSS:") != 20480 || statusField(status, "Threads:") != 9 || statusField(status, "Nope:") != 0 {
		t.Error("statusField")
	}
	p := newProcSampler(os.Getpid())
	start := time.Now()
	if _, err := p.sample(start, start); err != nil {
		t.Fatal(err)
	}
	s, err := p.sample(start.Add(time.Second), start)
	if err != nil || s.RSS <= 0 || s.FDs <= 0 || s.Threads <= 0 || s.T != 1 {
		t.Errorf("self sample %+v %v", s, err)
	}
}

func TestFindRepo(t *testing.T) {
	root := FindRepo()
	if root == "" {
		t.Fatal("the tests run inside the repository")
	}
	if _, err := os.Stat(filepath.Join(root, "cmd", "cotd")); err != nil {
		t.Errorf("root %s: %v", root, err)
	}
}

// spawn.store picks the spawned cotd's persistence: a fresh SQLite file in the run's
// directory by default, PostgreSQL at spawn.store_url, or none.
func TestSpawnStoreConfig(t *testing.T) {
	dir := t.TempDir()
	base := spawnConfig("127.0.0.1:1001", "", "127.0.0.1:1003", PKIFiles{}, "", DefaultScenario().Spawn)
	for _, tc := range []struct {
		store, url string
		check      func(configs.Store) bool
	}{
		{"sqlite", "", func(s configs.Store) bool {
			return s.Enabled && s.URL == "" && s.Path == filepath.Join(dir, "store", "cotd.db")
		}},
		{"postgres", "postgres://u:p@127.0.0.1:5432/db", func(s configs.Store) bool {
			return s.Enabled && s.URL == "postgres://u:p@127.0.0.1:5432/db"
		}},
		{"off", "", func(s configs.Store) bool { return !s.Enabled }},
	} {
		sc := DefaultScenario()
		sc.Spawn.Store, sc.Spawn.StoreURL = tc.store, tc.url
		if err := sc.Validate(); err != nil && strings.Contains(err.Error(), "spawn.store") {
			t.Errorf("spawn.store = %q: %v", tc.store, err)
		}
		data := append(append([]byte{}, base...), storeConfig(sc.Spawn, dir)...)
		cfg, err := configs.Parse(data)
		if err != nil || !tc.check(cfg.Store) {
			t.Errorf("spawn.store = %q: %v %+v\n%s", tc.store, err, cfg.Store, data)
		}
	}
	for _, bad := range []Spawn{{LogLevel: "info", Store: "mysql"}, {LogLevel: "info", Store: "postgres"},
		{LogLevel: "info", Store: "off", StoreURL: "postgres://x"}} {
		sc := DefaultScenario()
		sc.Spawn = bad
		if err := sc.Validate(); err == nil || !strings.Contains(err.Error(), "spawn.store") {
			t.Errorf("spawn %+v: %v, want a spawn.store problem", bad, err)
		}
	}
}

// [spawn.cotd] and --set reach the spawned cotd's config: any cotd key, merged into the
// tables cotbench writes, checked by cotd's own decoding; the keys cotbench owns cannot
// be set.
func TestSpawnConfigOverlay(t *testing.T) {
	sc, err := ParseScenario([]byte(`clients = 2
duration = "10s"
[spawn]
outbound_soft_bytes = 1048576
[spawn.cotd.output]
coalesce_delay = "3ms"
[spawn.cotd.limits]
idle_timeout = "7m"
`), "overlay", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.Apply(Overrides{Set: []string{"output.coalesce_bytes=8192", "output.coalesce_delay=1ms"}}); err != nil {
		t.Fatal(err)
	}
	base := spawnConfig("127.0.0.1:1001", "", "127.0.0.1:1003", PKIFiles{}, "", sc.Spawn)
	data, err := overlayConfig(base, sc.Spawn.Cotd)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := configs.Parse(data)
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	// --set wins over the scenario; the scenario's other keys and cotbench's own stay.
	if cfg.Output.CoalesceDelay.Duration != time.Millisecond || cfg.Output.CoalesceBytes != 8192 ||
		cfg.Limits.IdleTimeout.Duration != 7*time.Minute || cfg.Limits.OutboundSoftBytes != 1<<20 ||
		cfg.TCP.Addr != "127.0.0.1:1001" || cfg.Admin.Addr != "127.0.0.1:1003" {
		t.Errorf("config %+v\n%s", cfg, data)
	}
	want := []string{`limits.idle_timeout = "7m"`, `output.coalesce_bytes = 8192`, `output.coalesce_delay = "1ms"`}
	if got := flatten(sc.Spawn.Cotd); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("settings %q, want %q", got, want)
	}

	// A key cotd does not know is cotd's error, naming it, before cotd would start.
	bad, err := overlayConfig(base, map[string]any{"output": map[string]any{"coalesce_dealy": "1ms"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := configs.Parse(bad); err == nil || !strings.Contains(err.Error(), "coalesce_dealy") {
		t.Errorf("misspelt key: %v", err)
	}

	for _, arg := range []string{"tcp.addr=127.0.0.1:9", "tls=1", "admin.addr=x", "log.format=console"} {
		sc, err := ParseScenario([]byte("clients = 2\nduration = \"10s\"\n"), "x", "")
		if err != nil {
			t.Fatal(err)
		}
		if err := sc.Apply(Overrides{Set: []string{arg}}); err == nil {
			t.Errorf("--set %s accepted", arg)
		}
	}
}

func TestParseSetting(t *testing.T) {
	for _, tc := range []struct {
		arg  string
		key  string
		want any
	}{
		{"output.coalesce_delay=1ms", "output.coalesce_delay", "1ms"},
		{`output.coalesce_delay="0s"`, "output.coalesce_delay", "0s"},
		{"output.coalesce_bytes=16384", "output.coalesce_bytes", int64(16384)},
		{"sa.replay=false", "sa.replay", false},
		{"store.dsn=postgres://u@h/db?x=1", "store.dsn", "postgres://u@h/db?x=1"},
	} {
		key, val, err := ParseSetting(tc.arg)
		if err != nil || key != tc.key || val != tc.want {
			t.Errorf("%s: %q %#v %v; want %q %#v", tc.arg, key, val, err, tc.key, tc.want)
		}
	}
	for _, arg := range []string{"nokey", "=1", "a..b=1"} {
		if _, _, err := ParseSetting(arg); err == nil {
			t.Errorf("%q accepted", arg)
		}
	}
}
