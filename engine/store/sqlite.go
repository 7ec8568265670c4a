package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// sqliteMagic starts every SQLite database file.
var sqliteMagic = []byte("SQLite format 3\x00")

func (db *DB) openSQLite(ctx context.Context) error {
	path := db.cfg.Path
	if err := checkSQLiteFile(path); err != nil {
		return err
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return fmt.Errorf("store: %s: %w", path, err)
		}
	}
	// A file that exists is inspected read-only first: the pragmas below
	// rewrite its header (WAL), which must not happen to a file that turns
	// out to be someone else's.
	if st, err := os.Stat(path); err == nil && st.Size() > 0 {
		ro, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?mode=ro&_pragma=busy_timeout(10000)")
		if err != nil {
			return fmt.Errorf("store: %s: %w", path, err)
		}
		err = checkClaim(ctx, ro, path)
		_ = ro.Close()
		if err != nil {
			return err
		}
	}
	// WAL lets readers run beside the writer; synchronous=NORMAL is durable
	// against a crash of the process (the WAL is in the OS's hands at
	// commit) and loses at most the last transactions on power loss.
	// Immediate transactions take the write lock at BEGIN, so two writers
	// wait on busy_timeout instead of failing on a lock upgrade. Measured
	// on the archive benchmark: a 64 MiB page cache per connection keeps
	// the index pages in memory (without it most time went to preads),
	// and 16 KiB pages with a checkpoint every 32 MiB of WAL cut the CPU
	// per event by a fifth. page_size only takes effect on a new file,
	// and must precede WAL, which the driver applies after the pragmas.
	q := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "page_size(16384)", "synchronous(NORMAL)", "foreign_keys(1)",
		"cache_size(-65536)", "wal_autocheckpoint(2048)"} {
		q.Add("_pragma", p)
	}
	q.Set("_journal_mode", "WAL")
	q.Set("_txlock", "immediate")
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
	sdb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return fmt.Errorf("store: %s: %w", path, err)
	}
	sdb.SetMaxOpenConns(db.cfg.PoolSize + 1)
	sdb.SetMaxIdleConns(db.cfg.PoolSize + 1)
	db.sql = sdb
	err = checkClaim(ctx, sdb, path)
	if err == nil {
		// New, or already ours: mark it (a no-op for ours).
		_, err = sdb.ExecContext(ctx, fmt.Sprintf(`PRAGMA application_id = %d`, sqliteApplicationID))
		if err != nil {
			err = sqliteOpenError(path, err)
		}
	}
	if err != nil {
		_ = sdb.Close()
		db.sql = nil
		return err
	}
	return nil
}

// checkSQLiteFile refuses an existing file that is not a SQLite database
// before the driver sees it (the driver would only say "file is not a
// database" on first use, or worse, treat an empty-looking file as new).
func checkSQLiteFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: %s: %w", path, err)
	}
	defer f.Close()
	head := make([]byte, len(sqliteMagic))
	n, err := io.ReadFull(f, head)
	if n == 0 && (err == io.EOF || err == nil) {
		return nil // empty: SQLite makes it a database
	}
	if !bytes.Equal(head[:n], sqliteMagic) {
		return fmt.Errorf("%w: %s does not start with the SQLite header; move it away or set [store] path to another file", ErrCorrupt, path)
	}
	return nil
}

// checkClaim checks that the database is readable and cotd's, or new.
func checkClaim(ctx context.Context, sdb *sql.DB, path string) error {
	var appID int64
	if err := sdb.QueryRowContext(ctx, `PRAGMA application_id`).Scan(&appID); err != nil {
		return sqliteOpenError(path, err)
	}
	var tables []string
	rows, err := sdb.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`)
	if err != nil {
		return sqliteOpenError(path, err)
	}
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return sqliteOpenError(path, err)
		}
		tables = append(tables, t)
	}
	if err := rows.Close(); err != nil {
		return sqliteOpenError(path, err)
	}
	if err := rows.Err(); err != nil {
		return sqliteOpenError(path, err)
	}
	switch {
	case appID == sqliteApplicationID:
		return nil
	case appID != 0:
		return fmt.Errorf("%w: %s belongs to another application (SQLite application_id %#x)", ErrForeign, path, appID)
	case len(tables) > 0:
		return fmt.Errorf("%w: %s already holds tables cotd did not create (%s)", ErrForeign, path, strings.Join(tables, ", "))
	}
	return nil
}

// sqliteOpenError names corruption as such, so that an operator is told to
// restore the file rather than to look for a bug.
func sqliteOpenError(path string, err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
			return fmt.Errorf("%w: %s: %v; restore it from a backup or move it away", ErrCorrupt, path, err)
		}
	}
	return fmt.Errorf("store: %s: %w", path, err)
}

const insertEventCols = `uid, cot_type, how, time, start, stale, point_lat, point_lon, point_hae, point_ce, point_le,
	detail, servertime, sender_uid, sender_callsign, sender_user, groups`

// eventArgs are the values of insertEventCols for r.
func (b Backend) eventArgs(r *EventRecord) []any {
	return []any{clean(r.UID), clean(r.Type), clean(r.How), b.t(r.Time), b.t(r.Start), b.t(r.Stale),
		r.Lat, r.Lon, r.HAE, r.CE, r.LE, clean(r.Detail), b.t(r.ServerTime),
		clean(r.SenderUID), clean(r.SenderCallsign), clean(r.SenderUser), clean(encodeList(r.Groups))}
}

// sqliteRowsPerInsert rows per INSERT stay far below SQLite's limit of
// 32766 parameters.
const sqliteRowsPerInsert = 64

const eventColCount = 17

// multiInsert is an INSERT of n event rows.
func multiInsert(n int) string {
	row := "(" + placeholders(eventColCount) + ")"
	return `INSERT INTO cot_router (` + insertEventCols + `) VALUES ` + strings.TrimSuffix(strings.Repeat(row+", ", n), ", ")
}

// writeSQLite writes one batch in one transaction.
func (db *DB) writeSQLite(ctx context.Context, bt *batch) error {
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	// Rows go in groups of sqliteRowsPerInsert per statement: the cost of
	// a statement execution in the driver, not the row, dominates.
	events := bt.events
	var full *sql.Stmt
	if len(events) >= sqliteRowsPerInsert {
		full, err = tx.PrepareContext(ctx, multiInsert(sqliteRowsPerInsert))
		if err != nil {
			return err
		}
		defer full.Close()
	}
	args := make([]any, 0, sqliteRowsPerInsert*eventColCount)
	for len(events) > 0 {
		n := min(len(events), sqliteRowsPerInsert)
		args = args[:0]
		for _, r := range events[:n] {
			args = append(args, db.backend.eventArgs(r)...)
		}
		if n == sqliteRowsPerInsert {
			_, err = full.ExecContext(ctx, args...)
		} else {
			_, err = tx.ExecContext(ctx, multiInsert(n), args...)
		}
		if err != nil {
			return err
		}
		events = events[n:]
	}
	if err := db.writeOps(ctx, sqlTx{tx}, bt); err != nil {
		return err
	}
	return tx.Commit()
}
