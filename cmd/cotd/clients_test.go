package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"cotd/configs"
	"cotd/engine/admin"
	et "cotd/engine/enginetest"
)

func runClients(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = clientsCmd(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestClientsTable(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	cs := []admin.ClientInfo{
		{
			ID: 7, UID: "ANDROID-1", Callsign: "ALPHA", CN: "alice", Remote: "10.0.0.5:40112", Listener: "tls",
			Protocol: "takproto/1", State: "established", Since: now.Add(-90 * time.Minute),
			LastSeen: now.Add(-4200 * time.Millisecond), QueuedBytes: 1234,
		},
		{ID: 12, Remote: "10.0.0.6:1", Listener: "tls", Protocol: "xml", State: "handshaking", Since: now.Add(-time.Second)},
		{ID: 130, UID: "x\ty", Callsign: "EVIL\x1b[2J", Remote: "10.0.0.7:2", Listener: "tcp", Protocol: "xml",
			State: "established", Since: now, LastSeen: now.Add(time.Second)},
	}
	var b bytes.Buffer
	if err := writeClientsTable(&b, cs, now); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"ID   UID        CALLSIGN  CN     REMOTE          LISTENER  PROTOCOL    STATE        SINCE                 LAST SEEN  QUEUED\n" +
		"7    ANDROID-1  ALPHA     alice  10.0.0.5:40112  tls       takproto/1  established  2025-03-01T10:30:00Z  4s ago     1234\n" +
		"12   -          -         -      10.0.0.6:1      tls       xml         handshaking  2025-03-01T11:59:59Z  -          0\n" +
		"130  x?y        EVIL?[2J  -      10.0.0.7:2      tcp       xml         established  2025-03-01T12:00:00Z  0s ago     0\n"
	if got := b.String(); got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
}

// joinAs connects a client and identifies it with an SA.
func joinAs(t *testing.T, h *et.Harness, uid, callsign string) *et.Client {
	t.Helper()
	c := et.Dial(t, h.TCPAddr())
	c.Send(et.SA(uid, callsign, "a-f-G-U-C"))
	et.Eventually(t, uid+" identified", func() bool { return len(h.Srv.Directory().Client(uid)) == 1 })
	return c
}

func TestClientsListsTheConnectedClients(t *testing.T) {
	h := et.Start(t, nil)
	joinAs(t, h, "ANDROID-a", "ALPHA")
	joinAs(t, h, "ANDROID-b", "BRAVO")
	et.Dial(t, h.TCPAddr()) // connected, not identified yet
	h.Joined(t, 3)

	for _, admin := range []string{"http://" + h.Srv.AdminAddr().String() + "/", h.Srv.AdminAddr().String()} {
		code, stdout, stderr := runClients(t, "--admin", admin)
		if code != 0 {
			t.Fatalf("--admin %s: exit %d: %s", admin, code, stderr)
		}
		lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
		if len(lines) != 4 {
			t.Fatalf("want a header and 3 rows:\n%s", stdout)
		}
		col := strings.Index(lines[0], "CALLSIGN")
		for i, cs := range []string{"ALPHA", "BRAVO", "-"} {
			row := lines[i+1]
			if !strings.HasPrefix(row[col:], cs+" ") {
				t.Errorf("row %d: callsign column reads %q, want %s:\n%s", i+1, row[col:], cs, stdout)
			}
			if !strings.Contains(row, "tcp") || !strings.Contains(row, "established") {
				t.Errorf("row %d lacks listener or state: %s", i+1, row)
			}
		}
	}
}

func TestClientsWhenTheAdminAPIIsUnreachable(t *testing.T) {
	addr := et.RefusedAddr(t) // nothing listens there

	code, stdout, stderr := runClients(t, "--admin", "http://"+addr)
	if code != 1 || stdout != "" || !strings.Contains(stderr, "admin API unreachable") || !strings.Contains(stderr, addr) {
		t.Errorf("exit %d, stdout %q, stderr %q; want 1 and a message naming %s", code, stdout, stderr, addr)
	}
}

func TestClientsWithBasicAuth(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	h := et.Start(t, func(c *configs.Config) { c.Admin.BasicUser, c.Admin.BasicPasswordHash = "ops", string(hash) })
	joinAs(t, h, "ANDROID-a", "ALPHA")
	admin := "http://" + h.Srv.AdminAddr().String()

	code, _, stderr := runClients(t, "--admin", admin)
	if code != 1 || !strings.Contains(stderr, "401") || !strings.Contains(stderr, "--user") {
		t.Errorf("no credentials: exit %d, %q", code, stderr)
	}
	if code, _, stderr := runClients(t, "--admin", admin, "--user", "ops", "--password", "wrong"); code != 1 || !strings.Contains(stderr, "401") {
		t.Errorf("wrong password: exit %d, %q", code, stderr)
	}
	code, stdout, stderr := runClients(t, "--admin", admin, "--user", "ops", "--password", "s3cret")
	if code != 0 || !strings.Contains(stdout, "ALPHA") {
		t.Errorf("right credentials: exit %d, %q %q", code, stdout, stderr)
	}
	t.Setenv(passwordEnv, "s3cret")
	if code, stdout, stderr := runClients(t, "--admin", admin, "--user", "ops"); code != 0 || !strings.Contains(stdout, "ALPHA") {
		t.Errorf("password from $%s: exit %d, %q %q", passwordEnv, code, stdout, stderr)
	}
}

func TestClientsUsage(t *testing.T) {
	for _, args := range [][]string{{"--nope"}, {"extra"}} {
		if code, _, _ := runClients(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	if code, _, stderr := runClients(t, "--cert", "c.pem"); code != 1 || !strings.Contains(stderr, "--key") {
		t.Errorf("--cert without --key: exit %d, %q", code, stderr)
	}
}
