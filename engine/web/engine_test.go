package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"cotd/configs"
	"cotd/cot"
	"cotd/engine"
	"cotd/engine/auth"
	"cotd/engine/enginetest"
)

// sa is an ATAK position report at lat, lon moving along course at speed
// (m/s), of team.
func sa(uid, callsign, team string, lat, lon, course, speed float64) string {
	now := time.Now().UTC()
	return fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8" standalone="yes"?>`+"\n"+
		`<event version="2.0" uid="%s" type="a-f-G-U-C" how="m-g" time="%s" start="%s" stale="%s">`+
		`<point lat="%g" lon="%g" hae="30" ce="9.9" le="9999999"/>`+
		`<detail><contact callsign="%s" endpoint="*:-1:stcp"/><__group name="%s" role="Team Member"/>`+
		`<takv device="test" platform="ATAK-CIV" os="34" version="5.2"/><track course="%g" speed="%g"/></detail></event>`,
		uid, cot.FormatTime(now), cot.FormatTime(now), cot.FormatTime(now.Add(2*time.Minute)),
		lat, lon, callsign, team, course, speed)
}

// console is a real engine with the web console in front of it, served on
// loopback.
type console struct {
	eng  *enginetest.Harness
	web  *Handler
	srv  *httptest.Server
	logs *enginetest.SyncBuffer
}

// engineCounters is the wiring's view of the engine's metrics for the
// charts.
func engineCounters(s *engine.Server) func() Counters {
	return func() Counters {
		st, bs := s.Stats(), s.Broker().Stats()
		var c Counters
		for i := range st.Open {
			c.Connections += st.Open[i].Value()
		}
		for i := range st.Handshakes {
			c.Handshakes += st.Handshakes[i].Value()
		}
		for i := range bs.Drops {
			c.Drops += bs.Drops[i].Value()
		}
		c.Deliveries = bs.DeliveredAll()
		return c
	}
}

const usersFile = `
[[user]]
name = "alice"
groups = ["Blue"]
groups_out = ["Red"]

[[user]]
name = "bob"
groups_in = ["Red"]
disabled = true
`

// memFiles is an in-memory file store standing in for Marti's, which does
// not exist yet: the console only lists and streams what it is handed.
type memFiles map[string]string

func (m memFiles) List(context.Context) ([]File, error) {
	var out []File
	for id, body := range m {
		out = append(out, File{ID: id, Name: id + ".zip", MIME: "application/zip", Size: int64(len(body)), Submitter: "alice", Uploaded: time.Unix(1700000000, 0)})
	}
	return out, nil
}

func (m memFiles) Open(_ context.Context, id string) (io.ReadCloser, File, error) {
	body, ok := m[id]
	if !ok {
		return nil, File{}, ErrNoFile
	}
	return io.NopCloser(strings.NewReader(body)), File{ID: id, Name: id + ".zip", MIME: "application/zip", Size: int64(len(body))}, nil
}

func startConsole(t *testing.T, mutate func(*Options)) *console {
	t.Helper()
	eng := enginetest.Start(t, nil)
	users, err := auth.Parse([]byte(usersFile))
	if err != nil {
		t.Fatal(err)
	}
	cfg := configs.Default().Web
	cfg.Tiles = "" // nothing may leave the machine
	logs := &enginetest.SyncBuffer{}
	opts := Options{
		Config:   cfg,
		Counters: engineCounters(eng.Srv),
		Users: func() []User {
			var out []User
			for _, u := range users.Users() {
				out = append(out, User{Name: u.Name, In: u.In(), Out: u.Out(), Password: u.PasswordHash != "", Disabled: u.Disabled})
			}
			return out
		},
		Files: memFiles{"pkg1": "PK-not-really-a-zip"},
		Log:   zerolog.New(logs),
	}
	if mutate != nil {
		mutate(&opts)
	}
	w := New(context.Background(), eng.Srv.Directory(), opts)
	srv := httptest.NewServer(w)
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		w.Close()
	})
	return &console{eng: eng, web: w, srv: srv, logs: logs}
}

// post sends body to path with content type ct and extra headers (name,
// value pairs), and returns the status and the body.
func (c *console) post(t *testing.T, path, ct, body string, headers ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, c.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ct)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (c *console) get(t *testing.T, path string, v any) *http.Response {
	t.Helper()
	resp, err := http.Get(c.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("GET %s: %v: %s", path, err, b)
		}
	}
	return resp
}

// connID is the connection id of the client with uid, once it reported.
func (c *console) connID(t *testing.T, uid string) uint64 {
	t.Helper()
	var id uint64
	enginetest.Eventually(t, uid+" in the directory", func() bool {
		for _, cl := range c.eng.Srv.Directory().Clients() {
			if cl.UID == uid {
				id = cl.ConnID
				return true
			}
		}
		return false
	})
	return id
}

func (c *console) metrics(t *testing.T) string {
	t.Helper()
	var b bytes.Buffer
	if err := c.web.WriteMetrics(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestDisconnectRefusesWhatAnotherSiteCouldSend(t *testing.T) {
	c := startConsole(t, nil)
	alpha := enginetest.Dial(t, c.eng.TCPAddr())
	alpha.Send(sa("ALPHA-1", "ALPHA", "Cyan", 47.6, -122.3, 90, 2))
	bravo := enginetest.Dial(t, c.eng.TCPAddr())
	bravo.Send(sa("BRAVO-1", "BRAVO", "Red", 47.7, -122.4, 0, 0))
	idA, idB := c.connID(t, "ALPHA-1"), c.connID(t, "BRAVO-1")

	body := fmt.Sprintf(`{"id":%d}`, idA)
	for _, tc := range []struct {
		name, ct string
		headers  []string
		status   int
	}{
		{"an HTML form", "application/x-www-form-urlencoded", nil, http.StatusUnsupportedMediaType},
		{"a text/plain form", "text/plain", nil, http.StatusUnsupportedMediaType},
		{"JSON from another origin", "application/json", []string{"Origin", "http://evil.example"}, http.StatusForbidden},
		{"JSON from another site", "application/json", []string{"Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
	} {
		if status, resp := c.post(t, "/web/api/disconnect", tc.ct, body, tc.headers...); status != tc.status {
			t.Errorf("%s: status %d (%s), want %d", tc.name, status, resp, tc.status)
		}
	}
	if status, resp := c.post(t, "/web/api/disconnect", "application/json", `{"id":1,"extra":true}`); status != http.StatusBadRequest {
		t.Errorf("unknown field: status %d (%s)", status, resp)
	}

	// The barrier: a proper request for BRAVO closes BRAVO; ALPHA, asked
	// for first by the refused requests, must still be served.
	if status, resp := c.post(t, "/web/api/disconnect", "application/json", fmt.Sprintf(`{"id":%d}`, idB)); status != http.StatusOK {
		t.Fatalf("disconnect BRAVO: %d %s", status, resp)
	}
	bravo.Closed()
	if _, ok := c.eng.Srv.Directory().Connection(idA); !ok {
		t.Fatal("a refused request disconnected ALPHA")
	}
	if status, _ := c.post(t, "/web/api/disconnect", "application/json", fmt.Sprintf(`{"id":%d}`, idB)); status != http.StatusNotFound {
		t.Errorf("disconnecting a closed connection: status %d, want 404", status)
	}
	m := c.metrics(t)
	for _, want := range []string{`cotd_web_refused_total{reason="cross_site"} 4`, `cotd_web_refused_total{reason="bad_request"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s:\n%s", want, m)
		}
	}
	if logs := c.logs.String(); !strings.Contains(logs, `"reason":"cross_site"`) || !strings.Contains(logs, `"message":"web: admin disconnect"`) {
		t.Errorf("refusals and disconnects are not audited:\n%s", logs)
	}
	alpha.Send(sa("ALPHA-1", "ALPHA", "Cyan", 47.6, -122.3, 90, 2))
	if status, _ := c.post(t, "/web/api/disconnect", "application/json", fmt.Sprintf(`{"id":%d}`, idA)); status != http.StatusOK {
		t.Fatalf("disconnect ALPHA: %d", status)
	}
	alpha.Closed()
}

func TestChatReachesOneContactOrEveryone(t *testing.T) {
	c := startConsole(t, nil)
	alpha := enginetest.Dial(t, c.eng.TCPAddr())
	alpha.Send(sa("ALPHA-1", "ALPHA", "Cyan", 47.6, -122.3, 90, 2))
	bravo := enginetest.Dial(t, c.eng.TCPAddr())
	bravo.Send(sa("BRAVO-1", "BRAVO", "Red", 47.7, -122.4, 0, 0))
	c.connID(t, "ALPHA-1")
	c.connID(t, "BRAVO-1")

	fromConsole := func(h *cot.Header) bool {
		return h.Type == cot.TypeChat && strings.HasPrefix(h.UID, "GeoChat."+ConsoleUID+".")
	}
	if status, resp := c.post(t, "/web/api/chat", "application/json", `{"text":"to bravo only","to":"BRAVO"}`); status != http.StatusOK {
		t.Fatalf("chat to BRAVO: %d %s", status, resp)
	}
	got := bravo.Expect("the console's chat", fromConsole)
	if ch, err := readChat(got.Raw); err != nil || ch.Text != "to bravo only" || ch.From != "cotd" || ch.Room != "BRAVO" {
		t.Errorf("BRAVO got %+v, %v:\n%s", ch, err, got.Raw)
	}
	if status, resp := c.post(t, "/web/api/chat", "application/json", `{"text":"to everyone"}`); status != http.StatusOK {
		t.Fatalf("chat to all: %d %s", status, resp)
	}
	// The barrier: the second chat, from the same sender, reached ALPHA, so
	// the first was routed before it and did not go to ALPHA.
	all := alpha.Expect("the chat to All Chat Rooms", fromConsole)
	if ch, _ := readChat(all.Raw); ch.Text != "to everyone" || ch.Room != AllChatRooms {
		t.Errorf("ALPHA got %+v", ch)
	}
	for _, ev := range alpha.Events() {
		if ch, err := readChat(ev.Raw); err == nil && ch.Text == "to bravo only" {
			t.Error("a chat to BRAVO reached ALPHA")
		}
	}
	bravo.Expect("the chat to All Chat Rooms", fromConsole)

	for _, tc := range []struct {
		body   string
		status int
	}{
		{`{"text":"x","to":"NOBODY"}`, http.StatusNotFound},
		{`{"text":""}`, http.StatusBadRequest},
		{`{"text":"` + strings.Repeat("x", maxChatBytes+1) + `"}`, http.StatusBadRequest},
	} {
		if status, resp := c.post(t, "/web/api/chat", "application/json", tc.body); status != tc.status {
			t.Errorf("%.40s: %d %s, want %d", tc.body, status, resp, tc.status)
		}
	}
	if status, _ := c.post(t, "/web/api/chat", "text/plain", `{"text":"forged"}`); status != http.StatusUnsupportedMediaType {
		t.Errorf("a text/plain chat: status %d", status)
	}
}

func TestUsersAndFiles(t *testing.T) {
	c := startConsole(t, nil)
	var users []User
	c.get(t, "/web/api/users", &users)
	if len(users) != 2 || users[0].Name != "alice" || strings.Join(users[0].In, ",") != "Blue" ||
		strings.Join(users[0].Out, ",") != "Blue,Red" || !users[1].Disabled {
		t.Errorf("users %+v", users)
	}
	var files []File
	c.get(t, "/web/api/files", &files)
	if len(files) != 1 || files[0].ID != "pkg1" {
		t.Fatalf("files %+v", files)
	}
	resp, err := http.Get(c.srv.URL + "/web/api/files/pkg1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "PK-not-really-a-zip" || resp.Header.Get("Content-Disposition") != `attachment; filename=pkg1.zip` {
		t.Errorf("download: %q %v", b, resp.Header)
	}
	if r := c.get(t, "/web/api/files/nope", nil); r.StatusCode != http.StatusNotFound {
		t.Errorf("unknown file: %d", r.StatusCode)
	}
	if r := c.get(t, "/nothing-here", nil); r.StatusCode != http.StatusNotFound {
		t.Errorf("unknown path: %d", r.StatusCode)
	}
}
