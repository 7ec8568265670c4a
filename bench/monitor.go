package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// monitor samples the run once a second: the counters into the time series, the server's
// and the harness's /proc, and the progress line.
type monitor struct {
	r        *runner
	samp     *sampler
	progress io.Writer
	server   *procSampler
	self     *procSampler
	// delay scrapes the server's delay histogram at the steady window's ends; nil when
	// the server's /metrics is unknown.
	delay *delayScraper

	series      []Sample
	serverProcs []ProcSample
	selfProcs   []ProcSample
	lastProcs   time.Time
	// cpu0 is the server's CPU time at the start (-1: unknown), for the first second's
	// cost on the progress line.
	cpu0 float64
}

func newMonitor(r *runner, opt Options, pid int, sp *Spawned) *monitor {
	m := &monitor{r: r, samp: newSampler(r.st, r.start), progress: opt.Progress, self: newProcSampler(os.Getpid())}
	if opt.MetricsURL != "" {
		from, to := r.sc.steadyWindow()
		m.delay = newDelayScraper(opt.MetricsURL, from, to)
	}
	if pid > 0 {
		m.server = newProcSampler(pid)
	}
	m.cpu0 = m.tickProcs(time.Now())
	return m
}

// loop ticks every second until ctx ends, then takes a last sample.
func (m *monitor) loop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			m.tick(time.Now())
			return
		case <-t.C:
			// Not the tick's own time: when the box is busy the tick is late, and the CPU
			// share must be taken over the time that really passed.
			m.tick(time.Now())
		}
	}
}

func (m *monitor) tick(now time.Time) {
	s := m.samp.sample(now)
	// Read at the same moment as the counters, so that the CPU between two samples goes
	// with the deliveries between them.
	s.ServerCPU = m.tickProcs(now)
	var prev Sample
	if len(m.series) > 0 {
		prev = m.series[len(m.series)-1]
	} else {
		prev = Sample{ServerCPU: m.cpu0}
	}
	if m.delay != nil {
		m.delay.tick(len(m.series) == 0, s.T)
	}
	m.series = append(m.series, s)
	if m.progress != nil {
		st := m.r.st
		cost := ""
		if us, ok := microsPerDelivery(prev, s); ok {
			cost = fmt.Sprintf("  cpu %.2fµs/delivery", us)
		}
		fmt.Fprintf(m.progress, "\r%6.1fs/%s  open %d/%d  stalled %d  sent %d  delivered %d (%d/s)  p99 %.1fms%s  errors %d\x1b[K",
			s.T, m.r.sc.Duration.Duration, s.Open, m.r.honest, s.Stalled, st.sentTotal(), st.deliveredTotal(),
			s.Delivered, s.P99, cost, st.errorTotal())
	}
}

// tickProcs reads the server's CPU time at now and returns it in seconds (-1: no server
// or no reading), and takes a /proc sample of the server and the harness when one is due.
// The server's /proc/PID/stat is read once for both figures.
func (m *monitor) tickProcs(now time.Time) (serverCPU float64) {
	serverCPU = -1
	var ticks int64
	var err error
	if m.server != nil {
		if ticks, err = m.server.ticks(); err == nil {
			serverCPU = float64(ticks) / clockTicks
		}
	}
	// The last tick can come right after the previous one; a CPU share over a few
	// milliseconds is noise.
	if !m.lastProcs.IsZero() && now.Sub(m.lastProcs) < 500*time.Millisecond {
		return serverCPU
	}
	m.lastProcs = now
	if serverCPU >= 0 {
		if ps, err := m.server.sampleTicks(now, m.r.start, ticks); err == nil {
			m.serverProcs = append(m.serverProcs, ps)
		}
	}
	if ps, err := m.self.sample(now, m.r.start); err == nil {
		m.selfProcs = append(m.selfProcs, ps)
	}
	return serverCPU
}

// IsTerminal reports whether f is a terminal (the progress line is for people, not logs).
func IsTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
