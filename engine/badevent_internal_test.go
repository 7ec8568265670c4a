package engine

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"cotd/cot"
)

// TestRefuseRateLimitsItsLogLine drives refuse with read times chosen by the test: every bad
// event is counted, a connection logs at most one line per badEventLogEvery, and that line
// says how many drops went unlogged since the last one. Other errors still close.
func TestRefuseRateLimitsItsLogLine(t *testing.T) {
	var logs strings.Builder
	srv := &Server{log: zerolog.New(&logs)}
	ss := &session{id: 7, srv: srv, ln: &listener{kind: ListenerTCP}, remote: "192.0.2.1:4242"}
	bad := fmt.Errorf("wrapped: %w", cot.ErrImplausibleTime)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	for i, at := range []time.Duration{0, time.Second, 30 * time.Second, badEventLogEvery - 1, badEventLogEvery, badEventLogEvery + time.Second} {
		ss.readAt = base + int64(at)
		if err := ss.refuse(bad); err != nil {
			t.Fatalf("drop %d: refuse = %v, want nil (connection kept)", i, err)
		}
	}
	if n := srv.stats.BadEvents[BadEventTime].Value(); n != 6 {
		t.Errorf("counted %d, want 6", n)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d log lines, want 2 (at 0 and at one minute):\n%s", len(lines), logs.String())
	}
	for i, want := range []string{`"dropped_unlogged":0`, `"dropped_unlogged":3`} {
		if !strings.Contains(lines[i], want) || !strings.Contains(lines[i], `"conn":7`) ||
			!strings.Contains(lines[i], `"remote":"192.0.2.1:4242"`) || !strings.Contains(lines[i], `"bad_event":"implausible_time"`) {
			t.Errorf("line %d = %s, want %s with the connection's identity", i, lines[i], want)
		}
	}

	err := ss.refuse(fmt.Errorf("x: %w", cot.ErrMalformed))
	if reasonFor(err) != ReasonBadFrame {
		t.Errorf("a malformed document: refuse = %v, want a bad_frame close", err)
	}
}

func TestBadEventReasonNames(t *testing.T) {
	seen := map[string]bool{}
	for r := range numBadEventReasons {
		s := r.String()
		if s == "" || s == "unknown" || seen[s] {
			t.Errorf("reason %d has name %q", r, s)
		}
		seen[s] = true
	}
	if numBadEventReasons.String() != "unknown" {
		t.Error("out-of-range reason")
	}
}
