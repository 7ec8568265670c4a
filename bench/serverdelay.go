package bench

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// delayMetric is cotd's histogram of the time from reading a frame to handing it to a
// recipient's socket (engine/stats.go), one observation per delivery.
const delayMetric = "cotd_delivery_delay_seconds"

// ServerDelayReport is the server's own share of the delivery latency: cotd's
// cotd_delivery_delay_seconds histogram scraped from its /metrics at the start and at the
// end of the steady window (the one the cost line uses), the first subtracted from the
// second. The harness's end-to-end latency also holds the harness's own scheduling, which on
// a box the harness shares with the server can be most of it; this figure holds none of it.
//
// The quantiles are what a histogram can say: the upper bound of the bucket that holds
// each (cotd's bounds double from 50 µs), so "≤". The mean is exact (_sum over _count).
type ServerDelayReport struct {
	// From and To are the times of the two scrapes, in seconds since the start of the run.
	From float64 `json:"from_s"`
	To   float64 `json:"to_s"`
	// Deliveries is the observations between the scrapes: messages handed to a socket.
	Deliveries int64 `json:"deliveries"`
	// MeanMs is the mean delay in milliseconds.
	MeanMs float64 `json:"mean_ms"`
	// P50, P90 and P99 are the quantiles as bucket bounds.
	P50 DelayBound `json:"p50"`
	P90 DelayBound `json:"p90"`
	P99 DelayBound `json:"p99"`
}

// DelayBound is a quantile read from a histogram: the upper bound of the bucket that
// holds it.
type DelayBound struct {
	// LeMs is the bucket's upper bound in milliseconds: the quantile is at most this.
	LeMs float64 `json:"le_ms"`
	// Above is set when the quantile lies beyond the histogram's last finite bound: LeMs
	// is then that bound and the quantile is larger (JSON has no infinity to say it with).
	Above bool `json:"above,omitempty"`
}

func (b DelayBound) String() string {
	if b.Above {
		return "> " + fmtMs(b.LeMs)
	}
	return "≤ " + fmtMs(b.LeMs)
}

// String is the report line: "p50 ≤ 0.20ms, p90 ≤ 0.80ms, p99 ≤ 6.40ms, mean 0.61ms (…)".
func (d *ServerDelayReport) String() string {
	return fmt.Sprintf("p50 %s, p90 %s, p99 %s, mean %s (cotd's own, from reading a frame to the recipient's socket; %d deliveries from %.1f s to %.1f s)",
		d.P50, d.P90, d.P99, fmtMs(d.MeanMs), d.Deliveries, d.From, d.To)
}

// promHistogram is one Prometheus histogram as scraped: cumulative counts by ascending
// upper bound, the last bound +Inf.
type promHistogram struct {
	bounds     []float64
	cum        []float64
	sum, count float64
}

// histogramFrom picks the histogram name out of a scrape (series as ScrapeMetrics returns
// them). Series of the family that differ in labels other than le are added together, le
// by le, as Prometheus's sum by (le) would.
func histogramFrom(series map[string]float64, name string) (*promHistogram, error) {
	byLe := make(map[float64]float64)
	h := &promHistogram{}
	var sawSum, sawCount bool
	for key, v := range series {
		base, labels, _ := strings.Cut(key, "{")
		switch base {
		case name + "_bucket":
			le, err := labelValue(labels, "le")
			if err != nil {
				return nil, fmt.Errorf("%w: %s: %w", ErrMetrics, key, err)
			}
			bound, err := strconv.ParseFloat(le, 64)
			if err != nil || math.IsNaN(bound) {
				return nil, fmt.Errorf("%w: %s: le %q is not a number", ErrMetrics, key, le)
			}
			byLe[bound] += v
		case name + "_sum":
			h.sum += v
			sawSum = true
		case name + "_count":
			h.count += v
			sawCount = true
		}
	}
	if len(byLe) == 0 {
		return nil, fmt.Errorf("%w: no %s histogram in the server's metrics", ErrMetrics, name)
	}
	for b := range byLe {
		h.bounds = append(h.bounds, b)
	}
	slices.Sort(h.bounds)
	for i, b := range h.bounds {
		h.cum = append(h.cum, byLe[b])
		if i > 0 && h.cum[i] < h.cum[i-1] {
			return nil, fmt.Errorf("%w: %s: the bucket le=%v holds fewer than the one below it", ErrMetrics, name, b)
		}
	}
	last := len(h.bounds) - 1
	switch {
	case !math.IsInf(h.bounds[last], 1):
		return nil, fmt.Errorf("%w: %s has no +Inf bucket", ErrMetrics, name)
	case !sawSum || !sawCount:
		return nil, fmt.Errorf("%w: %s lacks its _sum or _count", ErrMetrics, name)
	case h.count != h.cum[last]:
		return nil, fmt.Errorf("%w: %s: _count %v is not the +Inf bucket's %v", ErrMetrics, name, h.count, h.cum[last])
	}
	return h, nil
}

// labelValue finds name's value in a label set as Prometheus writes it (`a="x",b="y"}`),
// undoing the format's escapes.
func labelValue(labels, name string) (string, error) {
	s := strings.TrimSuffix(labels, "}")
	for s != "" {
		eq := strings.IndexByte(s, '=')
		if eq < 0 || eq+1 >= len(s) || s[eq+1] != '"' {
			return "", fmt.Errorf("malformed labels {%s", labels)
		}
		key := strings.TrimSpace(s[:eq])
		var val strings.Builder
		i := eq + 2
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] == '\\' && i+1 < len(s) {
				i++
				if s[i] == 'n' {
					val.WriteByte('\n')
					continue
				}
			}
			val.WriteByte(s[i])
		}
		if i >= len(s) {
			return "", fmt.Errorf("malformed labels {%s", labels)
		}
		if key == name {
			return val.String(), nil
		}
		s = strings.TrimPrefix(strings.TrimSpace(s[i+1:]), ",")
	}
	return "", fmt.Errorf("no %s label", name)
}

// minus is what the histogram gained since before. Bounds must match, and no bucket may
// have lost observations: either means the server restarted or is not the same one.
func (h *promHistogram) minus(before *promHistogram) (*promHistogram, error) {
	if !slices.Equal(h.bounds, before.bounds) {
		return nil, fmt.Errorf("%w: the histogram's buckets changed between scrapes", ErrMetrics)
	}
	d := &promHistogram{bounds: h.bounds, cum: make([]float64, len(h.cum)), sum: h.sum - before.sum, count: h.count - before.count}
	for i := range h.cum {
		d.cum[i] = h.cum[i] - before.cum[i]
		// Per bucket, not cumulative: each bucket is its own counter on the server.
		gained := d.cum[i]
		if i > 0 {
			gained -= d.cum[i-1]
		}
		if gained < 0 {
			return nil, fmt.Errorf("%w: the bucket le=%v lost observations between scrapes (did the server restart?)", ErrMetrics, h.bounds[i])
		}
	}
	return d, nil
}

// quantile is the upper bound of the bucket holding the q-quantile (0 < q <= 1): +Inf
// when it lies beyond the last finite bound, NaN with no observations. The same rule as
// cotd's own Histogram.Quantile: an upper estimate, never an under-report.
func (h *promHistogram) quantile(q float64) float64 {
	total := h.cum[len(h.cum)-1]
	if total <= 0 {
		return math.NaN()
	}
	// Counts are whole numbers: the small subtraction keeps float noise in q*total
	// (0.99*100 = 99.00000000000001) from moving the rank up by one.
	rank := max(math.Ceil(q*total-1e-6), 1)
	for i, c := range h.cum {
		if c >= rank {
			return h.bounds[i]
		}
	}
	return math.Inf(1)
}

// bound turns a quantile in seconds into a DelayBound in milliseconds.
func (h *promHistogram) bound(q float64) DelayBound {
	v := h.quantile(q)
	if math.IsInf(v, 1) {
		lastFinite := 0.0
		if n := len(h.bounds); n > 1 {
			lastFinite = h.bounds[n-2]
		}
		return DelayBound{LeMs: round3(lastFinite * 1e3), Above: true}
	}
	return DelayBound{LeMs: round3(v * 1e3)}
}

// delayOver is the report of the difference between two scrapes taken at from and to;
// nil with a reason when the window holds no observation.
func delayOver(before, after *promHistogram, from, to float64) (*ServerDelayReport, string, error) {
	d, err := after.minus(before)
	if err != nil {
		return nil, "", err
	}
	if d.count <= 0 {
		return nil, "the server handed nothing to a socket in the steady window", nil
	}
	return &ServerDelayReport{
		From: round3(from), To: round3(to), Deliveries: int64(d.count),
		MeanMs: round3(d.sum / d.count * 1e3),
		P50:    d.bound(0.5), P90: d.bound(0.9), P99: d.bound(0.99),
	}, "", nil
}

// Reasons the server delay is absent.
const (
	delayNoMetrics = "needs the server's admin /metrics: --spawn, or --metrics URL of a cotd"
	delayNoWindow  = "the run ended before the steady window held two scrapes"
)

// delayScraper scrapes the server's delay histogram at the monitor's ticks around the
// ends of the steady window, in the background so that a slow /metrics never delays the
// once-a-second samples. After the run the scrapes at the ticks costOver would pick are
// used (windowEnds): the last at or before the window's start (else the first tick), and
// the last at or before its end. A scrape is a few milliseconds of the server's CPU; two
// to five per run are taken, not one a second, so the cost line is not charged for them.
type delayScraper struct {
	url      string
	from, to float64

	wg    sync.WaitGroup
	mu    sync.Mutex
	shots []delayShot
}

// delayShot is one scrape, at the tick of time t (seconds since the start).
type delayShot struct {
	t   float64
	h   *promHistogram
	err error
}

func newDelayScraper(url string, from, to float64) *delayScraper {
	return &delayScraper{url: url, from: from, to: to}
}

// tick is called at each of the monitor's samples, first telling whether it is the
// first; it scrapes when the tick may turn out to bound the window. Ticks come a second
// apart, two seconds of margin keep a late tick from leaving an end without a scrape.
func (d *delayScraper) tick(first bool, t float64) {
	near := func(edge float64) bool { return t <= edge && t > edge-2 }
	if !first && !near(d.from) && !near(d.to) {
		return
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		shot := delayShot{t: t}
		series, err := ScrapeMetrics(d.url)
		if err == nil {
			shot.h, err = histogramFrom(series, delayMetric)
		}
		shot.err = err
		d.mu.Lock()
		d.shots = append(d.shots, shot)
		d.mu.Unlock()
	}()
}

// report waits for the scrapes and computes the delay over the window, or says why there
// is none. A nil scraper is a run without the server's /metrics.
func (d *delayScraper) report() (*ServerDelayReport, string) {
	if d == nil {
		return nil, delayNoMetrics
	}
	d.wg.Wait()
	d.mu.Lock()
	shots := slices.Clone(d.shots)
	d.mu.Unlock()
	slices.SortFunc(shots, func(a, b delayShot) int { return cmp.Compare(a.t, b.t) })
	a, b, ok := windowEnds(shots, func(s delayShot) (float64, bool) { return s.t, true }, d.from, d.to)
	if !ok {
		return nil, delayNoWindow
	}
	for _, s := range []delayShot{shots[a], shots[b]} {
		if s.err != nil {
			return nil, fmt.Sprintf("the scrape at %.1f s failed: %v", s.t, s.err)
		}
	}
	rep, why, err := delayOver(shots[a].h, shots[b].h, shots[a].t, shots[b].t)
	if err != nil {
		return nil, err.Error()
	}
	return rep, why
}

// steadyWindow is the steady part of the send phase, in seconds since the start: from one
// second after the ramp (the handshakes and SA replays of the connects are over) to the
// end of the send phase, with half a second's slack for a late sample. The steady rate,
// the cost and the server delay are all taken over it.
func (sc *Scenario) steadyWindow() (from, to float64) {
	rampEnd := sc.Connect.Ramp.Duration.Seconds()
	if sc.Connect.Mode == ConnectAllAtOnce {
		rampEnd = 0
	}
	return rampEnd + 1, sc.Duration.Duration.Seconds() + 0.5
}

// evaluateServerDelay adds the criterion of pass.max_server_p99_delay, limit in ms. The
// p99 is compared as its bucket's upper bound, which is what the server vouches for.
func (rep *Report) evaluateServerDelay(limit float64) {
	c := Criterion{Name: "server_p99_delay_ms", Op: "<=", Limit: limit}
	switch d := rep.ServerDelay; {
	case d == nil:
		// Not measured is not a pass: the run had no server histogram to read.
		c.Name += " (not measured: --spawn or --metrics)"
	case d.P99.Above:
		// Beyond the last bound the histogram says nothing of how far: not a pass.
		c.Name += " (beyond the histogram's last bound)"
		c.Value = d.P99.LeMs
	default:
		c.Value, c.Pass = d.P99.LeMs, d.P99.LeMs <= limit
	}
	rep.Criteria = append(rep.Criteria, c)
}

// serverDelayText is the server delay for the HTML page, or why there is none.
func serverDelayText(rep *Report) string {
	switch {
	case rep.ServerDelay != nil:
		return rep.ServerDelay.String()
	case rep.ServerDelayAbsent != "":
		return "not measured: " + rep.ServerDelayAbsent
	}
	return "not measured"
}

// delayVal is a figure of r's server delay for compare; 0 when r has none.
func delayVal(r *Report, f func(*ServerDelayReport) float64) float64 {
	if r.ServerDelay == nil {
		return 0
	}
	return f(r.ServerDelay)
}
