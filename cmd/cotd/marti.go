package main

import (
	"context"

	"github.com/rs/zerolog"

	"cotd/configs"
	"cotd/engine"
	"cotd/engine/directory"
	"cotd/engine/marti"
	"cotd/engine/store"
)

// newMarti builds the Marti API beside the engine, or returns nil when
// neither of its listeners is configured. The engine must be built first:
// it creates the development certificates Marti serves with.
func newMarti(cfg *configs.Config, srv *engine.Server, dir directory.Directory, st store.Store, log zerolog.Logger) (*marti.Server, error) {
	if !cfg.MartiHTTPSEnabled() && cfg.Marti.HTTPAddr == "" {
		return nil, nil
	}
	m, err := marti.New(marti.Options{Config: cfg, Dir: dir, Store: st, Log: log, Version: version})
	if err != nil {
		return nil, err
	}
	srv.AddMetrics(m.WriteMetrics)
	return m, nil
}

// runMarti serves m until ctx ends. If Marti fails (its port is taken), it
// calls stop so the whole server goes down with a clear error instead of
// streaming without the API clients need.
func runMarti(ctx context.Context, stop context.CancelFunc, m *marti.Server, log zerolog.Logger) <-chan error {
	done := make(chan error, 1)
	if m == nil {
		done <- nil
		return done
	}
	go func() {
		err := m.Run(ctx)
		if err != nil {
			log.Error().Err(err).Msg("marti stopped; shutting down")
			stop()
		}
		done <- err
	}()
	return done
}

// reloadMarti re-reads Marti's users file and certificates (SIGHUP); it
// logs its own outcome.
func reloadMarti(m *marti.Server) {
	if m != nil {
		_ = m.Reload()
	}
}
