package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

func TestBucketLayout(t *testing.T) {
	for i := range numBuckets {
		lo := bucketLow(i)
		if got := bucketOf(lo); got != i {
			t.Fatalf("bucketOf(bucketLow(%d) = %d) = %d", i, lo, got)
		}
		if hi := bucketHigh(i); bucketOf(hi) != i {
			t.Fatalf("bucketOf(bucketHigh(%d) = %d) = %d", i, hi, bucketOf(hi))
		}
		if i > 0 && bucketHigh(i-1)+1 != lo {
			t.Fatalf("gap between buckets %d and %d", i-1, i)
		}
		// Relative width bound: a bucket spans at most 1/subCount of its low value.
		if lo >= 2*subCount && float64(bucketHigh(i)-lo+1)/float64(lo) > 1.0/subCount+1e-12 && i < numBuckets-1 {
			t.Fatalf("bucket %d [%d, %d] wider than 1/%d", i, lo, bucketHigh(i), subCount)
		}
	}
	if bucketOf(math.MaxInt64) != numBuckets-1 || bucketOf(-5) != 0 {
		t.Errorf("extremes: %d %d", bucketOf(math.MaxInt64), bucketOf(-5))
	}
}

// exactQuantile is the value of rank ceil(q*n) in sorted (the definition Quantile estimates).
func exactQuantile(sorted []int64, q float64) int64 {
	r := int(math.Ceil(q * float64(len(sorted))))
	return sorted[min(max(r, 1), len(sorted))-1]
}

func TestQuantilesAgainstKnownDistributions(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name string
		gen  func() int64
	}{
		{"uniform 0..10ms", func() int64 { return rng.Int64N(10_000_000) }},
		{"exponential mean 2ms", func() int64 { return int64(rng.ExpFloat64() * 2e6) }},
		{"lognormal", func() int64 { return int64(math.Exp(rng.NormFloat64()*1.5 + 13)) }},
		{"small integers", func() int64 { return rng.Int64N(100) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := NewHistogram()
			vals := make([]int64, 200_000)
			var sum int64
			for i := range vals {
				vals[i] = tc.gen()
				sum += vals[i]
				h.Record(vals[i])
			}
			slices.Sort(vals)
			s := h.Snapshot()
			if s.Count != int64(len(vals)) || s.Min != vals[0] || s.Max != vals[len(vals)-1] || s.Sum != sum {
				t.Errorf("count %d min %d max %d sum %d; want %d %d %d %d", s.Count, s.Min, s.Max, s.Sum, len(vals), vals[0], vals[len(vals)-1], sum)
			}
			for _, q := range []float64{0.001, 0.1, 0.5, 0.9, 0.99, 0.999, 1} {
				want, got := exactQuantile(vals, q), s.Quantile(q)
				tol := max(float64(want)/subCount, 1)
				if math.Abs(float64(got-want)) > tol {
					t.Errorf("q%.3f = %d, want %d ± %.0f", q, got, want, tol)
				}
			}
		})
	}
}

func TestHistogramEmptyAndReset(t *testing.T) {
	h := NewHistogram()
	if s := h.Snapshot(); s.Count != 0 || s.Quantile(0.99) != 0 || s.Mean() != 0 || s.Min != 0 || len(s.Buckets) != 0 {
		t.Errorf("empty snapshot %+v", s)
	}
	h.Record(5)
	h.Record(-3) // counts as 0
	if s := h.Snapshot(); s.Min != 0 || s.Max != 5 || s.Count != 2 {
		t.Errorf("snapshot %+v", s)
	}
	h.Reset()
	if s := h.Snapshot(); s.Count != 0 || len(s.Buckets) != 0 {
		t.Errorf("after reset %+v", s)
	}
}

func TestHistogramConcurrentRecord(t *testing.T) {
	h := NewHistogram()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10_000 {
				h.Record(int64(g*10_000 + i))
			}
		}()
	}
	wg.Wait()
	s := h.Snapshot()
	var n int64
	for _, b := range s.Buckets {
		n += b.N
	}
	if s.Count != 80_000 || n != 80_000 || s.Min != 0 || s.Max != 79_999 {
		t.Errorf("count %d (buckets %d) min %d max %d", s.Count, n, s.Min, s.Max)
	}
}

func TestSummaryInMilliseconds(t *testing.T) {
	h := NewHistogram()
	for range 100 {
		h.Record(2_000_000) // 2 ms
	}
	s := h.Snapshot().Summary()
	if s.Count != 100 || math.Abs(s.P50-2) > 2.0/subCount || s.Max != 2 || s.Mean != 2 {
		t.Errorf("summary %+v", s)
	}
}
