package bench

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

// The cost is the server's CPU between the window's ends over the deliveries between
// them: the ramp before and the drain after are not charged.
func TestCostOverTheSteadyWindow(t *testing.T) {
	series := []Sample{
		{T: 1, Delivered: 10, ServerCPU: 0.5},    // ramp: handshakes, not counted
		{T: 2, Delivered: 100, ServerCPU: 0.9},   // ramp
		{T: 3, Delivered: 1000, ServerCPU: 1.0},  // the window's start (from = 3)
		{T: 4, Delivered: 4000, ServerCPU: 1.01}, // in the window
		{T: 5, Delivered: -1, ServerCPU: -1},     // no reading this second: skipped
		{T: 6, Delivered: 6001, ServerCPU: 1.03}, // the window's end (to = 6.5)
		{T: 7, Delivered: 5, ServerCPU: 1.2},     // drain: not counted
	}
	c := costOver(series, 3, 6.5)
	if c == nil {
		t.Fatal("no cost")
	}
	// 0.03 s over 4000 - 1 + 6001 = 10000 deliveries: 3 µs each.
	if c.From != 3 || c.To != 6 || c.Deliveries != 10000 || c.CPUSeconds != 0.03 || c.MicrosPerDelivery != 3 || c.CPUPct != 1 {
		t.Errorf("cost %+v", c)
	}
	if !strings.Contains(c.String(), "3.00 µs server CPU per delivery") {
		t.Errorf("line %q", c)
	}

	// No server readings, or nothing delivered in the window: not measured.
	blind := []Sample{{T: 1, Delivered: 5, ServerCPU: -1}, {T: 2, Delivered: 5, ServerCPU: -1}}
	if c := costOver(blind, 0, 3); c != nil {
		t.Errorf("cost without readings: %+v", c)
	}
	idle := []Sample{{T: 1, ServerCPU: 1}, {T: 2, ServerCPU: 1.5}}
	if c := costOver(idle, 0, 3); c != nil {
		t.Errorf("cost without deliveries: %+v", c)
	}
	if us, ok := microsPerDelivery(series[2], series[3]); !ok || us < 2.49 || us > 2.51 {
		t.Errorf("per second: %v %v, want 2.5", us, ok)
	}
	if _, ok := microsPerDelivery(series[3], series[4]); ok {
		t.Error("per second without a reading")
	}
}

// A run that samples the server's process reports its CPU per delivery, in the table and
// the JSON, and a criterion on it holds or fails. The fake server runs in this process,
// so the test samples itself: the figure then charges the harness too, but it is read
// from /proc and divided as for a real server.
func TestRunReportsCPUPerDelivery(t *testing.T) {
	srv := startFake(t, faultNone, nil)
	sc := testScenario(t, func(sc *Scenario) {
		sc.Target.TCP = srv.addr()
		sc.Pass.MaxCPUMicrosPerDelivery = 1e9 // anything measured passes
	})
	rep := runScenario(t, sc, Options{PID: os.Getpid()})
	c := rep.Cost
	if c == nil {
		t.Fatalf("no cost; series %+v", rep.Series)
	}
	var inWindow int64
	for _, s := range rep.Series {
		if t := round3(s.T); t > c.From && t <= c.To {
			inWindow += s.Delivered
		}
	}
	if c.Deliveries <= 0 || c.Deliveries != inWindow || c.CPUSeconds <= 0 || c.MicrosPerDelivery <= 0 {
		t.Errorf("cost %+v, deliveries in the window %d", c, inWindow)
	}
	if want := c.CPUSeconds * 1e6 / float64(c.Deliveries); c.MicrosPerDelivery < want*0.99 || c.MicrosPerDelivery > want*1.01 {
		t.Errorf("%v µs per delivery, want %v", c.MicrosPerDelivery, want)
	}
	if !rep.Pass {
		t.Errorf("criteria %+v", rep.Criteria)
	}
	var out bytes.Buffer
	if err := rep.WriteText(&out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "µs server CPU per delivery") {
		t.Errorf("table lacks the cost:\n%s", out.String())
	}
	// No /metrics was given: the server delay line says why it is absent.
	if rep.ServerDelay != nil || rep.ServerDelayAbsent != delayNoMetrics || !strings.Contains(out.String(), "- ("+delayNoMetrics+")") {
		t.Errorf("server delay %+v, absent %q:\n%s", rep.ServerDelay, rep.ServerDelayAbsent, out.String())
	}
	sc.Pass.MaxCPUMicrosPerDelivery = c.MicrosPerDelivery / 2
	rep.evaluate(sc)
	if rep.Pass {
		t.Errorf("cost %v over a limit of %v passed", c.MicrosPerDelivery, sc.Pass.MaxCPUMicrosPerDelivery)
	}
	// Without the server's process nothing is measured, and a limit on it fails.
	rep.Cost = nil
	rep.evaluate(sc)
	if rep.Pass {
		t.Error("an unmeasured cost passed its criterion")
	}
	// Nor does a limit on the server delay pass when it was not measured.
	sc.Pass.MaxCPUMicrosPerDelivery = 0
	sc.Pass.MaxServerP99Delay = dur(time.Hour)
	rep.evaluate(sc)
	var found bool
	for _, c := range rep.Criteria {
		if strings.HasPrefix(c.Name, "server_p99_delay_ms (not measured") {
			found = !c.Pass
		}
	}
	if rep.Pass || !found {
		t.Errorf("an unmeasured server delay passed its criterion: %+v", rep.Criteria)
	}
}
