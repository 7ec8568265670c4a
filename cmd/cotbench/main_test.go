package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"cotd/bench"
	"cotd/configs"
	"cotd/cot"
	"cotd/engine"
	"cotd/engine/enginetest"
)

const smoke = "../../configs/bench/smoke.toml"

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// The smoke scenario, shrunk, against a cotd engine in this process: it must pass, owe
// and receive every delivery, and agree with the server's own counters.
func TestSmokeAgainstInProcessCotd(t *testing.T) {
	h := enginetest.Start(t, nil)
	dir := t.TempDir()
	jsonPath, htmlPath := filepath.Join(dir, "smoke.json"), filepath.Join(dir, "smoke.html")
	code, out, errs := runCLI(t, "run", smoke, "--target", h.TCPAddr(), "--duration", "4s", "--clients", "20",
		"--json", jsonPath, "--html", htmlPath, "--metrics", "http://"+h.Srv.AdminAddr().String()+"/metrics")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	rep, err := bench.ReadReport(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	l := rep.Loss
	if l.Owed < 100 || l.Received != l.Owed || l.Lost != 0 || l.OwedDirected == 0 || rep.Unexpected.Total != 0 {
		t.Errorf("loss %+v unexpected %+v", l, rep.Unexpected)
	}
	if rep.Latency.Count == 0 || rep.Latency.P50 <= 0 || rep.Connect.Succeeded < 19 {
		t.Errorf("latency %+v connect %+v", rep.Latency.Summary, rep.Connect)
	}
	// Every frame the harness sent reached the server, kind by kind.
	st := h.Srv.Stats()
	for _, c := range []struct {
		kind engine.FrameKind
		want int64
	}{
		{engine.KindSA, rep.Traffic.Sent["sa"]},
		{engine.KindChat, rep.Traffic.Sent["chat"] + rep.Traffic.Sent["dm"]},
		{engine.KindOther, rep.Traffic.Sent["marker"]},
	} {
		if got := int64(st.FramesIn[c.kind].Value()); got != c.want || got == 0 {
			t.Errorf("server counted %d %s frames, harness sent %d", got, c.kind, c.want)
		}
	}
	if d := rep.ServerMetrics["cotd_deliveries_total"]; d < float64(rep.Traffic.DeliveredTotal) {
		t.Errorf("server delivered %v, harness received %d", d, rep.Traffic.DeliveredTotal)
	}
	if html, err := os.ReadFile(htmlPath); err != nil || !bytes.Contains(html, []byte("<svg")) {
		t.Errorf("html report: %v", err)
	}
	if !strings.Contains(out, "verdict  PASS") {
		t.Errorf("output:\n%s", out)
	}
}

// A server that sends directed chats to everyone fails the run with exit status 1, and
// the misroutes are counted.
func TestMisroutingServerFails(t *testing.T) {
	addr := startBroadcaster(t)
	dir := t.TempDir()
	jsonPath := filepath.Join(dir, "r.json")
	code, out, errs := runCLI(t, "run", smoke, "--target", addr, "--duration", "3s", "--clients", "10", "--json", jsonPath)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s\n%s", code, out, errs)
	}
	rep, err := bench.ReadReport(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Unexpected.Misrouted == 0 || rep.Loss.Lost != 0 {
		t.Errorf("unexpected %+v loss %+v", rep.Unexpected, rep.Loss)
	}
}

// startBroadcaster serves a CoT "server" that ignores <marti>: every event goes to every
// other client.
func startBroadcaster(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for c := range conns {
			_ = c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			go func() {
				f := cot.NewXMLFramer(0)
				buf := make([]byte, 8192)
				for {
					n, err := c.Read(buf)
					_ = f.Feed(buf[:n], func(doc []byte) error {
						mu.Lock()
						defer mu.Unlock()
						for o := range conns {
							if o != c {
								_ = o.SetWriteDeadline(time.Now().Add(5 * time.Second))
								_, _ = o.Write(doc)
							}
						}
						return nil
					})
					if err != nil {
						mu.Lock()
						delete(conns, c)
						mu.Unlock()
						_ = c.Close()
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func TestCompareCommand(t *testing.T) {
	h := enginetest.Start(t, nil)
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json")
	for _, p := range []string{a, b} {
		if code, out, errs := runCLI(t, "run", smoke, "--target", h.TCPAddr(), "--duration", "2s", "--clients", "6", "--json", p); code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, out, errs)
		}
	}
	code, out, errs := runCLI(t, "compare", a, b)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"delivery p99 ms", "deliveries/s", "B/A", "x", "verdict"} {
		if !strings.Contains(out, want) {
			t.Errorf("compare output lacks %q:\n%s", want, out)
		}
	}
}

func TestUsageAndConfigErrorsExit2(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.toml")
	if err := os.WriteFile(bad, []byte("clients = 0\nduration = \"5\"\nfoo = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "usage"},
		{[]string{"fly"}, "unknown command"},
		{[]string{"run"}, "usage"},
		{[]string{"run", smoke, "extra"}, "usage"},
		{[]string{"run", smoke, "--spawn", "--target", "127.0.0.1:1"}, "exclude each other"},
		{[]string{"run", smoke, "--target", "127.0.0.1:1", "--set", "output.coalesce_delay=1ms"}, "--set configures the cotd that --spawn starts"},
		{[]string{"run", smoke, "--spawn", "--set", "tcp.addr=127.0.0.1:1"}, "cotbench sets tcp.addr itself"},
		{[]string{"run", smoke, "--spawn", "--set", "novalue"}, "want KEY=VALUE"},
		{[]string{"run", bad}, `unknown key "foo"`},
		{[]string{"run", bad}, `duration "5" needs a unit`},
		{[]string{"run", smoke, "--target", "10.1.2.3:8087"}, "not a loopback address"},
		{[]string{"run", "slowloris.toml"}, "no such file"},
		{[]string{"compare", "a.json"}, "usage"},
		{[]string{"compare", "nope-a.json", "nope-b.json"}, "bad report"},
	} {
		code, _, errs := runCLI(t, tc.args...)
		if code != 2 || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, code, errs, tc.want)
		}
	}
	if code, out, _ := runCLI(t, "version"); code != 0 || !strings.HasPrefix(out, "cotbench ") {
		t.Errorf("version: %d %q", code, out)
	}
}

// --spawn builds ./cmd/cotd, starts it on ports it binds itself and stops it: what make bench runs.
// --set reaches the spawned cotd's config (a key cotd refused would stop the run), and the
// report names it.
func TestSpawnSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs cotd")
	}
	// smoke.toml with the criterion on the server's own p99 delay, which needs cotd's
	// /metrics and so is left out of the file; generous, for a busy box.
	src, err := os.ReadFile(smoke)
	if err != nil {
		t.Fatal(err)
	}
	scenario := filepath.Join(t.TempDir(), "smoke.toml")
	withLimit := strings.Replace(string(src), "\n[pass]\n", "\n[pass]\nmax_server_p99_delay = \"204.8ms\"\n", 1)
	if withLimit == string(src) {
		t.Fatal("smoke.toml has no [pass] table")
	}
	if err := os.WriteFile(scenario, []byte(withLimit), 0o644); err != nil {
		t.Fatal(err)
	}
	jsonPath := filepath.Join(t.TempDir(), "r.json")
	code, out, errs := runCLI(t, "run", scenario, "--spawn", "--duration", "4s", "--clients", "20", "--json", jsonPath,
		"--set", "output.coalesce_delay=1ms")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	rep, err := bench.ReadReport(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Target.Spawned || rep.Target.PID == 0 || rep.Server == nil || rep.Server.MaxRSS == 0 || rep.Server.MaxFDs < 20 {
		t.Errorf("target %+v server %+v", rep.Target, rep.Server)
	}
	if s := rep.Target.Settings; len(s) != 1 || s[0] != `output.coalesce_delay = "1ms"` || !strings.Contains(out, s[0]) {
		t.Errorf("the --set setting is not reported: %q\n%s", s, out)
	}
	if rep.ServerMetrics["cotd_deliveries_total"] == 0 {
		t.Errorf("server metrics not scraped: %v", rep.ServerMetrics)
	}
	if c := rep.Cost; c == nil || c.Deliveries == 0 || c.CPUSeconds <= 0 || c.MicrosPerDelivery <= 0 {
		t.Errorf("server CPU per delivery not measured: %+v", c)
	}
	if !strings.Contains(out, "µs server CPU per delivery") {
		t.Errorf("table lacks the cost:\n%s", out)
	}
	// The server's own delay, from its histogram over the cost's window: some of the
	// run's deliveries (those of the steady window), quantiles in order, under the limit
	// set above.
	d := rep.ServerDelay
	if d == nil {
		t.Fatalf("no server delay: %s", rep.ServerDelayAbsent)
	}
	if c := rep.Cost; c == nil || d.From != c.From || d.To != c.To {
		t.Errorf("server delay over %v..%v s, cost %+v", d.From, d.To, c)
	}
	if whole := rep.ServerMetrics["cotd_delivery_delay_seconds_count"]; d.Deliveries <= 0 || float64(d.Deliveries) > whole {
		t.Errorf("%d deliveries in the window, %v in the whole run", d.Deliveries, whole)
	}
	if d.P50.LeMs <= 0 || d.P50.LeMs > d.P90.LeMs || d.P90.LeMs > d.P99.LeMs || d.MeanMs <= 0 || d.MeanMs > d.P99.LeMs {
		t.Errorf("server delay %+v", d)
	}
	if !regexp.MustCompile(`\nserver delay +p50 ≤ [0-9.]+m?s, p90 ≤ [0-9.]+m?s, p99 ≤ [0-9.]+m?s, mean `).MatchString(out) {
		t.Errorf("table lacks the server delay:\n%s", out)
	}
	var limited bool
	for _, c := range rep.Criteria {
		limited = limited || (c.Name == "server_p99_delay_ms" && c.Pass && c.Value == d.P99.LeMs)
	}
	if !limited {
		t.Errorf("pass.max_server_p99_delay not applied: %+v", rep.Criteria)
	}
	t.Logf("server delay: %s; end to end p50 %.2f p99 %.2f ms", d, rep.Latency.P50, rep.Latency.P99)
}

// A TLS scenario with --spawn runs: cotd serves TLS, and both client stacks are reported.
func TestSpawnTLSRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs cotd")
	}
	code, out, errs := runCLI(t, "run", "../../configs/bench/smoke-tls.toml", "--spawn", "--duration", "3s", "--clients", "12")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(out, "utls-android11 TLS 1.2") || !strings.Contains(out, "crypto/tls TLS 1.3") {
		t.Errorf("TLS handshakes not reported:\n%s", out)
	}
}

// A spawned cotd that exits during start-up fails the run with exit status 2 and
// cotd's own last words and log path, never silently.
func TestSpawnFailureSaysWhy(t *testing.T) {
	fake := filepath.Join(t.TempDir(), "cotd")
	script := "#!/bin/sh\necho '{\"level\":\"error\",\"message\":\"cannot start: fake cotd for a test\"}' >&2\nexit 1\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI(t, "run", smoke, "--spawn", "--cotd", fake, "--duration", "3s", "--clients", "2")
	if code != 2 {
		t.Fatalf("exit %d, want 2\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(errs, "cotd exited during start-up") || !strings.Contains(errs, "log ") ||
		!strings.Contains(errs, "fake cotd for a test") {
		t.Errorf("unclear failure:\n%s", errs)
	}
}

func TestBaselineUsageErrors(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"baseline", "--cert", "/nonexistent.pem", "--key", "/nonexistent.key", "--ca", "/nonexistent.ca"}, &out, &errb); code != 2 {
		t.Errorf("missing files: exit %d, want 2 (%s)", code, errb.String())
	}
	if !strings.Contains(errb.String(), "baseline certificate") {
		t.Errorf("error does not name what is missing: %q", errb.String())
	}
}

// Half the smoke clients negotiate TAK protocol v1 and speak protobuf, the others stay on
// XML: every v1 client is granted, and everyone still receives everything owed, across the
// two wire formats.
func TestSmokeWithV1ClientsAgainstInProcessCotd(t *testing.T) {
	h := enginetest.Start(t, nil)
	src, err := os.ReadFile(smoke)
	if err != nil {
		t.Fatal(err)
	}
	scenario := strings.Replace(string(src), "utls_fraction = 0.5\n", "utls_fraction = 0.5\nv1_fraction = 0.5\n", 1)
	if scenario == string(src) {
		t.Fatal("smoke.toml changed: no utls_fraction line to put v1_fraction after")
	}
	dir := t.TempDir()
	path, jsonPath := filepath.Join(dir, "smoke-v1.toml"), filepath.Join(dir, "r.json")
	if err := os.WriteFile(path, []byte(scenario), 0o644); err != nil {
		t.Fatal(err)
	}
	const clients = 20
	code, out, errs := runCLI(t, "run", path, "--target", h.TCPAddr(), "--duration", "4s", "--clients", "20", "--json", jsonPath)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	rep, err := bench.ReadReport(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	tr := rep.Traffic
	// Reconnecting clients negotiate again on each connection.
	if tr.V1Requests < clients/2 || tr.V1Granted != tr.V1Requests || tr.V1Refused != 0 {
		t.Errorf("v1 requests %d, granted %d, refused %d; want every one of at least %d granted",
			tr.V1Requests, tr.V1Granted, tr.V1Refused, clients/2)
	}
	if n := h.Srv.Stats().Negotiations[engine.NegotiationV1].Value(); int64(n) != tr.V1Granted {
		t.Errorf("server granted %d, harness saw %d", n, tr.V1Granted)
	}
	l := rep.Loss
	if l.Owed < 100 || l.Received != l.Owed || l.Lost != 0 || rep.Unexpected.Total != 0 {
		t.Errorf("loss %+v unexpected %+v", l, rep.Unexpected)
	}
	if !strings.Contains(out, "tak v1") {
		t.Errorf("the table does not report the negotiation:\n%s", out)
	}
}

// groupsScenario is a short all-TLS run in 2 routing groups, one certificate per client.
const groupsScenario = `name = "groups"
clients = 12
duration = "4s"
[connect]
ramp = "1s"
timeout = "10s"
[transport]
tls_fraction = 1.0
utls_fraction = 0.5
client_certs = "per_client"
[groups]
count = 2
[sa]
interval = "500ms"
[chat]
all_interval = "2s"
directed_interval = "1s"
[markers]
interval = "2s"
[measure]
window = "2s"
settle = "500ms"
[pass]
max_loss_pct = 0.0
max_unexpected = 0
`

// Two routing groups against a cotd whose users file puts bench-<n> in G<n mod 2>: every
// client gets all its group's traffic and nothing of the other's. Against a users file
// that puts everyone in one group, the harness catches the leak as misrouted traffic.
func TestGroupsAgainstInProcessCotd(t *testing.T) {
	dir := t.TempDir()
	p, err := bench.NewPKI("cotbench")
	if err != nil {
		t.Fatal(err)
	}
	files, err := p.WriteFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	scenario := filepath.Join(dir, "groups.toml")
	if err := os.WriteFile(scenario, []byte(groupsScenario), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(t *testing.T, users []byte) (*bench.Report, int, string) {
		usersPath := filepath.Join(t.TempDir(), "users.toml")
		if err := os.WriteFile(usersPath, users, 0o600); err != nil {
			t.Fatal(err)
		}
		h := enginetest.Start(t, func(c *configs.Config) {
			c.TLS.Addr = "127.0.0.1:0"
			c.TLS.Cert, c.TLS.Key, c.TLS.CA = files.ServerCert, files.ServerKey, files.CA
			c.Auth.UsersFile = usersPath
		})
		jsonPath := filepath.Join(t.TempDir(), "r.json")
		code, out, errs := runCLI(t, "run", scenario, "--target", h.TLSAddr(), "--tls", "--cert", files.ClientCert,
			"--key", files.ClientKey, "--ca", files.CA, "--ca-key", files.CAKey, "--json", jsonPath)
		rep, err := bench.ReadReport(jsonPath)
		if err != nil {
			t.Fatalf("exit %d, no report: %v\n%s\n%s", code, err, out, errs)
		}
		return rep, code, out
	}

	t.Run("isolated", func(t *testing.T) {
		rep, code, out := run(t, bench.GroupUsers(12, 2))
		l := rep.Loss
		if code != 0 || l.Owed == 0 || l.Lost != 0 || rep.Unexpected.Total != 0 || rep.Clients.OwnCerts != 12 {
			t.Errorf("exit %d, loss %+v, unexpected %+v, own certificates %d\n%s", code, l, rep.Unexpected, rep.Clients.OwnCerts, out)
		}
	})
	t.Run("leaking", func(t *testing.T) {
		rep, code, out := run(t, bench.GroupUsers(12, 1))
		if code != 1 || rep.Unexpected.Misrouted == 0 {
			t.Errorf("a server that routes across groups: exit %d, unexpected %+v\n%s", code, rep.Unexpected, out)
		}
	})
}
