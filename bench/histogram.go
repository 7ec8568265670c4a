package bench

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram layout: values below 2*subCount are counted exactly; above, each power of two is
// cut into subCount buckets, so a bucket is at most 1/subCount (1.6%) of its values wide.
// Every int64 fits: the memory of a Histogram is fixed at numBuckets counters (30 KiB),
// whatever the number of samples.
const (
	subBits    = 6
	subCount   = 1 << subBits
	numBuckets = 2*subCount + (63-subBits-1)*subCount
)

// bucketOf returns the bucket of v (negative values count as 0).
func bucketOf(v int64) int {
	if v < 2*subCount {
		return int(max(v, 0))
	}
	u := uint64(v)
	e := bits.Len64(u) - (subBits + 1) // >= 1: how far u is shifted to keep subBits+1 bits
	return 2*subCount + (e-1)*subCount + int(u>>e) - subCount
}

// bucketLow is the smallest value of bucket i.
func bucketLow(i int) int64 {
	if i < 2*subCount {
		return int64(i)
	}
	j := i - 2*subCount
	return int64(j%subCount+subCount) << (j/subCount + 1)
}

// bucketHigh is the largest value of bucket i.
func bucketHigh(i int) int64 {
	if i >= numBuckets-1 {
		return math.MaxInt64
	}
	return bucketLow(i+1) - 1
}

// Histogram is an HDR-like log-bucketed histogram of non-negative values (nanoseconds in
// this package). Record is safe from any goroutine and never allocates; the relative error
// of a percentile is below 1/64.
type Histogram struct {
	counts   [numBuckets]atomic.Uint64
	n, sum   atomic.Int64
	min, max atomic.Int64
}

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram {
	h := &Histogram{}
	h.min.Store(math.MaxInt64)
	return h
}

// Record counts one value.
func (h *Histogram) Record(v int64) {
	v = max(v, 0)
	h.counts[bucketOf(v)].Add(1)
	h.n.Add(1)
	h.sum.Add(v)
	for m := h.min.Load(); v < m && !h.min.CompareAndSwap(m, v); m = h.min.Load() {
	}
	for m := h.max.Load(); v > m && !h.max.CompareAndSwap(m, v); m = h.max.Load() {
	}
}

// RecordDuration counts one duration.
func (h *Histogram) RecordDuration(d time.Duration) { h.Record(int64(d)) }

// Reset empties h. A Record that runs concurrently may be lost or half counted; callers use
// it only for the per-second window histograms, where that is acceptable.
func (h *Histogram) Reset() {
	for i := range h.counts {
		h.counts[i].Store(0)
	}
	h.n.Store(0)
	h.sum.Store(0)
	h.min.Store(math.MaxInt64)
	h.max.Store(0)
}

// Snapshot copies h's state into a plain value with only the non-empty buckets.
func (h *Histogram) Snapshot() HistogramSnapshot {
	s := HistogramSnapshot{Count: h.n.Load(), Sum: h.sum.Load(), Max: h.max.Load()}
	if s.Count > 0 {
		s.Min = h.min.Load()
	}
	for i := range h.counts {
		if c := h.counts[i].Load(); c > 0 {
			s.Buckets = append(s.Buckets, Bucket{Low: bucketLow(i), N: int64(c)})
		}
	}
	return s
}

// HistogramSnapshot is a histogram as stored in a report: totals and the non-empty buckets
// in increasing order. Values are nanoseconds.
type HistogramSnapshot struct {
	Count   int64    `json:"count"`
	Sum     int64    `json:"sum_ns"`
	Min     int64    `json:"min_ns"`
	Max     int64    `json:"max_ns"`
	Buckets []Bucket `json:"buckets,omitempty"`
}

// Bucket is one non-empty histogram bucket: N values from Low up to the next bucket's Low.
type Bucket struct {
	Low int64 `json:"low_ns"`
	N   int64 `json:"n"`
}

// Quantile returns an estimate of the q-quantile (0 <= q <= 1): the middle of the bucket
// holding the value of rank ceil(q*Count), clamped to [Min, Max]. 0 when empty.
func (s HistogramSnapshot) Quantile(q float64) int64 {
	if s.Count == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(s.Count)))
	rank = min(max(rank, 1), s.Count)
	var seen int64
	for _, b := range s.Buckets {
		seen += b.N
		if seen >= rank {
			i := bucketOf(b.Low)
			lo, hi := bucketLow(i), bucketHigh(i)
			mid := lo + (hi-lo)/2
			return min(max(mid, s.Min), s.Max)
		}
	}
	return s.Max
}

// Mean is the arithmetic mean, 0 when empty.
func (s HistogramSnapshot) Mean() float64 {
	if s.Count == 0 {
		return 0
	}
	return float64(s.Sum) / float64(s.Count)
}

// Summary is the usual percentiles of a histogram, in milliseconds, for tables and JSON.
type Summary struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

// Summary computes the summary of s.
func (s HistogramSnapshot) Summary() Summary {
	return Summary{
		Count: s.Count,
		Mean:  s.Mean() / 1e6,
		P50:   ms(s.Quantile(0.50)),
		P90:   ms(s.Quantile(0.90)),
		P99:   ms(s.Quantile(0.99)),
		Max:   ms(s.Max),
	}
}

func ms(ns int64) float64 { return float64(ns) / 1e6 }
