package engine

import (
	"testing"
	"time"

	"cotd/cot"
	"cotd/engine/broker"
	"cotd/engine/directory"
)

// BenchmarkDirectoryEvent is what routing one SA costs the loop for the
// Directory: with nobody subscribed, the check alone (the figure that
// matters: it is paid on every routed frame); with a subscriber that
// drains its queue, the snapshot, the header copy and the offer.
func BenchmarkDirectoryEvent(b *testing.B) {
	s := newTestServer(b, nil)
	ss := &session{id: 1, srv: s, ln: &listener{kind: ListenerTCP}, remote: "127.0.0.1:1", opened: time.Now()}
	ss.client = broker.NewClient(1, ss, s.listenerMembership(ss.ln))
	doc := []byte(`<event version="2.0" uid="U-1" type="a-f-G-U-C" how="m-g" time="2026-01-01T00:00:00Z" ` +
		`start="2026-01-01T00:00:00Z" stale="2026-01-01T00:01:00Z"><point lat="1" lon="2" hae="0" ce="9" le="9"/>` +
		`<detail><contact callsign="ONE" endpoint="*:-1:stcp"/></detail></event>`)
	var h cot.Header
	if err := cot.ScanHeader(doc, &h); err != nil {
		b.Fatal(err)
	}
	m := s.broker.NewMessage(doc, h.Type, true, 0, nil)
	event := func() {
		if s.dir.wants(directory.SA) {
			s.dir.offer(directory.Event{Kind: directory.SA, Client: ss.snapshot(false), Message: routedMessage(m, &h, 0)})
		}
	}
	b.Run("subscribers=0", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			event()
		}
	})
	b.Run("subscribers=1", func(b *testing.B) {
		sub := s.Directory().Subscribe("bench", directory.KindsOf(directory.SA), 4096)
		go func() {
			for range sub.C() {
			}
		}()
		b.ReportAllocs()
		for b.Loop() {
			event()
		}
		b.StopTimer()
		sub.Close()
		b.ReportMetric(float64(sub.Dropped()), "dropped")
	})
}
