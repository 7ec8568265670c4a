package store

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"cotd/configs"
)

// Store is everything the rest of the process may ask of persistence. The
// Archive/Record methods never block; the others talk to the database and
// honour their context.
type Store interface {
	// ArchiveEvent, ArchiveChat and RecordConn queue a record for the
	// writer and return at once; false when it was dropped (queue full or
	// store closed), which is counted.
	ArchiveEvent(EventRecord) bool
	ArchiveChat(ChatRecord) bool
	RecordConn(ConnRecord) bool
	// Archive parses a routed document with FromEvent and queues it.
	Archive(doc []byte, recv time.Time, s Sender) error
	// Sync returns once everything queued before the call is written (or
	// dropped).
	Sync(ctx context.Context) error

	// History.
	LatestEvent(ctx context.Context, uid string, sc Scope) (EventRecord, error)
	LatestEvents(ctx context.Context, uids []string, sc Scope) ([]EventRecord, error)
	Events(ctx context.Context, q EventQuery) ([]EventRecord, error)
	ClientEndpoints(ctx context.Context, q EndpointQuery) ([]Endpoint, error)
	Chats(ctx context.Context, q EventQuery) ([]ChatRecord, error)

	// Offline chat.
	PendingChats(ctx context.Context, uid, callsign string) ([]PendingChat, error)
	MarkDelivered(ctx context.Context, ids []int64, at time.Time) error

	// Files (metadata; the bytes are the caller's).
	PutFile(ctx context.Context, f FileRecord) (FileRecord, error)
	File(ctx context.Context, hash string) (FileRecord, error)
	SearchFiles(ctx context.Context, q FileQuery) ([]FileRecord, error)
	SetFileTool(ctx context.Context, hash, tool string) error
	SetFileMIMEType(ctx context.Context, hash, mimeType string) error
	DeleteFile(ctx context.Context, hash string) error

	// Certificates issued by enrollment.
	PutCert(ctx context.Context, c CertRecord) error
	Cert(ctx context.Context, serial string) (CertRecord, error)
	CertsByUser(ctx context.Context, user string) ([]CertRecord, error)
	RevokeCert(ctx context.Context, serial string, at time.Time) error
	RevokeUserCerts(ctx context.Context, user string, at time.Time) (int, error)
	RevokedCerts(ctx context.Context) ([]CertRecord, error)

	Backend() Backend
	WriteMetrics(w io.Writer) error
	Close(ctx context.Context) error
}

var _ Store = (*DB)(nil)

// Options are what Open takes besides the configuration.
type Options struct {
	Log zerolog.Logger
	// OnFilePruned is called (from the writer goroutine, after the delete
	// committed) with the hash of each file whose metadata retention or
	// expiration removed, so that the owner of the bytes deletes them.
	OnFilePruned func(hash string)
	// Now is the clock for retention; nil is time.Now.
	Now func() time.Time
	// OnCommit, when set, is called by the writer after each batch
	// committed, with the records it held. For tests and diagnostics.
	OnCommit func(n int)
}

// DB is a Store on one of the two backends.
type DB struct {
	cfg     configs.Store
	backend Backend
	log     zerolog.Logger
	opts    Options
	now     func() time.Time

	sql  *sql.DB
	pool *pgxpool.Pool // PostgreSQL only: the writer's COPY goes through it

	// The queue. Producers check closed after raising inflight, and Close
	// sets closed before waiting for inflight to reach zero, so no record
	// can slip in after the final drain without being counted.
	queue    chan item
	closed   atomic.Bool
	inflight atomic.Int64

	// wctx is the writer's context; Close cancels it when the drain runs
	// out of time, which aborts a write in progress (a PostgreSQL that
	// stopped answering would otherwise hold shutdown for its timeouts).
	wctx      context.Context
	wcancel   context.CancelFunc
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error

	stats Stats
	// down is set while writes fail, for the recovery log line.
	down atomic.Bool
}

// item is one queued record (exactly one pointer set), or a Sync barrier.
type item struct {
	ev      *EventRecord
	chat    *ChatRecord
	conn    *ConnRecord
	barrier chan struct{}
}

// Open connects to (or creates) the database the configuration names
// (PostgreSQL when URL is set, else the SQLite file at Path; the caller
// checks Enabled), brings its schema up to date and starts the writer.
func Open(ctx context.Context, cfg configs.Store, opts Options) (*DB, error) {
	if cfg.QueueSize < 1 || cfg.BatchSize < 1 || cfg.PoolSize < 1 || cfg.PruneBatch < 1 {
		return nil, fmt.Errorf("%w: queue_size, batch_size, pool_size and prune_batch must be positive", ErrConfig)
	}
	db := &DB{cfg: cfg, log: opts.Log, opts: opts, now: opts.Now}
	if db.now == nil {
		db.now = time.Now
	}
	var err error
	if cfg.URL != "" {
		db.backend = BackendPostgres
		db.log = db.log.With().Str("store", "postgres").Str("url", MaskURL(cfg.URL)).Logger()
		err = db.openPostgres(ctx)
	} else {
		db.backend = BackendSQLite
		db.log = db.log.With().Str("store", "sqlite").Str("path", cfg.Path).Logger()
		err = db.openSQLite(ctx)
	}
	if err != nil {
		return nil, err
	}
	applied, err := migrate(ctx, db.sql, db.backend, db.now())
	if err != nil {
		db.closeConns()
		return nil, fmt.Errorf("%s: %w", db.where(), err)
	}
	if len(applied) > 0 {
		db.log.Info().Ints("migrations", applied).Int("schema_version", SchemaVersion()).Msg("store schema migrated")
	}
	db.stats.init()
	db.queue = make(chan item, cfg.QueueSize)
	db.stop = make(chan struct{})
	db.wctx, db.wcancel = context.WithCancel(context.Background())
	db.done = make(chan struct{})
	go db.writer()
	return db, nil
}

// Migrate brings the schema of the configured database up to date and
// returns the versions it applied; `cotd store migrate` runs it.
func Migrate(ctx context.Context, cfg configs.Store, log zerolog.Logger) ([]int, error) {
	db := &DB{cfg: cfg, log: log, now: time.Now}
	var err error
	if cfg.URL != "" {
		db.backend = BackendPostgres
		err = db.openPostgres(ctx)
	} else {
		db.backend = BackendSQLite
		err = db.openSQLite(ctx)
	}
	if err != nil {
		return nil, err
	}
	defer db.closeConns()
	applied, err := migrate(ctx, db.sql, db.backend, time.Now())
	if err != nil {
		return applied, fmt.Errorf("%s: %w", db.where(), err)
	}
	return applied, nil
}

// where names the database for errors: the file, or the masked URL.
func (db *DB) where() string {
	if db.backend == BackendPostgres {
		return MaskURL(db.cfg.URL)
	}
	return db.cfg.Path
}

// Backend says which database engine this store uses.
func (db *DB) Backend() Backend { return db.backend }

func (db *DB) closeConns() {
	if db.sql != nil {
		_ = db.sql.Close()
	}
	if db.pool != nil {
		db.pool.Close()
	}
}

// enqueue hands it to the writer without waiting.
func (db *DB) enqueue(it item) bool {
	db.inflight.Add(1)
	defer db.inflight.Add(-1)
	if db.closed.Load() {
		db.stats.Dropped[DropClosed].Inc()
		return false
	}
	select {
	case db.queue <- it:
		return true
	default:
		db.stats.Dropped[DropQueueFull].Inc()
		return false
	}
}

// ArchiveEvent queues an event for cot_router. It does nothing (and
// reports true) when [store] archive is off.
func (db *DB) ArchiveEvent(r EventRecord) bool {
	if !db.cfg.Archive {
		return true
	}
	return db.enqueue(item{ev: &r})
}

// ArchiveChat queues a GeoChat for cot_router_chat.
func (db *DB) ArchiveChat(r ChatRecord) bool { return db.enqueue(item{chat: &r}) }

// RecordConn queues a connect or disconnect.
func (db *DB) RecordConn(r ConnRecord) bool {
	if r.Status != StatusConnected && r.Status != StatusDisconnected {
		db.stats.Dropped[DropInvalid].Inc()
		return false
	}
	return db.enqueue(item{conn: &r})
}

// Archive parses doc (see FromEvent) and queues the record. The error is
// ErrNotArchived or ErrBadEvent from parsing, or ErrDropped.
func (db *DB) Archive(doc []byte, recv time.Time, s Sender) error {
	ev, chat, err := FromEvent(doc, recv, s)
	if err != nil {
		return err
	}
	var ok bool
	if chat != nil {
		ok = db.ArchiveChat(*chat)
	} else {
		ok = db.ArchiveEvent(*ev)
	}
	if !ok {
		return ErrDropped
	}
	return nil
}

// Sync waits until the writer has handled everything queued before it. It
// may wait for queue space, unlike the Archive methods.
func (db *DB) Sync(ctx context.Context) error {
	if db.closed.Load() {
		return ErrClosed
	}
	done := make(chan struct{})
	select {
	case db.queue <- item{barrier: done}:
	case <-db.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-db.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops taking records, lets the writer drain the queue for at most
// [store] drain_timeout (or until ctx ends), counts what is left as dropped,
// and closes the database.
func (db *DB) Close(ctx context.Context) error {
	db.closeOnce.Do(func() {
		db.closed.Store(true)
		for db.inflight.Load() > 0 {
			// Producers hold inflight only for one non-blocking send.
			time.Sleep(time.Millisecond)
		}
		ctx, cancel := context.WithTimeout(ctx, db.cfg.DrainTimeout.Duration)
		defer cancel()
		close(db.stop)
		select {
		case <-db.done:
		case <-ctx.Done():
			db.log.Error().Int("queued", len(db.queue)).Msg("store: drain timed out; abandoning queued records")
			db.wcancel()
			<-db.done
		}
		db.wcancel()
		if n := db.discardQueue(); n > 0 {
			db.log.Error().Int("dropped", n).Msg("store: records left unwritten at shutdown")
		}
		db.closeConns()
	})
	return db.closeErr
}

// discardQueue empties the queue after the writer stopped, counting each
// record as dropped at shutdown and releasing Sync waiters.
func (db *DB) discardQueue() int {
	n := 0
	for {
		select {
		case it := <-db.queue:
			if it.barrier != nil {
				close(it.barrier)
				continue
			}
			db.stats.Dropped[DropShutdown].Inc()
			n++
		default:
			return n
		}
	}
}
