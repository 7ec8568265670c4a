package main

import (
	"context"
	"io"

	"github.com/rs/zerolog"

	"cotd/configs"
	"cotd/engine"
	"cotd/engine/store"
	"cotd/engine/storefeed"
)

// persistence is the store and its Directory feed while cotd serves; nil
// when [store] enabled = false.
type persistence struct {
	cfg  configs.Store
	db   *store.DB
	feed *storefeed.Feed
	log  zerolog.Logger
}

// openPersistence opens the store (its errors name the file or the masked
// URL), starts the feed on the engine's Directory and adds the store's
// metrics to the engine's /metrics; nil, nil when the store is off.
func openPersistence(cfg configs.Store, srv *engine.Server, log zerolog.Logger) (*persistence, error) {
	if !cfg.Enabled {
		log.Info().Msg("store disabled: nothing is kept across a restart but users and certificates")
		return nil, nil
	}
	ctx := context.Background()
	db, err := store.Open(ctx, cfg, store.Options{Log: log.With().Str("component", "store").Logger()})
	if err != nil {
		return nil, err
	}
	feed, err := storefeed.Start(ctx, storefeed.Options{Directory: srv.Directory(), Store: db, Config: cfg, Log: log})
	if err != nil {
		_ = db.Close(ctx)
		return nil, err
	}
	log.Info().Str("backend", db.Backend().String()).Bool("archive", cfg.Archive).
		Bool("offline_chat", cfg.OfflineChat).Msg("store open")
	p := &persistence{cfg: cfg, db: db, feed: feed, log: log}
	srv.AddMetrics(p.writeMetrics)
	return p, nil
}

// store is what Marti reads history and file metadata from; nil (an
// untyped nil, so that Marti sees no store) when the store is off.
func (p *persistence) store() store.Store {
	if p == nil {
		return nil
	}
	return p.db
}

// DB is the store itself, for enrollment's certificate records; nil when
// the store is off.
func (p *persistence) DB() *store.DB {
	if p == nil {
		return nil
	}
	return p.db
}

// writeMetrics writes the store's and the feed's metrics.
func (p *persistence) writeMetrics(w io.Writer) error {
	if err := p.db.WriteMetrics(w); err != nil {
		return err
	}
	return p.feed.WriteMetrics(w)
}

// close runs after the engine stopped: the feed hands the store the events
// still queued, then the store writes what it holds, each within
// [store] drain_timeout; what is left is logged and counted as dropped.
func (p *persistence) close() {
	if p == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.DrainTimeout.Duration)
	defer cancel()
	if err := p.feed.Close(ctx); err != nil {
		p.log.Error().Err(err).Msg("store feed did not drain in time")
	}
	if err := p.db.Close(context.Background()); err != nil {
		p.log.Error().Err(err).Msg("store close")
	}
}
