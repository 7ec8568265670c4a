package logsink

import (
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog/diode"
)

// DefaultLines is the ring's size: lines written and not yet out before
// new ones are dropped.
const DefaultLines = 10000

// pollEvery is how often the writer goroutine looks for lines: the most a
// line waits before it is written.
const pollEvery = 10 * time.Millisecond

// Sink is a non-blocking io.Writer for a logger.
type Sink struct {
	d    diode.Writer
	size uint64
	// in counts lines written to the sink, out lines the output took.
	in, out atomic.Uint64
	// missed is what the diode reported dropped. It notices a drop only
	// when its reader next reads, which a stalled output delays without
	// end; Dropped also counts what cannot be in the ring any more.
	missed atomic.Uint64
	// seen is the highest figure Dropped returned: a counter never goes
	// back.
	seen atomic.Uint64
}

// counted passes lines to the output and counts those it took.
type counted struct {
	w io.Writer
	s *Sink
}

func (c counted) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.s.out.Add(1)
	return n, err
}

// New wraps w; lines beyond the ring's size (lines; 0 means DefaultLines)
// that w has not taken are dropped and counted.
func New(w io.Writer, lines int) *Sink {
	if lines <= 0 {
		lines = DefaultLines
	}
	s := &Sink{size: uint64(lines)}
	s.d = diode.NewWriter(counted{w: w, s: s}, lines, pollEvery, func(missed int) { s.missed.Add(uint64(missed)) })
	return s
}

// Write queues one log line; it never blocks.
func (s *Sink) Write(p []byte) (int, error) {
	s.in.Add(1)
	return s.d.Write(p)
}

// Dropped is the number of lines dropped so far: what the diode reported,
// or, while the output is stalled, the lines written that neither went
// out nor fit in the ring (one more may be in the output's hands).
func (s *Sink) Dropped() uint64 {
	d := s.missed.Load()
	out := s.out.Load()
	if in := s.in.Load(); in > out+s.size+1 {
		d = max(d, in-out-s.size-1)
	}
	for {
		seen := s.seen.Load()
		if d <= seen {
			return seen
		}
		if s.seen.CompareAndSwap(seen, d) {
			return d
		}
	}
}

// Close writes what is queued and stops the writer goroutine. It waits for
// the underlying writer to take the lines.
func (s *Sink) Close() error { return s.d.Close() }

// WriteMetrics writes the dropped-lines counter in Prometheus text, for
// the admin listener's /metrics (engine.Server.AddMetrics).
func (s *Sink) WriteMetrics(w io.Writer) error {
	_, err := fmt.Fprintf(w, "# HELP cotd_log_dropped_lines_total Log lines dropped because the log output could not keep up.\n"+
		"# TYPE cotd_log_dropped_lines_total counter\ncotd_log_dropped_lines_total %d\n", s.Dropped())
	return err
}
