package engine_test

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"cotd/configs"
	"cotd/engine/broker"
	et "cotd/engine/enginetest"
)

// BenchmarkFanout measures broadcast through a real server over loopback:
// one publisher, N subscribers, every SA delivered to all N. The publisher
// keeps a bounded window of events in flight (it waits for the slowest
// subscriber), so the figure is lossless throughput, not how fast the
// server can drop. Subscribers share the machine's two cores with the
// server, so the server's share is lower than on a dedicated box.
//
// Metrics: deliveries/s; p99-read-to-write-us, the server's own delay from
// reading a frame to handing it to a subscriber's socket (bucket upper
// bound); drops, which must be 0.
func BenchmarkFanout(b *testing.B) {
	for _, subs := range []int{100, 500} {
		b.Run(fmt.Sprintf("subs=%d", subs), func(b *testing.B) { benchFanout(b, subs, 0) })
	}
}

// BenchmarkFanoutPaced holds a fixed load instead of saturating: 300 SAs a
// second to 300 subscribers is 90,000 deliveries a second, the load of 300
// EUDs reporting once a second. Its p99 is the server's delay at that load.
// Run it with -benchtime 3000x (ten seconds).
func BenchmarkFanoutPaced(b *testing.B) {
	b.Run("subs=300/rate=300", func(b *testing.B) { benchFanout(b, 300, 300) })
}

// benchFanout publishes b.N SAs to subs subscribers, rate per second (0:
// as fast as the slowest subscriber allows).
func benchFanout(b *testing.B, subs, rate int) {
	h := et.Start(b, func(c *configs.Config) {
		c.Log.Level = "warn"
		c.SA.Replay = false
		c.Limits.OutboundSoftBytes = 8 << 20
		c.Limits.OutboundHardBytes = 32 << 20
	})
	counts := make([]atomic.Int64, subs)
	for i := range subs {
		conn, err := net.Dial("tcp", h.TCPAddr())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = conn.Close() })
		go countEvents(conn, &counts[i])
	}
	pub, err := net.Dial("tcp", h.TCPAddr())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = pub.Close() })
	h.Joined(b, subs+1)

	const batch, window = 16, 64
	sa := et.SA("ANDROID-pub", "PUB", "a-f-G-U-C")
	sa = sa[strings.Index(sa, "<event"):]
	batchBytes := []byte(strings.Repeat(sa, batch))
	slowest := func() int64 {
		m := counts[0].Load()
		for i := 1; i < subs; i++ {
			m = min(m, counts[i].Load())
		}
		return m
	}
	waitFor := func(n int64) {
		deadline := time.Now().Add(et.Wait)
		for slowest() < n {
			if time.Now().After(deadline) {
				b.Fatalf("subscribers stuck at %d of %d", slowest(), n)
			}
			time.Sleep(50 * time.Microsecond)
		}
	}

	b.SetBytes(int64(len(sa) * subs))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	sent := 0
	var tick *time.Ticker
	if rate > 0 {
		// One event per tick of 1/rate s, written alone as an EUD would.
		tick = time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
	}
	for sent < b.N {
		n := min(batch, b.N-sent)
		if tick != nil {
			<-tick.C
			n = 1
		}
		if _, err := pub.Write(batchBytes[:n*len(sa)]); err != nil {
			b.Fatal(err)
		}
		sent += n
		waitFor(int64(sent - window))
	}
	waitFor(int64(b.N))
	elapsed := time.Since(start)
	b.StopTimer()

	st := h.Srv.Broker().Stats()
	var drops uint64
	for r := range broker.NumDropReasons {
		drops += st.Drops[r].Value()
	}
	b.ReportMetric(float64(b.N*subs)/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(h.Srv.Stats().Delay.Quantile(0.99)*1e6, "p99-read-to-write-us")
	b.ReportMetric(float64(drops), "drops")
}

// countEvents counts complete events on conn; it keeps the tail of each read
// so that an end tag split across reads is counted once.
func countEvents(conn net.Conn, n *atomic.Int64) {
	end := []byte("</event>")
	buf := make([]byte, 64<<10)
	carry := 0
	for {
		r, err := conn.Read(buf[carry:])
		if r > 0 {
			data := buf[:carry+r]
			n.Add(int64(bytes.Count(data, end)))
			last := bytes.LastIndex(data, end)
			tail := data[max(last+len(end), len(data)-len(end)+1):]
			carry = copy(buf, tail)
		}
		if err != nil {
			return
		}
	}
}
