// Package storetest gives tests a PostgreSQL of their own: a schema in the
// database named by COTD_TEST_POSTGRES_URL (which .ci/run starts and sets),
// dropped when the test ends. Without the variable it skips, except on CI
// (CI=true), where a skipped PostgreSQL half would hide a missing install.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"cotd/configs"
	"cotd/engine/store"
)

// Env names the PostgreSQL the tests use: a database the role may create
// schemas in.
const Env = "COTD_TEST_POSTGRES_URL"

// timeout bounds each statement against the test server: generous, as the
// CI box is two loaded cores.
const timeout = 20 * time.Second

// PostgresURL is the test server's URL, or skips the test (fails on CI).
func PostgresURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(Env)
	if u == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set: CI must run the PostgreSQL tests (.ci/run starts PostgreSQL and sets it)", Env)
		}
		t.Skipf("%s not set; PostgreSQL half skipped (start PostgreSQL and set it, see .ci/run)", Env)
	}
	return u
}

// Schema makes a schema named prefix plus random hex for the test, drops
// it at the end, and returns the server's URL with search_path set to it.
func Schema(t testing.TB, prefix string) string {
	t.Helper()
	base := PostgresURL(t)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := prefix + hex.EncodeToString(b)
	exec(t, base, "CREATE SCHEMA "+schema)
	t.Cleanup(func() { exec(t, base, "DROP SCHEMA "+schema+" CASCADE") })
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s: %v", Env, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// RawDB opens the database of c directly (PostgreSQL when URL is set,
// else the SQLite file at Path), for what the Store interface does not
// query and for locking it; closed when the test ends. The drivers are the
// ones the store registers.
func RawDB(t testing.TB, c configs.Store) *sql.DB {
	t.Helper()
	driver, dsn := "sqlite", "file:"+c.Path+"?_pragma=busy_timeout(10000)"
	if c.URL != "" {
		driver, dsn = "pgx", c.URL
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func exec(t testing.TB, base, stmt string) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Errorf("connect %s: %v", store.MaskURL(base), err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, stmt); err != nil {
		t.Errorf("%s on %s: %v", stmt, store.MaskURL(base), err)
	}
}
