package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cotd/configs"
	et "cotd/engine/enginetest"
	"cotd/engine/store"
	"cotd/engine/store/storetest"
)

// crashBatch is the child's [store] batch_size; crashWindow is how far the
// client may run ahead of what the store committed (flow control, so that
// the kill lands with a bounded amount in flight, as at a steady rate).
const (
	crashBatch  = 500
	crashWindow = 2 * crashBatch
	crashChunk  = 100
	crashAfter  = 3000 // committed events before the kill
)

// A cotd serve child killed with SIGKILL in the middle of ingest leaves a
// database that opens clean and holds every event it had committed, in
// order, with no holes: what is lost is only what was in flight.
func TestServeKill9MidIngest(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs cotd")
	}
	bin := filepath.Join(t.TempDir(), "cotd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, b := range []struct {
		name string
		set  func(t *testing.T, dir string) string // the [store] lines
	}{
		{"sqlite", func(t *testing.T, dir string) string {
			return fmt.Sprintf("path = %q\n", filepath.Join(dir, "cotd.db"))
		}},
		{"postgres", func(t *testing.T, dir string) string {
			return fmt.Sprintf("url = %q\n", storetest.Schema(t, "cotd_serve_"))
		}},
	} {
		t.Run(b.name, func(t *testing.T) {
			dir := t.TempDir()
			conf := filepath.Join(dir, "cotd.toml")
			toml := fmt.Sprintf(`[tcp]
addr = "127.0.0.1:0"
[tls]
addr = ""
[admin]
addr = "127.0.0.1:0"
[marti]
https_addr = ""
http_addr = ""
[log]
format = "json"
[store]
enabled = true
batch_size = %d
%s`, crashBatch, b.set(t, dir))
			if err := os.WriteFile(conf, []byte(toml), 0o600); err != nil {
				t.Fatal(err)
			}
			var cfg configs.Store
			full, err := configs.Load(conf)
			if err != nil {
				t.Fatal(err)
			}
			cfg = full.Store

			cmd := exec.Command(bin, "serve", "--config", conf)
			cmd.Dir = dir // whatever it writes beside the store stays in the test's directory
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			tcpAddr, adminAddr := waitReady(t, stderr)

			conn, err := net.DialTimeout("tcp", tcpAddr, et.Wait)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			written := func() int {
				v, ok := et.Sample(getMetrics(t, adminAddr), `cotd_store_written_total{kind="event"}`)
				if !ok {
					t.Fatal("no cotd_store_written_total on /metrics")
				}
				return int(v)
			}
			if _, err := io.WriteString(conn, et.SA("CRASH-UID", "Crash", "a-f-G-U-C")); err != nil {
				t.Fatal(err)
			}
			sent, committed := 0, 0
			for committed < crashAfter+1 { // +1: the SA
				var chunk strings.Builder
				for range crashChunk {
					chunk.WriteString(et.Marker(fmt.Sprintf("m-%06d", sent)))
					sent++
				}
				if _, err := io.WriteString(conn, chunk.String()); err != nil {
					t.Fatal(err)
				}
				committed = written()
				stall := time.Now().Add(et.Wait)
				for sent-(committed-1) > crashWindow {
					if time.Now().After(stall) {
						t.Fatalf("the store stopped writing: %d committed of %d sent", committed-1, sent)
					}
					committed = written() // flow control: wait for the writer
				}
			}
			if err := cmd.Process.Signal(os.Kill); err != nil {
				t.Fatal(err)
			}
			_ = cmd.Wait()

			// The next start: the store opens (integrity checks, migrations)
			// and holds a prefix of what was sent, at least what it had
			// committed before the kill.
			ctx, cancel := context.WithTimeout(context.Background(), et.Wait)
			defer cancel()
			db, err := store.Open(ctx, cfg, store.Options{})
			if err != nil {
				t.Fatalf("reopen after kill -9: %v", err)
			}
			defer db.Close(ctx)
			raw := storetest.RawDB(t, cfg)
			if cfg.URL == "" {
				var res string
				if err := raw.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&res); err != nil || res != "ok" {
					t.Fatalf("integrity_check: %q %v", res, err)
				}
			}
			rows, err := raw.QueryContext(ctx, "SELECT uid FROM cot_router WHERE uid LIKE 'm-%' ORDER BY uid")
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			survived := 0
			for rows.Next() {
				var uid string
				if err := rows.Scan(&uid); err != nil {
					t.Fatal(err)
				}
				if want := fmt.Sprintf("m-%06d", survived); uid != want {
					t.Fatalf("survivors are not a prefix of what was sent: row %d is %s, want %s", survived, uid, want)
				}
				survived++
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			lost := sent - survived
			t.Logf("sent %d, committed before the kill %d, survived %d, lost %d (batch %d)", sent, committed-1, survived, lost, crashBatch)
			if survived < committed-1 {
				t.Errorf("committed events lost: %d survived, %d had been committed", survived, committed-1)
			}
			// In flight at the kill: at most the window plus the last chunk,
			// the unflushed tail the issue allows.
			if lost > crashWindow+crashChunk {
				t.Errorf("lost %d events, more than the %d in flight", lost, crashWindow+crashChunk)
			}
		})
	}
}

// cotd serve refuses a store it cannot open, naming the file.
func TestServeRefusesForeignStoreFile(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "not-a.db")
	if err := os.WriteFile(db, []byte("this is not a database, it is a shopping list\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "cotd.toml")
	toml := fmt.Sprintf("[tcp]\naddr = \"127.0.0.1:0\"\n[tls]\naddr = \"\"\n[admin]\naddr = \"\"\n[marti]\nhttps_addr = \"\"\n[store]\nenabled = true\npath = %q\n", db)
	if err := os.WriteFile(conf, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runMain(t, "serve", "--config", conf)
	if code != 1 || !strings.Contains(stderr, db) || !strings.Contains(stderr, "cannot start") {
		t.Fatalf("serve with a foreign store file: exit %d, stderr:\n%s", code, stderr)
	}
}

// waitReady reads the child's JSON log until "cotd ready" and returns the
// bound TCP and admin addresses; the rest of the log is drained.
func waitReady(t *testing.T, r io.Reader) (tcp, admin string) {
	t.Helper()
	type ready struct {
		Message   string `json:"message"`
		Admin     string `json:"admin"`
		Listeners []struct {
			Listener, Addr string
		} `json:"listeners"`
	}
	found := make(chan ready, 1)
	var tail []string
	go func() {
		sc := bufio.NewScanner(r)
		sent := false
		for sc.Scan() {
			var l ready
			if !sent && json.Unmarshal(sc.Bytes(), &l) == nil && l.Message == "cotd ready" {
				found <- l
				sent = true
			}
			if !sent && len(tail) < 50 {
				tail = append(tail, sc.Text())
			}
		}
		if !sent {
			close(found)
		}
	}()
	select {
	case l, ok := <-found:
		if !ok {
			t.Fatalf("cotd exited before ready:\n%s", strings.Join(tail, "\n"))
		}
		for _, ln := range l.Listeners {
			if ln.Listener == "tcp" {
				tcp = ln.Addr
			}
		}
		if tcp == "" || l.Admin == "" {
			t.Fatalf("ready line without tcp or admin address: %+v", l)
		}
		return tcp, l.Admin
	case <-time.After(et.Wait):
		t.Fatal("cotd did not become ready")
	}
	return "", ""
}

func getMetrics(t *testing.T, admin string) string {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
