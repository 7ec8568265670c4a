package bench

import "fmt"

// CostReport is what the server's CPU paid per delivery: its CPU time (utime+stime from
// /proc/PID/stat, all threads) over the measurement window divided by the deliveries the
// clients received in that window. The window is the steady part of the send phase, the
// one SteadyPerSec is taken over: from one second after the ramp to the end of the send
// phase. Connects, TLS handshakes and SA replays of the ramp and the idle drain after the
// send phase are left out, so that the figure is the cost of the steady traffic.
//
// It is an upper bound of the delivery's own cost: everything else the server did in the
// window (reading and routing the senders' events, pings, timers, the admin listener, the
// Go runtime) is charged to the deliveries too, which is what an operator sizing a server
// needs. /proc counts in ticks of 10 ms: over a window of 15 s the figure is good to about
// a tenth of a percent at a busy server, worse at an idle one.
type CostReport struct {
	// From and To bound the window, in seconds since the start of the run.
	From float64 `json:"from_s"`
	To   float64 `json:"to_s"`
	// CPUSeconds is the server's CPU time over the window; Deliveries the deliveries in it.
	CPUSeconds float64 `json:"cpu_s"`
	Deliveries int64   `json:"deliveries"`
	// MicrosPerDelivery is CPUSeconds per delivery, in microseconds.
	MicrosPerDelivery float64 `json:"cpu_us_per_delivery"`
	// CPUPct is the server's CPU over the window in percent of one core (200 = two cores).
	CPUPct float64 `json:"cpu_pct"`
}

// costOver computes the cost from the time series over the window (from, to]: the CPU
// between the samples windowEnds picks among those with a reading, and the deliveries of
// the samples after the first through the last. nil when the server was not sampled or the
// window holds no delivery.
func costOver(series []Sample, from, to float64) *CostReport {
	a, b, ok := windowEnds(series, func(s Sample) (float64, bool) { return s.T, s.ServerCPU >= 0 }, from, to)
	if !ok {
		return nil
	}
	cpu := series[b].ServerCPU - series[a].ServerCPU
	c := &CostReport{From: round3(series[a].T), To: round3(series[b].T), CPUSeconds: round3(cpu)}
	for _, s := range series[a+1 : b+1] {
		c.Deliveries += s.Delivered
	}
	if c.Deliveries == 0 {
		return nil
	}
	c.MicrosPerDelivery = round3(cpu * 1e6 / float64(c.Deliveries))
	if dt := series[b].T - series[a].T; dt > 0 {
		c.CPUPct = round3(100 * cpu / dt)
	}
	return c
}

// windowEnds picks the two readings a figure over the window (from, to] is taken between:
// a, the last at or before from (the first one when none is), and b, the last at or before
// to. xs are in time order; at gives an element's time, and false when it holds no reading
// (it is then skipped). ok is false when there is no such pair. The cost and the server
// delay both choose their ends here, so that they cover the same window.
func windowEnds[E any](xs []E, at func(E) (float64, bool), from, to float64) (a, b int, ok bool) {
	a, b = -1, -1
	for i, x := range xs {
		t, has := at(x)
		if !has {
			continue // no reading here: the window starts or ends at another
		}
		if a < 0 || t <= from {
			a = i
		}
		if t <= to {
			b = i
		}
	}
	return a, b, a >= 0 && b > a
}

// microsPerDelivery is the CPU cost per delivery between two consecutive samples, for
// the live line and the chart; ok is false when either has no reading or nothing was
// delivered.
func microsPerDelivery(prev, cur Sample) (float64, bool) {
	if prev.ServerCPU < 0 || cur.ServerCPU < 0 || cur.Delivered <= 0 {
		return 0, false
	}
	return (cur.ServerCPU - prev.ServerCPU) * 1e6 / float64(cur.Delivered), true
}

// String is the report line: "1.52 µs per delivery (…)".
func (c *CostReport) String() string {
	return fmt.Sprintf("%.2f µs server CPU per delivery (%.2f s CPU, %.0f%% of a core, over %d deliveries from %.1f s to %.1f s)",
		c.MicrosPerDelivery, c.CPUSeconds, c.CPUPct, c.Deliveries, c.From, c.To)
}
