package bench

import (
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"sort"
	"strings"
)

// WriteHTML writes the report as one self-contained HTML page: tables and inline SVG charts,
// no script and no external style. The page is well-formed XML as well, so it can be
// checked by any XML parser.
func (rep *Report) WriteHTML(w io.Writer) error {
	var b strings.Builder
	verdict := map[bool]string{true: "PASS", false: "FAIL"}[rep.Pass]
	b.WriteString("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/>")
	fmt.Fprintf(&b, "<title>cotbench: %s %s</title>", esc(rep.Scenario), verdict)
	b.WriteString(`<style>body{font-family:sans-serif;margin:2em;color:#222;max-width:60em}` +
		`table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}` +
		`td:first-child,th:first-child{text-align:left}.PASS{color:#fff;background:#2a7d2a;padding:0 .4em}` +
		`.FAIL{color:#fff;background:#b22;padding:0 .4em}svg{display:block;margin:.5em 0 1.5em}` +
		`.note{color:#a60}</style></head><body>`)
	fmt.Fprintf(&b, "<h1>cotbench: %s <span class=\"%s\">%s</span></h1>", esc(rep.Scenario), verdict, verdict)
	if rep.Description != "" {
		fmt.Fprintf(&b, "<p>%s</p>", esc(rep.Description))
	}
	m := rep.Clients
	kv(&b, [][2]string{
		{"target", rep.targetString()},
		{"started", rep.Started.Format("2006-01-02 15:04:05 UTC")},
		{"host", fmt.Sprintf("%d CPUs, load average %.2f before and %.2f after the run", rep.Host.CPUs, rep.Host.LoadBefore, rep.Host.LoadAfter)},
		{"run", fmt.Sprintf("%.1f s (send %.0f s, drain %.0f s)%s", rep.Elapsed, rep.SendPhase, rep.Window, map[bool]string{true: ", interrupted"}[rep.Interrupted])},
		{"clients", fmt.Sprintf("%d: %d tcp, %d crypto/tls, %d utls (Android 11 OkHttp), %d stalled, %d in reconnect storms%s", m.Total, m.TCP, m.TLS, m.UTLS, m.Stalled, m.Storm, mixExtras(m))},
		{"version", rep.Version},
	})
	for _, n := range rep.Notes {
		fmt.Fprintf(&b, "<p class=\"note\">%s</p>", esc(n))
	}

	b.WriteString("<h2>Criteria</h2><table><tr><th>criterion</th><th>limit</th><th>value</th><th>result</th></tr>")
	for _, c := range rep.Criteria {
		r := map[bool]string{true: "PASS", false: "FAIL"}[c.Pass]
		fmt.Fprintf(&b, "<tr><td>%s</td><td>%s %s</td><td>%s</td><td><span class=\"%s\">%s</span></td></tr>", esc(c.Name), esc(c.Op), fmtNum(c.Limit), fmtNum(c.Value), r, r)
	}
	b.WriteString("</table>")

	b.WriteString("<h2>Latency</h2><table><tr><th>ms</th><th>count</th><th>p50</th><th>p90</th><th>p99</th><th>max</th></tr>")
	for _, row := range []struct {
		name string
		s    Summary
	}{{"connect", rep.Connect.Connect}, {"TLS handshake", rep.Connect.Handshake}, {"connect + handshake", rep.Connect.Setup},
		{"delivery (end to end)", rep.Latency.Summary}, {"ping to pong", rep.Traffic.PingRTT}} {
		if row.s.Count == 0 {
			continue
		}
		fmt.Fprintf(&b, "<tr><td>%s</td><td>%d</td><td>%.2f</td><td>%.2f</td><td>%.2f</td><td>%.2f</td></tr>", esc(row.name), row.s.Count, row.s.P50, row.s.P90, row.s.P99, row.s.Max)
	}
	for _, tr := range sortedKeys(rep.Latency.ByTransport) {
		s := rep.Latency.ByTransport[tr]
		fmt.Fprintf(&b, "<tr><td>delivery to %s clients</td><td>%d</td><td>%.2f</td><td>%.2f</td><td>%.2f</td><td>%.2f</td></tr>", esc(tr), s.Count, s.P50, s.P90, s.P99, s.Max)
	}
	b.WriteString("</table>")
	kv(&b, [][2]string{{"server delay", serverDelayText(rep)}})

	l, t, c, u := rep.Loss, rep.Traffic, rep.Connect, rep.Unexpected
	b.WriteString("<h2>Delivery</h2>")
	kv(&b, [][2]string{
		{"connects", fmt.Sprintf("%d of %d (%.2f%%), %d planned reconnects %s", c.Succeeded, c.Attempts, c.SuccessPct, c.PlannedReconnects, fmtCounts(c.Handshakes, "; "))},
		{"sent", fmt.Sprintf("%d%s, %d pings, %d pongs", t.SentTotal, fmtCounts(t.Sent, ": "), t.Pings, t.Pongs)},
		{"delivered", fmt.Sprintf("%d (%.0f/s over the run, %d/s steady, peak %d/s), %d later than %.0f s", t.DeliveredTotal, t.DeliveriesPerSec, t.SteadyPerSec, t.PeakPerSec, rep.Latency.Late, rep.Window)},
		{"owed", fmt.Sprintf("%d (broadcast %d, directed %d) to %d recipients", l.Owed, l.OwedBroadcast, l.OwedDirected, l.Recipients)},
		{"lost", fmt.Sprintf("%d (%.3f%%); %d recipients lost some", l.Lost, l.LossPct, l.RecipientsWithLoss)},
		{"unexpected", fmt.Sprintf("%d (misrouted %d, echo %d, excess %d)", u.Total, u.Misrouted, u.Echo, u.Excess)},
		{"errors", orDash(fmtCounts(rep.Errors, ""))},
		{"tak protocol v1", fmt.Sprintf("%d offers received; %d requests: %d granted, %d refused", t.Offers, t.V1Requests, t.V1Granted, t.V1Refused)},
		{"other", fmt.Sprintf("%d disconnect notices, %d bounced direct chats (destination offline), %d untagged events", t.Deletes, t.Bounced, t.Untagged)},
		{"server CPU", costText(rep)},
	})

	b.WriteString("<h2>Charts</h2>")
	var p50, p99, mx, open, stalled, deliv, conns [][2]float64
	for _, s := range rep.Series {
		p50 = append(p50, [2]float64{s.T, s.P50})
		p99 = append(p99, [2]float64{s.T, s.P99})
		mx = append(mx, [2]float64{s.T, s.Max})
		open = append(open, [2]float64{s.T, float64(s.Open)})
		stalled = append(stalled, [2]float64{s.T, float64(s.Stalled)})
		deliv = append(deliv, [2]float64{s.T, float64(s.Delivered)})
		conns = append(conns, [2]float64{s.T, float64(s.Connects)})
	}
	lineChart(&b, "Delivery latency per second (ms)", []chartSeries{{"p50", "#1f77b4", p50}, {"p99", "#d62728", p99}, {"max", "#999", mx}})
	histogramChart(&b, "Delivery latency histogram", rep.Latency.Histogram)
	lineChart(&b, "Connections over time", []chartSeries{{"open", "#2ca02c", open}, {"stalled", "#ff7f0e", stalled}, {"connects/s", "#9467bd", conns}})
	lineChart(&b, "Deliveries per second", []chartSeries{{"deliveries/s", "#1f77b4", deliv}})
	var cost [][2]float64
	for i := 1; i < len(rep.Series); i++ {
		if us, ok := microsPerDelivery(rep.Series[i-1], rep.Series[i]); ok {
			cost = append(cost, [2]float64{rep.Series[i].T, us})
		}
	}
	if len(cost) > 0 {
		lineChart(&b, "Server CPU per delivery (µs), per second", []chartSeries{{"µs/delivery", "#d62728", cost}})
	}
	for _, pr := range []struct {
		name string
		p    *ProcReport
	}{{"Server", rep.Server}, {"Harness", rep.Harness}} {
		if pr.p == nil {
			continue
		}
		var rss, cpu, fds [][2]float64
		for _, s := range pr.p.Samples {
			rss = append(rss, [2]float64{s.T, float64(s.RSS) / (1 << 20)})
			cpu = append(cpu, [2]float64{s.T, s.CPU})
			fds = append(fds, [2]float64{s.T, float64(s.FDs)})
		}
		lineChart(&b, fmt.Sprintf("%s (pid %d): RSS MiB and CPU %%", pr.name, pr.p.PID), []chartSeries{{"RSS MiB", "#8c564b", rss}, {"CPU %", "#e377c2", cpu}})
		lineChart(&b, fmt.Sprintf("%s (pid %d): open descriptors", pr.name, pr.p.PID), []chartSeries{{"fds", "#17becf", fds}})
	}

	if len(rep.ServerMetrics) > 0 {
		b.WriteString("<h2>Server metrics (over the run)</h2><table><tr><th>series</th><th>value</th></tr>")
		keys := make([]string, 0, len(rep.ServerMetrics))
		for k := range rep.ServerMetrics {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "<tr><td>%s</td><td>%s</td></tr>", esc(k), fmtNum(rep.ServerMetrics[k]))
		}
		b.WriteString("</table>")
	}
	b.WriteString("</body></html>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// costText is the server CPU per delivery, or why there is none.
func costText(rep *Report) string {
	switch {
	case rep.Cost != nil:
		return rep.Cost.String()
	case rep.Server == nil:
		return "not measured: the server's process was not sampled (--spawn or --pid)"
	}
	return "not measured: nothing was delivered in the steady window"
}

// WriteHTMLFile writes the HTML report to path.
func (rep *Report) WriteHTMLFile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := rep.WriteHTML(f); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

func esc(s string) string { return html.EscapeString(s) }

func kv(b *strings.Builder, rows [][2]string) {
	b.WriteString("<table>")
	for _, r := range rows {
		fmt.Fprintf(b, "<tr><td>%s</td><td style=\"text-align:left\">%s</td></tr>", esc(r[0]), esc(r[1]))
	}
	b.WriteString("</table>")
}

type chartSeries struct {
	name, color string
	pts         [][2]float64
}

// Chart geometry, in SVG user units.
const (
	chartW, chartH                 = 760, 240
	padL, padR, padT, padB         = 60, 20, 30, 35
	plotW, plotH           float64 = chartW - padL - padR, chartH - padT - padB
)

// lineChart draws series as lines over a shared linear x (seconds) and y axis from 0.
func lineChart(b *strings.Builder, title string, ss []chartSeries) {
	var maxX, maxY float64
	for _, s := range ss {
		for _, p := range s.pts {
			maxX, maxY = max(maxX, p[0]), max(maxY, p[1])
		}
	}
	maxX, maxY = niceCeil(maxX), niceCeil(maxY)
	chartStart(b, title)
	for i := 0; i <= 4; i++ {
		v := maxY * float64(i) / 4
		y := padT + plotH - plotH*float64(i)/4
		fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#eee"/>`, padL, y, padL+plotW, y)
		fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="end" font-size="11">%s</text>`, padL-4, y+4, esc(fmtAxis(v)))
	}
	for i := 0; i <= 5; i++ {
		v := maxX * float64(i) / 5
		x := padL + plotW*float64(i)/5
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle" font-size="11">%ss</text>`, x, chartH-padB+15, esc(fmtAxis(v)))
	}
	for i, s := range ss {
		if len(s.pts) > 0 {
			b.WriteString(`<polyline fill="none" stroke-width="1.5" stroke="` + s.color + `" points="`)
			for _, p := range s.pts {
				fmt.Fprintf(b, "%.1f,%.1f ", padL+plotW*p[0]/maxX, padT+plotH-plotH*p[1]/maxY)
			}
			b.WriteString(`"/>`)
		}
		lx := chartW - padR - 110*(len(ss)-i)
		fmt.Fprintf(b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d" font-size="11">%s</text>`,
			lx, padT-14, s.color, lx+14, padT-5, esc(s.name))
	}
	chartEnd(b)
}

// histogramChart draws the latency histogram on a log x axis: the histogram's buckets are
// merged into bins of a quarter power of two.
func histogramChart(b *strings.Builder, title string, h HistogramSnapshot) {
	bins := map[int]int64{}
	lo, hi := math.MaxInt, math.MinInt
	for _, bk := range h.Buckets {
		k := 0
		if bk.Low > 0 {
			k = int(math.Floor(4 * math.Log2(float64(bk.Low))))
		}
		bins[k] += bk.N
		lo, hi = min(lo, k), max(hi, k)
	}
	chartStart(b, title)
	if len(bins) == 0 {
		fmt.Fprintf(b, `<text x="%d" y="%d" font-size="12">no deliveries</text>`, padL+10, padT+20)
		chartEnd(b)
		return
	}
	var top int64
	for _, n := range bins {
		top = max(top, n)
	}
	maxY := niceCeil(float64(top))
	n := hi - lo + 1
	bw := plotW / float64(n)
	for i := 0; i <= 4; i++ {
		y := padT + plotH - plotH*float64(i)/4
		fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#eee"/>`, padL, y, padL+plotW, y)
		fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="end" font-size="11">%s</text>`, padL-4, y+4, esc(fmtAxis(maxY*float64(i)/4)))
	}
	step := max(1, n/8)
	for k := lo; k <= hi; k++ {
		x := padL + bw*float64(k-lo)
		if c := bins[k]; c > 0 {
			bh := plotH * float64(c) / maxY
			fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#1f77b4"><title>%d</title></rect>`,
				x+0.5, padT+plotH-bh, max(bw-1, 0.5), bh, c)
		}
		if (k-lo)%step == 0 {
			fmt.Fprintf(b, `<text x="%.1f" y="%d" font-size="11">%s</text>`, x, chartH-padB+15, esc(fmtMs(math.Exp2(float64(k)/4)/1e6)))
		}
	}
	chartEnd(b)
}

func chartStart(b *strings.Builder, title string) {
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img">`, chartW, chartH, chartW, chartH)
	fmt.Fprintf(b, `<title>%s</title><text x="%d" y="14" font-size="13" font-weight="bold">%s</text>`, esc(title), padL, esc(title))
	fmt.Fprintf(b, `<rect x="%d" y="%d" width="%.0f" height="%.0f" fill="none" stroke="#999"/>`, padL, padT, plotW, plotH)
}

func chartEnd(b *strings.Builder) { b.WriteString("</svg>") }

// niceCeil rounds v up to 1, 2, 2.5 or 5 times a power of ten (1 for v <= 0).
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func fmtAxis(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.3gM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.3gk", v/1e3)
	}
	return fmt.Sprintf("%.4g", v)
}
