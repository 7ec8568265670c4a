package engine_test

import (
	"bufio"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"cotd/configs"
	"cotd/engine"
	et "cotd/engine/enginetest"
)

// The "cotd ready" line names the addresses the kernel bound for port 0,
// and it is written even when the log level is warn: a supervisor that
// gave port 0 (cotbench --spawn) has no other way to learn them. The rest
// of the info lines still obey the level.
func TestReadyLineAtWarnLevelNamesBoundAddresses(t *testing.T) {
	cfg := configs.Default()
	cfg.TCP.Addr, cfg.TLS.Addr, cfg.Admin.Addr = "127.0.0.1:0", "", "127.0.0.1:0"
	cfg.Store.Enabled = false
	logs := &et.SyncBuffer{}
	srv, err := engine.New(cfg, zerolog.New(logs).Level(zerolog.WarnLevel))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-srv.Ready():
	case err := <-done:
		t.Fatalf("server did not start: %v", err)
	case <-time.After(et.Wait):
		t.Fatal("server did not become ready")
	}

	var ready struct {
		Level     string `json:"level"`
		Admin     string `json:"admin"`
		Listeners []struct{ Listener, Addr string }
	}
	found := false
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	for sc.Scan() {
		var rec struct{ Message string }
		if json.Unmarshal(sc.Bytes(), &rec) != nil {
			t.Fatalf("not a JSON log line: %s", sc.Text())
		}
		if strings.HasPrefix(rec.Message, "clients connect to") {
			t.Errorf("an ordinary info line was written at level warn: %s", sc.Text())
		}
		if rec.Message == "cotd ready" {
			found = true
			if err := json.Unmarshal(sc.Bytes(), &ready); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !found {
		t.Fatalf("no \"cotd ready\" line at level warn:\n%s", logs.String())
	}
	if ready.Level != "info" || ready.Admin != srv.AdminAddr().String() ||
		len(ready.Listeners) != 1 || ready.Listeners[0].Listener != "tcp" ||
		ready.Listeners[0].Addr != srv.Addr(engine.ListenerTCP).String() || strings.HasSuffix(ready.Listeners[0].Addr, ":0") {
		t.Errorf("ready line %+v; want level info, tcp %s and admin %s", ready, srv.Addr(engine.ListenerTCP), srv.AdminAddr())
	}
}
