package store_test

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"cotd/configs"
	"cotd/engine/enginetest"
	"cotd/engine/store"
)

// crashEnv switches the test binary into the crash child: its value is the
// SQLite path or PostgreSQL URL to ingest into.
const crashEnv = "COTD_STORE_CRASH_CHILD"

const crashBatch = 500

// TestCrashChild is the child of TestKill9MidIngest; it does nothing in a
// normal run. It ingests numbered events until killed, printing the number
// committed after each batch, and keeps its queue within one batch so that
// what a crash can lose is bounded by what the writer holds.
func TestCrashChild(t *testing.T) {
	where := os.Getenv(crashEnv)
	if where == "" {
		t.Skip("only run as the child of TestKill9MidIngest")
	}
	cfg := baseCfg()
	if strings.HasPrefix(where, "postgres") {
		cfg.URL = where
	} else {
		cfg.Path = where
	}
	cfg.BatchSize = crashBatch
	out := bufio.NewWriter(os.Stdout)
	committed := 0
	db, err := store.Open(context.Background(), cfg, store.Options{
		Now: func() time.Time { return t0 },
		OnCommit: func(n int) {
			committed += n
			fmt.Fprintf(out, "committed %d\n", committed)
			out.Flush()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	// The parent kills us long before this; the bound only keeps an
	// orphan from running forever.
	deadline := time.Now().Add(2 * enginetest.Wait)
	for seq := 0; time.Now().Before(deadline); {
		if db.QueueDepth() >= crashBatch {
			time.Sleep(100 * time.Microsecond)
			continue
		}
		e := ev(fmt.Sprintf("crash-%09d", seq), t0, float64(seq), 0, "g")
		if !db.ArchiveEvent(e) {
			t.Fatalf("event %d dropped", seq)
		}
		seq++
	}
	t.Fatal("not killed")
}

// TestKill9MidIngest kills a process in the middle of ingest and checks that
// the database opens clean, holds every batch the child saw committed, and
// holds whole batches only: numbered events 0..n-1 with no gap.
func TestKill9MidIngest(t *testing.T) {
	eachBackend(t, func(t *testing.T, cfg configs.Store) {
		where := cfg.Path
		if cfg.URL != "" {
			where = cfg.URL
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnv+"="+where)
		cmd.Stderr = os.Stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		lines := bufio.NewScanner(stdout)
		seen := 0
		for seen < 6*crashBatch && lines.Scan() {
			if n, ok := strings.CutPrefix(lines.Text(), "committed "); ok {
				seen, _ = strconv.Atoi(n)
			}
		}
		if seen < 6*crashBatch {
			t.Fatalf("child stopped after %d committed events: %v", seen, lines.Err())
		}
		if err := cmd.Process.Kill(); err != nil { // SIGKILL: no shutdown path runs
			t.Fatal(err)
		}
		_ = cmd.Wait()
		// Lines printed between our last read and the kill also count.
		for lines.Scan() {
			if n, ok := strings.CutPrefix(lines.Text(), "committed "); ok {
				seen, _ = strconv.Atoi(n)
			}
		}

		if cfg.URL == "" {
			raw, err := sql.Open("sqlite", "file:"+cfg.Path)
			if err != nil {
				t.Fatal(err)
			}
			var check string
			if err := raw.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
				t.Errorf("integrity_check = %q, %v", check, err)
			}
			raw.Close()
		}
		db := open(t, cfg, store.Options{})
		all, err := db.Events(ctxT(t), store.EventQuery{Scope: store.Everything, Limit: 1 << 30})
		if err != nil {
			t.Fatal(err)
		}
		if len(all) < seen {
			t.Fatalf("%d events survived, the child saw %d committed", len(all), seen)
		}
		for i, e := range all {
			if e.Lat != float64(i) {
				t.Fatalf("event %d is number %v: a batch was torn", i, e.Lat)
			}
		}
		// What was committed but not yet reported is at most one batch.
		if len(all) > seen+crashBatch {
			t.Errorf("%d events stored, %d reported committed: more than one batch apart", len(all), seen)
		}
		db.ArchiveEvent(ev("after-crash", t0, 0, 0, "g"))
		flush(t, db)
		if _, err := db.LatestEvent(ctxT(t), "after-crash", store.Everything); err != nil {
			t.Errorf("write after the crash: %v", err)
		}
		t.Logf("%d events stored, %d reported committed before kill -9", len(all), seen)
	})
}
