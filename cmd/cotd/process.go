package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/rs/zerolog"

	"cotd/configs"
	"cotd/engine"
	"cotd/engine/cluster"
	"cotd/engine/enroll"
	"cotd/engine/logsink"
	"cotd/engine/marti"
)

// process is one serving cotd: the engine and every part beside it, built
// from one configuration. Its life is build, Start, Run, Stop, each called
// once, in that order, from serve's goroutine; Stop also after a failed
// build or Start.
type process struct {
	cfg *configs.Config
	log zerolog.Logger

	srv     *engine.Server
	cluster *cluster.Node // nil: a single node, no NATS
	persist *persistence  // nil: [store] enabled = false
	marti   *marti.Server // nil: neither Marti listener is configured
	enroll  *enroll.Server

	// Set by Start.
	stop      context.CancelFunc // ends Run's ctx: Marti calls it when it fails
	martiDone <-chan error       // Marti's outcome, once ctx has ended
	hup       chan os.Signal     // SIGHUP: reload
}

// build makes every part that serves nothing yet, in dependency order: the
// engine first (it creates the development certificates Marti serves
// with, and the others see clients through its Directory), the cluster on
// the engine's Directory and link, the store fed from the engine's
// Directory, then Marti on the cluster-wide Directory and the store. On
// error the process holds what was built, for Stop.
func build(cfg *configs.Config, log zerolog.Logger, sink *logsink.Sink) (*process, error) {
	p := &process{cfg: cfg, log: log}
	var err error
	if p.srv, err = engine.New(cfg, log); err != nil {
		return p, err
	}
	p.srv.Version = version
	p.srv.AddMetrics(sink.WriteMetrics)
	if p.cluster, err = wireCluster(p.srv, cfg, log); err != nil {
		return p, err
	}
	if p.persist, err = openPersistence(cfg.Store, p.srv, log); err != nil {
		return p, err
	}
	p.marti, err = newMarti(cfg, p.srv, dirOf(p.srv, p.cluster), p.persist.store(), log)
	return p, err
}

// Start mounts the admin API and the web console on the engine (served
// once Run opens the admin listener), starts certificate enrollment (8446)
// and the CRL watcher, then Marti, and reloads on SIGHUP. Each serves
// until ctx ends; stop ends ctx, and Marti calls it if it fails, so that
// the whole server goes down rather than stream without the API.
func (p *process) Start(ctx context.Context, stop context.CancelFunc) error {
	p.stop = stop
	wireAdmin(ctx, p.srv, p.cfg, p.marti, p.log, p.cluster)
	en, err := startEnroll(ctx, p.cfg, p.srv, p.persist.DB(), p.log)
	if err != nil {
		return err
	}
	p.enroll = en
	p.martiDone = runMarti(ctx, stop, p.marti, p.log)
	p.hup = make(chan os.Signal, 1)
	signal.Notify(p.hup, syscall.SIGHUP)
	go p.reload(p.hup)
	return nil
}

// reload applies each SIGHUP that arrives before Stop. Each part logs its
// own outcome and keeps its old state on error.
func (p *process) reload(hup <-chan os.Signal) {
	for range hup {
		_ = p.srv.ReloadTLS()
		_ = p.srv.ReloadUsers()
		reloadMarti(p.marti)
		_ = p.enroll.Reload()
	}
}

// Run serves the engine until ctx ends, then ends ctx for the others too
// (the engine may have stopped on its own) and waits for Marti. The error
// is the engine's, or else Marti's.
func (p *process) Run(ctx context.Context) error {
	err := p.srv.Run(ctx)
	p.stop()
	if mErr := <-p.martiDone; err == nil {
		err = mErr
	}
	return err
}

// Stop closes what outlives ctx. Not quite the reverse of build: the
// cluster goes first, after Run, so that the engine's leaves reach the
// other nodes; the store last, so that its feed hands it the last events
// of the engine, Marti and the cluster.
func (p *process) Stop() {
	if p.hup != nil {
		signal.Stop(p.hup)
	}
	p.cluster.Close()
	p.persist.close()
}
