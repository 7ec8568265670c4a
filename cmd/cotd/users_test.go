package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"cotd/engine/auth"
	et "cotd/engine/enginetest"
)

func runUsers(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = usersCmd(args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func loadUsers(t *testing.T, path string) *auth.Directory {
	t.Helper()
	d, err := auth.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestUsersFlow(t *testing.T) {
	file := filepath.Join(t.TempDir(), "users.toml")

	// add creates the file; a certificate-only user first.
	code, stdout, stderr := runUsers(t, "", "add", "--file", file, "--name", "alice", "--groups", "HQ", "--in", "Blue, Green", "--out", "Red")
	if code != 0 {
		t.Fatalf("add alice: %d %s", code, stderr)
	}
	if want := file + ": added alice (in: Blue,Green,HQ; out: HQ,Red; password: no)\n"; stdout != want {
		t.Errorf("add output %q, want %q", stdout, want)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("new users file: %v, %v", fi, err)
	}
	code, _, stderr = runUsers(t, "s3cret pass\r\nignored\n", "add", "--file", file, "--name", "bob", "--password-stdin")
	if code != 0 {
		t.Fatalf("add bob: %d %s", code, stderr)
	}
	bob, _ := loadUsers(t, file).Lookup("bob")
	if err := auth.CheckPassword(bob, "s3cret pass"); err != nil {
		t.Errorf("bob's password: %v", err)
	}
	if !slices.Equal(bob.In(), []string{auth.Anon}) {
		t.Errorf("bob In() = %q", bob.In())
	}

	// add of an existing name fails and names the file.
	code, _, stderr = runUsers(t, "", "add", "--file", file, "--name", "alice")
	if code != 1 || !strings.Contains(stderr, file) || !strings.Contains(stderr, `user "alice" already exists`) {
		t.Errorf("add again: %d %q", code, stderr)
	}

	code, stdout, stderr = runUsers(t, "newpass\n", "passwd", "--file", file, "--name", "alice")
	if code != 0 || stdout != file+": alice password changed\n" {
		t.Fatalf("passwd: %d %q %s", code, stdout, stderr)
	}
	alice, _ := loadUsers(t, file).Lookup("alice")
	if err := auth.CheckPassword(alice, "newpass"); err != nil {
		t.Errorf("alice's new password: %v", err)
	}

	if code, _, stderr := runUsers(t, "", "disable", "--file", file, "--name", "bob"); code != 0 {
		t.Fatalf("disable: %d %s", code, stderr)
	}
	if bob, _ := loadUsers(t, file).Lookup("bob"); !bob.Disabled {
		t.Error("bob not disabled")
	}

	code, stdout, stderr = runUsers(t, "", "list", "--file", file)
	if code != 0 {
		t.Fatalf("list: %d %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	wantRows := [][]string{
		{"NAME", "IN", "OUT", "PASSWORD", "DISABLED"},
		{"alice", "Blue,Green,HQ", "HQ,Red", "yes", "no"},
		{"bob", auth.Anon, auth.Anon, "yes", "yes"},
	}
	if len(lines) != len(wantRows) {
		t.Fatalf("list output:\n%s", stdout)
	}
	for i, l := range lines {
		if got := strings.Fields(l); !slices.Equal(got, wantRows[i]) {
			t.Errorf("list row %d = %q, want %q", i, got, wantRows[i])
		}
	}
	// Columns line up.
	if strings.Index(lines[0], "OUT") != strings.Index(lines[1], "HQ,Red") {
		t.Errorf("columns not aligned:\n%s", stdout)
	}

	if code, _, stderr := runUsers(t, "", "enable", "--file", file, "--name", "bob"); code != 0 {
		t.Fatalf("enable: %d %s", code, stderr)
	}
	if bob, _ := loadUsers(t, file).Lookup("bob"); bob.Disabled {
		t.Error("bob still disabled")
	}

	if code, _, stderr := runUsers(t, "", "del", "--file", file, "--name", "alice"); code != 0 {
		t.Fatalf("del: %d %s", code, stderr)
	}
	if d := loadUsers(t, file); d.Len() != 1 {
		t.Errorf("%d users after del", d.Len())
	}

	// passwd, del, disable and enable of a missing user fail.
	for _, sub := range []string{"passwd", "del", "disable", "enable"} {
		code, _, stderr := runUsers(t, "pw\n", sub, "--file", file, "--name", "alice")
		if code != 1 || !strings.Contains(stderr, file) || !strings.Contains(stderr, `no user "alice"`) {
			t.Errorf("%s of a missing user: %d %q", sub, code, stderr)
		}
	}
}

func TestUsersHash(t *testing.T) {
	code, stdout, stderr := runUsers(t, "admin pw\n", "hash")
	if code != 0 {
		t.Fatalf("hash: %d %s", code, stderr)
	}
	h := strings.TrimSuffix(stdout, "\n")
	if err := auth.CheckPassword(&auth.User{Name: "x", PasswordHash: h}, "admin pw"); err != nil {
		t.Errorf("hash %q does not verify: %v", h, err)
	}
	if code, _, _ := runUsers(t, "admin pw", "hash", "--password-stdin"); code != 0 {
		t.Errorf("hash --password-stdin without a newline: %d", code)
	}
}

func TestUsersFailures(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "users.toml")
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("[[user]]\nname = \"a\"\ncolour = \"red\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, stdin string
		args        []string
		want        string
	}{
		{"list missing file", "", []string{"list", "--file", file}, file},
		{"list bad file", "", []string{"list", "--file", bad}, `unknown key "user.colour"`},
		{"add to bad file", "", []string{"add", "--file", bad, "--name", "b"}, `unknown key "user.colour"`},
		{"empty password", "\n", []string{"add", "--file", file, "--name", "a", "--password-stdin"}, "password is empty"},
		{"no password", "", []string{"passwd", "--file", file, "--name", "a"}, "no password on stdin"},
		{"long password", strings.Repeat("x", 73) + "\n", []string{"hash"}, "72 bytes"},
		{"bad name", "", []string{"add", "--file", file, "--name", "tab\there"}, "control character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runUsers(t, tt.stdin, tt.args...)
			if code != 1 || stdout != "" || !strings.Contains(stderr, tt.want) {
				t.Errorf("code %d, stdout %q, stderr %q; want 1 and %q", code, stdout, stderr, tt.want)
			}
			if tt.args[0] != "hash" && !strings.Contains(stderr, file) && !strings.Contains(stderr, bad) {
				t.Errorf("stderr %q names no file", stderr)
			}
		})
	}
	if _, err := os.Stat(file); err == nil {
		t.Error("a failed add created the file")
	}
}

func TestUsersUsage(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"frob"},
		{"add", "--name", "a"},
		{"add", "--file", "f"},
		{"list"},
		{"list", "--file", "f", "extra"},
		{"del", "--file", "f", "--name", "a", "--groups", "x"},
		{"list", "--file", "f", "--name", "a"},
		{"hash", "--file", "f"},
		{"add", "--bogus"},
	} {
		code, stdout, stderr := runUsers(t, "", args...)
		if code != 2 || stdout != "" || stderr == "" {
			t.Errorf("%q: code %d, stdout %q, stderr %q; want 2 and a message", args, code, stdout, stderr)
		}
	}
	for _, args := range [][]string{{"help"}, {"add", "-h"}} {
		if code, stdout, _ := runUsers(t, "", args...); code != 0 || !strings.Contains(stdout, "cotd users add") {
			t.Errorf("%q: code %d, stdout %q", args, code, stdout)
		}
	}
}

func TestUsersNilStdin(t *testing.T) {
	if code := usersCmd([]string{"hash"}, nil, io.Discard, io.Discard); code != 1 {
		t.Errorf("hash with nil stdin: %d", code)
	}
}

// On a terminal, users hash prompts and reads the password with echo off:
// the terminal shows the prompt and never the password.
func TestUsersHashOnATerminalDoesNotEcho(t *testing.T) {
	master, slave := openPTY(t)
	var out, errOut bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- usersCmd([]string{"hash"}, slave, &out, &errOut) }()
	// The password is typed once echo is off, as a person types after the prompt.
	et.Eventually(t, "echo off on the terminal", func() bool {
		tio, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
		return err == nil && tio.Lflag&unix.ECHO == 0
	})
	if _, err := master.Write([]byte("s3cret pw\n")); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("hash on a terminal: %d %s", code, errOut.String())
		}
	case <-time.After(et.Wait):
		t.Fatal("hash did not return")
	}
	h := strings.TrimSuffix(out.String(), "\n")
	if err := auth.CheckPassword(&auth.User{Name: "x", PasswordHash: h}, "s3cret pw"); err != nil {
		t.Errorf("hash %q does not verify: %v", h, err)
	}
	// A marker after everything the command caused: what the terminal showed
	// before it is all there when the marker arrives.
	if _, err := slave.Write([]byte("END-OF-TEST\n")); err != nil {
		t.Fatal(err)
	}
	var shown []byte
	buf := make([]byte, 4096)
	for !bytes.Contains(shown, []byte("END-OF-TEST")) {
		n, err := master.Read(buf)
		if err != nil {
			t.Fatalf("reading the terminal: %v (so far %q)", err, shown)
		}
		shown = append(shown, buf[:n]...)
	}
	if !bytes.Contains(shown, []byte("Password: ")) {
		t.Errorf("no prompt on the terminal: %q", shown)
	}
	if bytes.Contains(shown, []byte("s3cret")) {
		t.Errorf("the password was echoed: %q", shown)
	}
}

// openPTY opens a pseudo-terminal pair; the test closes both.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { _ = master.Close() })
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetUint32(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	slave, err = os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = slave.Close() })
	return master, slave
}
