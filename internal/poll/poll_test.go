package poll

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestUntilReturnsWhenTheConditionHolds(t *testing.T) {
	var n atomic.Int64
	Until(t, "three checks", time.Minute, func() bool { return n.Add(1) == 3 })
	if n.Load() != 3 {
		t.Errorf("checked %d times, want 3", n.Load())
	}
}

// recorder is a testing.TB whose Fatalf records instead of stopping the test.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = format
}

func TestUntilFailsAfterTheBound(t *testing.T) {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Fatalf does not stop this goroutine here, so the condition turns
		// true once the failure was recorded, to end the loop.
		Until(r, "never", 10*time.Millisecond, func() bool { return r.failed != "" })
	}()
	<-done
	if r.failed == "" {
		t.Error("Until did not fail when the condition never held")
	}
}
