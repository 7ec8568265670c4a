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

	"cotd/takclient"
)

// clientCmd implements `cotd send` and `cotd listen`: flags in, takclient
// out. Exit codes: 0 ok (Ctrl-C included), 1 failure, 2 usage.
func clientCmd(name string, args []string, stdout, stderr io.Writer) int {
	var o takclient.Options
	fs := flag.NewFlagSet("cotd "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.Addr, "addr", "127.0.0.1:8087", "server's plain TCP streaming address ([tcp] addr)")
	fs.DurationVar(&o.PingEvery, "ping", 0, "time between keep-alive pings (0: 15s, as ATAK)")
	fs.BoolVar(&o.XML, "xml", false, "print each received event as XML instead of a summary line")
	fs.BoolVar(&o.Pongs, "pongs", false, "also print the server's answers to pings")
	if name == "send" {
		fs.StringVar(&o.Callsign, "callsign", "SENDER", "callsign other clients see")
		fs.StringVar(&o.UID, "uid", "", "event uid (default: cotd-send- and a random suffix)")
		fs.Float64Var(&o.Lat, "lat", 0, "latitude (with --lon; default: Oklahoma City)")
		fs.Float64Var(&o.Lon, "lon", 0, "longitude")
		fs.DurationVar(&o.Interval, "interval", 0, "time between position reports (0: 5s)")
		fs.IntVar(&o.Count, "count", 0, "leave after this many reports (0: until Ctrl-C)")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "cotd %s: unexpected argument %q\n", name, fs.Arg(0))
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	run := takclient.Listen
	if name == "send" {
		run = takclient.Send
	}
	if err := run(ctx, o, stdout); err != nil {
		fmt.Fprintf(stderr, "cotd %s: %v\n", name, err)
		return 1
	}
	return 0
}
