// Command cotd is the CoT streaming server. It only wires: flags and config
// in, engine out, signals to stop it.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"cotd/configs"
	"cotd/engine"
)

// version is set at build time: -ldflags "-X main.version=…".
var version = "dev"

const usage = `usage:
  cotd serve [--config FILE]   run the server (no file: embedded defaults)
  cotd certs ca|server|client  make a CA, server and client certificates, ATAK data packages
  cotd users add|passwd|del|disable|enable|list|hash   edit the users file
  cotd clients [--admin URL]   list connected clients (admin API)
  cotd config check FILE       validate a configuration file
  cotd config default          print the embedded default configuration
  cotd version                 print the version
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
	case "version":
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
		return 2
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		fmt.Fprintln(stderr, "cotd:", err)
		return 1
	}
	log := newLogger(cfg.Log, stderr)
	log.Info().Str("version", version).Str("config", orDefault(*path)).Msg("cotd starting")
	srv, err := engine.New(cfg, log)
	if err != nil {
		log.Error().Err(err).Msg("cannot start")
		return 1
	}
	srv.Version = version
	cl, err := wireCluster(srv, cfg, log)
	if err != nil {
		log.Error().Err(err).Msg("cannot join the cluster")
		return 1
	}
	defer cl.Close() // after Run: the engine's leaves reach the others first (nil: no cluster)
	wireAdmin(srv, cfg, log, cl)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			// Each logs its own outcome and keeps the old state on error.
			_ = srv.ReloadTLS()
			_ = srv.ReloadUsers()
		}
	}()
	if err := srv.Run(ctx); err != nil {
		log.Error().Err(err).Msg("server stopped with an error")
		return 1
	}
	log.Info().Msg("cotd stopped")
	return 0
}

func configCmd(args []string, stdout, stderr io.Writer) int {
	switch {
	case len(args) == 2 && args[0] == "check":
		if _, err := configs.Load(args[1]); err != nil {
			fmt.Fprintln(stderr, "cotd:", err)
			return 1
		}
		fmt.Fprintf(stdout, "%s: ok\n", args[1])
		return 0
	case len(args) == 1 && args[0] == "default":
		_, _ = stdout.Write(configs.DefaultTOML())
		return 0
	}
	fmt.Fprint(stderr, usage)
	return 2
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

func newLogger(c configs.Log, w io.Writer) zerolog.Logger {
	if c.Format == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339}
	}
	level, err := zerolog.ParseLevel(c.Level)
	if err != nil {
		level = zerolog.InfoLevel
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}
