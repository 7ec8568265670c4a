package store_test

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"cotd/engine/store"
)

// BenchmarkArchive is the sustained archive rate: SA events from FromEvent
// through the queue and the writer into the database, the producer backing
// off (not dropping) when the queue is nearly full. It reports events/s and
// the drops, which must be zero.
func BenchmarkArchive(b *testing.B) {
	for _, be := range backends(b) {
		b.Run(be.name, func(b *testing.B) {
			cfg := be.cfg(b)
			db := open(b, cfg, store.Options{})
			doc := fixture(b, "sa.xml")
			tmpl, _, err := store.FromEvent(doc, t0, store.Sender{UID: "ANDROID-1", Callsign: "ALPHA", User: "alice", Groups: []string{"Cyan"}})
			if err != nil {
				b.Fatal(err)
			}
			// 1,000 clients reporting in turn.
			recs := make([]store.EventRecord, 1000)
			for i := range recs {
				recs[i] = *tmpl
				recs[i].UID = fmt.Sprintf("ANDROID-%04d", i)
			}
			highWater := cfg.QueueSize - cfg.BatchSize
			b.SetBytes(int64(len(doc)))
			b.ResetTimer()
			start, cpu0 := time.Now(), cpuTime()
			for i := 0; i < b.N; i++ {
				for db.QueueDepth() >= highWater {
					time.Sleep(50 * time.Microsecond)
				}
				r := recs[i%len(recs)]
				r.ServerTime = t0.Add(time.Duration(i) * time.Millisecond)
				if !db.ArchiveEvent(r) {
					b.Fatalf("event %d dropped", i)
				}
			}
			flush(b, db)
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
			b.ReportMetric(float64(db.Dropped()), "drops")
			// CPU per event of this process (the PostgreSQL server's own
			// is not in it): steadier than the rate on a shared machine.
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/event")
		})
	}
}

// BenchmarkFromEvent is the parse cost the subscription consumer pays per
// routed document.
func BenchmarkFromEvent(b *testing.B) {
	for _, f := range []string{"sa.xml", "geochat.xml"} {
		b.Run(f, func(b *testing.B) {
			doc := fixture(b, f)
			s := store.Sender{UID: "ANDROID-1", Groups: []string{"Cyan"}}
			b.SetBytes(int64(len(doc)))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, _, err := store.FromEvent(doc, t0, s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// cpuTime is the user and system CPU this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
