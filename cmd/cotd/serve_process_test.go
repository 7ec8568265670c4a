package main

import (
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"cotd/engine/enginetest"
)

// `cotd serve` starts its parts in order, and a SIGTERM stops it with exit
// 0 and "cotd stopped" as the outcome, no error on the way.
func TestServeStartsInOrderAndStopsOnSIGTERM(t *testing.T) {
	dir := t.TempDir()
	users := writeFile(t, dir, "users.toml", "[[user]]\nname = \"alice\"\n")
	cfgPath := writeFile(t, dir, "cotd.toml", fmt.Sprintf(`[tcp]
addr = "127.0.0.1:0"
[tls]
addr = "127.0.0.1:0"
dev_dir = %q
[admin]
addr = "127.0.0.1:0"
[auth]
users_file = %q
[enroll]
addr = "127.0.0.1:0"
[marti]
https_addr = ""
http_addr = "127.0.0.1:0"
files_dir = %q
[store]
path = %q
`, filepath.Join(dir, "certs"), users, filepath.Join(dir, "files"), filepath.Join(dir, "cotd.db")))
	srv := startServe(t, cfgPath)
	srv.await(t, "cotd ready")
	srv.await(t, "marti listening") // Marti runs beside the engine: its line may come after ready
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, lines := srv.exit(t)
	if code != 0 {
		t.Errorf("exit %d after SIGTERM, want 0", code)
	}
	inOrder(t, lines, "cotd starting", "store open", "enrollment listening (HTTPS, HTTP Basic)", "cotd ready", "cotd stopped")
	for _, l := range lines {
		if l["level"] == "error" {
			t.Errorf("error logged on a clean stop: %v", l)
		}
	}
}

// A part that cannot serve stops the whole server with exit 1 and a log
// line that says which phase failed: enrollment's port taken is a failed
// start (before the engine listens); the engine's port taken, or Marti's,
// stops the server with an error.
func TestServeExitsOneWhenAPartFails(t *testing.T) {
	for _, tc := range []struct {
		name, toml string // toml: %[1]s is a port already taken, %[2]s a directory
		want       []string
	}{
		{"enrollment", "[tcp]\naddr = \"127.0.0.1:0\"\n[tls]\naddr = \"127.0.0.1:0\"\ndev_dir = \"%[2]s/certs\"\n" +
			"[auth]\nusers_file = \"%[2]s/users.toml\"\n[enroll]\naddr = %[1]q\n",
			[]string{"cotd starting", "cannot start"}},
		{"engine", "[tcp]\naddr = %[1]q\n[tls]\naddr = \"\"\n[enroll]\naddr = \"\"\n",
			[]string{"cotd starting", "server stopped with an error"}},
		{"marti", "[tcp]\naddr = \"127.0.0.1:0\"\n[tls]\naddr = \"\"\n[enroll]\naddr = \"\"\n" +
			"[marti]\nhttps_addr = \"\"\nhttp_addr = %[1]q\nfiles_dir = \"%[2]s/files\"\n",
			[]string{"cotd starting", "marti stopped; shutting down", "server stopped with an error"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir, "users.toml", "[[user]]\nname = \"alice\"\n")
			port := takenPort(t)
			body := fmt.Sprintf(tc.toml, port, dir) + "[admin]\naddr = \"\"\n[store]\nenabled = false\n"
			if !strings.Contains(body, "[marti]") {
				body += "[marti]\nhttps_addr = \"\"\n"
			}
			code, lines := startServe(t, writeFile(t, dir, "cotd.toml", body)).exit(t)
			if code != 1 {
				t.Errorf("exit %d, want 1; log:\n%s", code, strings.Join(messages(lines), "\n"))
			}
			inOrder(t, lines, tc.want...)
			last := lines[len(lines)-1]
			if msg, _ := last["error"].(string); !strings.Contains(msg, port) {
				t.Errorf("the last line does not name the taken port %s: %v", port, last)
			}
			for _, l := range lines {
				if l["message"] == "cotd stopped" {
					t.Errorf("a failed server logged %q", "cotd stopped")
				}
			}
		})
	}
}

// takenPort is a loopback address with a listener on it for the test.
func takenPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return ln.Addr().String()
}

// inOrder checks that the log has a line with each message, in that order.
func inOrder(t *testing.T, lines []map[string]any, msgs ...string) {
	t.Helper()
	got, at := messages(lines), 0
	for _, m := range msgs {
		i := slices.Index(got[at:], m)
		if i < 0 {
			t.Fatalf("no %q after %q in the log:\n%s", m, got[:at], strings.Join(got, "\n"))
		}
		at += i + 1
	}
}

// messages is the message of each log line.
func messages(lines []map[string]any) []string {
	out := make([]string, 0, len(lines))
	for _, l := range lines {
		m, _ := l["message"].(string)
		out = append(out, m)
	}
	return out
}

// exit waits for the child to end (killing it after enginetest.Wait) and
// returns its exit code and every log line it wrote.
func (c *child) exit(t *testing.T) (int, []map[string]any) {
	t.Helper()
	timer := time.AfterFunc(enginetest.Wait, func() { _ = c.cmd.Process.Kill() })
	defer timer.Stop()
	c.mu.Lock()
	for !c.done { // the log reader's EOF: the child has exited
		c.cond.Wait()
	}
	lines := slices.Clone(c.lines)
	c.mu.Unlock()
	_ = c.cmd.Wait() // the code is in ProcessState, whatever Wait returns
	if c.cmd.ProcessState == nil {
		t.Fatal("the child did not exit")
	}
	return c.cmd.ProcessState.ExitCode(), lines
}
