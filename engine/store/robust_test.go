package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"
	_ "modernc.org/sqlite"

	"cotd/configs"
	"cotd/engine/enginetest"
	"cotd/engine/store"
	"cotd/engine/store/storetest"
)

// holdWriteLock blocks every writer of the database until release is
// called: an immediate transaction on SQLite, an exclusive table lock on
// PostgreSQL.
func holdWriteLock(t *testing.T, cfg configs.Store) (release func()) {
	t.Helper()
	ctx := ctxT(t)
	if cfg.URL != "" {
		conn, err := pgx.Connect(ctx, cfg.URL)
		if err != nil {
			t.Fatal(err)
		}
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `LOCK TABLE cot_router IN ACCESS EXCLUSIVE MODE`); err != nil {
			t.Fatal(err)
		}
		return func() { _ = tx.Rollback(ctx); _ = conn.Close(ctx) }
	}
	raw, err := sql.Open("sqlite", "file:"+cfg.Path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := raw.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	return func() { _, _ = conn.ExecContext(ctx, `ROLLBACK`); _ = conn.Close(); _ = raw.Close() }
}

// TestQueueFullIsCountedDrop: with the writer stuck behind a lock, the
// queue fills, further records are refused at once and counted, and
// everything accepted is written once the lock goes.
func TestQueueFullIsCountedDrop(t *testing.T) {
	eachBackend(t, func(t *testing.T, cfg configs.Store) {
		cfg.QueueSize, cfg.BatchSize = 16, 4
		db := open(t, cfg, store.Options{})
		release := holdWriteLock(t, cfg)
		accepted, refused := 0, 0
		start := time.Now()
		for i := range 200 {
			if db.ArchiveEvent(ev(fmt.Sprintf("u%d", i), t0, 1, 1, "g")) {
				accepted++
			} else {
				refused++
			}
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("200 enqueues took %v: enqueue must not wait", d)
		}
		// At most the queue plus the batch the writer holds get in.
		if accepted > 16+4 || refused == 0 {
			t.Fatalf("accepted %d, refused %d with a queue of 16", accepted, refused)
		}
		if got := db.Stats().Dropped[store.DropQueueFull].Value(); got != uint64(refused) {
			t.Errorf("queue_full drops = %d, want %d", got, refused)
		}
		if m := metricsText(t, db); !strings.Contains(m, fmt.Sprintf(`cotd_store_dropped_total{reason="queue_full"} %d`, refused)) {
			t.Errorf("metrics lack the drop count:\n%s", m)
		}
		release()
		flush(t, db)
		all, err := db.Events(ctxT(t), store.EventQuery{Scope: store.Everything})
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != accepted {
			t.Errorf("%d events written, %d accepted", len(all), accepted)
		}
	})
}

// TestCloseDrains: Close writes what is queued; afterwards records are
// refused and counted, and a reopened store has them all.
func TestCloseDrains(t *testing.T) {
	eachBackend(t, func(t *testing.T, cfg configs.Store) {
		db, err := store.Open(context.Background(), cfg, store.Options{Now: func() time.Time { return t0 }})
		if err != nil {
			t.Fatal(err)
		}
		const n = 3000
		for i := range n {
			if !db.ArchiveEvent(ev(fmt.Sprintf("u%d", i), t0, 1, 1, "g")) {
				t.Fatalf("event %d dropped", i)
			}
		}
		if err := db.Close(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		if db.ArchiveEvent(ev("late", t0, 1, 1)) {
			t.Error("accepted after Close")
		}
		if db.Stats().Dropped[store.DropClosed].Value() != 1 || db.Stats().Dropped[store.DropShutdown].Value() != 0 {
			t.Errorf("drops after close: %s", metricsText(t, db))
		}
		again := open(t, cfg, store.Options{})
		all, err := again.Events(ctxT(t), store.EventQuery{Scope: store.Everything, Limit: 2 * n})
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != n {
			t.Errorf("%d of %d events survived Close", len(all), n)
		}
	})
}

// TestRetention prunes each kind in batches smaller than what expired.
func TestRetention(t *testing.T) {
	eachBackend(t, func(t *testing.T, cfg configs.Store) {
		cfg.PruneBatch = 3
		cfg.Retention = configs.Retention{Events: dur(time.Hour), Chat: dur(2 * time.Hour), Connections: dur(time.Hour), Files: dur(24 * time.Hour)}
		now := t0.Add(100 * time.Hour)
		var pruned []string
		var mu sync.Mutex
		db := open(t, cfg, store.Options{Now: func() time.Time { return now }, OnFilePruned: func(h string) {
			mu.Lock()
			pruned = append(pruned, h)
			mu.Unlock()
		}})
		ctx := ctxT(t)
		for i := range 10 {
			db.ArchiveEvent(ev("old", now.Add(-2*time.Hour-time.Duration(i)*time.Minute), 1, 1, "g"))
		}
		db.ArchiveEvent(ev("young", now.Add(-30*time.Minute), 1, 1, "g"))
		for i, age := range []time.Duration{3 * time.Hour, 90 * time.Minute} {
			_, c, _ := store.FromEvent(chatDoc(fmt.Sprint(i), "x", nil), now.Add(-age), store.Sender{UID: "a"})
			db.ArchiveChat(*c)
		}
		for i := range 7 {
			db.RecordConn(store.ConnRecord{Status: store.StatusConnected, UID: fmt.Sprint("c", i), Time: now.Add(-2 * time.Hour)})
		}
		db.RecordConn(store.ConnRecord{Status: store.StatusDisconnected, UID: "c0", Time: now})
		files := map[string]store.FileRecord{
			"old":     {Hash: strings.Repeat("01", 32), Created: now.Add(-48 * time.Hour)},
			"expired": {Hash: strings.Repeat("02", 32), Created: now, Expiration: now.Add(-time.Second)},
			"kept":    {Hash: strings.Repeat("03", 32), Created: now, Expiration: now.Add(time.Hour)},
		}
		for _, f := range files {
			if _, err := db.PutFile(ctx, f); err != nil {
				t.Fatal(err)
			}
		}
		flush(t, db)
		if err := db.Prune(ctx); err != nil {
			t.Fatal(err)
		}
		if e, _ := db.Events(ctx, store.EventQuery{Scope: store.Everything}); len(e) != 1 || e[0].UID != "young" {
			t.Errorf("events after prune: %v", e)
		}
		if c, _ := db.Chats(ctx, store.EventQuery{Scope: store.Everything}); len(c) != 1 {
			t.Errorf("chats after prune: %d, want 1", len(c))
		}
		if f, _ := db.SearchFiles(ctx, store.FileQuery{Scope: store.Everything}); len(f) != 1 || f[0].Hash != files["kept"].Hash {
			t.Errorf("files after prune: %v", f)
		}
		// Endpoints stay (contacts); only their old events go.
		if eps, _ := db.ClientEndpoints(ctx, store.EndpointQuery{Scope: store.Everything}); len(eps) != 7 {
			t.Errorf("%d endpoints after prune, want 7", len(eps))
		}
		st := db.Stats()
		if st.Pruned[store.KindEvent].Value() != 10 || st.Pruned[store.KindChat].Value() != 1 ||
			st.Pruned[store.KindConn].Value() != 7 || st.Pruned[store.KindFile].Value() != 2 {
			t.Errorf("pruned counters:\n%s", metricsText(t, db))
		}
		mu.Lock()
		defer mu.Unlock()
		if len(pruned) != 2 {
			t.Errorf("OnFilePruned got %v", pruned)
		}
	})
}

func dur(d time.Duration) configs.Duration { return configs.Duration{Duration: d} }

// TestWriterPrunes: the writer prunes by itself, without Prune being called.
func TestWriterPrunes(t *testing.T) {
	cfg := sqliteCfg(t)
	cfg.PruneInterval = dur(10 * time.Millisecond)
	cfg.Retention.Events = dur(time.Hour)
	db := open(t, cfg, store.Options{Now: func() time.Time { return t0.Add(10 * time.Hour) }})
	db.ArchiveEvent(ev("old", t0, 1, 1, "g"))
	enginetest.Eventually(t, "the writer to prune an expired event", func() bool {
		return db.Stats().Pruned[store.KindEvent].Value() == 1
	})
}

func TestMigrateIdempotent(t *testing.T) {
	eachBackend(t, func(t *testing.T, cfg configs.Store) {
		ctx := ctxT(t)
		applied, err := store.Migrate(ctx, cfg, zerolog.Nop())
		if err != nil || len(applied) != store.SchemaVersion() {
			t.Fatalf("first Migrate: %v %v", applied, err)
		}
		applied, err = store.Migrate(ctx, cfg, zerolog.Nop())
		if err != nil || len(applied) != 0 {
			t.Fatalf("second Migrate: %v %v", applied, err)
		}
		db := open(t, cfg, store.Options{})
		db.ArchiveEvent(ev("a", t0, 1, 1, "g"))
		flush(t, db)
	})
}

// TestSchemaTooNew: a database a newer cotd migrated is refused, not
// written to.
func TestSchemaTooNew(t *testing.T) {
	eachBackend(t, func(t *testing.T, cfg configs.Store) {
		ctx := ctxT(t)
		if _, err := store.Migrate(ctx, cfg, zerolog.Nop()); err != nil {
			t.Fatal(err)
		}
		execRaw(t, cfg, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', 'x')`)
		_, err := store.Open(ctx, cfg, store.Options{})
		if !errors.Is(err, store.ErrSchemaTooNew) || !strings.Contains(err.Error(), "999") {
			t.Errorf("err = %v, want ErrSchemaTooNew naming 999", err)
		}
	})
}

// TestForeignDatabase: cotd refuses a database that holds a cot_router it
// did not create (a TAK Server database).
func TestForeignDatabase(t *testing.T) {
	eachBackend(t, func(t *testing.T, cfg configs.Store) {
		if cfg.URL == "" {
			if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o750); err != nil {
				t.Fatal(err)
			}
		}
		execRaw(t, cfg, `CREATE TABLE cot_router (id integer, uid text, cot_type text)`)
		_, err := store.Open(ctxT(t), cfg, store.Options{})
		if !errors.Is(err, store.ErrForeign) || !strings.Contains(err.Error(), "cot_router") {
			t.Errorf("err = %v, want ErrForeign naming cot_router", err)
		}
	})
}

func execRaw(t *testing.T, cfg configs.Store, q string) {
	t.Helper()
	ctx := ctxT(t)
	if cfg.URL != "" {
		conn, err := pgx.Connect(ctx, cfg.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
		return
	}
	raw, err := sql.Open("sqlite", "file:"+cfg.Path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.ExecContext(ctx, q); err != nil {
		t.Fatal(err)
	}
}

func TestSQLiteRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// A real SQLite file of another application, one whose pages are
	// garbage, and a file that is no database at all.
	other := filepath.Join(dir, "other.db")
	raw, err := sql.Open("sqlite", "file:"+other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`CREATE TABLE notes (body text); INSERT INTO notes VALUES ('x')`); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	good := sqliteCfg(t)
	db := open(t, good, store.Options{})
	if err := db.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile(good.Path)
	if err != nil {
		t.Fatal(err)
	}
	for i := 100; i < len(body); i++ {
		body[i] = 0xA5
	}
	for name, c := range map[string]struct {
		path string
		want error
		says string
	}{
		"foreign":    {other, store.ErrForeign, "notes"},
		"corrupt":    {write("corrupt.db", body), store.ErrCorrupt, "corrupt.db"},
		"not sqlite": {write("text.db", []byte("hello, this is a text file and not a database at all\n")), store.ErrCorrupt, "SQLite header"},
	} {
		cfg := baseCfg()
		cfg.Path = c.path
		before, _ := os.ReadFile(c.path)
		_, err := store.Open(ctxT(t), cfg, store.Options{})
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: err = %v, want %v mentioning %q", name, err, c.want, c.says)
		}
		if after, _ := os.ReadFile(c.path); string(after) != string(before) {
			t.Errorf("%s: the refused file was modified", name)
		}
	}
}

func TestPostgresBadURLs(t *testing.T) {
	addr := enginetest.RefusedAddr(t) // a port nobody listens on
	cfg := baseCfg()
	cfg.URL = "postgres://cotd:s3cret@" + addr + "/cotd?connect_timeout=5"
	_, err := store.Open(ctxT(t), cfg, store.Options{})
	if !errors.Is(err, store.ErrUnreachable) || !strings.Contains(err.Error(), "postgres://cotd:xxxxx@"+addr) || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("unreachable: err = %v", err)
	}
	cfg.URL = "postgres://cotd:s3cret@" + addr + "/cotd?sslmode=bogus"
	_, err = store.Open(ctxT(t), cfg, store.Options{})
	if !errors.Is(err, store.ErrConfig) || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("bad URL: err = %v", err)
	}
	// The real server with a wrong password.
	base := storetest.PostgresURL(t)
	cfg.URL = withPassword(t, base, "wrong-s3cret")
	_, err = store.Open(ctxT(t), cfg, store.Options{})
	if !errors.Is(err, store.ErrUnreachable) || strings.Contains(err.Error(), "wrong-s3cret") || !strings.Contains(err.Error(), "xxxxx") {
		t.Errorf("wrong password: err = %v", err)
	}
}

func withPassword(t *testing.T, raw, pw string) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("postgres://%s:%s@%s:%d/%s?sslmode=disable", cfg.User, pw, cfg.Host, cfg.Port, cfg.Database)
}

// proxy forwards TCP to target until cut; while cut it refuses new
// connections (accepts and closes them) and has closed the live ones.
type proxy struct {
	ln     net.Listener
	target string
	cut    atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
}

func startProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); p.setCut(true) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if p.cut.Load() {
				c.Close()
				continue
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	return p
}

func (p *proxy) setCut(cut bool) {
	p.cut.Store(cut)
	if cut {
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
		p.mu.Unlock()
	}
}

// TestPostgresOutage: losing PostgreSQL while running turns into counted
// drops and one loud log line, and writes resume by themselves when it is
// back.
func TestPostgresOutage(t *testing.T) {
	cfg := postgresCfg(t)
	pc, err := pgx.ParseConfig(cfg.URL)
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, net.JoinHostPort(pc.Host, fmt.Sprint(pc.Port)))
	cfg.URL = strings.Replace(cfg.URL, net.JoinHostPort(pc.Host, fmt.Sprint(pc.Port)), p.ln.Addr().String(), 1)
	logs := &enginetest.SyncBuffer{}
	db := open(t, cfg, store.Options{Log: logTo(logs)})
	ctx := ctxT(t)
	db.ArchiveEvent(ev("before", t0, 1, 1, "g"))
	flush(t, db)

	p.setCut(true)
	for i := range 5 {
		db.ArchiveEvent(ev(fmt.Sprint("during", i), t0, 1, 1, "g"))
	}
	enginetest.Eventually(t, "write errors to be counted as drops", func() bool {
		return db.Stats().Dropped[store.DropWriteError].Value() > 0 && strings.Contains(metricsText(t, db), "cotd_store_up 0")
	})
	if !strings.Contains(logs.String(), "writes failing") || strings.Contains(logs.String(), "cotd_test:cotd_test") {
		t.Errorf("log: %s", logs.String())
	}

	p.setCut(false)
	enginetest.Eventually(t, "writes to recover", func() bool {
		db.ArchiveEvent(ev("after", t0, 1, 1, "g"))
		if db.Sync(ctx) != nil {
			return false
		}
		_, err := db.LatestEvent(ctx, "after", store.Everything)
		return err == nil
	})
	if !strings.Contains(metricsText(t, db), "cotd_store_up 1") || !strings.Contains(logs.String(), "writes recovered") {
		t.Errorf("not recovered: %s", logs.String())
	}
	// Every record is either stored or counted.
	all, _ := db.Events(ctx, store.EventQuery{Scope: store.Everything})
	if got, sent := uint64(len(all))+db.Dropped(), uint64(6)+db.Stats().Written[store.KindEvent].Value()-uint64(len(all)); got < 6 {
		t.Errorf("stored %d + dropped %d < 6 sent (%d)", len(all), db.Dropped(), sent)
	}
}

// TestBadTextIsStored: invalid UTF-8 and NUL (PostgreSQL refuses both in
// text) are stored replaced, without failing the batch around them.
func TestBadTextIsStored(t *testing.T) {
	eachBackend(t, func(t *testing.T, cfg configs.Store) {
		db := open(t, cfg, store.Options{})
		bad := ev("bad", t0, 1, 1, "g")
		bad.Detail = "<detail><remarks>\xff\x00</remarks></detail>"
		db.ArchiveEvent(ev("good1", t0, 1, 1, "g"))
		db.ArchiveEvent(bad)
		db.ArchiveEvent(ev("good2", t0, 1, 1, "g"))
		flush(t, db)
		all, err := db.Events(ctxT(t), store.EventQuery{Scope: store.Everything})
		if err != nil || len(all) != 3 {
			t.Fatalf("stored %d: %v", len(all), err)
		}
		if all[1].Detail != "<detail><remarks>\uFFFD\uFFFD</remarks></detail>" {
			t.Errorf("detail = %q", all[1].Detail)
		}
	})
}

// TestSQLiteFileSettings: the file is in WAL mode, marked as cotd's, and
// survives a reopen with its data.
func TestSQLiteFileSettings(t *testing.T) {
	cfg := sqliteCfg(t)
	db := open(t, cfg, store.Options{})
	db.ArchiveEvent(ev("a", t0, 1, 1, "g"))
	flush(t, db)
	raw, err := sql.Open("sqlite", "file:"+cfg.Path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var mode string
	var appID, pageSize int64
	if err := raw.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v", mode, err)
	}
	if err := raw.QueryRow(`PRAGMA application_id`).Scan(&appID); err != nil || appID != 0x434F5444 {
		t.Errorf("application_id = %#x, %v", appID, err)
	}
	if err := raw.QueryRow(`PRAGMA page_size`).Scan(&pageSize); err != nil || pageSize != 16384 {
		t.Errorf("page_size = %d, %v", pageSize, err)
	}
	if err := db.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	again := open(t, cfg, store.Options{})
	if _, err := again.LatestEvent(ctxT(t), "a", store.Everything); err != nil {
		t.Errorf("after reopen: %v", err)
	}
}

// TestCloseDrainTimeout: with the writer stuck, Close gives up after
// drain_timeout, and every accepted record is either written or counted.
func TestCloseDrainTimeout(t *testing.T) {
	eachBackend(t, func(t *testing.T, cfg configs.Store) {
		cfg.DrainTimeout = dur(100 * time.Millisecond)
		cfg.BatchSize = 10
		db, err := store.Open(context.Background(), cfg, store.Options{Now: func() time.Time { return t0 }})
		if err != nil {
			t.Fatal(err)
		}
		release := holdWriteLock(t, cfg)
		defer release()
		accepted := 0
		for i := range 100 {
			if db.ArchiveEvent(ev(fmt.Sprint("u", i), t0, 1, 1, "g")) {
				accepted++
			}
		}
		if err := db.Close(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		st := db.Stats()
		dropped := st.Dropped[store.DropShutdown].Value() + st.Dropped[store.DropWriteError].Value()
		if written := st.Written[store.KindEvent].Value(); written+dropped != uint64(accepted) || dropped == 0 {
			t.Errorf("accepted %d, written %d, dropped %d:\n%s", accepted, written, dropped, metricsText(t, db))
		}
	})
}
