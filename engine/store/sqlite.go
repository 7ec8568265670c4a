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
	// WAL lets readers run beside the writer; synchronous=NORMAL is durable
	// against a crash of the process (the WAL is in the OS's hands at
	// commit) and loses at most the last transactions on power loss.
	// Immediate transactions take the write lock at BEGIN, so two writers
	// wait on busy_timeout instead of failing on a lock upgrade.
	q := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(NORMAL)", "foreign_keys(1)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
	sdb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return fmt.Errorf("store: %s: %w", path, err)
	}
	sdb.SetMaxOpenConns(db.cfg.PoolSize + 1)
	sdb.SetMaxIdleConns(db.cfg.PoolSize + 1)
	db.sql = sdb
	if err := db.claimSQLite(ctx); err != nil {
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

// claimSQLite checks that the file is readable and cotd's (or new), and
// marks a new one as cotd's.
func (db *DB) claimSQLite(ctx context.Context) error {
	path := db.cfg.Path
	var appID int64
	if err := db.sql.QueryRowContext(ctx, `PRAGMA application_id`).Scan(&appID); err != nil {
		return sqliteOpenError(path, err)
	}
	var tables []string
	rows, err := db.sql.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`)
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
	if _, err := db.sql.ExecContext(ctx, fmt.Sprintf(`PRAGMA application_id = %d`, sqliteApplicationID)); err != nil {
		return sqliteOpenError(path, err)
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

// writeSQLite writes one batch in one transaction.
func (db *DB) writeSQLite(ctx context.Context, bt *batch) error {
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if len(bt.events) > 0 {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO cot_router (`+insertEventCols+`) VALUES (`+placeholders(17)+`)`)
		if err != nil {
			return err
		}
		for _, r := range bt.events {
			if _, err := stmt.ExecContext(ctx, db.backend.eventArgs(r)...); err != nil {
				stmt.Close()
				return err
			}
		}
		stmt.Close()
	}
	if err := db.writeOps(ctx, sqlTx{tx}, bt); err != nil {
		return err
	}
	return tx.Commit()
}
