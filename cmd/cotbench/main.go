// Command cotbench plays thousands of simulated TAK EUDs against a CoT streaming server on
// loopback and reports like a lab. It only wires: flags in, bench.Run, reports out.
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
	"time"

	"github.com/rs/zerolog"

	"cotd/bench"
)

// version is set at build time: -ldflags "-X main.version=…".
var version = "dev"

const usage = `usage:
  cotbench run SCENARIO.toml [--target HOST:PORT[,HOST:PORT…] [--tls] | --spawn [--cotd PATH]] [--tls-target HOST:PORT]
               [--cert FILE --key FILE --ca FILE] [--json FILE] [--html FILE] [--pid N] [--metrics URL]
               [--duration D] [--clients N] [--set KEY=VALUE ...] [--quiet] [-v]
  cotbench compare A.json B.json
  cotbench baseline --listen HOST:PORT --cert F --key F --ca F   a bare crypto/tls mTLS server
  cotbench version
exit status: 0 criteria passed, 1 criteria failed, 2 usage or configuration error
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
	case "run":
		return runCmd(args[1:], stdout, stderr)
	case "compare":
		return compareCmd(args[1:], stdout, stderr)
	case "baseline":
		return baselineCmd(args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "cotbench", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "cotbench: unknown command %q\n%s", args[0], usage)
	return 2
}

func runCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o bench.Options
	var ov bench.Overrides
	fs.StringVar(&ov.Target, "target", "", "server address, or the nodes of a cotd cluster comma-separated (clients are spread over them); TCP, or TLS with --tls")
	fs.StringVar(&ov.TLSTarget, "tls-target", "", "TLS server address, for a TCP/TLS mix or half_hello stalled clients")
	fs.BoolVar(&ov.TLS, "tls", false, "all clients use TLS")
	fs.BoolVar(&o.Spawn, "spawn", false, "start a cotd on free loopback ports for the run")
	fs.StringVar(&o.Cotd, "cotd", "", "cotd binary for --spawn (default: go build ./cmd/cotd)")
	fs.StringVar(&o.Cert, "cert", "", "client certificate (PEM)")
	fs.StringVar(&o.Key, "key", "", "client key (PEM)")
	fs.StringVar(&o.CA, "ca", "", "CA bundle that verifies the server (PEM)")
	fs.StringVar(&o.CAKey, "ca-key", "", "key of the first CA in --ca, to issue per-client certificates (PEM)")
	fs.IntVar(&o.PID, "pid", 0, "server process to sample from /proc")
	fs.StringVar(&o.MetricsURL, "metrics", "", "server /metrics URL to scrape before and after")
	fs.DurationVar(&ov.Duration, "duration", 0, "override the scenario's duration")
	fs.IntVar(&ov.Clients, "clients", 0, "override the scenario's number of clients")
	fs.Func("set", "with --spawn: set KEY=VALUE in the spawned cotd's config, e.g. output.coalesce_delay=1ms (repeatable; over the scenario's [spawn.cotd])",
		func(s string) error { ov.Set = append(ov.Set, s); return nil })
	jsonOut, htmlOut := fs.String("json", "", "write the report as JSON"), fs.String("html", "", "write the report as HTML")
	quiet, verbose := fs.Bool("quiet", false, "no progress line"), fs.Bool("v", false, "log every connection failure")
	path, ok := parseWithPositional(fs, args)
	if !ok {
		fmt.Fprint(stderr, usage)
		return 2
	}
	if o.Spawn && (ov.Target != "" || ov.TLSTarget != "") {
		fmt.Fprintln(stderr, "cotbench: --spawn and --target/--tls-target exclude each other")
		return 2
	}
	if len(ov.Set) > 0 && !o.Spawn {
		fmt.Fprintln(stderr, "cotbench: --set configures the cotd that --spawn starts; without --spawn, configure the server yourself")
		return 2
	}
	sc, err := bench.LoadScenario(path)
	if err == nil {
		err = sc.Apply(ov)
	}
	if err != nil {
		fmt.Fprintln(stderr, "cotbench:", err)
		return 2
	}
	level := zerolog.InfoLevel
	if *verbose {
		level = zerolog.DebugLevel
	}
	o.Log = zerolog.New(zerolog.ConsoleWriter{Out: stderr, TimeFormat: time.TimeOnly, NoColor: !isTerminal(stderr)}).
		Level(level).With().Timestamp().Logger()
	o.Version = version
	if !*quiet && isTerminal(stdout) {
		o.Progress = stdout
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := bench.Run(ctx, sc, o)
	if err != nil {
		fmt.Fprintln(stderr, "cotbench:", err)
		return 2
	}
	_ = rep.WriteText(stdout)
	if *jsonOut != "" {
		err = errors.Join(err, rep.WriteJSON(*jsonOut))
	}
	if *htmlOut != "" {
		err = errors.Join(err, rep.WriteHTMLFile(*htmlOut))
	}
	if err != nil {
		fmt.Fprintln(stderr, "cotbench:", err)
		return 2
	}
	if !rep.Pass {
		return 1
	}
	return 0
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && bench.IsTerminal(f)
}

// parseWithPositional parses flags given before and after the one positional argument.
func parseWithPositional(fs *flag.FlagSet, args []string) (string, bool) {
	if fs.Parse(args) != nil || fs.NArg() < 1 {
		return "", false
	}
	path := fs.Arg(0)
	if fs.Parse(fs.Args()[1:]) != nil || fs.NArg() > 0 {
		return "", false
	}
	return path, true
}

func compareCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) != 2 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	a, errA := bench.ReadReport(args[0])
	b, errB := bench.ReadReport(args[1])
	if err := errors.Join(errA, errB); err != nil {
		fmt.Fprintln(stderr, "cotbench:", err)
		return 2
	}
	_ = bench.Compare(stdout, a, b, "A", "B")
	return 0
}
