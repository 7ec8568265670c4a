package metrics

import (
	"bytes"
	"testing"
)

func TestWriterFormat(t *testing.T) {
	var b bytes.Buffer
	w := NewWriter(&b)
	w.Family("cotd_closes_total", "Connections closed, by reason.", "counter")
	w.Sample("cotd_closes_total", 3, "reason", "idle")
	w.Sample("cotd_closes_total", 0, "reason", `we"ird\`)
	w.Family("cotd_up", "Always 1.", "gauge")
	w.Sample("cotd_up", 1)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	want := "# HELP cotd_closes_total Connections closed, by reason.\n" +
		"# TYPE cotd_closes_total counter\n" +
		"cotd_closes_total{reason=\"idle\"} 3\n" +
		"cotd_closes_total{reason=\"we\\\"ird\\\\\"} 0\n" +
		"# HELP cotd_up Always 1.\n# TYPE cotd_up gauge\ncotd_up 1\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestCounterAndGauge(t *testing.T) {
	var c Counter
	c.Inc()
	c.Add(4)
	if c.Value() != 5 {
		t.Errorf("counter = %d", c.Value())
	}
	var g Gauge
	g.Add(3)
	g.Add(-5)
	if g.Value() != -2 {
		t.Errorf("gauge = %d", g.Value())
	}
	g.Set(7)
	if g.Value() != 7 {
		t.Errorf("gauge = %d", g.Value())
	}
}

func TestHistogramQuantileIsUpperBound(t *testing.T) {
	h := NewHistogram(1, 2, 4, 8)
	for range 90 {
		h.Observe(0.5)
	}
	for range 9 {
		h.Observe(3)
	}
	h.Observe(100)
	if q := h.Quantile(0.5); q != 1 {
		t.Errorf("p50 = %v, want 1", q)
	}
	if q := h.Quantile(0.99); q != 4 {
		t.Errorf("p99 = %v, want 4", q)
	}
	if q := h.Quantile(1); q < 100 {
		t.Errorf("max = %v, want +Inf", q)
	}
	var b bytes.Buffer
	w := NewWriter(&b)
	h.Write(w, "x", "help")
	_ = w.Flush()
	for _, want := range []string{`x_bucket{le="1"} 90`, `x_bucket{le="4"} 99`, `x_bucket{le="+Inf"} 100`, "x_count 100", "x_sum 172"} {
		if !bytes.Contains(b.Bytes(), []byte(want)) {
			t.Errorf("missing %q in\n%s", want, b.String())
		}
	}
}

// A tally's observations reach the histogram only at Commit, and then exactly as
// observed one by one; the tally starts over empty.
func TestHistogramTallyCommitsAsObserved(t *testing.T) {
	one, batched := NewHistogram(1, 2, 4, 8), NewHistogram(1, 2, 4, 8)
	tl := batched.Tally()
	for _, v := range []float64{0.5, 0.5, 3, 3, 3, 7, 100} {
		one.Observe(v)
		tl.Observe(v)
	}
	if batched.Count() != 0 {
		t.Fatalf("seen before Commit: count %d", batched.Count())
	}
	tl.Commit()
	tl.Commit() // nothing more to add
	text := func(h *Histogram) string {
		var b bytes.Buffer
		w := NewWriter(&b)
		h.Write(w, "x", "help")
		_ = w.Flush()
		return b.String()
	}
	if a, b := text(one), text(batched); a != b {
		t.Errorf("one by one:\n%s\nbatched:\n%s", a, b)
	}
	tl.Observe(1.5)
	tl.Commit()
	if batched.Count() != 8 || batched.Quantile(1) < 100 {
		t.Errorf("second commit: count %d", batched.Count())
	}
}
