// Command cotd is the CoT streaming server. It only wires: flags and config
// in, engine out, signals to stop it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"cotd/configs"
)

// version is set at build time: -ldflags "-X main.version=…".
var version = "dev"

const usage = `usage:
  cotd serve [--config FILE]   run the server (no file: embedded defaults)
  cotd certs ca|server|client|enroll-package|revoke|crl  certificates, data packages, revocation
  cotd users add|passwd|del|disable|enable|list|hash|token   edit the users file, enrollment tokens
  cotd clients [--admin URL]   list connected clients (admin API)
  cotd send|listen [--addr A]  a small TAK client: send positions, or print what arrives
  cotd store migrate [--config FILE]   bring the database schema up to date
  cotd config check FILE       validate a configuration file
  cotd config default          print the embedded default configuration
  cotd version, --version      print the version
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stderr)
	case "config":
		return configCmd(args[1:], stdout, stderr)
	case "certs":
		return certsCmd(args[1:], stdout, stderr)
	case "users":
		return usersCmd(args[1:], os.Stdin, stdout, stderr)
	case "clients":
		return clientsCmd(args[1:], stdout, stderr)
	case "send", "listen":
		return clientCmd(args[0], args[1:], stdout, stderr)
	case "store":
		return storeCmd(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "cotd", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "cotd: unknown command %q\n%s", args[0], usage)
	return 2
}

func serve(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (TOML); empty means the embedded defaults")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0 // -h asked for the usage, which flag printed
		}
		return 2
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		fmt.Fprintln(stderr, "cotd:", err)
		return 1
	}
	log, sink := newAsyncLogger(cfg.Log, stderr)
	defer sink.Close() // deferred first, so it runs last: every part's last lines are written
	procs, from := setProcs(cfg.Server.Procs)
	log.Info().Str("version", version).Str("config", orDefault(*path)).Int("gomaxprocs", procs).Str("gomaxprocs_from", from).Msg("cotd starting")
	for _, w := range cfg.Warnings() {
		log.Warn().Msg(w)
	}
	p, err := build(cfg, log, sink)
	defer p.Stop() // also after a failed start: it closes what was built
	if err != nil {
		log.Error().Err(err).Msg("cannot start")
		return 1
	}
	// Caught only once built: a Ctrl-C while the store or the cluster is
	// still connecting ends cotd at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := p.Start(ctx, stop); err != nil {
		log.Error().Err(err).Msg("cannot start")
		return 1
	}
	if err := p.Run(ctx); err != nil { // engine.ErrStopped when the engine stopped on its own
		log.Error().Err(err).Msg("server stopped with an error")
		return 1
	}
	log.Info().Msg("cotd stopped")
	return 0
}

func loadConfig(path string) (*configs.Config, error) {
	if path == "" {
		return configs.Default(), nil
	}
	return configs.Load(path)
}

func orDefault(path string) string {
	if path == "" {
		return "(embedded defaults)"
	}
	return path
}
