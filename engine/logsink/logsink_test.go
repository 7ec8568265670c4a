package logsink_test

import (
	"bytes"
	"io"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
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

// The writer goroutine sleeps until a line arrives and then writes it at
// once: in a bubble where time stands still until every goroutine waits, a
// line is out as soon as the writer is idle again. A writer that polled on
// a timer (or missed the wake-up) would still be asleep with the line
// queued, and an idle server would pay for its every tick.
func TestIdleWriterWakesOnlyForALine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf syncBuf
		s := logsink.New(&buf, 16)
		synctest.Wait() // the writer is asleep, nothing queued
		start := time.Now()
		for i := 1; i <= 3; i++ {
			if _, err := s.Write([]byte("line\n")); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
			if n := strings.Count(buf.String(), "\n"); n != i {
				t.Fatalf("after line %d the idle writer had written %d", i, n)
			}
		}
		if !time.Now().Equal(start) {
			t.Errorf("the bubble's clock moved: something in the sink waited on a timer")
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

// signalled is an output that reports each line it takes.
type signalled chan struct{}

func (s signalled) Write(p []byte) (int, error) { s <- struct{}{}; return len(p), nil }

// Lines written one at a time, each after the previous went out, all go
// out: every hand-off to a writer about to sleep wakes it. A lost wake-up
// (zerolog's diode without a poll interval loses about one in 1600 this
// way) leaves a line queued until the next one, which here never comes.
func TestEveryLoneLineGoesOut(t *testing.T) {
	out := make(signalled)
	s := logsink.New(out, 0)
	for i := range 20000 {
		_, _ = s.Write([]byte("x\n"))
		select {
		case <-out:
		case <-time.After(20 * time.Second):
			t.Fatalf("line %d was never written", i)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// Close writes what is queued before it returns; lines after it are
// counted as dropped.
func TestCloseWritesQueuedLines(t *testing.T) {
	var out syncBuf
	s := logsink.New(&out, 0)
	for range 500 {
		_, _ = s.Write([]byte("x\n"))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "\n"); n != 500 {
		t.Errorf("%d of 500 lines out at Close", n)
	}
	_, _ = s.Write([]byte("late\n"))
	if d := s.Dropped(); d != 1 {
		t.Errorf("dropped %d, want the one line after Close", d)
	}
}

// BenchmarkWriteBurst is the cost a logging event loop or shard pays per
// line when every processor logs flat out: the writer cannot keep up, so
// most lines are dropped (dropped/op), which is what the queue is for.
func BenchmarkWriteBurst(b *testing.B) {
	s := logsink.New(io.Discard, 0)
	defer s.Close()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_, _ = s.Write(benchLine)
		}
	})
	b.ReportMetric(float64(s.Dropped())/float64(b.N), "dropped/op")
}

// BenchmarkWriteLone is the caller's cost of a line that finds the writer
// asleep, the usual case on a server that logs now and then: the hand-off
// wakes it. ns/write is Write alone; ns/op adds the writer's wake-up and
// its write.
func BenchmarkWriteLone(b *testing.B) {
	out := make(signalled)
	s := logsink.New(out, 0)
	defer s.Close()
	var in time.Duration
	for b.Loop() {
		start := time.Now()
		_, _ = s.Write(benchLine)
		in += time.Since(start)
		<-out
	}
	b.ReportMetric(float64(in.Nanoseconds())/float64(b.N), "ns/write")
}

var benchLine = []byte(`{"level":"warn","conn":123,"remote":"192.0.2.1:40000","reason":"idle","message":"connection closed"}` + "\n")
