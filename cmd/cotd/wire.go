package main

import (
	"context"

	"github.com/rs/zerolog"

	"cotd/configs"
	"cotd/engine"
	"cotd/engine/admin"
	"cotd/engine/auth"
	"cotd/engine/marti"
)

// wireAdmin mounts the admin API on the engine's admin listener: the API
// sees the engine through its Directory, its metrics and its readiness.
// The web console ([web]) is mounted at "/" behind the same auth; it runs
// until ctx ends, which closes its browsers' sockets with a close frame.
// m is Marti, whose files the console lists; nil when Marti is off.
func wireAdmin(ctx context.Context, srv *engine.Server, cfg *configs.Config, m *marti.Server, log zerolog.Logger) {
	o := admin.Options{
		Directory: srv.Directory(),
		Metrics:   srv.WriteMetrics,
		Ready:     srv.Readiness,
		Pprof:     cfg.Admin.Pprof,
		Log:       log.With().Str("component", "admin").Logger(),
	}
	if cfg.Admin.BasicUser != "" {
		o.Authorize = auth.BasicChecker(cfg.Admin.BasicUser, cfg.Admin.BasicPasswordHash)
	}
	if console := newConsole(ctx, srv, cfg, m, log); console != nil {
		o.Console = console // only when non-nil: a nil *web.Handler would be a non-nil Handler
		srv.AddMetrics(console.WriteMetrics)
	}
	srv.HandleAdmin(admin.New(o))
}
