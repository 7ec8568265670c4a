package bench

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// sampleReport is a report with every part filled in, as a real run makes it.
func sampleReport(scale float64) *Report {
	h := NewHistogram()
	for i := range 1000 {
		h.Record(int64(float64(i*10_000+500_000) * scale))
	}
	lat := h.Snapshot()
	rep := &Report{
		Schema: reportSchema, Tool: "cotbench", Version: "test", Scenario: "sample", Description: "a <sample> & more",
		Target:  RunTarget{TCP: "127.0.0.1:8087", TLS: "127.0.0.1:8089", Spawned: true, Cotd: "/tmp/cotd", PID: 42},
		Started: time.Date(2025, 1, 2, 3, 4, 5, 6_000_000, time.UTC),
		Elapsed: 25.5, SendPhase: 20, Window: 5,
		Notes:   []string{"a note"},
		Host:    HostInfo{CPUs: 2, LoadBefore: 0.5, LoadAfter: 3.25},
		Clients: ClientMix{Total: 300, Honest: 290, Stalled: 10, TCP: 150, TLS: 70, UTLS: 70, Storm: 29},
		Connect: ConnectReport{Attempts: 400, Succeeded: 400, SuccessPct: 100, Connect: lat.Summary(), Handshake: lat.Summary(), Setup: lat.Summary(), Handshakes: map[string]int64{"crypto/tls TLS 1.3": 70}, PlannedReconnects: 58},
		Traffic: TrafficReport{Sent: map[string]int64{"sa": 6000}, Delivered: map[string]int64{"sa": 1_700_000}, SentTotal: 6000, DeliveredTotal: 1_700_000, DeliveriesPerSec: 66_666.5 * scale, PeakPerSec: 90_000, SteadyPerSec: int64(80_000 * scale), Pings: 3, Pongs: 3, PingRTT: lat.Summary()},
		Latency: LatencyReport{Summary: lat.Summary(), Late: 2, Histogram: lat},
		Loss:    Loss{Owed: 1000, Received: 990, Lost: 10, LossPct: 1, OwedBroadcast: 1000, ReceivedBroadcast: 990, Recipients: 290, RecipientsWithLoss: 1, Worst: []RecipientLoss{{Client: 3, Owed: 100, Received: 90, LossPct: 10}}},
		Errors:  map[string]int64{"reset": 2},
		Stalled: StalledReport{Connects: 20, ClosedByServer: 10, Life: lat.Summary()},
		Series:  []Sample{{T: 1, Open: 100, Connects: 100, Sent: 100, Delivered: 5000, P50: 1, P99: 5, Max: 9, ServerCPU: 1}, {T: 2, Open: 290, Stalled: 10, Delivered: 90000, P50: 2, P99: 8, Max: 20, ServerCPU: 1 + 0.18*scale}},
		Cost:    &CostReport{From: 1, To: 2, CPUSeconds: 0.18 * scale, Deliveries: 90000, MicrosPerDelivery: 2 * scale, CPUPct: 18 * scale},
		ServerDelay: &ServerDelayReport{From: 1, To: 2, Deliveries: 90000, MeanMs: 0.3 * scale,
			P50: DelayBound{LeMs: 0.2 * scale}, P90: DelayBound{LeMs: 0.4 * scale}, P99: DelayBound{LeMs: 0.8 * scale}},
		Server:        newProcReport(42, []ProcSample{{T: 0, RSS: 10 << 20, FDs: 10, Threads: 5}, {T: 1, RSS: 30 << 20, CPU: 80 * scale, FDs: 310, Threads: 6}}),
		Harness:       newProcReport(43, []ProcSample{{T: 0, RSS: 20 << 20}, {T: 1, RSS: 25 << 20, CPU: 50}}),
		ServerMetrics: map[string]float64{`cotd_deliveries_total`: 1.7e6, `cotd_drops_total{reason="slow_consumer"}`: 3},
	}
	sc := DefaultScenario()
	rep.evaluate(sc)
	return rep
}

func TestReportJSONRoundTrip(t *testing.T) {
	rep := sampleReport(1)
	path := filepath.Join(t.TempDir(), "r.json")
	if err := rep.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	back, err := ReadReport(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rep, back) {
		t.Errorf("round trip differs:\n%+v\n%+v", rep, back)
	}
	if back.Latency.Histogram.Quantile(0.99) != rep.Latency.Histogram.Quantile(0.99) {
		t.Error("histogram lost in the round trip")
	}
}

func TestReadReportRejectsOtherFiles(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{"garbage.json": "{", "other.json": `{"tool":"k6","schema":1}`} {
		path := filepath.Join(dir, name)
		if err := writeFile(path, content); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadReport(path); !errors.Is(err, ErrReport) {
			t.Errorf("%s: err = %v, want ErrReport", name, err)
		}
	}
}

func TestEvaluateCriteria(t *testing.T) {
	rep := sampleReport(1)
	byName := func() map[string]Criterion {
		m := map[string]Criterion{}
		for _, c := range rep.Criteria {
			m[c.Name] = c
		}
		return m
	}
	sc := DefaultScenario()
	sc.Pass = Pass{MaxLossPct: 1, MaxP99Latency: dur(time.Second), MinConnectSuccessPct: 99, MaxUnexpected: 0}
	rep.evaluate(sc)
	if !rep.Pass {
		t.Fatalf("criteria %+v", rep.Criteria)
	}
	for _, tc := range []struct {
		name  string
		spoil func()
	}{
		{"loss_pct", func() { rep.Loss.LossPct = 1.5 }},
		{"p99_latency_ms", func() { rep.Latency.P99 = 1001 }},
		{"connect_success_pct", func() { rep.Connect.SuccessPct = 98 }},
		{"unexpected", func() { rep.Unexpected.Total = 1 }},
		{"owed_deliveries", func() { rep.Loss.Owed = 0 }},
		{"completed", func() { rep.Interrupted = true }},
	} {
		saved := *rep
		tc.spoil()
		rep.evaluate(sc)
		if rep.Pass || byName()[tc.name].Pass {
			t.Errorf("%s: spoilt, but pass %v, criteria %+v", tc.name, rep.Pass, rep.Criteria)
		}
		*rep = saved
	}
	sc.Pass.MaxP99Connect = dur(time.Millisecond)
	rep.evaluate(sc)
	if c, ok := byName()["p99_connect_ms"]; !ok || c.Pass || rep.Pass {
		t.Errorf("p99_connect_ms: %+v", c)
	}
	sc.Pass.MaxP99Connect = Duration{}

	// The server's p99 delay is compared as its bucket's bound; beyond the last bound
	// it fails whatever the limit.
	sc.Pass.MaxServerP99Delay = dur(800 * time.Microsecond)
	rep.evaluate(sc)
	if c, ok := byName()["server_p99_delay_ms"]; !ok || !c.Pass || c.Value != 0.8 || c.Limit != 0.8 || !rep.Pass {
		t.Errorf("server_p99_delay_ms at its limit: %+v", c)
	}
	sc.Pass.MaxServerP99Delay = dur(400 * time.Microsecond)
	rep.evaluate(sc)
	if c := byName()["server_p99_delay_ms"]; c.Pass || rep.Pass {
		t.Errorf("server_p99_delay_ms over its limit: %+v", c)
	}
	sc.Pass.MaxServerP99Delay = dur(time.Hour)
	saved := *rep.ServerDelay
	rep.ServerDelay.P99 = DelayBound{LeMs: 6553.6, Above: true}
	rep.evaluate(sc)
	if c, ok := byName()["server_p99_delay_ms (beyond the histogram's last bound)"]; !ok || c.Pass || rep.Pass {
		t.Errorf("server_p99_delay_ms beyond the last bound: %+v", rep.Criteria)
	}
	*rep.ServerDelay = saved
	sc.Pass.MaxServerP99Delay = Duration{}

	// Idle clients (no SA) owe nothing; answered pings are what proves the run.
	sc.SA.Interval = Duration{}
	rep.Loss.Owed = 0
	rep.Traffic.Pongs = 10
	rep.evaluate(sc)
	if _, ok := byName()["owed_deliveries"]; ok || !rep.Pass {
		t.Errorf("idle run: pass %v, criteria %+v", rep.Pass, rep.Criteria)
	}
	rep.Traffic.Pongs = 0
	rep.evaluate(sc)
	if c, ok := byName()["pongs"]; !ok || c.Pass || rep.Pass {
		t.Errorf("idle run without pongs: %+v", c)
	}
}

func TestCompareShowsRatios(t *testing.T) {
	a, b := sampleReport(1), sampleReport(2)
	var out bytes.Buffer
	if err := Compare(&out, a, b, "A", "B"); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{"deliveries/s", "66666.5", "133333", "2.00x", "server mean CPU %", "server CPU us/delivery", "server delay p99 ms (≤)", "server delay mean ms", "verdict", "FAIL"} {
		if !strings.Contains(s, want) {
			t.Errorf("compare output lacks %q:\n%s", want, s)
		}
	}
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "delivery p99 ms") && !strings.Contains(line, "2.00x") {
			t.Errorf("delivery p99 doubled, line %q", line)
		}
		if strings.HasPrefix(strings.TrimSpace(line), "server CPU us/delivery") && !strings.Contains(line, "2.00x") {
			t.Errorf("cost doubled, line %q", line)
		}
		if strings.HasPrefix(strings.TrimSpace(line), "server delay p99 ms") && !strings.Contains(line, "2.00x") {
			t.Errorf("server delay doubled, line %q", line)
		}
		if strings.HasPrefix(strings.TrimSpace(line), "lost") && !strings.HasSuffix(strings.TrimSpace(line), "1.00x") {
			t.Errorf("lost unchanged, line %q", line)
		}
	}
}

func TestHTMLIsWellFormedAndSelfContained(t *testing.T) {
	rep := sampleReport(1)
	var buf bytes.Buffer
	if err := rep.WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(bytes.NewReader(buf.Bytes()))
	svgs, titles := 0, map[string]bool{}
	var inTitle bool
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v", err)
		}
		switch v := tok.(type) {
		case xml.StartElement:
			switch v.Name.Local {
			case "svg":
				svgs++
			case "script", "link", "img", "iframe":
				t.Errorf("external or active content <%s>", v.Name.Local)
			case "title":
				inTitle = true
			}
			for _, a := range v.Attr {
				if a.Name.Local == "src" || a.Name.Local == "href" {
					t.Errorf("<%s %s=%q>: the page must be self-contained", v.Name.Local, a.Name.Local, a.Value)
				}
			}
		case xml.CharData:
			if inTitle {
				titles[string(v)] = true
			}
		case xml.EndElement:
			inTitle = false
		}
	}
	for _, want := range []string{"Delivery latency per second (ms)", "Delivery latency histogram", "Connections over time", "Server (pid 42): RSS MiB and CPU %", "Server CPU per delivery (µs), per second"} {
		if !titles[want] {
			t.Errorf("no chart %q (charts: %v)", want, titles)
		}
	}
	if svgs < 6 {
		t.Errorf("%d SVG charts", svgs)
	}
	if !strings.Contains(buf.String(), "a &lt;sample&gt; &amp; more") {
		t.Error("description not escaped")
	}
	if !strings.Contains(buf.String(), "p50 ≤ 0.20ms, p90 ≤ 0.40ms, p99 ≤ 0.80ms, mean 0.30ms") {
		t.Error("no server delay")
	}
	rep.ServerDelay, rep.ServerDelayAbsent = nil, delayNoMetrics
	buf.Reset()
	if err := rep.WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "not measured: "+esc(delayNoMetrics)) {
		t.Error("no reason for the absent server delay")
	}
}

func TestWriteTextSummarises(t *testing.T) {
	var out bytes.Buffer
	rep := sampleReport(1)
	if err := rep.WriteText(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"scenario", "sample", "delivery", "loss", "1.000%", "B3", "reset 2", "busy", "verdict", "FAIL", "server", "pid 42", "2.00 µs server CPU per delivery",
		"p50 ≤ 0.20ms, p90 ≤ 0.40ms, p99 ≤ 0.80ms, mean 0.30ms"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, out.String())
		}
	}
}
