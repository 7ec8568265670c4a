package engine_test

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"cotd/configs"
	"cotd/engine"
	et "cotd/engine/enginetest"
	"cotd/tlsstate/pki"
)

// A port someone else holds: the error names the listener, its config key
// and the port, and still wraps the kernel's EADDRINUSE; the listener that
// could open is not blamed.
func TestAddressInUseNamesTheListenerAndPort(t *testing.T) {
	for _, kind := range []string{"tcp", "tls"} {
		t.Run(kind, func(t *testing.T) { addressInUse(t, kind) })
	}
}

func addressInUse(t *testing.T, kind string) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	port := held.Addr().(*net.TCPAddr).Port
	p := et.NewPKI(t, pki.KeyECDSAP256)
	cfg := configs.Default()
	cfg.TCP.Addr, cfg.TLS.Addr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.TLS.Cert, cfg.TLS.Key, cfg.TLS.CA = p.CertPath, p.KeyPath, p.CAPath
	cfg.Admin.Addr = ""
	if kind == "tcp" {
		cfg.TCP.Addr = held.Addr().String()
	} else {
		cfg.TLS.Addr = held.Addr().String()
	}
	srv, err := engine.New(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), et.Wait)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	select {
	case err = <-done:
	case <-time.After(et.Wait):
		t.Fatal("Run did not fail on a port in use")
	}
	if err == nil {
		t.Fatal("Run returned nil on a port in use")
	}
	msg := err.Error()
	for _, want := range []string{kind + " listener", kind + ".addr", "port " + strconv.Itoa(port)} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	other := map[string]string{"tcp": "tls", "tls": "tcp"}[kind]
	if strings.Contains(msg, other+" listener") {
		t.Errorf("error %q blames the %s listener, which was free", msg, other)
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("error %q does not wrap EADDRINUSE", msg)
	}
}
