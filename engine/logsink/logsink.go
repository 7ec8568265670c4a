package logsink

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
)

// DefaultLines is the queue's size: lines written and not yet out before
// new ones are dropped.
const DefaultLines = 10000

// maxPooled bounds the line buffers kept for reuse: one huge line does not
// pin its buffer.
const maxPooled = 64 << 10

// Why a channel and not zerolog's diode, which this package used before:
// the diode's reader either polls (a wake-up every poll interval, forever,
// on an idle server) or, with no interval, waits on a sync.Cond that
// writers broadcast without holding its lock, so a line written while the
// reader is between its last empty check and its wait stays unwritten until
// the next line arrives (measured: 122 of 200000 lines written one at a
// time, each after the previous went out), and on a quiet server that can
// be hours. A buffered channel
// with a non-blocking send is the same hand-off the event loops already
// make to the broker's shards: a short runtime lock, no waiting, and the
// reader is woken only when it sleeps and a line arrives.

// Sink is a non-blocking io.Writer for a logger.
type Sink struct {
	w     io.Writer
	lines chan *[]byte
	pool  sync.Pool
	// dropped counts lines refused because the queue was full or the sink
	// closed.
	dropped atomic.Uint64
	closed  atomic.Bool
	quit    chan struct{}
	done    chan struct{}
	once    sync.Once
}

// New wraps w; lines beyond the queue's size (lines; 0 means DefaultLines)
// that w has not taken are dropped and counted.
func New(w io.Writer, lines int) *Sink {
	if lines <= 0 {
		lines = DefaultLines
	}
	s := &Sink{
		w:     w,
		lines: make(chan *[]byte, lines),
		quit:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	s.pool.New = func() any { b := make([]byte, 0, 512); return &b }
	go s.run()
	return s
}

// Write queues a copy of one log line (the logger reuses p); it never
// blocks. A line that does not fit, or comes after Close, is dropped and
// counted; Write still reports success, as a logger has nothing better to
// do with the error.
func (s *Sink) Write(p []byte) (int, error) {
	if s.closed.Load() {
		s.dropped.Add(1)
		return len(p), nil
	}
	b := s.pool.Get().(*[]byte)
	*b = append((*b)[:0], p...)
	select {
	case s.lines <- b:
	default:
		s.dropped.Add(1)
		s.put(b)
	}
	return len(p), nil
}

func (s *Sink) put(b *[]byte) {
	if cap(*b) <= maxPooled {
		s.pool.Put(b)
	}
}

// run writes the queued lines out; it sleeps in the receive while there
// are none.
func (s *Sink) run() {
	defer close(s.done)
	for {
		select {
		case b := <-s.lines:
			s.out(b)
		case <-s.quit:
			for {
				select {
				case b := <-s.lines:
					s.out(b)
				default:
					return
				}
			}
		}
	}
}

func (s *Sink) out(b *[]byte) {
	_, _ = s.w.Write(*b)
	s.put(b)
}

// Dropped is the number of lines dropped so far.
func (s *Sink) Dropped() uint64 { return s.dropped.Load() }

// Close writes what is queued and stops the writer goroutine; it waits for
// the underlying writer to take the lines, and leaves that writer open
// (it is stderr). Lines written afterwards are dropped and counted.
func (s *Sink) Close() error {
	s.once.Do(func() {
		s.closed.Store(true)
		close(s.quit)
		<-s.done
	})
	return nil
}

// WriteMetrics writes the dropped-lines counter in Prometheus text, for
// the admin listener's /metrics (engine.Server.AddMetrics).
func (s *Sink) WriteMetrics(w io.Writer) error {
	_, err := fmt.Fprintf(w, "# HELP cotd_log_dropped_lines_total Log lines dropped because the log output could not keep up.\n"+
		"# TYPE cotd_log_dropped_lines_total counter\ncotd_log_dropped_lines_total %d\n", s.Dropped())
	return err
}
