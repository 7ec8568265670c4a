package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
)

// pgConnectTimeout bounds one connection attempt when the URL sets none, so
// that a database that went away costs the writer seconds, not minutes.
const pgConnectTimeout = 5 * time.Second

func (db *DB) openPostgres(ctx context.Context) error {
	masked := MaskURL(db.cfg.URL)
	pc, err := pgxpool.ParseConfig(db.cfg.URL)
	if err != nil {
		// pgx's message can quote the URL; say what is wrong without it.
		return fmt.Errorf("%w: store.url %s cannot be parsed as a PostgreSQL URL", ErrConfig, masked)
	}
	if pc.ConnConfig.ConnectTimeout == 0 {
		pc.ConnConfig.ConnectTimeout = pgConnectTimeout
	}
	pc.MaxConns = int32(db.cfg.PoolSize) + 1 // one for the writer
	pc.MinConns = 0
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrUnreachable, masked, err)
	}
	pctx, cancel := context.WithTimeout(ctx, 2*pgConnectTimeout)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return fmt.Errorf("%w: %s: %v", ErrUnreachable, masked, err)
	}
	db.pool = pool
	db.sql = stdlib.OpenDBFromPool(pool)
	return nil
}

var copyEventCols = []string{"uid", "cot_type", "how", "time", "start", "stale",
	"point_lat", "point_lon", "point_hae", "point_ce", "point_le",
	"detail", "servertime", "sender_uid", "sender_callsign", "sender_user", "groups"}

// writePostgres writes one batch in one transaction: events by COPY, the
// rest (few, and needing ids back) by statements.
func (db *DB) writePostgres(ctx context.Context, bt *batch) error {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if len(bt.events) > 0 {
		rows := pgx.CopyFromSlice(len(bt.events), func(i int) ([]any, error) {
			return db.backend.eventArgs(bt.events[i]), nil
		})
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"cot_router"}, copyEventCols, rows); err != nil {
			return err
		}
	}
	if err := db.writeOps(ctx, pgTx{tx}, bt); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

type pgTx struct{ tx pgx.Tx }

func (t pgTx) exec(ctx context.Context, query string, args ...any) error {
	_, err := t.tx.Exec(ctx, query, args...)
	return err
}

func (t pgTx) queryRow(ctx context.Context, query string, args ...any) rowScanner {
	return t.tx.QueryRow(ctx, query, args...)
}

// noRows reports a query that found nothing, from either driver.
func noRows(err error) bool {
	return errors.Is(err, sql.ErrNoRows) || errors.Is(err, pgx.ErrNoRows)
}
