package store_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"cotd/configs"
	"cotd/engine/enginetest"
	"cotd/engine/store"
	"cotd/engine/store/storetest"
)

// backend is one database a test table runs against.
type backend struct {
	name string
	// cfg returns a fresh, empty database's configuration.
	cfg func(t testing.TB) configs.Store
}

func backends(t testing.TB) []backend {
	return []backend{
		{"sqlite", func(t testing.TB) configs.Store { return sqliteCfg(t) }},
		{"postgres", func(t testing.TB) configs.Store { return postgresCfg(t) }},
	}
}

func baseCfg() configs.Store {
	c := configs.Default().Store
	return c
}

func sqliteCfg(t testing.TB) configs.Store {
	c := baseCfg()
	c.Path = filepath.Join(t.TempDir(), "sub", "cotd.db")
	return c
}

// postgresCfg points the store at a schema of the test's own (dropped at
// the end).
func postgresCfg(t testing.TB) configs.Store {
	t.Helper()
	c := baseCfg()
	c.URL = storetest.Schema(t, "cotd_test_")
	return c
}

// open opens a store on cfg and closes it when the test ends.
func open(t testing.TB, cfg configs.Store, opts store.Options) *store.DB {
	t.Helper()
	if os.Getenv("COTD_TEST_LOG") != "" {
		opts.Log = zerolog.New(os.Stderr)
	}
	if opts.Now == nil {
		// Retention counts from this clock: the fixed test times stay young.
		opts.Now = func() time.Time { return t0.Add(24 * time.Hour) }
	}
	db, err := store.Open(context.Background(), cfg, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = db.Close(context.Background()) })
	return db
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), enginetest.Wait)
	t.Cleanup(cancel)
	return ctx
}

func flush(t testing.TB, db *store.DB) {
	t.Helper()
	if err := db.Sync(ctxT(t)); err != nil {
		t.Fatalf("Sync: %v", err)
	}
}

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// logBuf collects a store's log lines.
func logTo(w *enginetest.SyncBuffer) zerolog.Logger { return zerolog.New(w) }

// t0 is a fixed time the tests count from; the store is never asked for the
// wall clock in assertions.
var t0 = time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)

func ev(uid string, at time.Time, lat, lon float64, groups ...string) store.EventRecord {
	return store.EventRecord{
		UID: uid, Type: "a-f-G-U-C", How: "m-g", Time: at, Start: at, Stale: at.Add(2 * time.Minute),
		Lat: lat, Lon: lon, HAE: 10, CE: 5, LE: 9999999,
		Detail:     `<detail><contact callsign="` + strings.ToUpper(uid) + `" endpoint="*:-1:stcp"/></detail>`,
		ServerTime: at, SenderUID: uid, SenderCallsign: strings.ToUpper(uid), SenderUser: "user-" + uid,
		Groups: groups,
	}
}

func metricsText(t testing.TB, db *store.DB) string {
	t.Helper()
	var sb strings.Builder
	if err := db.WriteMetrics(&sb); err != nil {
		t.Fatal(err)
	}
	return sb.String()
}
