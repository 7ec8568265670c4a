package store_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"cotd/configs"
	"cotd/engine/enginetest"
	"cotd/engine/store"
)

// pgEnv names the PostgreSQL the tests use: a database the role may create
// schemas in. .ci/run starts one and sets it; on CI (CI=true) a missing
// value fails the tests instead of skipping the PostgreSQL half.
const pgEnv = "COTD_TEST_POSTGRES_URL"

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

// postgresURL is the test server's URL, or skips (fails on CI).
func postgresURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(pgEnv)
	if u == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set: CI must run the PostgreSQL tests (.ci/run starts PostgreSQL and sets it)", pgEnv)
		}
		t.Skipf("%s not set; PostgreSQL half skipped (start PostgreSQL and set it, see .ci/run)", pgEnv)
	}
	return u
}

// postgresCfg makes a schema of its own for the test (dropped at the end)
// and points the store at it with search_path.
func postgresCfg(t testing.TB) configs.Store {
	t.Helper()
	base := postgresURL(t)
	schema := "cotd_test_" + randHex(6)
	ctx, cancel := context.WithTimeout(context.Background(), enginetest.Wait)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect %s: %v", store.MaskURL(base), err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), enginetest.Wait)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop schema: %v", err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})
	c := baseCfg()
	c.URL = withParam(t, base, "search_path", schema)
	return c
}

func withParam(t testing.TB, raw, k, v string) string {
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set(k, v)
	u.RawQuery = q.Encode()
	return u.String()
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
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
