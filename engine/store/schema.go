package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// migration is one numbered step of the schema, written for each backend.
// Steps are applied in order, each in its own transaction, and recorded in
// schema_migrations; a released step is never edited, only followed.
type migration struct {
	version  int
	name     string
	sqlite   []string
	postgres []string
}

// The columns every event row has, in TAK Server's names where it has the
// column (cot_router: uid, cot_type, how, time, start, stale, point_hae,
// point_ce, point_le, detail, servertime, groups) and plain names for what
// cotd adds (the point's lat/lon instead of a PostGIS geometry, who sent it).
const (
	sqliteEventCols = `
	uid             TEXT NOT NULL,
	cot_type        TEXT NOT NULL,
	how             TEXT NOT NULL DEFAULT '',
	time            TEXT,
	start           TEXT,
	stale           TEXT,
	point_lat       REAL NOT NULL DEFAULT 0,
	point_lon       REAL NOT NULL DEFAULT 0,
	point_hae       REAL NOT NULL DEFAULT 0,
	point_ce        REAL NOT NULL DEFAULT 0,
	point_le        REAL NOT NULL DEFAULT 0,
	detail          TEXT NOT NULL DEFAULT '',
	servertime      TEXT NOT NULL,
	sender_uid      TEXT NOT NULL DEFAULT '',
	sender_callsign TEXT NOT NULL DEFAULT '',
	sender_user     TEXT NOT NULL DEFAULT '',
	groups          TEXT NOT NULL DEFAULT ''`

	postgresEventCols = `
	uid             text NOT NULL,
	cot_type        text NOT NULL,
	how             text NOT NULL DEFAULT '',
	time            timestamptz,
	start           timestamptz,
	stale           timestamptz,
	point_lat       double precision NOT NULL DEFAULT 0,
	point_lon       double precision NOT NULL DEFAULT 0,
	point_hae       double precision NOT NULL DEFAULT 0,
	point_ce        double precision NOT NULL DEFAULT 0,
	point_le        double precision NOT NULL DEFAULT 0,
	detail          text NOT NULL DEFAULT '',
	servertime      timestamptz NOT NULL,
	sender_uid      text NOT NULL DEFAULT '',
	sender_callsign text NOT NULL DEFAULT '',
	sender_user     text NOT NULL DEFAULT '',
	groups          text NOT NULL DEFAULT ''`
)

var migrations = []migration{{
	version: 1,
	name:    "events, chat, offline chat, client endpoints, files, certificates",
	sqlite: []string{
		`CREATE TABLE cot_router (id INTEGER PRIMARY KEY,` + sqliteEventCols + `)`,
		`CREATE INDEX cot_router_uid_servertime_idx ON cot_router (uid, servertime)`,
		`CREATE INDEX cot_router_servertime_idx ON cot_router (servertime)`,
		`CREATE VIEW latestcot AS SELECT * FROM cot_router c WHERE c.id =
			(SELECT l.id FROM cot_router l WHERE l.uid = c.uid ORDER BY l.servertime DESC, l.id DESC LIMIT 1)`,
		`CREATE TABLE cot_router_chat (id INTEGER PRIMARY KEY,` + sqliteEventCols + `,
			chat_sender_callsign TEXT NOT NULL DEFAULT '',
			chat_room            TEXT NOT NULL DEFAULT '',
			chat_room_id         TEXT NOT NULL DEFAULT '',
			message_id           TEXT NOT NULL DEFAULT '',
			chat_content         TEXT NOT NULL DEFAULT '',
			dest_uid             TEXT NOT NULL DEFAULT '',
			dest_callsign        TEXT NOT NULL DEFAULT '')`,
		`CREATE INDEX cot_router_chat_servertime_idx ON cot_router_chat (servertime)`,
		`CREATE INDEX cot_router_chat_sender_uid_idx ON cot_router_chat (sender_uid, servertime)`,
		`CREATE TABLE cot_router_chat_pending (
			id                 INTEGER PRIMARY KEY,
			chat_id            INTEGER NOT NULL REFERENCES cot_router_chat (id) ON DELETE CASCADE,
			recipient_uid      TEXT NOT NULL,
			recipient_callsign TEXT NOT NULL DEFAULT '',
			created            TEXT NOT NULL,
			delivered          TEXT)`,
		`CREATE INDEX cot_router_chat_pending_uid_idx ON cot_router_chat_pending (recipient_uid) WHERE delivered IS NULL`,
		`CREATE INDEX cot_router_chat_pending_callsign_idx ON cot_router_chat_pending (recipient_callsign) WHERE delivered IS NULL`,
		`CREATE INDEX cot_router_chat_pending_chat_idx ON cot_router_chat_pending (chat_id)`,
		`CREATE TABLE client_endpoint (
			id              INTEGER PRIMARY KEY,
			uid             TEXT NOT NULL UNIQUE,
			callsign        TEXT NOT NULL DEFAULT '',
			username        TEXT NOT NULL DEFAULT '',
			team            TEXT NOT NULL DEFAULT '',
			role            TEXT NOT NULL DEFAULT '',
			groups          TEXT NOT NULL DEFAULT '',
			address         TEXT NOT NULL DEFAULT '',
			listener        TEXT NOT NULL DEFAULT '',
			last_status     TEXT NOT NULL,
			last_event_time TEXT NOT NULL)`,
		`CREATE INDEX client_endpoint_callsign_idx ON client_endpoint (callsign)`,
		`CREATE TABLE client_endpoint_event (
			id         INTEGER PRIMARY KEY,
			uid        TEXT NOT NULL DEFAULT '',
			callsign   TEXT NOT NULL DEFAULT '',
			username   TEXT NOT NULL DEFAULT '',
			groups     TEXT NOT NULL DEFAULT '',
			address    TEXT NOT NULL DEFAULT '',
			listener   TEXT NOT NULL DEFAULT '',
			event_type TEXT NOT NULL,
			reason     TEXT NOT NULL DEFAULT '',
			created_ts TEXT NOT NULL)`,
		`CREATE INDEX client_endpoint_event_created_idx ON client_endpoint_event (created_ts)`,
		`CREATE INDEX client_endpoint_event_uid_idx ON client_endpoint_event (uid, created_ts)`,
		`CREATE TABLE resource (
			id             INTEGER PRIMARY KEY,
			hash           TEXT NOT NULL UNIQUE,
			uid            TEXT NOT NULL,
			name           TEXT NOT NULL DEFAULT '',
			filename       TEXT NOT NULL DEFAULT '',
			mimetype       TEXT NOT NULL DEFAULT '',
			size           INTEGER NOT NULL DEFAULT 0,
			keywords       TEXT NOT NULL DEFAULT '',
			submitter      TEXT NOT NULL DEFAULT '',
			creator_uid    TEXT NOT NULL DEFAULT '',
			tool           TEXT NOT NULL DEFAULT 'public',
			groups         TEXT NOT NULL DEFAULT '',
			submissiontime TEXT NOT NULL,
			expiration     TEXT)`,
		`CREATE INDEX resource_submissiontime_idx ON resource (submissiontime)`,
		`CREATE TABLE certificate (
			id              INTEGER PRIMARY KEY,
			serial          TEXT NOT NULL UNIQUE,
			username        TEXT NOT NULL,
			client_uid      TEXT NOT NULL DEFAULT '',
			subject_dn      TEXT NOT NULL DEFAULT '',
			fingerprint     TEXT NOT NULL DEFAULT '',
			issuance_date   TEXT NOT NULL,
			expiration_date TEXT NOT NULL,
			revocation_date TEXT)`,
		`CREATE INDEX certificate_username_idx ON certificate (username)`,
	},
	postgres: []string{
		`CREATE TABLE cot_router (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,` + postgresEventCols + `)`,
		`CREATE INDEX cot_router_uid_servertime_idx ON cot_router (uid, servertime)`,
		`CREATE INDEX cot_router_servertime_idx ON cot_router (servertime)`,
		`CREATE VIEW latestcot AS SELECT DISTINCT ON (uid) * FROM cot_router ORDER BY uid, servertime DESC, id DESC`,
		`CREATE TABLE cot_router_chat (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,` + postgresEventCols + `,
			chat_sender_callsign text NOT NULL DEFAULT '',
			chat_room            text NOT NULL DEFAULT '',
			chat_room_id         text NOT NULL DEFAULT '',
			message_id           text NOT NULL DEFAULT '',
			chat_content         text NOT NULL DEFAULT '',
			dest_uid             text NOT NULL DEFAULT '',
			dest_callsign        text NOT NULL DEFAULT '')`,
		`CREATE INDEX cot_router_chat_servertime_idx ON cot_router_chat (servertime)`,
		`CREATE INDEX cot_router_chat_sender_uid_idx ON cot_router_chat (sender_uid, servertime)`,
		`CREATE TABLE cot_router_chat_pending (
			id                 bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
			chat_id            bigint NOT NULL REFERENCES cot_router_chat (id) ON DELETE CASCADE,
			recipient_uid      text NOT NULL,
			recipient_callsign text NOT NULL DEFAULT '',
			created            timestamptz NOT NULL,
			delivered          timestamptz)`,
		`CREATE INDEX cot_router_chat_pending_uid_idx ON cot_router_chat_pending (recipient_uid) WHERE delivered IS NULL`,
		`CREATE INDEX cot_router_chat_pending_callsign_idx ON cot_router_chat_pending (recipient_callsign) WHERE delivered IS NULL`,
		`CREATE INDEX cot_router_chat_pending_chat_idx ON cot_router_chat_pending (chat_id)`,
		`CREATE TABLE client_endpoint (
			id              bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
			uid             text NOT NULL UNIQUE,
			callsign        text NOT NULL DEFAULT '',
			username        text NOT NULL DEFAULT '',
			team            text NOT NULL DEFAULT '',
			role            text NOT NULL DEFAULT '',
			groups          text NOT NULL DEFAULT '',
			address         text NOT NULL DEFAULT '',
			listener        text NOT NULL DEFAULT '',
			last_status     text NOT NULL,
			last_event_time timestamptz NOT NULL)`,
		`CREATE INDEX client_endpoint_callsign_idx ON client_endpoint (callsign)`,
		`CREATE TABLE client_endpoint_event (
			id         bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
			uid        text NOT NULL DEFAULT '',
			callsign   text NOT NULL DEFAULT '',
			username   text NOT NULL DEFAULT '',
			groups     text NOT NULL DEFAULT '',
			address    text NOT NULL DEFAULT '',
			listener   text NOT NULL DEFAULT '',
			event_type text NOT NULL,
			reason     text NOT NULL DEFAULT '',
			created_ts timestamptz NOT NULL)`,
		`CREATE INDEX client_endpoint_event_created_idx ON client_endpoint_event (created_ts)`,
		`CREATE INDEX client_endpoint_event_uid_idx ON client_endpoint_event (uid, created_ts)`,
		`CREATE TABLE resource (
			id             bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
			hash           text NOT NULL UNIQUE,
			uid            text NOT NULL,
			name           text NOT NULL DEFAULT '',
			filename       text NOT NULL DEFAULT '',
			mimetype       text NOT NULL DEFAULT '',
			size           bigint NOT NULL DEFAULT 0,
			keywords       text NOT NULL DEFAULT '',
			submitter      text NOT NULL DEFAULT '',
			creator_uid    text NOT NULL DEFAULT '',
			tool           text NOT NULL DEFAULT 'public',
			groups         text NOT NULL DEFAULT '',
			submissiontime timestamptz NOT NULL,
			expiration     timestamptz)`,
		`CREATE INDEX resource_submissiontime_idx ON resource (submissiontime)`,
		`CREATE TABLE certificate (
			id              bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
			serial          text NOT NULL UNIQUE,
			username        text NOT NULL,
			client_uid      text NOT NULL DEFAULT '',
			subject_dn      text NOT NULL DEFAULT '',
			fingerprint     text NOT NULL DEFAULT '',
			issuance_date   timestamptz NOT NULL,
			expiration_date timestamptz NOT NULL,
			revocation_date timestamptz)`,
		`CREATE INDEX certificate_username_idx ON certificate (username)`,
	},
}}

// ourTables are the tables the migrations create; finding one of them
// without schema_migrations means someone else's database (TAK Server's
// has a cot_router too).
var ourTables = []string{"cot_router", "cot_router_chat", "cot_router_chat_pending",
	"client_endpoint", "client_endpoint_event", "resource", "certificate"}

// sqliteApplicationID marks a SQLite file as cotd's ("COTD"), so that a
// foreign file is recognised before anything is written to it.
const sqliteApplicationID = 0x434F5444

// SchemaVersion is the newest migration this build knows.
func SchemaVersion() int { return migrations[len(migrations)-1].version }

// tableExists reports whether name is a table (or view) in the current
// schema.
func tableExists(ctx context.Context, db *sql.DB, b Backend, name string) (bool, error) {
	var q string
	if b == BackendSQLite {
		q = `SELECT count(*) FROM sqlite_master WHERE name = ?`
	} else {
		q = `SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ?`
	}
	var n int
	if err := db.QueryRowContext(ctx, b.q(q), name).Scan(&n); err != nil {
		return false, err
	}
	return n > 0, nil
}

// currentVersion is the highest applied migration, 0 for a database cotd has
// not touched. A database with cotd's tables but no record of migrations is
// ErrForeign.
func currentVersion(ctx context.Context, db *sql.DB, b Backend) (int, error) {
	ok, err := tableExists(ctx, db, b, "schema_migrations")
	if err != nil {
		return 0, err
	}
	if !ok {
		for _, t := range ourTables {
			found, err := tableExists(ctx, db, b, t)
			if err != nil {
				return 0, err
			}
			if found {
				return 0, fmt.Errorf("%w: it has a %s table but no schema_migrations (a TAK Server database?)", ErrForeign, t)
			}
		}
		return 0, nil
	}
	var v sql.NullInt64
	if err := db.QueryRowContext(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, err
	}
	return int(v.Int64), nil
}

// migrate applies every migration newer than the database and returns the
// versions it applied. On PostgreSQL an advisory lock serialises two cotd
// processes starting against one database; on SQLite the immediate
// transaction does.
func migrate(ctx context.Context, db *sql.DB, b Backend, now time.Time) ([]int, error) {
	create := `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at text NOT NULL)`
	cur, err := currentVersion(ctx, db, b)
	if err != nil {
		return nil, err
	}
	if latest := SchemaVersion(); cur > latest {
		return nil, fmt.Errorf("%w: it is at version %d, this build knows up to %d", ErrSchemaTooNew, cur, latest)
	}
	var applied []int
	for _, m := range migrations {
		if m.version <= cur {
			continue
		}
		done, err := applyOne(ctx, db, b, m, create, now)
		if err != nil {
			return applied, fmt.Errorf("store: migration %d (%s): %w", m.version, m.name, err)
		}
		if done {
			applied = append(applied, m.version)
		}
	}
	return applied, nil
}

// applyOne runs one migration in a transaction; false when another process
// applied it first.
func applyOne(ctx context.Context, db *sql.DB, b Backend, m migration, create string, now time.Time) (bool, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer func() { _ = tx.Rollback() }()
	stmts := m.sqlite
	if b == BackendPostgres {
		// Any constant key: it only has to be the same for every cotd.
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(4355848125)`); err != nil {
			return false, err
		}
		stmts = m.postgres
	}
	if _, err := tx.ExecContext(ctx, create); err != nil {
		return false, err
	}
	var n int
	if err := tx.QueryRowContext(ctx, b.q(`SELECT count(*) FROM schema_migrations WHERE version = ?`), m.version).Scan(&n); err != nil {
		return false, err
	}
	if n > 0 {
		return false, nil
	}
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return false, fmt.Errorf("%s: %w", firstLine(s), err)
		}
	}
	if _, err := tx.ExecContext(ctx, b.q(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`),
		m.version, m.name, now.UTC().Format(time.RFC3339)); err != nil {
		return false, err
	}
	return true, tx.Commit()
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// isNotFound maps sql.ErrNoRows to ErrNotFound.
func isNotFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return err
}
