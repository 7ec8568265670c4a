package engine_test

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"cotd/configs"
	et "cotd/engine/enginetest"
)

// sample reads one series from /metrics, 0 when absent.
func sample(t *testing.T, h *et.Harness, series string) float64 {
	t.Helper()
	v, _ := et.Sample(h.Metrics(t), series)
	return v
}

// Clients sending markers and positions as fast as they can are held to
// their inbound budget and closed rate_limited; the honest clients
// exchanging positions beside them are not closed and lose none of the
// positions owed to them.
func TestFloodersCostHonestClientsNothing(t *testing.T) {
	h := et.Start(t, nil) // the default budget
	a := et.Dial(t, h.TCPAddr())
	b := et.Dial(t, h.TCPAddr())
	markers := et.Dial(t, h.TCPAddr())
	positions := et.Dial(t, h.TCPAddr())
	h.Joined(t, 4)

	var wrote atomic.Int64
	done := make(chan struct{}, 2)
	flood := func(c *et.Client, doc string) {
		defer func() { done <- struct{}{} }()
		batch := []byte(strings.Repeat(doc, 200))
		for {
			n, err := c.Conn.Write(batch)
			wrote.Add(int64(n))
			if err != nil {
				return
			}
		}
	}
	go flood(markers, et.Marker("FLOOD"))
	go flood(positions, et.SA("FLOOD-POS", "FLOOD", "a-f-G-U-C"))
	const n = 100
	for i := range n {
		a.Send(et.SA("A", fmt.Sprintf("A-%d", i), "a-f-G-U-C"))
		b.Send(et.SA("B", fmt.Sprintf("B-%d", i), "a-f-G-U-C"))
	}
	h.WaitSample(t, `cotd_closes_total{reason="rate_limited"}`, 2)
	<-done
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
	t.Logf("the flooders wrote %d bytes before they were closed", wrote.Load())
}

// partialFrame is the start of an event that never ends, n bytes long.
func partialFrame(n int) string {
	head := `<event version="2.0" uid="P" type="a-h-G" how="h-g-i-g-o" time="2020-01-01T00:00:00Z" start="2020-01-01T00:00:00Z" stale="2020-01-01T00:00:00Z"><detail><remarks>`
	return head + strings.Repeat("x", n-len(head))
}

// Past limits.max_partial_bytes across the server, the connection holding
// the most in partial frames is closed; the others, honest or not, stay.
func TestPartialFrameBudgetClosesTheLargestHolder(t *testing.T) {
	h := et.Start(t, func(c *configs.Config) {
		c.Limits.MaxFrameBytes = 64 << 10
		c.Limits.MaxPartialBytes = 100 << 10
	})
	a, b := et.Dial(t, h.TCPAddr()), et.Dial(t, h.TCPAddr())
	big, small1, small2 := et.Dial(t, h.TCPAddr()), et.Dial(t, h.TCPAddr()), et.Dial(t, h.TCPAddr())
	h.Joined(t, 5)
	held := func(want float64) {
		t.Helper()
		et.Eventually(t, fmt.Sprintf("%v partial bytes held", want), func() bool {
			v, _ := et.Sample(h.Metrics(t), "cotd_partial_frame_bytes")
			return v >= want
		})
	}
	big.Send(partialFrame(50 << 10))
	held(50 << 10)
	small1.Send(partialFrame(30 << 10))
	held(80 << 10)
	small2.Send(partialFrame(30 << 10)) // 110 KiB: over
	big.Closed()
	h.WaitSample(t, `cotd_closes_total{reason="partial_frames"}`, 1)
	et.Eventually(t, "the closed connection's bytes given back", func() bool {
		v, _ := et.Sample(h.Metrics(t), "cotd_partial_frame_bytes")
		return v == 60<<10
	})
	barrier(t, a, "after-eviction", b)
	h.Joined(t, 4)
	if v := sample(t, h, `cotd_closes_total{reason="partial_frames"}`); v != 1 {
		t.Errorf("%v connections closed for the budget, want 1", v)
	}
}

// A client-supplied string is cut in log lines.
func TestLongCallsignIsCutInLogs(t *testing.T) {
	h := et.Start(t, nil)
	a, b := et.Dial(t, h.TCPAddr()), et.Dial(t, h.TCPAddr())
	h.Joined(t, 2)
	long := strings.Repeat("C", 100<<10)
	a.Send(et.SA("LONG", long, "a-f-G-U-C"))
	b.Expect("the SA", et.UID("LONG"))
	et.Eventually(t, "identified logged", func() bool { return strings.Contains(h.Logs.String(), "client identified") })
	if strings.Contains(h.Logs.String(), long[:1024]) {
		t.Error("a 100 KiB callsign was logged in full")
	}
}
