package store

import (
	"io"
	"strconv"

	"cotd/engine/metrics"
)

// DropReason says why a record never reached the database.
//
// A label value only: records are counted under one reason, once.
type DropReason uint8

const (
	// DropQueueFull: the writer was behind by queue_size records.
	DropQueueFull DropReason = iota
	// DropWriteError: the batch holding it failed to commit (database down,
	// disk full) after retries.
	DropWriteError
	// DropShutdown: still queued when the drain timeout ran out.
	DropShutdown
	// DropClosed: handed in after Close.
	DropClosed
	// DropInvalid: a record the store cannot keep (a ConnRecord without a
	// status).
	DropInvalid
	numDropReasons
)

func (r DropReason) String() string {
	switch r {
	case DropQueueFull:
		return "queue_full"
	case DropWriteError:
		return "write_error"
	case DropShutdown:
		return "shutdown"
	case DropClosed:
		return "closed"
	case DropInvalid:
		return "invalid"
	}
	return "DropReason(" + strconv.Itoa(int(r)) + ")"
}

// Kind is a kind of stored row, for the written and pruned counters.
//
// A label value only.
type Kind uint8

const (
	KindEvent Kind = iota
	KindChat
	KindConn
	KindFile
	KindPending // offline copies of chats
	numKinds
)

func (k Kind) String() string {
	switch k {
	case KindEvent:
		return "event"
	case KindChat:
		return "chat"
	case KindConn:
		return "connection"
	case KindFile:
		return "file"
	case KindPending:
		return "offline_chat"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Stats are the store's counters, updated lock-free.
type Stats struct {
	Dropped [numDropReasons]metrics.Counter
	Written [numKinds]metrics.Counter
	Pruned  [numKinds]metrics.Counter
	// WriteErrors counts failed batch commits (each retry included).
	WriteErrors metrics.Counter
	// BatchSize is records per committed batch; WriteSeconds the time one
	// batch took to commit.
	BatchSize    *metrics.Histogram
	WriteSeconds *metrics.Histogram
}

func (s *Stats) init() {
	s.BatchSize = metrics.NewHistogram(metrics.ExponentialBounds(1, 4, 8)...)
	s.WriteSeconds = metrics.NewHistogram(metrics.ExponentialBounds(0.0005, 4, 9)...)
}

// Dropped is the total of records dropped, for tests and the lead's wiring.
func (db *DB) Dropped() uint64 {
	var n uint64
	for i := range db.stats.Dropped {
		n += db.stats.Dropped[i].Value()
	}
	return n
}

// Stats exposes the counters (read-only use).
func (db *DB) Stats() *Stats { return &db.stats }

// QueueDepth is the number of records waiting for the writer.
func (db *DB) QueueDepth() int { return len(db.queue) }

// WriteMetrics writes the store's metrics in the Prometheus text format.
func (db *DB) WriteMetrics(w io.Writer) error {
	m := metrics.NewWriter(w)
	st := &db.stats
	c := func(x *metrics.Counter) float64 { return float64(x.Value()) }
	metrics.Vec(m, "cotd_store_dropped_total", "Records the store never wrote, by reason.", "counter", "reason",
		0, numDropReasons, func(r DropReason) float64 { return c(&st.Dropped[r]) })
	metrics.Vec(m, "cotd_store_written_total", "Rows written, by kind.", "counter", "kind",
		0, numKinds, func(k Kind) float64 { return c(&st.Written[k]) })
	metrics.Vec(m, "cotd_store_pruned_total", "Rows deleted by retention, by kind.", "counter", "kind",
		0, numKinds, func(k Kind) float64 { return c(&st.Pruned[k]) })
	m.One("cotd_store_write_errors_total", "Batch commits that failed (each retry counted).", "counter", c(&st.WriteErrors))
	m.One("cotd_store_queue_depth", "Records waiting for the store writer.", "gauge", float64(len(db.queue)))
	m.One("cotd_store_queue_capacity", "Records the store queue holds before dropping.", "gauge", float64(cap(db.queue)))
	up := 1.0
	if db.down.Load() {
		up = 0
	}
	m.One("cotd_store_up", "1 while the last batch committed, 0 while writes fail.", "gauge", up)
	st.BatchSize.Write(m, "cotd_store_batch_size", "Records per committed batch.")
	st.WriteSeconds.Write(m, "cotd_store_write_seconds", "Time to write and commit one batch.")
	return m.Flush()
}
