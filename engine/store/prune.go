package store

import (
	"context"
	"time"
)

// pruneKinds lists the kinds a prune round visits: those with a retention,
// and files always (a file may carry its own expiration).
func (db *DB) pruneKinds() []Kind {
	r := db.cfg.Retention
	var kinds []Kind
	if r.Events.Duration > 0 {
		kinds = append(kinds, KindEvent)
	}
	if r.Chat.Duration > 0 {
		kinds = append(kinds, KindChat)
	}
	if r.Connections.Duration > 0 {
		kinds = append(kinds, KindConn)
	}
	return append(kinds, KindFile)
}

// pruneStep deletes at most prune_batch expired rows of kinds[0], in one
// short transaction, and returns the kinds still to visit: kinds[0] stays
// while a step finds a full batch. An error ends the round (logged); the
// next round retries.
func (db *DB) pruneStep(ctx context.Context, kinds []Kind) []Kind {
	k := kinds[0]
	n, err := db.pruneOnce(ctx, k, db.now())
	if err != nil {
		db.log.Warn().Err(err).Stringer("kind", k).Msg("store: prune failed; retrying next round")
		return nil
	}
	db.stats.Pruned[k].Add(uint64(n))
	if n < db.cfg.PruneBatch {
		return kinds[1:]
	}
	return kinds
}

// Prune runs whole prune rounds until nothing expired is left, for tests and
// for operators who want it now; the writer prunes by itself.
func (db *DB) Prune(ctx context.Context) error {
	for _, k := range db.pruneKinds() {
		for {
			n, err := db.pruneOnce(ctx, k, db.now())
			if err != nil {
				return err
			}
			db.stats.Pruned[k].Add(uint64(n))
			if n < db.cfg.PruneBatch {
				break
			}
		}
	}
	return nil
}

// pruneOnce deletes one batch of expired rows of kind k and returns how many.
func (db *DB) pruneOnce(ctx context.Context, k Kind, now time.Time) (int, error) {
	b := db.backend
	r := db.cfg.Retention
	limit := db.cfg.PruneBatch
	// The ids are chosen by the index on the time column and deleted by
	// primary key: each step touches at most limit rows.
	del := func(table, timeCol string, keep time.Duration) (int, error) {
		res, err := db.sql.ExecContext(ctx, b.q(`DELETE FROM `+table+` WHERE id IN
			(SELECT id FROM `+table+` WHERE `+timeCol+` < ? ORDER BY `+timeCol+` LIMIT ?)`),
			b.t(now.Add(-keep)), limit)
		if err != nil {
			return 0, err
		}
		n, err := res.RowsAffected()
		return int(n), err
	}
	switch k {
	case KindEvent:
		return del("cot_router", "servertime", r.Events.Duration)
	case KindChat:
		// The offline copies go with their chat (ON DELETE CASCADE).
		return del("cot_router_chat", "servertime", r.Chat.Duration)
	case KindConn:
		return del("client_endpoint_event", "created_ts", r.Connections.Duration)
	case KindFile:
		return db.pruneFiles(ctx, now, limit)
	}
	return 0, nil
}

// pruneFiles deletes file metadata past retention or past its own
// expiration, then tells the owner of the bytes.
func (db *DB) pruneFiles(ctx context.Context, now time.Time, limit int) (int, error) {
	b := db.backend
	cond := `(expiration IS NOT NULL AND expiration < ?)`
	args := []any{b.t(now)}
	if keep := db.cfg.Retention.Files.Duration; keep > 0 {
		cond += ` OR submissiontime < ?`
		args = append(args, b.t(now.Add(-keep)))
	}
	args = append(args, limit)
	// RETURNING names exactly the rows this statement deleted, so a
	// concurrent Prune cannot report a file twice.
	rows, err := db.sql.QueryContext(ctx, b.q(`DELETE FROM resource WHERE id IN
		(SELECT id FROM resource WHERE `+cond+` ORDER BY id LIMIT ?) RETURNING hash`), args...)
	if err != nil {
		return 0, err
	}
	var hashes []string
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			rows.Close()
			return 0, err
		}
		hashes = append(hashes, h)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if db.opts.OnFilePruned != nil {
		for _, h := range hashes {
			db.opts.OnFilePruned(h)
		}
	}
	return len(hashes), nil
}
