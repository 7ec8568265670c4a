package main

import (
	"context"
	"fmt"
	"io"

	"github.com/rs/zerolog"

	"cotd/configs"
	"cotd/engine/directory"
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
// URL) and starts the feed on dir; nil, nil when the store is off.
func openPersistence(cfg configs.Store, dir directory.Directory, log zerolog.Logger) (*persistence, error) {
	if !cfg.Enabled {
		log.Info().Msg("store disabled: nothing is kept across a restart but users and certificates")
		return nil, nil
	}
	ctx := context.Background()
	db, err := store.Open(ctx, cfg, store.Options{Log: log.With().Str("component", "store").Logger()})
	if err != nil {
		return nil, err
	}
	feed, err := storefeed.Start(ctx, storefeed.Options{Directory: dir, Store: db, Config: cfg, Log: log})
	if err != nil {
		_ = db.Close(ctx)
		return nil, err
	}
	log.Info().Str("backend", db.Backend().String()).Bool("archive", cfg.Archive).
		Bool("offline_chat", cfg.OfflineChat).Msg("store open")
	return &persistence{cfg: cfg, db: db, feed: feed, log: log}, nil
}

// writeMetrics appends the store's and the feed's metrics to /metrics.
func (p *persistence) writeMetrics(w io.Writer) error {
	if p == nil {
		return nil
	}
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

// metricsOf writes each of ws in turn: the engine's metrics, then its
// peers'.
func metricsOf(ws ...func(io.Writer) error) func(io.Writer) error {
	return func(w io.Writer) error {
		for _, f := range ws {
			if err := f(w); err != nil {
				return fmt.Errorf("metrics: %w", err)
			}
		}
		return nil
	}
}
