package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"cotd/bench"
)

// baselineCmd serves bare crypto/tls handshakes until interrupted: the
// yardstick a burst against cotd is compared with.
func baselineCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("baseline", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on (loopback)")
	cert, key, ca := fs.String("cert", "", "server certificate"), fs.String("key", "", "server key"), fs.String("ca", "", "client CA")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := bench.BaselineConfig(*cert, *key, *ca)
	if err != nil {
		fmt.Fprintln(stderr, "cotbench:", err)
		return 2
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(stderr, "cotbench:", err)
		return 1
	}
	fmt.Fprintln(stdout, "listening", ln.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var ok atomic.Int64
	if err := bench.ServeBaseline(ctx, ln, cfg, &ok); err != nil {
		fmt.Fprintln(stderr, "cotbench:", err)
		return 1
	}
	fmt.Fprintln(stdout, "handshakes", ok.Load())
	return 0
}
