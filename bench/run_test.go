package bench

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	et "cotd/engine/enginetest"
	"cotd/internal/poll"
)

// testScenario is a small, fast scenario: 12 clients for 3 s with every kind of message.
// The window is generous and the latency bound loose: these tests check what is measured,
// not how fast the box is, and the box is shared (other test runs stall it for seconds).
func testScenario(t *testing.T, mutate func(*Scenario)) *Scenario {
	t.Helper()
	sc := DefaultScenario()
	sc.Name = "test"
	sc.Clients = 12
	sc.Duration = dur(3 * time.Second)
	sc.Connect.Ramp = dur(300 * time.Millisecond)
	sc.Connect.Timeout = dur(5 * time.Second)
	sc.Connect.RetryDelay = dur(200 * time.Millisecond)
	sc.SA.Interval = dur(200 * time.Millisecond)
	sc.Chat.AllInterval = dur(700 * time.Millisecond)
	sc.Chat.DirectedInterval = dur(300 * time.Millisecond)
	sc.Markers.Interval = dur(900 * time.Millisecond)
	sc.Measure.Window = dur(3 * time.Second)
	sc.Measure.Settle = dur(300 * time.Millisecond)
	sc.Pass.MaxP99Latency = dur(10 * time.Second)
	if mutate != nil {
		mutate(sc)
	}
	if err := sc.Validate(); err != nil {
		t.Fatal(err)
	}
	return sc
}

func runScenario(t *testing.T, sc *Scenario, opt Options) *Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	opt.Log = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	rep, err := Run(ctx, sc, opt)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if rep.Interrupted {
		t.Fatal("run interrupted")
	}
	return rep
}

func TestRunAgainstHonestServer(t *testing.T) {
	srv := startFake(t, faultNone, nil)
	sc := testScenario(t, func(sc *Scenario) { sc.Target.TCP = srv.addr() })
	// A /metrics that is not there: the run goes on, and the server delay says why it
	// is missing.
	noMetrics := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(noMetrics.Close)
	rep := runScenario(t, sc, Options{MetricsURL: noMetrics.URL + "/metrics"})
	if !rep.Pass {
		t.Errorf("criteria failed: %+v", rep.Criteria)
	}
	if rep.ServerDelay != nil || !strings.HasPrefix(rep.ServerDelayAbsent, "the server's /metrics could not be scraped: GET ") || !strings.Contains(rep.ServerDelayAbsent, "404") {
		t.Errorf("server delay %+v, absent %q", rep.ServerDelay, rep.ServerDelayAbsent)
	}
	l := rep.Loss
	if l.Owed == 0 || l.Received != l.Owed || l.Lost != 0 || l.Excess != 0 {
		t.Errorf("loss = %+v, want every owed delivery received", l)
	}
	if l.OwedBroadcast == 0 || l.OwedDirected == 0 || l.Recipients != 12 {
		t.Errorf("loss = %+v, want broadcast and directed deliveries owed to 12 recipients", l)
	}
	// 12 clients, SA every 200 ms over about 3 s: each client is owed the others'
	// broadcasts from its eligibility (~0.6 s) to its horizon (~3 s).
	if min := uint64(11 * 11 * 10); l.OwedBroadcast < min {
		t.Errorf("owed broadcast = %d, want at least %d", l.OwedBroadcast, min)
	}
	if rep.Latency.Count < int64(l.Received) || rep.Latency.P99 <= 0 {
		t.Errorf("latency = %+v for %d deliveries", rep.Latency.Summary, l.Received)
	}
	if rep.Unexpected.Total != 0 || len(rep.Errors) != 0 {
		t.Errorf("unexpected = %+v, errors = %v", rep.Unexpected, rep.Errors)
	}
	for _, k := range []string{"sa", "chat", "dm", "marker"} {
		if rep.Traffic.Sent[k] == 0 || rep.Traffic.Delivered[k] == 0 {
			t.Errorf("%s: sent %d delivered %d", k, rep.Traffic.Sent[k], rep.Traffic.Delivered[k])
		}
	}
	if rep.Connect.Attempts != 12 || rep.Connect.SuccessPct != 100 || rep.Connect.Connect.Count != 12 {
		t.Errorf("connect = %+v", rep.Connect)
	}
	if rep.Traffic.SteadyPerSec == 0 || rep.Traffic.PeakPerSec < rep.Traffic.SteadyPerSec {
		t.Errorf("steady %d/s, peak %d/s", rep.Traffic.SteadyPerSec, rep.Traffic.PeakPerSec)
	}
	if len(rep.Series) < 3 || rep.Harness == nil {
		t.Errorf("series %d samples, harness %v", len(rep.Series), rep.Harness)
	}
}

// Each server fault must be caught by its own measurement and fail the run.
func TestRunDetectsServerFaults(t *testing.T) {
	for _, tc := range []struct {
		fault fault
		check func(*Report) bool
	}{
		{faultMisroute, func(r *Report) bool { return r.Unexpected.Misrouted > 0 && r.Loss.Lost == 0 }},
		{faultDrop, func(r *Report) bool { return r.Loss.Lost > 0 && r.Loss.LossPct > 5 && r.Loss.LossPct < 15 }},
		{faultEcho, func(r *Report) bool { return r.Unexpected.Echo > 0 }},
		{faultDup, func(r *Report) bool { return r.Unexpected.Excess > 0 && r.Loss.Lost == 0 }},
	} {
		// One after the other: each is a timed scenario, and four at once on a
		// loaded two-core box would measure the box, not the fault.
		t.Run(tc.fault.String(), func(t *testing.T) {
			srv := startFake(t, tc.fault, nil)
			sc := testScenario(t, func(sc *Scenario) { sc.Target.TCP = srv.addr(); sc.Duration = dur(2 * time.Second) })
			rep := runScenario(t, sc, Options{})
			if rep.Pass {
				t.Errorf("run passed against a server with fault %s", tc.fault)
			}
			if !tc.check(rep) {
				t.Errorf("fault %s not measured: loss %+v unexpected %+v", tc.fault, rep.Loss, rep.Unexpected)
			}
		})
	}
}

func TestRunTLSWithUTLSAndHalfHello(t *testing.T) {
	pki, err := NewPKI("cotbench")
	if err != nil {
		t.Fatal(err)
	}
	srv := startFake(t, faultNone, pki.ServerConfig())
	dir := t.TempDir()
	files, err := pki.WriteFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	sc := testScenario(t, func(sc *Scenario) {
		sc.Clients = 14
		sc.Target.TLS = srv.addr()
		sc.Transport = Transport{TLSFraction: 1, UTLSFraction: 0.5, Cert: files.ClientCert, Key: files.ClientKey, CA: files.CA}
		sc.Stalled = Stalled{Fraction: 2.0 / 14, Mode: StallHalfHello}
	})
	rep := runScenario(t, sc, Options{})
	if !rep.Pass || rep.Loss.Owed == 0 {
		t.Errorf("criteria %+v, loss %+v, errors %v", rep.Criteria, rep.Loss, rep.Errors)
	}
	hs := rep.Connect.Handshakes
	if hs["utls-android11 TLS 1.2"] != 6 || hs["crypto/tls TLS 1.3"] != 6 {
		t.Errorf("handshakes = %v, want 6 utls (TLS 1.2) and 6 crypto/tls (TLS 1.3)", hs)
	}
	if v := srv.tlsVersions(); v[tls.VersionTLS12] != 6 || v[tls.VersionTLS13] != 6 {
		t.Errorf("server saw versions %v", v)
	}
	if rep.Connect.Handshake.Count != 12 || rep.Connect.Handshake.P50 <= 0 {
		t.Errorf("handshake latency %+v", rep.Connect.Handshake)
	}
	// The fake closes a handshake that does not finish in 1 s; each stalled client comes
	// back a second later, so each is closed at least twice in 3 s.
	if s := rep.Stalled; s.ClosedByServer < 2 || s.Life.P50 < 900 || s.Life.P50 > 5000 {
		t.Errorf("stalled = %+v, want closed after about 1 s", s)
	}
}

// With per-client certificates every TLS client presents its own, issued from the CA
// whose key the run was given: the server sees as many users as clients.
func TestRunTLSPerClientCertificates(t *testing.T) {
	pki, err := NewPKI("cotbench")
	if err != nil {
		t.Fatal(err)
	}
	srv := startFake(t, faultNone, pki.ServerConfig())
	files, err := pki.WriteFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const clients = 10
	sc := testScenario(t, func(sc *Scenario) {
		sc.Clients = clients
		sc.Target.TLS = srv.addr()
		sc.Transport = Transport{TLSFraction: 1, UTLSFraction: 0.5, ClientCerts: ClientCertsPerClient,
			Cert: files.ClientCert, Key: files.ClientKey, CA: files.CA, CAKey: files.CAKey}
	})
	rep := runScenario(t, sc, Options{})
	if !rep.Pass || rep.Clients.OwnCerts != clients {
		t.Errorf("pass %v, own certificates %d; criteria %+v, errors %v", rep.Pass, rep.Clients.OwnCerts, rep.Criteria, rep.Errors)
	}
	cns := srv.peerCNs()
	for n := range clients {
		if cns[fmt.Sprintf("bench-%d", n)] == 0 {
			t.Errorf("the server never saw bench-%d; it saw %v", n, cns)
		}
	}
	if len(cns) != clients {
		t.Errorf("the server saw %d user names, want %d: %v", len(cns), clients, cns)
	}

	// Without the CA's key there is nothing to issue them with: a clear refusal.
	sc.Transport.CAKey = ""
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := Run(ctx, sc, Options{Log: zerolog.Nop()}); !errors.Is(err, ErrTarget) || !strings.Contains(err.Error(), "ca_key") {
		t.Errorf("per-client certificates without a CA key: %v, want ErrTarget naming ca_key", err)
	}
}

func TestRunTLSRejectsWrongCA(t *testing.T) {
	server, err := NewPKI("cotbench")
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewPKI("cotbench")
	if err != nil {
		t.Fatal(err)
	}
	srv := startFake(t, faultNone, server.ServerConfig())
	files, err := other.WriteFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sc := testScenario(t, func(sc *Scenario) {
		sc.Clients = 4
		sc.Duration = dur(time.Second)
		sc.Connect.RetryDelay = dur(0)
		sc.Target.TLS = srv.addr()
		sc.Transport = Transport{TLSFraction: 1, UTLSFraction: 0.5, Cert: files.ClientCert, Key: files.ClientKey, CA: files.CA}
	})
	rep := runScenario(t, sc, Options{})
	if rep.Pass || rep.Errors["handshake_failed"] != 4 || rep.Connect.SuccessPct != 0 {
		t.Errorf("pass %v, errors %v, connect %+v; want 4 failed handshakes", rep.Pass, rep.Errors, rep.Connect)
	}
}

func TestRunPingsAfterSilence(t *testing.T) {
	srv := startFake(t, faultNone, nil)
	sc := testScenario(t, func(sc *Scenario) {
		sc.Clients = 1
		sc.Duration = dur(2 * time.Second)
		sc.Chat = Chat{}
		sc.Markers = Markers{}
		sc.SA.Interval = dur(time.Second)
		sc.Ping = Ping{Silence: dur(300 * time.Millisecond), Repeat: dur(200 * time.Millisecond)}
		sc.Target.TCP = srv.addr()
	})
	rep := runScenario(t, sc, Options{})
	tr := rep.Traffic
	if tr.Pings < 2 || tr.Pongs < 2 || tr.PingRTT.Count < 2 {
		t.Errorf("pings %d pongs %d rtt %+v", tr.Pings, tr.Pongs, tr.PingRTT)
	}
	// A lone client is owed nothing: the run measured nothing and must not pass.
	if rep.Pass {
		t.Error("a run with nothing owed passed")
	}
}

func TestRunReconnectStorms(t *testing.T) {
	srv := startFake(t, faultNone, nil)
	sc := testScenario(t, func(sc *Scenario) {
		sc.Target.TCP = srv.addr()
		sc.Duration = dur(8 * time.Second)
		sc.Reconnect = Reconnect{Fraction: 0.5, Times: 2, Every: dur(2 * time.Second), Offline: dur(100 * time.Millisecond)}
	})
	rep := runScenario(t, sc, Options{})
	// Both storms take the same 6 clients away and each comes back 100 ms later: every
	// client connects once, and once more after each storm, so there are exactly 12 + 12
	// attempts (the fake server refuses nobody). The timings leave seconds of slack on a
	// loaded box: the clients have 2 s to connect before the first storm, and the second
	// return is due 4 s before the end.
	if a := rep.Connect.Attempts; rep.Clients.Storm != 6 || rep.Connect.PlannedReconnects != 12 || a != 24 {
		t.Errorf("storm clients %d, planned reconnects %d, attempts %d; want 6, 12, 24",
			rep.Clients.Storm, rep.Connect.PlannedReconnects, rep.Connect.Attempts)
	}
	if !rep.Pass || rep.Loss.Lost != 0 {
		t.Errorf("criteria %+v loss %+v errors %v", rep.Criteria, rep.Loss, rep.Errors)
	}
}

func TestRunCountsRefusedConnects(t *testing.T) {
	addr := et.RefusedAddr(t)
	sc := testScenario(t, func(sc *Scenario) {
		sc.Clients = 3
		sc.Duration = dur(time.Second)
		sc.Connect.RetryDelay = dur(300 * time.Millisecond)
		sc.Target.TCP = addr
	})
	rep := runScenario(t, sc, Options{})
	if rep.Pass || rep.Errors["dial_refused"] < 3 || rep.Connect.Succeeded != 0 {
		t.Errorf("pass %v errors %v connect %+v", rep.Pass, rep.Errors, rep.Connect)
	}
}

func TestRunRefusesBadTargets(t *testing.T) {
	sc := testScenario(t, nil)
	if _, err := Run(context.Background(), sc, Options{}); err == nil {
		t.Error("no target: want an error")
	}
	sc.Target.TCP = "192.0.2.1:8087"
	if _, err := Run(context.Background(), sc, Options{}); err == nil {
		t.Error("non-loopback target: want an error")
	}
	sc = testScenario(t, func(sc *Scenario) { sc.Target.TCP = "127.0.0.1:1"; sc.Transport.TLSFraction = 0.5 })
	if _, err := Run(context.Background(), sc, Options{}); err == nil {
		t.Error("TLS clients without TLS target: want an error")
	}
}

// The baseline server completes real mutual-TLS handshakes and refuses a
// client without a certificate.
func TestServeBaseline(t *testing.T) {
	p, err := NewPKI("baseline-client")
	if err != nil {
		t.Fatal(err)
	}
	files, err := p.WriteFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := BaselineConfig(files.ServerCert, files.ServerKey, files.CA)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var ok atomic.Int64
	done := make(chan error, 1)
	go func() { done <- ServeBaseline(ctx, ln, cfg, &ok) }()
	m, err := LoadTLSMaterial(files.ClientCert, files.ClientKey, files.CA, "")
	if err != nil {
		t.Fatal(err)
	}
	good := &tls.Config{Certificates: []tls.Certificate{m.Cert}, RootCAs: m.Roots, ServerName: "127.0.0.1"}
	for range 3 {
		c, err := tls.Dial("tcp", ln.Addr().String(), good)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.Close()
	}
	bad := good.Clone()
	bad.Certificates = nil
	if c, err := tls.Dial("tcp", ln.Addr().String(), bad); err == nil {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _ = c.Read(make([]byte, 1))
		_ = c.Close()
	}
	poll.Until(t, "3 good handshakes", 20*time.Second, func() bool { return ok.Load() >= 3 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := ok.Load(); n != 3 {
		t.Errorf("handshakes = %d, want 3 (the certificate-less client must fail)", n)
	}
}

// The hostile clients run beside the honest ones, and the run judges whether any honest
// client was closed.
func TestRunHostileClients(t *testing.T) {
	srv := startFake(t, faultNone, nil)
	sc := testScenario(t, func(sc *Scenario) {
		sc.Target.TCP = srv.addr()
		sc.Duration = dur(2 * time.Second)
		sc.Hostile = Hostile{MarkerFlooders: 1, PositionFlooders: 1, Impostors: 1, Rotators: 1, Injectors: 1}
		sc.Pass.MaxLossPct = 100 // a naive server loses what it loses; this checks the plumbing
	})
	rep := runScenario(t, sc, Options{})
	h := rep.Hostile
	if h.Clients != 5 || h.Connects < 5 || h.BytesSent == 0 {
		t.Errorf("hostile = %+v, want 5 clients connected and sending", h)
	}
	found := false
	for _, c := range rep.Criteria {
		found = found || c.Name == "honest_closed"
	}
	if !found {
		t.Errorf("criteria %+v lack honest_closed", rep.Criteria)
	}
	if rep.Traffic.Untagged == 0 {
		t.Error("the honest clients received nothing of the hostile traffic from a server that routes it all")
	}
}
