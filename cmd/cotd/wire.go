package main

import (
	"github.com/rs/zerolog"

	"cotd/configs"
	"cotd/engine"
	"cotd/engine/admin"
	"cotd/engine/auth"
)

// wireAdmin mounts the admin API on the engine's admin listener: the API
// sees the engine through its Directory, its metrics and its readiness.
func wireAdmin(srv *engine.Server, cfg *configs.Config, log zerolog.Logger) {
	o := admin.Options{
		Directory: srv.Directory(),
		Metrics:   srv.WriteMetrics,
		Ready:     srv.Readiness,
		Pprof:     cfg.Admin.Pprof,
		Hosts:     cfg.Admin.AllowedHosts,
		Log:       log.With().Str("component", "admin").Logger(),
	}
	if cfg.Admin.BasicUser != "" {
		o.Authorize = auth.BasicChecker(cfg.Admin.BasicUser, cfg.Admin.BasicPasswordHash)
	}
	srv.HandleAdmin(admin.New(o))
}
