package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/coder/websocket"
	"golang.org/x/crypto/bcrypt"

	"cotd/engine/enginetest"
)

// `cotd serve` mounts the web console at "/" of the admin listener, behind
// its basic auth: the page, the users file (following a SIGHUP reload),
// Marti's files with download, the live feed, the console's metrics on
// /metrics, and a close frame to the browser when the server stops.
func TestServeWebConsole(t *testing.T) {
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("ops-pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	users := writeFile(t, dir, "users.toml", "[[user]]\nname = \"alice\"\ngroups = [\"Blue\"]\n")
	cfgPath := writeFile(t, dir, "cotd.toml", fmt.Sprintf(`[tcp]
addr = "127.0.0.1:0"
[tls]
addr = ""
dev_dir = %q
[admin]
addr = "127.0.0.1:0"
basic_user = "ops"
basic_password_hash = %q
[auth]
users_file = %q
[enroll]
addr = ""
[marti]
https_addr = ""
http_addr = "127.0.0.1:0"
files_dir = %q
[store]
path = %q
[web]
tiles = ""
`, filepath.Join(dir, "certs"), hash, users, filepath.Join(dir, "files"), filepath.Join(dir, "cotd.db")))
	srv := startServe(t, cfgPath)
	martiAddr, _ := srv.await(t, "marti listening")["http"].(string)
	ready := srv.await(t, "cotd ready")
	admin, _ := ready["admin"].(string)
	var tcpAddr string
	for _, l := range ready["listeners"].([]any) {
		if m := l.(map[string]any); m["listener"] == "tcp" {
			tcpAddr, _ = m["addr"].(string)
		}
	}
	if martiAddr == "" || admin == "" || tcpAddr == "" {
		t.Fatalf("marti %q, admin %q, tcp %q", martiAddr, admin, tcpAddr)
	}
	base := "http://" + admin

	get := func(path, user, password string) (int, http.Header, []byte) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if user != "" {
			req.SetBasicAuth(user, password)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, resp.Header, b
	}
	getJSON := func(path string, v any) {
		t.Helper()
		code, _, b := get(path, "ops", "ops-pw")
		if err := json.Unmarshal(b, v); code != http.StatusOK || err != nil {
			t.Fatalf("GET %s: %d %v %s", path, code, err, b)
		}
	}

	for _, path := range []string{"/", "/web/api/clients", "/web/ws"} {
		for _, cred := range [][2]string{{"", ""}, {"ops", "wrong"}} {
			code, hdr, body := get(path, cred[0], cred[1])
			if code != http.StatusUnauthorized || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Basic ") || bytes.Contains(body, []byte("<html")) {
				t.Errorf("%s as %q: %d %q, want 401 without the page", path, cred[0], code, body)
			}
		}
	}
	code, hdr, page := get("/", "ops", "ops-pw")
	if code != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") || !bytes.Contains(page, []byte("<title>cotd console</title>")) {
		t.Fatalf("GET / with credentials: %d %s %.200q", code, hdr.Get("Content-Type"), page)
	}
	var pc struct {
		Tiles        string
		Users, Files bool
	}
	getJSON("/web/api/config", &pc)
	if pc.Tiles != "" || !pc.Users || !pc.Files {
		t.Errorf("page config %+v: want no tiles, users and files", pc)
	}

	// The live feed, as a browser opens it with the credentials it holds.
	ctx, cancel := context.WithTimeout(context.Background(), enginetest.Wait)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+admin+"/web/ws", &websocket.DialOptions{HTTPHeader: http.Header{
		"Authorization": {"Basic b3BzOm9wcy1wdw=="}}}) // ops:ops-pw
	if err != nil {
		t.Fatalf("the feed: %v", err)
	}
	defer ws.CloseNow()
	ws.SetReadLimit(16 << 20)
	if _, b, err := ws.Read(ctx); err != nil || !bytes.Contains(b, []byte(`"t":"snapshot"`)) {
		t.Fatalf("the feed's first message: %v %.200s", err, b)
	}

	// A client on the stream is in the console's table.
	conn, err := net.DialTimeout("tcp", tcpAddr, enginetest.Wait)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, enginetest.SA("WEB-1", "WEBBY", "a-f-G-U-C")); err != nil {
		t.Fatal(err)
	}
	enginetest.Eventually(t, "WEB-1 in the console's clients", func() bool {
		var cs []struct{ UID, Callsign string }
		getJSON("/web/api/clients", &cs)
		return len(cs) == 1 && cs[0].UID == "WEB-1" && cs[0].Callsign == "WEBBY"
	})

	// A file shared through Marti is listed and downloads.
	pkg := []byte("PK\x03\x04 a data package, near enough")
	resp, err := http.Post("http://"+martiAddr+"/Marti/sync/upload?name=ops.zip&CreatorUid=WEB-1", "application/x-zip-compressed", bytes.NewReader(pkg))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("marti upload: %d", resp.StatusCode)
	}
	var files []struct {
		ID, Name, Submitter string
		Size                int64
	}
	getJSON("/web/api/files", &files)
	if len(files) != 1 || files[0].Name != "ops.zip" || files[0].Size != int64(len(pkg)) || files[0].Submitter != "WEB-1" {
		t.Fatalf("files %+v", files)
	}
	if code, hdr, b := get("/web/api/files/"+files[0].ID, "ops", "ops-pw"); code != http.StatusOK || !bytes.Equal(b, pkg) ||
		hdr.Get("Content-Disposition") != "attachment; filename=ops.zip" {
		t.Errorf("download: %d %q %v", code, b, hdr)
	}
	if code, _, _ := get("/web/api/files/"+strings.Repeat("0", 64), "ops", "ops-pw"); code != http.StatusNotFound {
		t.Errorf("download of an unknown file: %d, want 404", code)
	}

	// The users file, and a SIGHUP reload of it.
	type user struct {
		Name string
		In   []string
	}
	var us []user
	getJSON("/web/api/users", &us)
	if len(us) != 1 || us[0].Name != "alice" || strings.Join(us[0].In, ",") != "Blue" {
		t.Fatalf("users %+v", us)
	}
	if err := os.WriteFile(users, []byte("[[user]]\nname = \"alice\"\ngroups = [\"Blue\"]\n[[user]]\nname = \"bob\"\ngroups = [\"Red\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := srv.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	srv.await(t, "users file reloaded") // the engine logs it once the new file is in force
	getJSON("/web/api/users", &us)
	if len(us) != 2 || us[1].Name != "bob" {
		t.Errorf("users after the reload %+v", us)
	}

	_, _, metrics := get("/metrics", "ops", "ops-pw")
	for _, want := range []string{"cotd_web_viewers 1", `cotd_web_refused_total{reason="cross_site"} 0`} {
		if !bytes.Contains(metrics, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// Stopping the server tells the browser so.
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for {
		if _, _, err = ws.Read(ctx); err != nil {
			break
		}
	}
	if websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Errorf("the feed ended with %v, want a going-away close frame", err)
	}
}
