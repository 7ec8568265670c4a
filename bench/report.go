package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// reportSchema is the version of the JSON report layout; compare refuses other versions.
const reportSchema = 1

// Report is everything measured in one run. It is written as JSON (--json), HTML (--html)
// and a table, and read back by compare.
type Report struct {
	Schema      int       `json:"schema"`
	Tool        string    `json:"tool"`
	Version     string    `json:"version,omitempty"`
	Scenario    string    `json:"scenario"`
	Description string    `json:"description,omitempty"`
	Target      RunTarget `json:"target"`
	Started     time.Time `json:"started"`
	// Elapsed is the whole run; SendPhase the sending part (duration); Window the drain
	// and delivery window (measure.window); all in seconds.
	Elapsed     float64  `json:"elapsed_s"`
	SendPhase   float64  `json:"send_phase_s"`
	Window      float64  `json:"window_s"`
	Interrupted bool     `json:"interrupted,omitempty"`
	Notes       []string `json:"notes,omitempty"`

	// Host is the machine the run shared with the server (and with whatever else ran).
	Host       HostInfo         `json:"host"`
	Clients    ClientMix        `json:"clients"`
	Connect    ConnectReport    `json:"connect"`
	Traffic    TrafficReport    `json:"traffic"`
	Latency    LatencyReport    `json:"latency"`
	Loss       Loss             `json:"loss"`
	Unexpected UnexpectedReport `json:"unexpected"`
	Errors     map[string]int64 `json:"errors"`
	Stalled    StalledReport    `json:"stalled"`
	Hostile    HostileReport    `json:"hostile"`
	Series     []Sample         `json:"series"`
	Server     *ProcReport      `json:"server,omitempty"`
	// Cost is the server's CPU per delivery over the steady window; nil when no server
	// process was sampled (--spawn or --pid) or nothing was delivered in the window.
	Cost *CostReport `json:"cost,omitempty"`
	// ServerDelay is the server's own delay from reading a frame to handing it to a
	// recipient's socket over the steady window, from its cotd_delivery_delay_seconds; nil
	// when it was not measured, and ServerDelayAbsent then says why.
	ServerDelay       *ServerDelayReport `json:"server_delay,omitempty"`
	ServerDelayAbsent string             `json:"server_delay_absent,omitempty"`
	Harness           *ProcReport        `json:"harness,omitempty"`
	// ServerMetrics are the server's own counters over the run (what it added) and its
	// gauges after it, when its /metrics was scraped.
	ServerMetrics map[string]float64 `json:"server_metrics,omitempty"`
	Criteria      []Criterion        `json:"criteria"`
	Pass          bool               `json:"pass"`
}

// RunTarget is where the clients went.
type RunTarget struct {
	TCP     string `json:"tcp,omitempty"`
	TLS     string `json:"tls,omitempty"`
	Spawned bool   `json:"spawned,omitempty"`
	Cotd    string `json:"cotd,omitempty"`
	PID     int    `json:"pid,omitempty"`
	// Settings are what the spawned cotd's config had from the scenario's [spawn.cotd] and
	// --set, "key = value": what tells two runs of one scenario apart.
	Settings []string `json:"cotd_settings,omitempty"`
}

// HostInfo describes the machine: on a shared box, other work shows up in the figures,
// and the load average says how much there was.
type HostInfo struct {
	CPUs int `json:"cpus"`
	// LoadBefore and LoadAfter are the 1-minute load averages at the start and the end.
	LoadBefore float64 `json:"load_before"`
	LoadAfter  float64 `json:"load_after"`
}

// loadAverage reads the 1-minute load average; 0 when unknown.
func loadAverage() float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// ClientMix is how the clients were made up.
type ClientMix struct {
	Total   int `json:"total"`
	Honest  int `json:"honest"`
	Stalled int `json:"stalled"`
	TCP     int `json:"tcp"`
	TLS     int `json:"tls_stdlib"`
	UTLS    int `json:"tls_utls"`
	Storm   int `json:"storm"`
	// OwnCerts is how many TLS clients presented a certificate of their own
	// (transport.client_certs = "per_client"); the others share one.
	OwnCerts int `json:"own_certs"`
	// V1 is how many clients ask for TAK protocol v1 (transport.v1_fraction).
	V1 int `json:"v1"`
	// Groups is the number of routing groups (groups.count); 0 or 1: one.
	Groups int `json:"groups,omitempty"`
	// PerNode counts the clients sent to each address when the target names several
	// (the nodes of a cluster).
	PerNode map[string]int `json:"per_node,omitempty"`
}

// ConnectReport covers connects of honest clients (stalled ones are in StalledReport).
type ConnectReport struct {
	Attempts   int64   `json:"attempts"`
	Succeeded  int64   `json:"succeeded"`
	SuccessPct float64 `json:"success_pct"`
	// Connect is the TCP connect, Handshake the TLS handshake, Setup both together.
	Connect   Summary `json:"connect"`
	Handshake Summary `json:"handshake"`
	Setup     Summary `json:"setup"`
	// Handshakes counts completed handshakes by library and negotiated version.
	Handshakes map[string]int64 `json:"handshakes,omitempty"`
	// PlannedReconnects counts disconnects made by reconnect storms.
	PlannedReconnects int64 `json:"planned_reconnects"`
	// SetupsPerSec is successful connects (TLS: with their handshakes) over the
	// time from the first dial to the last completed one: for an all-at-once
	// burst, the rate the server took clients in.
	SetupsPerSec float64 `json:"setups_per_s"`
}

// TrafficReport counts what was sent and received.
type TrafficReport struct {
	Sent      map[string]int64 `json:"sent"`
	Delivered map[string]int64 `json:"delivered"`
	SentTotal int64            `json:"sent_total"`
	// DeliveredTotal counts every delivery of a tagged event at a rightful recipient,
	// owed or not; DeliveriesPerSec is it over the send phase and drain; PeakPerSec the
	// busiest second.
	DeliveredTotal   int64   `json:"delivered_total"`
	DeliveriesPerSec float64 `json:"deliveries_per_s"`
	PeakPerSec       int64   `json:"peak_deliveries_per_s"`
	// SteadyPerSec is the median second of the send phase after the ramp: the rate the
	// scenario runs at once everyone is connected.
	SteadyPerSec int64   `json:"steady_deliveries_per_s"`
	Pings        int64   `json:"pings"`
	Pongs        int64   `json:"pongs"`
	PingRTT      Summary `json:"ping_rtt"`
	Deletes      int64   `json:"deletes"`
	// Bounced counts directed chats the server returned to their sender as undeliverable
	// (b-t-f-s, as TAK Server does when the destination is offline).
	Bounced int64 `json:"bounced"`
	Offers  int64 `json:"protocol_offers"`
	// V1Requests, V1Granted and V1Refused follow the v1 clients' negotiation
	// (transport.v1_fraction): requests sent and the server's answers.
	V1Requests int64 `json:"v1_requests"`
	V1Granted  int64 `json:"v1_granted"`
	V1Refused  int64 `json:"v1_refused"`
	Untagged   int64 `json:"untagged"`
}

// LatencyReport is the end-to-end delivery latency: the receiver's clock minus the send
// time carried in the event (one process, one clock).
type LatencyReport struct {
	Summary
	Late      int64             `json:"late"`
	Histogram HistogramSnapshot `json:"histogram"`
	// ByTransport splits the latency by the recipient's transport (tcp, crypto/tls,
	// utls-android11).
	ByTransport map[string]Summary `json:"by_transport,omitempty"`
}

// UnexpectedReport counts deliveries nobody was owed.
type UnexpectedReport struct {
	// Misrouted: a directed chat at a client that is not its destination. Echo: a
	// client's own message delivered back to it. Excess: deliveries beyond what a
	// recipient was owed (duplicates).
	Misrouted int64 `json:"misrouted"`
	Echo      int64 `json:"echo"`
	Excess    int64 `json:"excess"`
	Total     int64 `json:"total"`
}

// StalledReport covers the stalled clients.
type StalledReport struct {
	Connects       int64 `json:"connects"`
	ClosedByServer int64 `json:"closed_by_server"`
	// Life is how long the server let a stalled connection live before closing it.
	Life Summary `json:"life"`
}

// Criterion is one pass criterion and how the run did.
type Criterion struct {
	Name  string  `json:"name"`
	Op    string  `json:"op"`
	Limit float64 `json:"limit"`
	Value float64 `json:"value"`
	Pass  bool    `json:"pass"`
}

// countNode counts client n in mix.PerNode when its transport's target names several nodes.
func (r *runner) countNode(mix *ClientMix, tr transport, n int) {
	if len(r.dialer.addrs(tr)) < 2 {
		return
	}
	if mix.PerNode == nil {
		mix.PerNode = make(map[string]int)
	}
	mix.PerNode[r.dialer.addr(tr, n)]++
}

// report builds the report of a finished run (before evaluate).
func (r *runner) report(m *monitor, tgt RunTarget, elapsed time.Duration) *Report {
	st, sc := r.st, r.sc
	rep := &Report{
		Schema:      reportSchema,
		Tool:        "cotbench",
		Scenario:    sc.Name,
		Description: sc.Description,
		Target:      tgt,
		Started:     r.start.UTC().Round(time.Millisecond),
		Elapsed:     round3(elapsed.Seconds()),
		SendPhase:   sc.Duration.Duration.Seconds(),
		Window:      sc.Measure.Window.Duration.Seconds(),
		Errors:      make(map[string]int64),
		Series:      m.series,
		Server:      newProcReport(tgt.PID, m.serverProcs),
		Harness:     newProcReport(os.Getpid(), m.selfProcs),
	}
	mix := &rep.Clients
	mix.Total = len(r.euds)
	if r.groups > 1 {
		mix.Groups = r.groups
	}
	for _, e := range r.euds {
		switch {
		case e.stalled:
			mix.Stalled++
			continue
		case e.tr == transportTCP:
			mix.TCP++
		case e.tr == transportTLS:
			mix.TLS++
		case e.tr == transportUTLS:
			mix.UTLS++
		}
		r.countNode(mix, e.tr, e.n)
		mix.Honest++
		if e.storm {
			mix.Storm++
		}
		if e.cert != nil {
			mix.OwnCerts++
		}
		if e.v1 {
			mix.V1++
		}
	}

	c := &rep.Connect
	c.Attempts, c.Succeeded = st.attempts.Load(), st.connected.Load()
	if c.Attempts > 0 {
		c.SuccessPct = 100 * float64(c.Succeeded) / float64(c.Attempts)
	}
	c.Connect = st.connect.Snapshot().Summary()
	c.Handshake = st.handshake.Snapshot().Summary()
	c.Setup = st.setup.Snapshot().Summary()
	c.PlannedReconnects = st.leaves.Load()
	if first, last := st.firstDial.Load(), st.lastSetup.Load(); last > first && first > 0 {
		c.SetupsPerSec = round3(float64(c.Succeeded) / (float64(last-first) / 1e9))
	}
	for tr := transportTLS; tr < numTransports; tr++ {
		for v, name := range []string{"TLS 1.2", "TLS 1.3"} {
			if n := st.handshakes[tr][v].Load(); n > 0 {
				if c.Handshakes == nil {
					c.Handshakes = make(map[string]int64)
				}
				c.Handshakes[tr.String()+" "+name] = n
			}
		}
	}

	t := &rep.Traffic
	t.Sent, t.Delivered = make(map[string]int64), make(map[string]int64)
	for k := range numMsgKinds {
		t.Sent[k.String()] = st.sent[k].Load()
		t.Delivered[k.String()] = st.delivered[k].Load()
	}
	t.SentTotal, t.DeliveredTotal = st.sentTotal(), st.deliveredTotal()
	if elapsed > 0 {
		t.DeliveriesPerSec = round3(float64(t.DeliveredTotal) / elapsed.Seconds())
	}
	var steady []int64
	from, to := sc.steadyWindow()
	for _, s := range m.series {
		t.PeakPerSec = max(t.PeakPerSec, s.Delivered)
		if s.T > from && s.T <= to {
			steady = append(steady, s.Delivered)
		}
	}
	if len(steady) > 0 {
		slices.Sort(steady)
		t.SteadyPerSec = steady[len(steady)/2]
	}
	rep.Cost = costOver(m.series, from, to)
	rep.ServerDelay, rep.ServerDelayAbsent = m.delay.report()
	t.Pings, t.Pongs = st.pings.Load(), st.pongs.Load()
	t.PingRTT = st.pingRTT.Snapshot().Summary()
	t.Deletes, t.Offers, t.Untagged, t.Bounced = st.deletes.Load(), st.offers.Load(), st.untagged.Load(), st.bounced.Load()
	t.V1Requests, t.V1Granted, t.V1Refused = st.v1Requests.Load(), st.v1Granted.Load(), st.v1Refused.Load()

	lat := st.latency.Snapshot()
	rep.Latency = LatencyReport{Summary: lat.Summary(), Late: st.late.Load(), Histogram: lat}
	for tr := range numTransports {
		if s := st.byTrans[tr].Snapshot(); s.Count > 0 {
			if rep.Latency.ByTransport == nil {
				rep.Latency.ByTransport = make(map[string]Summary)
			}
			rep.Latency.ByTransport[tr.String()] = s.Summary()
		}
	}
	rep.Loss = r.ledger.Tally()
	rep.Unexpected = UnexpectedReport{Misrouted: st.misrout.Load(), Echo: st.echo.Load(), Excess: int64(rep.Loss.Excess)}
	rep.Unexpected.Total = rep.Unexpected.Misrouted + rep.Unexpected.Echo + rep.Unexpected.Excess
	for k := range numErrorKinds {
		if n := st.errors[k].Load(); n > 0 {
			rep.Errors[k.String()] = n
		}
	}
	rep.Stalled = StalledReport{Connects: st.stalledConnects.Load(), ClosedByServer: st.stalledClosed.Load(), Life: st.stalledLife.Snapshot().Summary()}
	rep.Hostile = HostileReport{Clients: r.sc.Hostile.count(), Connects: r.hst.connects.Load(),
		ClosedByServer: r.hst.closed.Load(), BytesSent: r.hst.bytes.Load()}
	return rep
}

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

// evaluate checks the scenario's pass criteria and sets Pass.
func (rep *Report) evaluate(sc *Scenario) {
	p := sc.Pass
	rep.Criteria = rep.Criteria[:0]
	add := func(name, op string, limit, value float64) {
		ok := value <= limit
		if op == ">=" {
			ok = value >= limit
		}
		rep.Criteria = append(rep.Criteria, Criterion{Name: name, Op: op, Limit: limit, Value: round3(value), Pass: ok})
	}
	add("loss_pct", "<=", p.MaxLossPct, rep.Loss.LossPct)
	if p.MaxP99Latency.Duration > 0 {
		add("p99_latency_ms", "<=", ms(int64(p.MaxP99Latency.Duration)), rep.Latency.P99)
	}
	add("connect_success_pct", ">=", p.MinConnectSuccessPct, rep.Connect.SuccessPct)
	add("unexpected", "<=", float64(p.MaxUnexpected), float64(rep.Unexpected.Total))
	if p.MaxCPUMicrosPerDelivery > 0 {
		if rep.Cost != nil {
			add("cpu_us_per_delivery", "<=", p.MaxCPUMicrosPerDelivery, rep.Cost.MicrosPerDelivery)
		} else {
			// Not measured is not a pass: the run had no server process to sample.
			rep.Criteria = append(rep.Criteria, Criterion{Name: "cpu_us_per_delivery (not measured: --spawn or --pid)", Op: "<=", Limit: p.MaxCPUMicrosPerDelivery})
		}
	}
	if p.MaxServerP99Delay.Duration > 0 {
		rep.evaluateServerDelay(ms(int64(p.MaxServerP99Delay.Duration)))
	}
	if p.MaxP99Connect.Duration > 0 {
		add("p99_connect_ms", "<=", ms(int64(p.MaxP99Connect.Duration)), rep.Connect.Setup.P99)
	}
	// A run that measured nothing proves nothing: deliveries were owed, or,
	// for idle clients that send no SA, pings were answered.
	if sc.SA.Interval.Duration > 0 {
		add("owed_deliveries", ">=", 1, float64(rep.Loss.Owed))
	} else {
		add("pongs", ">=", 1, float64(rep.Traffic.Pongs))
	}
	if sc.Hostile.count() > 0 {
		// Honest connections the server closed or reset: hostile clients must cost
		// none.
		closed := rep.Errors[ErrServerClosed.String()] + rep.Errors[ErrReset.String()]
		add("honest_closed", "<=", float64(p.MaxHonestClosed), float64(closed))
	}
	if p.MaxServerRSSMB > 0 && rep.Server != nil {
		add("server_rss_mb", "<=", p.MaxServerRSSMB, float64(rep.Server.MaxRSS)/(1<<20))
	}
	if rep.Interrupted {
		add("completed", ">=", 1, 0)
	}
	rep.Pass = true
	for _, c := range rep.Criteria {
		rep.Pass = rep.Pass && c.Pass
	}
}

// WriteJSON writes the report as indented JSON to path.
func (rep *Report) WriteJSON(path string) error {
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// ReadReport reads a JSON report written by WriteJSON.
func ReadReport(path string) (*Report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrReport, err)
	}
	var rep Report
	if err := json.Unmarshal(data, &rep); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrReport, path, err)
	}
	if rep.Tool != "cotbench" || rep.Schema != reportSchema {
		return nil, fmt.Errorf("%w: %s is not a cotbench report of schema %d", ErrReport, path, reportSchema)
	}
	return &rep, nil
}

// WriteText writes the human summary: what ran, the figures, the verdict.
func (rep *Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	p := func(format string, a ...any) { fmt.Fprintf(tw, format+"\n", a...) }
	lat := func(s Summary) string {
		if s.Count == 0 {
			return "-"
		}
		return fmt.Sprintf("%s\t%s\t%s\t%s", fmtMs(s.P50), fmtMs(s.P90), fmtMs(s.P99), fmtMs(s.Max))
	}
	p("scenario\t%s\t%s", rep.Scenario, rep.Description)
	p("target\t%s", rep.targetString())
	p("run\t%.1fs (send %.0fs + drain %.0fs)%s", rep.Elapsed, rep.SendPhase, rep.Window, map[bool]string{true: "  INTERRUPTED"}[rep.Interrupted])
	m := rep.Clients
	if h := rep.Host; h.CPUs > 0 {
		busy := ""
		if max(h.LoadBefore, h.LoadAfter) > float64(h.CPUs) {
			busy = "  (busy: other work competed for the CPUs; figures are pessimistic)"
		}
		p("host\t%d CPUs, load average %.2f before, %.2f after%s", h.CPUs, h.LoadBefore, h.LoadAfter, busy)
	}
	p("clients\t%d: %d tcp, %d crypto/tls, %d utls; %d stalled; %d in reconnect storms%s", m.Total, m.TCP, m.TLS, m.UTLS, m.Stalled, m.Storm, mixExtras(m))
	p("")
	p("latency (ms)\tp50\tp90\tp99\tmax")
	p("  connect\t%s", lat(rep.Connect.Connect))
	p("  handshake\t%s", lat(rep.Connect.Handshake))
	p("  delivery\t%s", lat(rep.Latency.Summary))
	if len(rep.Latency.ByTransport) > 1 {
		for _, tr := range sortedKeys(rep.Latency.ByTransport) {
			p("    to %s\t%s", tr, lat(rep.Latency.ByTransport[tr]))
		}
	}
	p("  ping rtt\t%s", lat(rep.Traffic.PingRTT))
	if rep.ServerDelay != nil {
		p("server delay\t%s", rep.ServerDelay)
	} else if rep.ServerDelayAbsent != "" {
		p("server delay\t- (%s)", rep.ServerDelayAbsent)
	}
	p("")
	c := rep.Connect
	p("connects\t%d/%d ok (%.2f%%, %.0f/s from first dial to last connect), %d planned reconnects%s",
		c.Succeeded, c.Attempts, c.SuccessPct, c.SetupsPerSec, c.PlannedReconnects, fmtCounts(c.Handshakes, "; "))
	t := rep.Traffic
	p("sent\t%d%s; %d pings, %d pongs", t.SentTotal, fmtCounts(t.Sent, ": "), t.Pings, t.Pongs)
	p("delivered\t%d (%.0f/s over the run, %d/s steady, peak %d/s), %d late (> %.0fs); %d disconnect notices, %d bounced chats, %d protocol offers",
		t.DeliveredTotal, t.DeliveriesPerSec, t.SteadyPerSec, t.PeakPerSec, rep.Latency.Late, rep.Window, t.Deletes, t.Bounced, t.Offers)
	if t.V1Requests > 0 {
		p("tak v1	%d requests: %d granted, %d refused", t.V1Requests, t.V1Granted, t.V1Refused)
	}
	l := rep.Loss
	p("loss\t%.3f%%: %d of %d owed deliveries missing (broadcast %d/%d, directed %d/%d received); %d of %d recipients lost some",
		l.LossPct, l.Lost, l.Owed, l.ReceivedBroadcast, l.OwedBroadcast, l.ReceivedDirected, l.OwedDirected, l.RecipientsWithLoss, l.Recipients)
	for _, wl := range l.Worst {
		p("  worst\t%s: %d of %d (%.2f%% lost)", Callsign(wl.Client), wl.Received, wl.Owed, wl.LossPct)
	}
	u := rep.Unexpected
	p("unexpected\t%d (misrouted %d, echo %d, excess %d)", u.Total, u.Misrouted, u.Echo, u.Excess)
	p("errors\t%s", orDash(fmtCounts(rep.Errors, "")))
	if s := rep.Stalled; m.Stalled > 0 && s.ClosedByServer > 0 {
		p("stalled\t%d connects, %d closed by the server after p50 %s / max %s", s.Connects, s.ClosedByServer, fmtMs(s.Life.P50), fmtMs(s.Life.Max))
	} else if m.Stalled > 0 {
		p("stalled\t%d connects, none closed by the server", s.Connects)
	}
	if h := rep.Hostile; h.Clients > 0 {
		p("hostile\t%d clients: %d connects, %d closed by the server, %d bytes taken", h.Clients, h.Connects, h.ClosedByServer, h.BytesSent)
	}
	for _, pr := range []struct {
		name string
		p    *ProcReport
	}{{"server", rep.Server}, {"harness", rep.Harness}} {
		if pr.p != nil {
			p("%s\tpid %d: max RSS %.1f MiB, CPU mean %.0f%% max %.0f%%, max %d fds", pr.name, pr.p.PID, float64(pr.p.MaxRSS)/(1<<20), pr.p.MeanCPU, pr.p.MaxCPU, pr.p.MaxFDs)
		}
	}
	if rep.Cost != nil {
		p("cost\t%s", rep.Cost)
	} else if rep.Server == nil {
		p("cost\t- (server CPU per delivery needs the server's process: --spawn or --pid)")
	}
	if len(rep.ServerMetrics) > 0 {
		p("server metrics\t%s", fmtMetrics(rep.ServerMetrics))
	}
	for _, n := range rep.Notes {
		p("note\t%s", n)
	}
	p("")
	for _, cr := range rep.Criteria {
		p("%s\t%s %s %s\t%s", map[bool]string{true: "ok", false: "FAIL"}[cr.Pass], cr.Name, cr.Op, fmtNum(cr.Limit), "got "+fmtNum(cr.Value))
	}
	p("verdict\t%s", map[bool]string{true: "PASS", false: "FAIL"}[rep.Pass])
	return tw.Flush()
}

func (rep *Report) targetString() string {
	var parts []string
	if rep.Target.TCP != "" {
		parts = append(parts, "tcp "+rep.Target.TCP)
	}
	if rep.Target.TLS != "" {
		parts = append(parts, "tls "+rep.Target.TLS)
	}
	s := strings.Join(parts, ", ")
	if rep.Target.Spawned {
		s += fmt.Sprintf(" (spawned cotd pid %d)", rep.Target.PID)
		if len(rep.Target.Settings) > 0 {
			s += " with " + strings.Join(rep.Target.Settings, ", ")
		}
	} else if rep.Target.PID > 0 {
		s += fmt.Sprintf(" (pid %d)", rep.Target.PID)
	}
	return s
}

func fmtMs(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%.2fs", v/1000)
	case v >= 10:
		return fmt.Sprintf("%.1fms", v)
	}
	return fmt.Sprintf("%.2fms", v)
}

func fmtNum(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.3f", v)
}

// fmtCounts formats a count map as " (a 1, b 2)" in key order, skipping zeros; lead
// replaces the opening " (" when not empty.
func fmtCounts(m map[string]int64, lead string) string {
	keys := make([]string, 0, len(m))
	for k, v := range m {
		if v != 0 {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return ""
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	if lead == "" {
		return strings.Join(parts, ", ")
	}
	if lead == ": " {
		return " (" + strings.Join(parts, ", ") + ")"
	}
	return lead + strings.Join(parts, ", ")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// fmtMetrics picks the server counters that explain a run: deliveries, drops, closes, and
// the bytes on the wire (which TAK protocol v1 clients shrink).
func fmtMetrics(m map[string]float64) string {
	var keys []string
	for k, v := range m {
		base, _, _ := strings.Cut(k, "{")
		if v != 0 && (base == "cotd_deliveries_total" || base == "cotd_drops_total" || base == "cotd_closes_total" ||
			base == "cotd_connections_accepted_total" || base == "cotd_unroutable_total" ||
			base == "cotd_bytes_in_total" || base == "cotd_bytes_out_total") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %s", strings.TrimPrefix(k, "cotd_"), fmtNum(m[k]))
	}
	return orDash(strings.Join(parts, ", "))
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// mixExtras names the optional parts of the client mix, when present.
func mixExtras(m ClientMix) string {
	var b strings.Builder
	if m.V1 > 0 {
		fmt.Fprintf(&b, "; %d ask for TAK protocol v1", m.V1)
	}
	if m.OwnCerts > 0 {
		fmt.Fprintf(&b, "; %d with certificates of their own", m.OwnCerts)
	}
	if m.Groups > 1 {
		fmt.Fprintf(&b, "; in %d routing groups", m.Groups)
	}
	return b.String()
}
