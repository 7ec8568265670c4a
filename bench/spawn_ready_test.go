package bench

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"cotd/configs"
	et "cotd/engine/enginetest"
)

// StartCotd builds cotd and starts it with every listener on port 0: the addresses it
// reports are the ones cotd bound (read from its ready line, at spawn.log_level warn too),
// and each is that cotd's: TCP and TLS clients get a pong, the admin listener serves
// cotd's metrics.
func TestStartCotdLearnsBoundAddresses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs cotd")
	}
	p, err := NewPKI("bench-0")
	if err != nil {
		t.Fatal(err)
	}
	st := DefaultScenario().Spawn
	st.LogLevel = "warn" // cotd writes its ready line at any level
	st.Store = "off"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // includes go build
	defer cancel()
	sp, err := StartCotd(ctx, SpawnOptions{Dir: t.TempDir(), TCP: true, TLS: true, PKI: p, Settings: st, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sp.Stop() })

	// Nothing was chosen ahead of cotd: its config asks the kernel for every port.
	cfg, err := configs.Load(sp.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TCP.Addr != anyLoopbackPort || cfg.TLS.Addr != anyLoopbackPort || cfg.Admin.Addr != anyLoopbackPort {
		t.Errorf("config asks for tcp %q, tls %q, admin %q; want %s for each", cfg.TCP.Addr, cfg.TLS.Addr, cfg.Admin.Addr, anyLoopbackPort)
	}
	seen := map[string]bool{}
	for _, addr := range []string{sp.TCPAddr, sp.TLSAddr, sp.AdminAddr} {
		ap, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil || !ap.IP.IsLoopback() || ap.Port == 0 || seen[addr] {
			t.Fatalf("addresses tcp %q, tls %q, admin %q: want three distinct bound loopback ports", sp.TCPAddr, sp.TLSAddr, sp.AdminAddr)
		}
		seen[addr] = true
	}
	if sp.MetricsURL != "http://"+sp.AdminAddr+"/metrics" {
		t.Errorf("metrics URL %q, admin %s", sp.MetricsURL, sp.AdminAddr)
	}

	c := et.Dial(t, sp.TCPAddr)
	c.Send(et.Ping("tcp-probe"))
	c.Expect("a pong on the TCP address", et.Type("t-x-c-t-r"))
	m := p.Material()
	tc := et.DialTLS(t, sp.TLSAddr, &tls.Config{Certificates: []tls.Certificate{m.Cert}, RootCAs: m.Roots, ServerName: "127.0.0.1"})
	tc.Send(et.Ping("tls-probe"))
	tc.Expect("a pong on the TLS address", et.Type("t-x-c-t-r"))
	resp, err := http.Get(sp.MetricsURL)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "cotd_") {
		t.Errorf("metrics: %v %s %.200s", err, resp.Status, body)
	}

	if err := sp.Stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
	if err := sp.Exited(); err != nil {
		t.Errorf("a stopped cotd reported as exited on its own: %v", err)
	}
}

// fakeCotd writes a shell script standing in for cotd.
func fakeCotd(t *testing.T, script string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cotd")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// A cotd that runs but never logs its ready line, one that dies, and one whose ready line
// lacks a listener asked for: each is a start-up error naming cotd's log file and saying
// what went wrong, and the process is not left running.
func TestStartCotdFailuresNameTheLog(t *testing.T) {
	p, err := NewPKI("bench-0")
	if err != nil {
		t.Fatal(err)
	}
	const starting = `echo '{"level":"info","message":"cotd starting"}'` + "\n"
	for _, tc := range []struct {
		name, script string
		tls          bool
		want         []string
	}{
		{"never ready", starting + "exec sleep 300\n", false,
			[]string{`logged no "cotd ready" line within`, "cotd starting"}},
		{"dies", starting + `echo '{"level":"error","message":"cannot start","error":"a test says no"}' >&2` + "\nexit 1\n", false,
			[]string{"cotd exited during start-up", "cannot start: a test says no"}},
		{"no tls listener", starting +
			`echo '{"level":"info","listeners":[{"listener":"tcp","addr":"127.0.0.1:1"}],"admin":"127.0.0.1:2","message":"cotd ready"}'` +
			"\nexec sleep 300\n", true,
			[]string{`"cotd ready" line names no address for the tls listener`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			st := DefaultScenario().Spawn
			st.Store = "off"
			sp, err := StartCotd(context.Background(), SpawnOptions{Binary: fakeCotd(t, tc.script), Dir: dir,
				TCP: true, TLS: tc.tls, PKI: p, Settings: st, ReadyTimeout: 2 * time.Second, Log: zerolog.Nop()})
			if err == nil {
				_ = sp.Stop()
				t.Fatal("a cotd that never got ready was accepted")
			}
			if !errors.Is(err, ErrSpawn) {
				t.Errorf("error %v does not wrap ErrSpawn", err)
			}
			for _, want := range append(tc.want, filepath.Join(dir, "cotd.log")) {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
}

// The log is read as cotd writes it: a ready line that arrives in pieces is found once it
// is whole, after the lines before it.
func TestLineReaderFindsTheReadyLineAcrossWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cotd.log")
	w, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	r, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	lr := &lineReader{r: r}
	var got readyLine
	find := func() bool {
		found, err := lr.each(func(line []byte) bool {
			var ok bool
			got, ok = parseReady(line)
			return ok
		})
		if err != nil {
			t.Fatal(err)
		}
		return found
	}
	ready := `{"level":"info","listeners":[{"listener":"tcp","addr":"127.0.0.1:40001"},{"listener":"tls","addr":"127.0.0.1:40002"}],"admin":"127.0.0.1:40003","message":"cotd ready"}` + "\n"
	for _, piece := range []string{
		`{"level":"info","message":"cotd starting"}` + "\nnot json\n" + `{"message":"cotd rea`,
		"dy\"}x\n", // a line that only looks like it (not JSON) is skipped
		ready[:40],
		ready[40:100],
	} {
		if _, err := w.WriteString(piece); err != nil {
			t.Fatal(err)
		}
		if find() {
			t.Fatalf("found a ready line in %q", piece)
		}
	}
	if _, err := w.WriteString(ready[100:] + `{"level":"info","message":"after"}` + "\n"); err != nil {
		t.Fatal(err)
	}
	if !find() {
		t.Fatal("the whole ready line was not found")
	}
	if got.addr("tcp") != "127.0.0.1:40001" || got.addr("tls") != "127.0.0.1:40002" || got.Admin != "127.0.0.1:40003" {
		t.Errorf("read %+v", got)
	}
}
