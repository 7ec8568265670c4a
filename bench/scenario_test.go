package bench

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseScenarioAppliesDefaults(t *testing.T) {
	sc, err := ParseScenario([]byte("clients = 10\nduration = \"30s\"\n"), "mini", "")
	if err != nil {
		t.Fatal(err)
	}
	def := DefaultScenario()
	if sc.Name != "mini" || sc.Clients != 10 || sc.Duration.Duration != 30*time.Second {
		t.Errorf("got name %q clients %d duration %s", sc.Name, sc.Clients, sc.Duration.Duration)
	}
	if sc.SA != def.SA || sc.Ping != def.Ping || sc.Measure != def.Measure || sc.Pass != def.Pass || sc.Connect != def.Connect {
		t.Errorf("defaults not kept: %+v", sc)
	}
	if sc.NeedsTLS() || !sc.NeedsTCP() {
		t.Error("a default scenario is TCP only")
	}
}

// Every problem in a file is reported in one error, each naming its key.
func TestParseScenarioReportsEveryProblem(t *testing.T) {
	src := `
clients = "many"
duration = "20"
colour = "blue"

[connect]
mode = "sometimes"
ramp = 5
timeout = "-1s"

[transport]
tls_fraction = 1.5
cert = "client.pem"
client_certs = "some"
v1_fraction = -1
ca_key = "ca.key"

[groups]
count = 3

[sa]
interval = "1ms"
jitter = "lots"

[chat]
directed_interval = "2s"
shout = true

[weather]
rain = 1

[pass]
max_loss_pct = 101
max_server_p99_delay = "-1ms"
`
	_, err := ParseScenario([]byte(src), "bad", "")
	if !errors.Is(err, ErrScenario) {
		t.Fatalf("err = %v, want ErrScenario", err)
	}
	for _, want := range []string{
		`clients: want an integer, got a string`,
		`duration: duration "20" needs a unit`,
		`unknown key "colour"`,
		`connect.mode: want "ramp" or "all_at_once", got "sometimes"`,
		`connect.ramp: duration "5" needs a unit`,
		`connect.timeout must be positive`,
		`transport.tls_fraction must be between 0 and 1, got 1.5`,
		`transport.cert and transport.key go together`,
		`transport.client_certs "some" is not "shared" or "per_client"`,
		`transport.v1_fraction must be between 0 and 1`,
		`transport.ca_key needs transport.ca`,
		`groups.count needs every client on TLS with its own certificate`,
		`sa.interval must be at least 10ms`,
		`sa.jitter: want a number, got a string`,
		`unknown key "chat.shout"`,
		`unknown key "weather"`,
		`pass.max_loss_pct must be between 0 and 100`,
		`pass.max_server_p99_delay must not be negative`,
		`clients must be between 1 and 19000, got 0`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
	// Decoding errors come in file order.
	if i, j := strings.Index(err.Error(), "clients:"), strings.Index(err.Error(), "chat.shout"); i < 0 || j < 0 || i > j {
		t.Errorf("errors not in file order:\n%v", err)
	}
}

func TestParseScenarioSyntaxError(t *testing.T) {
	_, err := ParseScenario([]byte("clients = = 3\n"), "x", "")
	if !errors.Is(err, ErrScenario) || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("err = %v, want a syntax error with its line", err)
	}
}

func TestParseScenarioResolvesPaths(t *testing.T) {
	src := "clients = 2\nduration = \"10s\"\n[transport]\ntls_fraction = 1.0\ncert = \"c.pem\"\nkey = \"/abs/k.pem\"\n"
	sc, err := ParseScenario([]byte(src), "x", "/etc/bench")
	if err != nil {
		t.Fatal(err)
	}
	if sc.Transport.Cert != "/etc/bench/c.pem" || sc.Transport.Key != "/abs/k.pem" {
		t.Errorf("cert %q key %q", sc.Transport.Cert, sc.Transport.Key)
	}
	if !sc.NeedsTLS() || sc.NeedsTCP() {
		t.Error("tls_fraction 1: TLS only")
	}
}

func TestScenarioRejectsNonLoopbackTarget(t *testing.T) {
	_, err := ParseScenario([]byte("clients = 2\nduration = \"1s\"\n[target]\ntcp = \"10.0.0.1:8087\"\n"), "x", "")
	if err == nil || !strings.Contains(err.Error(), "not a loopback address") {
		t.Errorf("err = %v", err)
	}
	for _, ok := range []string{"127.0.0.1:8087", "[::1]:8087", "localhost:8087", "127.9.9.9:1"} {
		if err := CheckLoopback(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"example.com:8087", "0.0.0.0:8087", "127.0.0.1", "127.0.0.1:0", "[::]:1"} {
		if CheckLoopback(bad) == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// The shipped scenarios load, and the five the issue names are there.
func TestShippedScenariosLoad(t *testing.T) {
	files, err := filepath.Glob("../configs/bench/*.toml")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range files {
		sc, err := LoadScenario(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		base := strings.TrimSuffix(filepath.Base(f), ".toml")
		if sc.Name != base {
			t.Errorf("%s: name %q, want the file's name", f, sc.Name)
		}
		names[sc.Name] = true
	}
	for _, want := range []string{"smoke", "burst", "slowloris", "fanout", "soak"} {
		if !names[want] {
			t.Errorf("configs/bench/%s.toml missing", want)
		}
	}
	// make bench runs smoke against a spawned cotd over plain TCP; smoke-tls is the same
	// run with TLS clients.
	smoke, err1 := LoadScenario("../configs/bench/smoke.toml")
	smokeTLS, err2 := LoadScenario("../configs/bench/smoke-tls.toml")
	if err1 != nil || err2 != nil || smoke.NeedsTLS() || !smokeTLS.NeedsTLS() || smokeTLS.Transport.UTLSFraction == 0 {
		t.Error("smoke must be TCP only and smoke-tls must use TLS, with utls clients")
	}
}

func TestLoadScenarioMissingFile(t *testing.T) {
	_, err := LoadScenario(filepath.Join(t.TempDir(), "nope.toml"))
	if !errors.Is(err, ErrScenario) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("err = %v", err)
	}
}

func TestApplyOverrides(t *testing.T) {
	sc := testScenario(t, func(sc *Scenario) {
		sc.Duration = dur(time.Minute)
		sc.Connect.Ramp = dur(20 * time.Second)
		sc.Reconnect = Reconnect{Fraction: 0.1, Times: 3, Every: dur(15 * time.Second), Offline: dur(time.Second)}
		sc.Transport.TLSFraction = 0.5
		sc.Target = Target{TCP: "127.0.0.1:1", TLS: "127.0.0.1:2"}
	})
	if err := sc.Apply(Overrides{Duration: 4 * time.Second, Clients: 20, Target: "127.0.0.1:9"}); err != nil {
		t.Fatal(err)
	}
	if sc.Duration.Duration != 4*time.Second || sc.Clients != 20 || sc.Connect.Ramp.Duration != time.Second ||
		sc.Reconnect.Every.Duration != time.Second {
		t.Errorf("duration %s clients %d ramp %s every %s", sc.Duration.Duration, sc.Clients, sc.Connect.Ramp.Duration, sc.Reconnect.Every.Duration)
	}
	if sc.Target != (Target{TCP: "127.0.0.1:9"}) || sc.Transport.TLSFraction != 0 {
		t.Errorf("target %+v tls %v", sc.Target, sc.Transport.TLSFraction)
	}
	if err := sc.Apply(Overrides{Target: "127.0.0.1:9", TLS: true}); err != nil {
		t.Fatal(err)
	}
	if sc.Target != (Target{TLS: "127.0.0.1:9"}) || sc.Transport.TLSFraction != 1 {
		t.Errorf("target %+v tls %v", sc.Target, sc.Transport.TLSFraction)
	}
	if err := sc.Apply(Overrides{Clients: MaxClients + 1}); err == nil {
		t.Error("too many clients accepted")
	}
}

func TestSpreadIsEvenAndExact(t *testing.T) {
	for _, tc := range []struct {
		n    int
		f    float64
		want int
	}{{100, 0.5, 50}, {100, 0.25, 25}, {10, 1, 10}, {10, 0, 0}, {7, 1.0 / 3, 2}, {14, 0.5, 7}} {
		got, run := 0, 0
		for i := range tc.n {
			if spread(i, tc.f) {
				got++
				run = 0
			} else if run++; tc.f > 0 && float64(run) > 1/tc.f+1 {
				t.Errorf("n=%d f=%v: a gap of %d at %d", tc.n, tc.f, run, i)
			}
		}
		if got != tc.want || spreadCount(tc.n, tc.f) != tc.want {
			t.Errorf("n=%d f=%v: chose %d (count %d), want %d", tc.n, tc.f, got, spreadCount(tc.n, tc.f), tc.want)
		}
	}
}
