package metrics

import (
	"math"
	"strconv"
	"sync/atomic"
)

// Histogram counts observations in fixed buckets, lock-free. Bounds are
// upper bounds in ascending order; an observation above the last bound
// lands in an implicit +Inf bucket.
type Histogram struct {
	bounds []float64
	counts []atomic.Uint64 // len(bounds)+1
	sum    atomic.Uint64   // float64 bits
	n      atomic.Uint64
}

// NewHistogram makes a histogram with the given upper bounds.
func NewHistogram(bounds ...float64) *Histogram {
	return &Histogram{bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1)}
}

// ExponentialBounds returns n bounds starting at start, each factor times
// the previous.
func ExponentialBounds(start, factor float64, n int) []float64 {
	b := make([]float64, n)
	for i := range b {
		b[i] = start
		start *= factor
	}
	return b
}

// Observe records v.
func (h *Histogram) Observe(v float64) {
	h.counts[h.bucket(v)].Add(1)
	h.n.Add(1)
	h.addSum(v)
}

// bucket is the index of the bucket v falls in.
func (h *Histogram) bucket(v float64) int {
	i := 0
	for i < len(h.bounds) && v > h.bounds[i] {
		i++
	}
	return i
}

func (h *Histogram) addSum(v float64) {
	for {
		old := h.sum.Load()
		if h.sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// Tally gathers observations of h on one goroutine, to be added to h in one
// go by Commit: a batch of n observations then costs the histogram a few
// atomic adds rather than three per observation. An event loop that
// observes every message of a flush keeps one. Observations are not seen in
// h until committed. Not safe for concurrent use.
type Tally struct {
	h      *Histogram
	counts []uint64
	n      uint64
	sum    float64
}

// Tally makes an empty tally for h.
func (h *Histogram) Tally() *Tally {
	return &Tally{h: h, counts: make([]uint64, len(h.counts))}
}

// Observe records v in the tally.
func (t *Tally) Observe(v float64) {
	t.counts[t.h.bucket(v)]++
	t.n++
	t.sum += v
}

// Commit adds the tally's observations to its histogram and empties it.
func (t *Tally) Commit() {
	if t.n == 0 {
		return
	}
	for i, c := range t.counts {
		if c != 0 {
			t.h.counts[i].Add(c)
			t.counts[i] = 0
		}
	}
	t.h.n.Add(t.n)
	t.h.addSum(t.sum)
	t.n, t.sum = 0, 0
}

// Count is the number of observations.
func (h *Histogram) Count() uint64 { return h.n.Load() }

// Quantile estimates the q-quantile (0<q<=1) as the upper bound of the
// bucket that holds it: an upper estimate, never an under-report. It returns
// +Inf when the quantile lies beyond the last bound, 0 with no data.
func (h *Histogram) Quantile(q float64) float64 {
	total := h.n.Load()
	if total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(total)))
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			if i < len(h.bounds) {
				return h.bounds[i]
			}
			return math.Inf(1)
		}
	}
	return math.Inf(1)
}

// Write emits the histogram as a Prometheus family (cumulative buckets).
func (h *Histogram) Write(w *Writer, name, help string) {
	w.Family(name, help, "histogram")
	var cum uint64
	for i, b := range h.bounds {
		cum += h.counts[i].Load()
		w.Sample(name+"_bucket", float64(cum), "le", formatBound(b))
	}
	cum += h.counts[len(h.bounds)].Load()
	w.Sample(name+"_bucket", float64(cum), "le", "+Inf")
	w.Sample(name+"_sum", math.Float64frombits(h.sum.Load()))
	w.Sample(name+"_count", float64(cum))
}

func formatBound(b float64) string { return strconv.FormatFloat(b, 'g', -1, 64) }
