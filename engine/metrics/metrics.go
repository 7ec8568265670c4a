package metrics

import (
	"bufio"
	"io"
	"strconv"
	"sync/atomic"
)

// Counter only goes up.
type Counter struct{ n atomic.Uint64 }

// Inc adds one.
func (c *Counter) Inc() { c.n.Add(1) }

// Add adds v.
func (c *Counter) Add(v uint64) { c.n.Add(v) }

// Value reads the counter.
func (c *Counter) Value() uint64 { return c.n.Load() }

// Gauge goes up and down.
type Gauge struct{ n atomic.Int64 }

// Add adds v (which may be negative).
func (g *Gauge) Add(v int64) { g.n.Add(v) }

// Set replaces the value.
func (g *Gauge) Set(v int64) { g.n.Store(v) }

// Value reads the gauge.
func (g *Gauge) Value() int64 { return g.n.Load() }

// Writer writes the Prometheus text format (version 0.0.4). Errors are
// sticky and reported by Flush.
type Writer struct {
	w *bufio.Writer
}

// NewWriter wraps w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: bufio.NewWriter(w)} }

// Family starts a metric family. typ is "counter", "gauge" or "histogram".
func (w *Writer) Family(name, help, typ string) {
	w.w.WriteString("# HELP ")
	w.w.WriteString(name)
	w.w.WriteByte(' ')
	w.w.WriteString(help)
	w.w.WriteString("\n# TYPE ")
	w.w.WriteString(name)
	w.w.WriteByte(' ')
	w.w.WriteString(typ)
	w.w.WriteByte('\n')
}

// Sample writes one sample. labels alternate name, value.
func (w *Writer) Sample(name string, v float64, labels ...string) {
	w.w.WriteString(name)
	if len(labels) > 0 {
		w.w.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				w.w.WriteByte(',')
			}
			w.w.WriteString(labels[i])
			w.w.WriteString(`="`)
			writeEscaped(w.w, labels[i+1])
			w.w.WriteByte('"')
		}
		w.w.WriteByte('}')
	}
	w.w.WriteByte(' ')
	w.w.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
	w.w.WriteByte('\n')
}

// Flush writes what is buffered.
func (w *Writer) Flush() error { return w.w.Flush() }

func writeEscaped(w *bufio.Writer, s string) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			w.WriteString(`\\`)
		case '"':
			w.WriteString(`\"`)
		case '\n':
			w.WriteString(`\n`)
		default:
			w.WriteByte(c)
		}
	}
}

// One writes a family with a single unlabelled sample.
func (w *Writer) One(name, help, typ string, v float64) {
	w.Family(name, help, typ)
	w.Sample(name, v)
}

// Enum is a small label enum: the values 0..n-1 of a named type with
// String, as the packages that count use for reasons and kinds.
type Enum interface {
	~uint8 | ~uint32
	String() string
}

// Vec writes a family with one sample per value of an enum below n,
// labelled label=value.String().
func Vec[E Enum](w *Writer, name, help, typ, label string, from, n E, value func(E) float64) {
	w.Family(name, help, typ)
	for e := from; e < n; e++ {
		w.Sample(name, value(e), label, e.String())
	}
}
