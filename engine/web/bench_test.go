package web

import (
	"os"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"cotd/cot"
	"cotd/engine/directory"
)

// BenchmarkHubSA is what one position report costs the console's hub with
// viewers connected: reading course and speed, the trail, one JSON
// encoding, and an offer to each viewer. It runs on the hub's goroutine,
// never on the engine's.
func BenchmarkHubSA(b *testing.B) {
	doc, err := os.ReadFile("testdata/sa.xml")
	if err != nil {
		b.Fatal(err)
	}
	var h cot.Header
	if err := cot.ScanHeader(doc, &h); err != nil {
		b.Fatal(err)
	}
	for _, viewers := range []int{1, 16} {
		b.Run(map[int]string{1: "viewers=1", 16: "viewers=16"}[viewers], func(b *testing.B) {
			hb := newHub(nil, zerolog.Nop())
			var wg sync.WaitGroup
			stop := make(chan struct{})
			for range viewers {
				v := newViewer(256)
				v.resync.Store(false)
				hb.add(v)
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						select {
						case <-v.q:
						case <-stop:
							return
						}
					}
				}()
			}
			ev := directory.Event{Kind: directory.SA, At: time.Now(),
				Client:  directory.Client{ConnID: 7, UID: h.UID, Callsign: h.Callsign, In: []string{"__ANON__"}, Out: []string{"__ANON__"}, Listener: "tcp", Protocol: "xml", Since: time.Now()},
				Message: &directory.Message{XML: doc, Header: &h, Recv: time.Now()}}
			b.ReportAllocs()
			b.SetBytes(int64(len(doc)))
			for b.Loop() {
				hb.handle(ev)
			}
			close(stop)
			wg.Wait()
			b.ReportMetric(float64(hb.dropped.Load())/float64(b.N), "drops/op")
		})
	}
}
