package broker

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"cotd/cot"
)

// countBox is an Outbox that only counts: the benchmark measures routing,
// not sockets.
type countBox struct{ n atomic.Int64 }

func (c *countBox) Deliver(*Message) Verdict { c.n.Add(1); return Queued }
func (c *countBox) Replayed()                {}

// Drained never signals: a countBox takes everything, so nothing waits.
func (c *countBox) Drained() <-chan struct{} { return nil }

// BenchmarkRoute measures the cost of routing one broadcast SA among 5,000
// clients, all in one group (each message reaches 4,999) or in 50 groups of
// 100 (each reaches 99). The per-group lists are prepared when the registry
// changes, so cost follows recipients, not connections.
func BenchmarkRoute(b *testing.B) {
	for _, groups := range []int{1, 50} {
		b.Run(fmt.Sprintf("clients=5000/groups=%d", groups), func(b *testing.B) {
			br := New(Options{Shards: 1, Inbox: 16})
			boxes := make([]*countBox, 5000)
			clients := make([]*Client, 5000)
			for i := range clients {
				g := []string{fmt.Sprintf("G%d", i%groups)}
				boxes[i] = &countBox{}
				clients[i] = NewClient(uint64(i+1), boxes[i], br.Membership(g, g))
				br.reg.add(clients[i])
			}
			s := br.shards[0]
			doc := []byte(`<event version="2.0" uid="X" type="a-f-G-U-C" how="m-g"/>`)
			var h cot.Header
			if err := cot.ScanHeader(doc, &h); err != nil {
				b.Fatal(err)
			}
			m := NewMessage(doc, h.Type, true, 0, nil)
			now := time.Now()
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				s.route(job{kind: jobFrame, from: clients[i%len(clients)], msg: m}, now)
			}
			b.StopTimer()
			var total int64
			for _, x := range boxes {
				total += x.n.Load()
			}
			b.ReportMetric(float64(total)/float64(b.N), "deliveries/msg")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(total), "ns/delivery")
		})
	}
}
