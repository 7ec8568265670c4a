package store

import (
	"context"
	"errors"
	"slices"
	"time"

	"cotd/cot"
)

// batch is what one transaction writes: events (the bulk, written by the
// backend's fastest path) and, in queue order, chats and connection events,
// whose order matters (a chat to a client that just disconnected is kept
// for it only if the disconnect is written first).
type batch struct {
	events []*EventRecord
	ops    []item
	n      int
}

func (b *batch) reset() {
	clear(b.events)
	clear(b.ops)
	b.events, b.ops, b.n = b.events[:0], b.ops[:0], 0
}

// Retries of a failed batch before its records are dropped: enough to ride
// out a PostgreSQL restart's first seconds or a briefly busy SQLite file,
// short enough that the queue does not fill behind one bad batch.
var retryDelays = []time.Duration{100 * time.Millisecond, 500 * time.Millisecond}

// batchLinger is how long a batch waits for more records after its first.
// It bounds what a crash can lose beyond the queue (the issue allows about a
// second) and how late an archived event becomes visible to queries that do
// not Sync first.
const batchLinger = 100 * time.Millisecond

// errLogEvery rate-limits the write-failure log line.
const errLogEvery = 10 * time.Second

// writer is the one goroutine that writes queued records and prunes.
func (db *DB) writer() {
	defer close(db.done)
	ctx := db.wctx
	var (
		bt       batch
		barriers []chan struct{}
		pruning  = db.pruneKinds() // a prune round is due at start
		tick     = time.NewTicker(db.cfg.PruneInterval.Duration)
		linger   = time.NewTimer(batchLinger)
		stopping bool
		lastLog  time.Time
		failed   uint64 // records dropped since the last log line
	)
	defer tick.Stop()
	linger.Stop()
	add := func(it item) {
		switch {
		case it.barrier != nil:
			barriers = append(barriers, it.barrier)
		case it.ev != nil:
			bt.events = append(bt.events, it.ev)
			bt.n++
		default:
			bt.ops = append(bt.ops, it)
			bt.n++
		}
	}
	for {
		// Wait for the first record, pruning meanwhile when a round is due.
		if !stopping {
			if len(pruning) > 0 {
				select {
				case it := <-db.queue:
					add(it)
				case <-db.stop:
					stopping = true
				default:
					pruning = db.pruneStep(ctx, pruning)
					continue
				}
			} else {
				select {
				case it := <-db.queue:
					add(it)
				case <-tick.C:
					pruning = db.pruneKinds()
					continue
				case <-db.stop:
					stopping = true
				}
			}
		}
		// Take what else is queued, up to a batch. The batch stays open for
		// up to batchLinger after its first record: a trickle (300 EUDs'
		// SAs, 300 a second) then commits a few times a second instead of
		// once per record, and a commit (a WAL write and an fsync, or a
		// PostgreSQL round trip) costs far more than its rows. A barrier
		// (Sync) or a stop closes the batch at once.
		linger.Reset(batchLinger)
	fill:
		for bt.n < db.cfg.BatchSize {
			if stopping || len(barriers) > 0 {
				select {
				case it := <-db.queue:
					add(it)
					continue
				default:
					break fill
				}
			}
			select {
			case it := <-db.queue:
				add(it)
			case <-linger.C:
				break fill
			case <-db.stop:
				stopping = true
			}
		}
		linger.Stop()
		if bt.n > 0 {
			if err := db.writeBatch(ctx, &bt); err != nil {
				failed += uint64(bt.n)
				db.stats.Dropped[DropWriteError].Add(uint64(bt.n))
				if !db.down.Swap(true) || time.Since(lastLog) >= errLogEvery {
					db.log.Error().Err(err).Uint64("dropped_since_last_log", failed).Int("queued", len(db.queue)).
						Msg("store: writes failing; records are being dropped")
					lastLog, failed = time.Now(), 0
				}
			} else if db.down.Swap(false) {
				db.log.Warn().Uint64("dropped_since_last_log", failed).Msg("store: writes recovered")
				failed = 0
			}
			bt.reset()
		}
		for _, b := range barriers {
			close(b)
		}
		barriers = barriers[:0]
		if len(pruning) > 0 && !stopping {
			// Under constant load the wait above never runs its default
			// branch; one prune step per batch keeps retention going.
			pruning = db.pruneStep(ctx, pruning)
		}
		if stopping && (len(db.queue) == 0 || ctx.Err() != nil) {
			return
		}
	}
}

// writeBatch commits bt, retrying a failed commit; it gives up early when
// ctx ends (a drain that ran out of time).
func (db *DB) writeBatch(ctx context.Context, bt *batch) error {
	var err error
	for attempt := 0; ; attempt++ {
		start := time.Now()
		if db.backend == BackendPostgres {
			err = db.writePostgres(ctx, bt)
		} else {
			err = db.writeSQLite(ctx, bt)
		}
		if err == nil {
			db.stats.WriteSeconds.Observe(time.Since(start).Seconds())
			db.stats.BatchSize.Observe(float64(bt.n))
			db.stats.Written[KindEvent].Add(uint64(len(bt.events)))
			for _, it := range bt.ops {
				if it.chat != nil {
					db.stats.Written[KindChat].Inc()
				} else {
					db.stats.Written[KindConn].Inc()
				}
			}
			if db.opts.OnCommit != nil {
				db.opts.OnCommit(bt.n)
			}
			return nil
		}
		db.stats.WriteErrors.Inc()
		if attempt >= len(retryDelays) || ctx.Err() != nil {
			return err
		}
		select {
		case <-time.After(retryDelays[attempt]):
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		}
	}
}

// writeOps writes the chats and connection events of bt, in queue order,
// inside the batch's transaction.
func (db *DB) writeOps(ctx context.Context, tx txer, bt *batch) error {
	for _, it := range bt.ops {
		var err error
		if it.chat != nil {
			err = db.insertChat(ctx, tx, it.chat)
		} else {
			err = db.insertConn(ctx, tx, it.conn)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (db *DB) insertChat(ctx context.Context, tx txer, c *ChatRecord) error {
	b := db.backend
	args := append(b.eventArgs(&c.EventRecord),
		clean(c.ChatSenderCallsign), clean(c.Room), clean(c.RoomID), clean(c.MessageID), clean(c.Text),
		clean(encodeList(c.DestUIDs)), clean(encodeList(c.DestCallsigns)))
	var id int64
	err := tx.queryRow(ctx, b.q(`INSERT INTO cot_router_chat (`+insertEventCols+`,
		chat_sender_callsign, chat_room, chat_room_id, message_id, chat_content, dest_uid, dest_callsign)
		VALUES (`+placeholders(24)+`) RETURNING id`), args...).Scan(&id)
	if err != nil {
		return err
	}
	if !db.cfg.OfflineChat || c.Type != cot.TypeChat || !c.Directed() {
		return nil
	}
	// Keep a copy for every named recipient the server knows and who is
	// offline now. Recipients it has never seen are the broker's business
	// (b-t-f-s back to the sender).
	// Routing's reachability rule holds here too: a recipient whose
	// groups share none with the chat's would not have heard it live.
	type recipient struct{ uid, callsign string }
	var keep []recipient
	look := func(query, key string) error {
		var r recipient
		var status, groups string
		err := tx.queryRow(ctx, b.q(query), key).Scan(&r.uid, &r.callsign, &status, &groups)
		if err != nil {
			if noRows(err) {
				return nil
			}
			return err
		}
		if !KeepsFor(r.uid, parseStatus(status) == StatusDisconnected, decodeList(groups), c.SenderUID, c.Groups) {
			return nil
		}
		for _, k := range keep {
			if k.uid == r.uid {
				return nil
			}
		}
		keep = append(keep, r)
		return nil
	}
	for _, u := range c.DestUIDs {
		if err := look(`SELECT uid, callsign, last_status, groups FROM client_endpoint WHERE uid = ?`, u); err != nil {
			return err
		}
	}
	for _, cs := range c.DestCallsigns {
		// Callsigns are not unique over time; the most recent holder is the
		// one the sender means.
		if err := look(`SELECT uid, callsign, last_status, groups FROM client_endpoint WHERE callsign = ?
			ORDER BY last_event_time DESC, id DESC LIMIT 1`, cs); err != nil {
			return err
		}
	}
	for _, r := range keep {
		if err := tx.exec(ctx, b.q(`INSERT INTO cot_router_chat_pending (chat_id, recipient_uid, recipient_callsign, created)
			VALUES (?, ?, ?, ?)`), id, r.uid, r.callsign, b.t(c.ServerTime)); err != nil {
			return err
		}
		db.stats.Written[KindPending].Inc()
	}
	return nil
}

func (db *DB) insertConn(ctx context.Context, tx txer, r *ConnRecord) error {
	b := db.backend
	groups := clean(encodeList(r.Groups))
	at := b.t(r.Time)
	if r.Time.IsZero() {
		at = b.t(db.now())
	}
	err := tx.exec(ctx, b.q(`INSERT INTO client_endpoint_event
		(uid, callsign, username, groups, address, listener, event_type, reason, created_ts)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		clean(r.UID), clean(r.Callsign), clean(r.User), groups, clean(r.Address), clean(r.Listener),
		r.Status.String(), clean(r.Reason), at)
	if err != nil || r.UID == "" {
		return err
	}
	// A disconnect often knows less than the connect did (no callsign yet
	// on an early close): keep what was known.
	return tx.exec(ctx, b.q(`INSERT INTO client_endpoint
		(uid, callsign, username, team, role, groups, address, listener, last_status, last_event_time)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (uid) DO UPDATE SET
			callsign = CASE WHEN excluded.callsign <> '' THEN excluded.callsign ELSE client_endpoint.callsign END,
			username = CASE WHEN excluded.username <> '' THEN excluded.username ELSE client_endpoint.username END,
			team = CASE WHEN excluded.team <> '' THEN excluded.team ELSE client_endpoint.team END,
			role = CASE WHEN excluded.role <> '' THEN excluded.role ELSE client_endpoint.role END,
			groups = CASE WHEN excluded.groups <> '' THEN excluded.groups ELSE client_endpoint.groups END,
			address = CASE WHEN excluded.address <> '' THEN excluded.address ELSE client_endpoint.address END,
			listener = CASE WHEN excluded.listener <> '' THEN excluded.listener ELSE client_endpoint.listener END,
			last_status = excluded.last_status,
			last_event_time = excluded.last_event_time`),
		clean(r.UID), clean(r.Callsign), clean(r.User), clean(r.Team), clean(r.Role), groups,
		clean(r.Address), clean(r.Listener), r.Status.String(), at)
}

// KeepsFor is the offline-chat rule for one known recipient of a directed
// chat: keep a copy for uid when it is offline, is not the chat's sender,
// and would have heard the chat live (routing's rule: it shares one of
// chatGroups, or the chat names no groups). insertChat applies it to
// client_endpoint as written; storefeed's b-t-f-s keeper to its copy.
func KeepsFor(uid string, offline bool, groups []string, senderUID string, chatGroups []string) bool {
	if !offline || uid == senderUID {
		return false
	}
	if len(chatGroups) == 0 {
		return true
	}
	for _, g := range chatGroups {
		if slices.Contains(groups, g) {
			return true
		}
	}
	return false
}
