package bench

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The fixtures are cotd's own /metrics pages. metrics-before.txt was scraped from a cotd
// spawned by StartCotd after four TCP clients had sent it 50 SAs each (599 deliveries):
// integer counts. metrics-after.txt is the same page with the delay histogram advanced by
// 1,632,646 deliveries (1,000,000 of 150 µs, 600,000 of 600 µs, 20,000 of 5 ms, 12,646 of
// 30 ms), printed by cotd's metrics writer (engine/metrics.Writer.Sample), which writes
// counts of a million and more in float form: 1.633245e+06. No load run made it.
func loadMetricsFixture(t *testing.T, name string) map[string]float64 {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	series, err := parsePromText(f)
	if err != nil {
		t.Fatal(err)
	}
	return series
}

func TestDelayHistogramFromARealPage(t *testing.T) {
	h, err := histogramFrom(loadMetricsFixture(t, "metrics-before.txt"), delayMetric)
	if err != nil {
		t.Fatal(err)
	}
	// cotd's bounds: 18 doubling from 50 µs, then +Inf. The page's other histogram
	// (cotd_tls_handshake_seconds, 16 bounds from 250 µs) must not be mixed in.
	if len(h.bounds) != 19 || h.bounds[0] != 5e-5 || h.bounds[17] != 6.5536 || !math.IsInf(h.bounds[18], 1) {
		t.Fatalf("bounds %v", h.bounds)
	}
	wantCum := []float64{83, 195, 292, 365, 371, 374, 598, 599}
	for i, w := range wantCum {
		if h.cum[i] != w {
			t.Errorf("bucket le=%v holds %v, the page says %v", h.bounds[i], h.cum[i], w)
		}
	}
	if h.count != 599 || h.cum[18] != 599 || math.Abs(h.sum-0.6373387689999994) > 1e-12 {
		t.Errorf("count %v, +Inf %v, sum %v", h.count, h.cum[18], h.sum)
	}
	// Of 599: rank 300 is past 292 (≤ 0.2 ms) and within 365 (≤ 0.4 ms); ranks 540 and
	// 594 are within 598 (≤ 3.2 ms).
	for q, want := range map[float64]float64{0.5: 0.0004, 0.9: 0.0032, 0.99: 0.0032, 1: 0.0064} {
		if got := h.quantile(q); got != want {
			t.Errorf("q%v = %v, want %v", q, got, want)
		}
	}
}

// Two scrapes, the second with counts in float form: the difference is what happened
// between them, and its quantiles and mean are those of the deliveries added.
func TestServerDelayOverTwoScrapes(t *testing.T) {
	before, err := histogramFrom(loadMetricsFixture(t, "metrics-before.txt"), delayMetric)
	if err != nil {
		t.Fatal(err)
	}
	after, err := histogramFrom(loadMetricsFixture(t, "metrics-after.txt"), delayMetric)
	if err != nil {
		t.Fatal(err)
	}
	if after.count != 1633245 || after.cum[2] != 1000292 {
		t.Fatalf("float counts misread: count %v, le=0.0002 %v", after.count, after.cum[2])
	}
	d, why, err := delayOver(before, after, 3.0004, 15.0012)
	if err != nil || d == nil {
		t.Fatalf("%v %q", err, why)
	}
	// 1,632,646 added: the median in the 1,000,000 at 150 µs (≤ 0.2 ms), p90 in the
	// 600,000 at 600 µs (≤ 0.8 ms: 1,600,000 ≥ rank 1,469,382), p99 in the 20,000 at 5 ms
	// (≤ 6.4 ms: 1,620,000 ≥ rank 1,616,320). Mean 989.38 s / 1,632,646 = 0.606 ms.
	want := ServerDelayReport{From: 3, To: 15.001, Deliveries: 1632646, MeanMs: 0.606,
		P50: DelayBound{LeMs: 0.2}, P90: DelayBound{LeMs: 0.8}, P99: DelayBound{LeMs: 6.4}}
	if *d != want {
		t.Errorf("got  %+v\nwant %+v", *d, want)
	}
	if s := d.String(); !strings.HasPrefix(s, "p50 ≤ 0.20ms, p90 ≤ 0.80ms, p99 ≤ 6.40ms, mean 0.61ms") || !strings.Contains(s, "1632646 deliveries from 3.0 s to 15.0 s") {
		t.Errorf("line %q", s)
	}

	// Nothing happened between two scrapes of the same page: no figure, and why.
	if d, why, err := delayOver(before, before, 1, 2); d != nil || err != nil || !strings.Contains(why, "nothing") {
		t.Errorf("empty window: %+v %q %v", d, why, err)
	}
	// Scrapes in the wrong order (or of a restarted server): counters went back.
	if _, _, err := delayOver(after, before, 1, 2); !errors.Is(err, ErrMetrics) || !strings.Contains(err.Error(), "lost observations") {
		t.Errorf("counters going back: %v", err)
	}
}

// Pages that are not a usable histogram are refused with what is wrong.
func TestDelayHistogramRefusesBadPages(t *testing.T) {
	page := func(s string) map[string]float64 {
		series, err := parsePromText(strings.NewReader(s))
		if err != nil {
			t.Fatal(err)
		}
		return series
	}
	for _, tc := range []struct{ page, want string }{
		{"cotd_deliveries_total 5\n", "no cotd_delivery_delay_seconds histogram"},
		{"cotd_delivery_delay_seconds_bucket{le=\"0.1\"} 1\ncotd_delivery_delay_seconds_sum 0.1\ncotd_delivery_delay_seconds_count 1\n", "no +Inf bucket"},
		{"cotd_delivery_delay_seconds_bucket{le=\"+Inf\"} 1\ncotd_delivery_delay_seconds_count 1\n", "lacks its _sum or _count"},
		{"cotd_delivery_delay_seconds_bucket{le=\"0.1\"} 3\ncotd_delivery_delay_seconds_bucket{le=\"+Inf\"} 2\ncotd_delivery_delay_seconds_sum 0.1\ncotd_delivery_delay_seconds_count 2\n", "fewer than the one below"},
		{"cotd_delivery_delay_seconds_bucket{le=\"+Inf\"} 2\ncotd_delivery_delay_seconds_sum 0.1\ncotd_delivery_delay_seconds_count 3\n", "_count 3 is not the +Inf bucket's 2"},
		{"cotd_delivery_delay_seconds_bucket{le=\"soon\"} 2\n", `le "soon" is not a number`},
		{"cotd_delivery_delay_seconds_bucket{loop=\"1\"} 2\n", "no le label"},
	} {
		_, err := histogramFrom(page(tc.page), delayMetric)
		if !errors.Is(err, ErrMetrics) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want %q", tc.page, err, tc.want)
		}
	}
	a, _ := histogramFrom(page("x_bucket{le=\"1\"} 1\nx_bucket{le=\"+Inf\"} 1\nx_sum 1\nx_count 1\n"), "x")
	b, _ := histogramFrom(page("x_bucket{le=\"2\"} 1\nx_bucket{le=\"+Inf\"} 1\nx_sum 1\nx_count 1\n"), "x")
	if _, err := b.minus(a); !errors.Is(err, ErrMetrics) || !strings.Contains(err.Error(), "buckets changed") {
		t.Errorf("changed bounds: %v", err)
	}
}

// Series of one family with other labels are added le by le; label values may hold
// escaped quotes and commas.
func TestDelayHistogramSumsLabelSets(t *testing.T) {
	series, err := parsePromText(strings.NewReader(`# TYPE x histogram
x_bucket{loop="0",le="0.001"} 7
x_bucket{loop="0",le="+Inf"} 10
x_bucket{path="a\"b,c",le="0.001"} 0
x_bucket{path="a\"b,c",le="+Inf"} 90
x_sum{loop="0"} 1
x_sum{path="a\"b,c"} 9
x_count{loop="0"} 10
x_count{path="a\"b,c"} 90
`))
	if err != nil {
		t.Fatal(err)
	}
	h, err := histogramFrom(series, "x")
	if err != nil {
		t.Fatal(err)
	}
	if h.cum[0] != 7 || h.cum[1] != 100 || h.count != 100 || h.sum != 10 {
		t.Fatalf("%+v", h)
	}
	// Rank ceil(0.07 x 100) = 7, the seventh observation is ≤ 1 ms; 0.07*100 is
	// 7.000000000000001 in floating point, which must not make it the eighth.
	if got := h.quantile(0.07); got != 0.001 {
		t.Errorf("q0.07 = %v, want 0.001", got)
	}
	// Beyond the last finite bound: reported as that bound, marked above it.
	if b := h.bound(0.5); b != (DelayBound{LeMs: 1, Above: true}) || b.String() != "> 1.00ms" {
		t.Errorf("median beyond the last bound: %+v %q", b, b)
	}
	if v, err := labelValue(`path="a\"b,c",le="0.001"}`, "path"); err != nil || v != `a"b,c` {
		t.Errorf("label %q %v", v, err)
	}
}

// The scrapes chosen are those at the ticks costOver picks: the last at or before the
// window's start (else the first), the last at or before its end.
func TestDelayScraperPicksTheCostWindow(t *testing.T) {
	hist := func(n float64) *promHistogram {
		return &promHistogram{bounds: []float64{0.001, math.Inf(1)}, cum: []float64{n, n}, sum: n * 0.0005, count: n}
	}
	d := newDelayScraper("", 1.3, 3.5)
	// Completion order is not tick order; a scrape after the window is not its end.
	d.shots = []delayShot{{t: 3.001, h: hist(3000)}, {t: 1.001, h: hist(1000)}, {t: 3.9, h: hist(3900)}, {t: 2.002, h: hist(2000)}, {t: 0.4, h: hist(5)}}
	rep, why := d.report()
	if rep == nil || rep.From != 1.001 || rep.To != 3.001 || rep.Deliveries != 2000 || rep.MeanMs != 0.5 {
		t.Errorf("%+v %q", rep, why)
	}
	// The first tick came after the start: it is the start.
	d.shots = []delayShot{{t: 1.7, h: hist(1000)}, {t: 3.4, h: hist(1500)}}
	if rep, why := d.report(); rep == nil || rep.From != 1.7 || rep.Deliveries != 500 {
		t.Errorf("late first tick: %+v %q", rep, why)
	}
	// A failed scrape at an end, one scrape only, no /metrics: no figure, and why.
	d.shots = []delayShot{{t: 1, h: hist(1)}, {t: 3, err: errors.New("connection refused")}}
	if rep, why := d.report(); rep != nil || !strings.Contains(why, "the scrape at 3.0 s failed: connection refused") {
		t.Errorf("failed scrape: %+v %q", rep, why)
	}
	d.shots = []delayShot{{t: 1, h: hist(1)}}
	if rep, why := d.report(); rep != nil || why != delayNoWindow {
		t.Errorf("one scrape: %+v %q", rep, why)
	}
	var none *delayScraper
	if rep, why := none.report(); rep != nil || why != delayNoMetrics {
		t.Errorf("no scraper: %+v %q", rep, why)
	}
}

// metricsPage serves a cotd-like /metrics whose delay histogram gains a million
// deliveries of 150 µs with each request, in cotd's float form (1e+06, 2e+06, …).
func metricsPage(t *testing.T) (url string, requests *atomic.Int64) {
	requests = new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n := float64(requests.Add(1)) * 1e6
		g := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
		fmt.Fprintf(w, "# TYPE cotd_deliveries_total counter\ncotd_deliveries_total %s\n", g(n))
		fmt.Fprintf(w, "# TYPE %s histogram\n%s_bucket{le=\"0.0001\"} 0\n%s_bucket{le=\"0.0002\"} %s\n%s_bucket{le=\"+Inf\"} %s\n%s_sum %s\n%s_count %s\n",
			delayMetric, delayMetric, delayMetric, g(n), delayMetric, g(n), delayMetric, g(n*0.00015), delayMetric, g(n))
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/metrics", requests
}

// A run against a server with a /metrics reports the server delay over the same window
// as the cost, in the table and the JSON, and the criterion on it holds or fails.
func TestRunReportsServerDelay(t *testing.T) {
	srv := startFake(t, faultNone, nil)
	url, requests := metricsPage(t)
	sc := testScenario(t, func(sc *Scenario) {
		sc.Target.TCP = srv.addr()
		sc.Pass.MaxServerP99Delay = dur(200 * time.Microsecond)
	})
	rep := runScenario(t, sc, Options{PID: os.Getpid(), MetricsURL: url})
	d := rep.ServerDelay
	if d == nil {
		t.Fatalf("no server delay: %q (%d scrapes)", rep.ServerDelayAbsent, requests.Load())
	}
	if c := rep.Cost; c == nil || d.From != c.From || d.To != c.To {
		t.Errorf("delay window %v..%v, cost %+v", d.From, d.To, c)
	}
	// Whole millions: only scrapes' differences, all of them ≤ 0.2 ms, 0.15 ms each.
	if d.Deliveries < 1e6 || d.Deliveries%1e6 != 0 || d.MeanMs != 0.15 ||
		d.P50 != (DelayBound{LeMs: 0.2}) || d.P99 != (DelayBound{LeMs: 0.2}) {
		t.Errorf("delay %+v", d)
	}
	if !rep.Pass {
		t.Errorf("criteria %+v", rep.Criteria)
	}
	var out bytes.Buffer
	if err := rep.WriteText(&out); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`\nserver delay +p50 ≤ 0\.20ms, p90 ≤ 0\.20ms, p99 ≤ 0\.20ms, mean 0\.15ms`).MatchString(out.String()) {
		t.Errorf("table lacks the server delay:\n%s", out.String())
	}
	path := filepath.Join(t.TempDir(), "r.json")
	if err := rep.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	if back, err := ReadReport(path); err != nil || back.ServerDelay == nil || *back.ServerDelay != *d {
		t.Errorf("JSON: %v %+v", err, back)
	}
	sc.Pass.MaxServerP99Delay = dur(100 * time.Microsecond)
	rep.evaluate(sc)
	if rep.Pass {
		t.Errorf("p99 ≤ 0.2 ms passed a limit of 0.1 ms: %+v", rep.Criteria)
	}
}
