package main

import (
	"context"

	"github.com/rs/zerolog"

	"cotd/configs"
	"cotd/engine"
	"cotd/engine/admin"
	"cotd/engine/auth"
	"cotd/engine/cluster"
	"cotd/engine/directory"
	"cotd/engine/marti"
)

// wireCluster joins the cluster of the [cluster] section; without one it
// returns nil and the server is a single node with no NATS at all.
func wireCluster(srv *engine.Server, cfg *configs.Config, log zerolog.Logger) (*cluster.Node, error) {
	if cfg.Cluster == nil {
		return nil, nil
	}
	n, err := cluster.New(cluster.Options{Config: *cfg.Cluster, Directory: srv.Directory(), Link: srv.Link,
		Log: log.With().Str("component", "cluster").Logger()})
	if err != nil {
		return nil, err
	}
	if err := n.Start(); err != nil {
		return nil, err
	}
	srv.AddMetrics(n.WriteMetrics)
	return n, nil
}

// dirOf is the Directory the engine's peers see: cluster-wide when
// clustered (other nodes' clients in contact lists and /api/clients).
func dirOf(srv *engine.Server, cl *cluster.Node) directory.Directory {
	if cl != nil {
		return cl.Directory()
	}
	return srv.Directory()
}

// wireAdmin mounts the admin API on the engine's admin listener: the API
// sees the engine through its Directory (cluster-wide when clustered), its
// metrics and its readiness. The web console ([web]) is mounted at "/"
// behind the same auth; it runs until ctx ends, which closes its browsers'
// sockets with a close frame. m is Marti, whose files the console lists;
// nil when Marti is off.
func wireAdmin(ctx context.Context, srv *engine.Server, cfg *configs.Config, m *marti.Server, log zerolog.Logger, cl *cluster.Node) {
	o := admin.Options{
		Directory: dirOf(srv, cl),
		Metrics:   srv.WriteMetrics,
		Ready:     srv.Readiness,
		Pprof:     cfg.Admin.Pprof,
		Hosts:     cfg.Admin.AllowedHosts,
		Log:       log.With().Str("component", "admin").Logger(),
	}
	if cfg.Admin.BasicUser != "" {
		o.Authorize = auth.BasicChecker(cfg.Admin.BasicUser, cfg.Admin.BasicPasswordHash)
	}
	if console := newConsole(ctx, srv, dirOf(srv, cl), cfg, m, log); console != nil {
		o.Console = console // only when non-nil: a nil *web.Handler would be a non-nil Handler
		srv.AddMetrics(console.WriteMetrics)
	}
	srv.HandleAdmin(admin.New(o))
}
