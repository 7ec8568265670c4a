package engine_test

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	et "cotd/engine/enginetest"
)

// sample reads one series from /metrics, 0 when absent.
func sample(t *testing.T, h *et.Harness, series string) float64 {
	t.Helper()
	v, _ := et.Sample(h.Metrics(t), series)
	return v
}

// A client sending markers as fast as it can is held to its inbound budget
// and closed rate_limited; the honest clients exchanging positions beside
// it are not closed and lose none of the positions owed to them.
func TestMarkerFlooderCostsHonestClientsNothing(t *testing.T) {
	h := et.Start(t, nil) // the default budget
	a := et.Dial(t, h.TCPAddr())
	b := et.Dial(t, h.TCPAddr())
	flood := et.Dial(t, h.TCPAddr())
	h.Joined(t, 3)

	var wrote atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		batch := []byte(strings.Repeat(et.Marker("FLOOD"), 200))
		for {
			n, err := flood.Conn.Write(batch)
			wrote.Add(int64(n))
			if err != nil {
				return
			}
		}
	}()
	const n = 100
	for i := range n {
		a.Send(et.SA("A", fmt.Sprintf("A-%d", i), "a-f-G-U-C"))
		b.Send(et.SA("B", fmt.Sprintf("B-%d", i), "a-f-G-U-C"))
	}
	h.WaitSample(t, `cotd_closes_total{reason="rate_limited"}`, 1)
	<-done
	if sample(t, h, "cotd_inbound_throttled_total") < 1 {
		t.Error("the flooder was never throttled")
	}
	barrier(t, a, "a-barrier", b)
	barrier(t, b, "b-barrier", a)
	count := func(c *et.Client, prefix string) int {
		k := 0
		for _, ev := range c.Events() {
			if ev.H.Type == "a-f-G-U-C" && strings.HasPrefix(ev.H.Callsign, prefix) {
				k++
			}
		}
		return k
	}
	// 1 % of 100 is less than one position: all are owed.
	if got := count(b, "A-"); got != n {
		t.Errorf("b received %d of a's %d positions", got, n)
	}
	if got := count(a, "B-"); got != n {
		t.Errorf("a received %d of b's %d positions", got, n)
	}
	for _, r := range []string{"slow_consumer_bytes", "slow_consumer_stalled"} {
		if v := sample(t, h, `cotd_closes_total{reason="`+r+`"}`); v != 0 {
			t.Errorf("%v honest clients closed %s", v, r)
		}
	}
	if h.Srv.Broker().Count() != 2 {
		t.Errorf("%d clients joined, want the two honest ones", h.Srv.Broker().Count())
	}
	t.Logf("the flooder wrote %d bytes before it was closed", wrote.Load())
}
