package logsink_test

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"cotd/engine/logsink"
	"cotd/internal/poll"
)

type stalled struct{ release chan struct{} }

func (s stalled) Write(p []byte) (int, error) { <-s.release; return len(p), nil }

// Writes return at once while the output is stalled, and what cannot wait
// in the ring is counted as dropped before the output moves again.
func TestStalledOutputDropsAndCounts(t *testing.T) {
	out := stalled{release: make(chan struct{})}
	s := logsink.New(out, 16)
	for range 200 {
		if _, err := s.Write([]byte("line\n")); err != nil {
			t.Fatal(err)
		}
	}
	// 200 written, at most 16 in the ring and one in the output's hands.
	if d := s.Dropped(); d < 200-16-1 {
		t.Errorf("dropped %d, want at least %d", d, 200-16-1)
	}
	close(out.release)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// With an output that keeps up, every line goes out, none is dropped.
func TestLinesGoOut(t *testing.T) {
	var buf syncBuf
	s := logsink.New(&buf, 0)
	for i := range 100 {
		_, _ = s.Write([]byte(strings.Repeat("x", i%7) + "\n"))
	}
	poll.Until(t, "100 lines out", 20*time.Second, func() bool { return strings.Count(buf.String(), "\n") == 100 })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if d := s.Dropped(); d != 0 {
		t.Errorf("dropped %d", d)
	}
}
