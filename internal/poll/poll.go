package poll

import (
	"testing"
	"time"
)

// Interval is how often Until checks its condition: short enough to add
// little to a passing test, long enough not to steal a loaded CPU.
const Interval = 2 * time.Millisecond

// Until checks cond every Interval until it holds, and fails tb with what
// if it still does not after within. within bounds a failure; it is not a
// measurement: a passing test returns as soon as cond holds.
func Until(tb testing.TB, what string, within time.Duration, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(Interval)
	}
}
