package admin_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"cotd/configs"
	"cotd/cot"
	"cotd/engine"
	"cotd/engine/admin"
	et "cotd/engine/enginetest"
	"cotd/tlsstate/pki"
)

// adminDo sends one request to the harness's admin listener, with basic
// auth when user is not empty.
func adminDo(t *testing.T, h *et.Harness, method, path, user, password string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+h.Srv.AdminAddr().String()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json") // not a cross-site form
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

func adminGet(t *testing.T, h *et.Harness, path string) (int, string) {
	t.Helper()
	code, _, body := adminDo(t, h, http.MethodGet, path, "", "")
	return code, body
}

// joinAs connects a client and identifies it with an SA, waiting until the
// server knows it by uid.
func joinAs(t *testing.T, h *et.Harness, uid, callsign string) *et.Client {
	t.Helper()
	c := et.Dial(t, h.TCPAddr())
	c.Send(et.SA(uid, callsign, "a-f-G-U-C"))
	et.Eventually(t, uid+" identified", func() bool { return len(h.Srv.Directory().Client(uid)) == 1 })
	return c
}

func listClients(t *testing.T, h *et.Harness) []admin.ClientInfo {
	t.Helper()
	code, body := adminGet(t, h, "/api/clients")
	if code != http.StatusOK {
		t.Fatalf("GET /api/clients = %d %s", code, body)
	}
	var cs []admin.ClientInfo
	if err := json.Unmarshal([]byte(body), &cs); err != nil {
		t.Fatalf("GET /api/clients: %v in %s", err, body)
	}
	return cs
}

func TestAdminProbes(t *testing.T) {
	h := et.Start(t, nil)
	if code, body := adminGet(t, h, "/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz = %d %q", code, body)
	}
	if code, body := adminGet(t, h, "/readyz"); code != http.StatusOK || body != "ready\n" {
		t.Errorf("/readyz = %d %q", code, body)
	}
	if code, _ := adminGet(t, h, "/nope"); code != http.StatusNotFound {
		t.Errorf("/nope = %d, want 404", code)
	}
}

func TestAdminMetricsFollowClients(t *testing.T) {
	h := et.Start(t, nil)
	m := h.Metrics(t)
	for series, want := range map[string]float64{
		`cotd_connections_open{listener="tcp"}`:   0,
		`cotd_listen_queue_depth{listener="tcp"}`: 0,
		`cotd_listen_backlog{listener="tcp"}`:     float64(listenBacklog(t)),
	} {
		if v, ok := et.Sample(m, series); !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", series, v, ok, want)
		}
	}
	if strings.Contains(m, `cotd_listen_queue_depth{listener="tls"}`) {
		t.Error("a queue depth for the TLS listener, which is off")
	}

	a := joinAs(t, h, "A", "ALPHA")
	b := joinAs(t, h, "B", "BRAVO")
	junk := et.Dial(t, h.TCPAddr())
	h.WaitSample(t, `cotd_connections_open{listener="tcp"}`, 3)
	h.WaitSample(t, `cotd_connections_accepted_total{listener="tcp"}`, 3)
	h.WaitSample(t, `cotd_frames_in_total{kind="sa"}`, 2)
	// B's SA to A; A's replayed to B; both replayed to the third client.
	h.WaitSample(t, `cotd_frames_out_total{kind="sa"}`, 4)

	b.Send(et.Chat("B", "hello", nil, nil))
	a.Expect("bravo's chat", et.Type("b-t-f"))
	h.WaitSample(t, `cotd_frames_in_total{kind="chat"}`, 1)
	// Broadcast: to A and to the client that has not spoken yet.
	h.WaitSample(t, `cotd_frames_out_total{kind="chat"}`, 2)
	a.Send(et.Ping("A"))
	a.Expect("a pong", et.Type(cot.TypePong))
	h.WaitSample(t, `cotd_frames_in_total{kind="ping"}`, 1)
	h.WaitSample(t, `cotd_frames_out_total{kind="ping"}`, 1)

	junk.Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	h.WaitSample(t, `cotd_closes_total{reason="bad_frame"}`, 1)

	if code, _, body := adminDo(t, h, http.MethodPost, "/api/clients/A/disconnect", "", ""); code != http.StatusOK {
		t.Fatalf("disconnect A = %d %s", code, body)
	}
	h.WaitSample(t, `cotd_closes_total{reason="admin"}`, 1)
	b.Expect("A's t-x-d-d", et.Type(cot.TypeDelete))
	h.WaitSample(t, `cotd_disconnect_notices_total`, 1)
	h.WaitSample(t, `cotd_frames_out_total{kind="other"}`, 1)

	_ = b.Conn.Close()
	h.WaitSample(t, `cotd_closes_total{reason="peer_closed"}`, 1)
	h.WaitSample(t, `cotd_connections_open{listener="tcp"}`, 0)
}

// listenBacklog is the backlog gnet listens with: net.core.somaxconn,
// truncated to 65535.
func listenBacklog(t *testing.T) int {
	b, err := os.ReadFile("/proc/sys/net/core/somaxconn")
	if err != nil {
		t.Skip("no /proc/sys/net/core/somaxconn")
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return min(n, 65535)
}

func TestAdminClientsAPI(t *testing.T) {
	h := et.Start(t, nil)
	if code, body := adminGet(t, h, "/api/clients"); code != http.StatusOK || strings.TrimSpace(body) != "[]" {
		t.Errorf("no clients: %d %q, want 200 []", code, body)
	}
	a := joinAs(t, h, "ANDROID-a", "ALPHA")
	joinAs(t, h, "ANDROID-b", "BRAVO")

	cs := listClients(t, h)
	if len(cs) != 2 {
		t.Fatalf("%d clients listed: %+v", len(cs), cs)
	}
	for i, want := range []struct{ uid, callsign string }{{"ANDROID-a", "ALPHA"}, {"ANDROID-b", "BRAVO"}} {
		c := cs[i]
		if c.UID != want.uid || c.Callsign != want.callsign || c.Listener != "tcp" || c.Protocol != "xml" ||
			c.State != "established" || c.Remote == "" || c.Since.IsZero() || c.LastSeen.IsZero() {
			t.Errorf("client %d = %+v, want %s/%s, oldest first", i, c, want.uid, want.callsign)
		}
	}
	if cs[0].Remote != a.Conn.LocalAddr().String() {
		t.Errorf("remote %q, want the client's address %q", cs[0].Remote, a.Conn.LocalAddr())
	}

	code, hdr, body := adminDo(t, h, http.MethodGet, "/api/clients/ANDROID-b", "", "")
	var one []admin.ClientInfo
	if err := json.Unmarshal([]byte(body), &one); code != http.StatusOK || err != nil || len(one) != 1 || one[0].Callsign != "BRAVO" {
		t.Errorf("GET /api/clients/ANDROID-b = %d %s (%v)", code, body, err)
	}
	if ct := hdr.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}

	code, _, body = adminDo(t, h, http.MethodGet, "/api/clients/nobody", "", "")
	var apiErr struct{ Error string }
	if err := json.Unmarshal([]byte(body), &apiErr); code != http.StatusNotFound || err != nil || !strings.Contains(apiErr.Error, "nobody") {
		t.Errorf("unknown uid: %d %s", code, body)
	}
	if code, _, body := adminDo(t, h, http.MethodPost, "/api/clients/nobody/disconnect", "", ""); code != http.StatusNotFound {
		t.Errorf("disconnect unknown uid: %d %s", code, body)
	}
	code, hdr, _ = adminDo(t, h, http.MethodGet, "/api/clients/ANDROID-a/disconnect", "", "")
	if code != http.StatusMethodNotAllowed || hdr.Get("Allow") != "POST" {
		t.Errorf("GET disconnect = %d Allow %q, want 405 POST", code, hdr.Get("Allow"))
	}
	if code, _, _ := adminDo(t, h, http.MethodPost, "/api/clients", "", ""); code != http.StatusMethodNotAllowed {
		t.Errorf("POST /api/clients = %d, want 405", code)
	}
	if len(listClients(t, h)) != 2 {
		t.Error("a refused request disconnected someone")
	}
}

func TestAdminDisconnectByUID(t *testing.T) {
	h := et.Start(t, nil)
	a := joinAs(t, h, "A", "ALPHA")
	b := joinAs(t, h, "ANDROID/b c", "BRAVO") // a uid that must be escaped in a path
	c := joinAs(t, h, "C", "CHARLIE")

	code, _, body := adminDo(t, h, http.MethodPost, "/api/clients/"+url.PathEscape("ANDROID/b c")+"/disconnect", "", "")
	var res struct {
		UID          string
		Disconnected int
	}
	if err := json.Unmarshal([]byte(body), &res); code != http.StatusOK || err != nil || res.UID != "ANDROID/b c" || res.Disconnected != 1 {
		t.Fatalf("disconnect = %d %s (%v)", code, body, err)
	}
	if err := b.Closed(); !errors.Is(err, io.EOF) {
		t.Errorf("the disconnected client's socket ended with %v, want EOF", err)
	}
	for name, cl := range map[string]*et.Client{"A": a, "C": c} {
		d := cl.Expect(name+": t-x-d-d for B", et.Type(cot.TypeDelete))
		if d.H.LinkUID != "ANDROID/b c" {
			t.Errorf("%s: t-x-d-d names %q", name, d.H.LinkUID)
		}
	}
	for _, ci := range listClients(t, h) {
		if ci.UID == "ANDROID/b c" {
			t.Errorf("still listed: %+v", ci)
		}
	}
	if n := len(listClients(t, h)); n != 2 {
		t.Errorf("%d clients listed, want A and C", n)
	}
	// The others are untouched: they still talk.
	a.Send(et.Chat("A", "still here", nil, nil))
	c.Expect("A's chat", et.Type("b-t-f"))
	if code, _, _ := adminDo(t, h, http.MethodPost, "/api/clients/"+url.PathEscape("ANDROID/b c")+"/disconnect", "", ""); code != http.StatusNotFound {
		t.Errorf("second disconnect = %d, want 404", code)
	}
	if n := h.Srv.Stats().Closes[engine.ReasonAdmin].Value(); n != 1 {
		t.Errorf("admin closes = %d, want 1", n)
	}
}

func TestAdminBasicAuth(t *testing.T) {
	// bcrypt reads 72 bytes: a longer password sharing them must not pass.
	password := "s3cret-" + strings.Repeat("x", 65)
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	h := et.Start(t, func(c *configs.Config) {
		c.Admin.BasicUser, c.Admin.BasicPasswordHash = "ops", string(hash)
		c.Admin.Pprof = true
	})
	joinAs(t, h, "A", "ALPHA")

	for _, path := range []string{"/api/clients", "/api/clients/A", "/metrics", "/debug/pprof/"} {
		for _, cred := range []struct{ user, password string }{
			{"", ""}, {"ops", "wrong"}, {"op", password}, {"ops ", password}, {"OPS", password}, {"ops", ""},
			{"ops", password + "!"},
		} {
			code, hdr, _ := adminDo(t, h, http.MethodGet, path, cred.user, cred.password)
			if code != http.StatusUnauthorized || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Basic ") {
				t.Errorf("%s as %q/%q: %d (WWW-Authenticate %q), want 401", path, cred.user, cred.password, code, hdr.Get("WWW-Authenticate"))
			}
		}
		if code, _, body := adminDo(t, h, http.MethodGet, path, "ops", password); code != http.StatusOK {
			t.Errorf("%s with the right credentials: %d %s", path, code, body)
		}
	}
	if code, _, _ := adminDo(t, h, http.MethodPost, "/api/clients/A/disconnect", "ops", "wrong"); code != http.StatusUnauthorized {
		t.Errorf("disconnect with a wrong password: %d", code)
	}
	if len(h.Srv.Directory().Client("A")) != 1 {
		t.Error("a refused disconnect disconnected the client")
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, _ := adminGet(t, h, path); code != http.StatusOK {
			t.Errorf("%s without credentials: %d; probes stay open", path, code)
		}
	}
}

// The console (Options.Console) is served at "/" and below behind the
// same basic auth as the API; the API's paths, their JSON 404s and 405s
// and the open probes are unchanged by it.
func TestAdminConsoleBehindAuth(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	console := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, "console "+r.Method+" "+r.URL.Path)
	})
	h := et.StartWith(t, et.Options{
		Mutate:  func(c *configs.Config) { c.Admin.BasicUser, c.Admin.BasicPasswordHash = "ops", string(hash) },
		Console: func(*engine.Server) http.Handler { return console },
	})
	for _, path := range []string{"/", "/web/ws", "/web/api/clients"} {
		for _, cred := range [][2]string{{"", ""}, {"ops", "wrong"}} {
			code, hdr, body := adminDo(t, h, http.MethodGet, path, cred[0], cred[1])
			if code != http.StatusUnauthorized || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Basic ") || strings.Contains(body, "console") {
				t.Errorf("%s as %q: %d %q, want 401 without the console", path, cred[0], code, body)
			}
		}
		if code, _, body := adminDo(t, h, http.MethodGet, path, "ops", "s3cret"); code != http.StatusOK || body != "console GET "+path {
			t.Errorf("%s with credentials: %d %q, want the console", path, code, body)
		}
	}
	if code, _, body := adminDo(t, h, http.MethodPost, "/web/api/chat", "ops", "s3cret"); code != http.StatusOK || body != "console POST /web/api/chat" {
		t.Errorf("POST to the console: %d %q", code, body)
	}
	for _, tc := range []struct {
		method, path string
		code         int
	}{
		{http.MethodGet, "/api/clients", http.StatusOK},
		{http.MethodGet, "/metrics", http.StatusOK},
		{http.MethodGet, "/api/nope", http.StatusNotFound},
		{http.MethodGet, "/debug/pprof/", http.StatusNotFound},
		{http.MethodDelete, "/api/connections", http.StatusMethodNotAllowed},
		{http.MethodPost, "/metrics", http.StatusMethodNotAllowed},
	} {
		code, _, body := adminDo(t, h, tc.method, tc.path, "ops", "s3cret")
		if code != tc.code || strings.Contains(body, "console") {
			t.Errorf("%s %s = %d %q, want %d from the API", tc.method, tc.path, code, body, tc.code)
		}
		if code != http.StatusOK && !json.Valid([]byte(body)) {
			t.Errorf("%s %s: the error is not JSON: %q", tc.method, tc.path, body)
		}
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, _ := adminGet(t, h, path); code != http.StatusOK {
			t.Errorf("%s without credentials: %d; probes stay open", path, code)
		}
	}
}

func TestAdminPprofOnlyWhenEnabled(t *testing.T) {
	off := et.Start(t, nil)
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/goroutine"} {
		if code, _ := adminGet(t, off, path); code != http.StatusNotFound {
			t.Errorf("pprof off: %s = %d, want 404", path, code)
		}
	}
	on := et.Start(t, func(c *configs.Config) { c.Admin.Pprof = true })
	if code, body := adminGet(t, on, "/debug/pprof/"); code != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Errorf("pprof on: /debug/pprof/ = %d", code)
	}
	if code, body := adminGet(t, on, "/debug/pprof/goroutine?debug=1"); code != http.StatusOK || !strings.Contains(body, "goroutine profile") {
		t.Errorf("pprof on: goroutine profile = %d", code)
	}
}

func TestAdminListenQueuesOfEveryListener(t *testing.T) {
	h := et.StartTLS(t, et.NewPKI(t, pki.KeyECDSAP256), nil)
	m := h.Metrics(t)
	for _, l := range []string{"tcp", "tls"} {
		if v, ok := et.Sample(m, `cotd_listen_queue_depth{listener="`+l+`"}`); !ok || v != 0 {
			t.Errorf("%s queue depth = %v (present %v), want 0", l, v, ok)
		}
		if v, ok := et.Sample(m, `cotd_listen_backlog{listener="`+l+`"}`); !ok || v != float64(listenBacklog(t)) {
			t.Errorf("%s backlog = %v (present %v), want %d", l, v, ok, listenBacklog(t))
		}
	}
}

// cotd_connections splits the open connections of each listener into those
// still in their TLS handshake and those established, so a dashboard shows
// a slowloris building up before the handshake deadline clears it.
func TestAdminConnectionsByState(t *testing.T) {
	p := et.NewPKI(t, pki.KeyECDSAP256)
	// The silent client must be seen handshaking before its deadline: it is
	// dialled last, once the others are established, and the deadline leaves
	// a loaded machine ten seconds for one scrape.
	h := et.StartTLS(t, p, func(c *configs.Config) {
		c.TLS.HandshakeTimeout = configs.Duration{Duration: 10 * time.Second}
	})
	series := func(l, state string) string {
		return `cotd_connections{listener="` + l + `",state="` + state + `"}`
	}
	honest := et.DialTLS(t, h.TLSAddr(), p.Client(t, "alice"))
	et.Dial(t, h.TCPAddr())
	h.WaitSample(t, series("tls", "established"), 1)
	h.WaitSample(t, series("tcp", "established"), 1)
	et.DialSilent(t, h.TLSAddr())
	h.WaitSample(t, series("tls", "handshaking"), 1)
	h.WaitSample(t, series("tcp", "handshaking"), 0)

	// The silent one is closed at the deadline; the gauges follow.
	h.WaitSample(t, `cotd_closes_total{reason="handshake_timeout"}`, 1)
	h.WaitSample(t, series("tls", "handshaking"), 0)
	_ = honest.Conn.Close()
	h.WaitSample(t, series("tls", "established"), 0)
	h.WaitSample(t, `cotd_connections_open{listener="tls"}`, 0)
}

// A connection that has no uid (it never sent an SA) is still reachable by
// its connection id: shown, and closed on an administrator's request.
func TestAdminConnectionByID(t *testing.T) {
	h := et.Start(t, nil)
	anon := et.Dial(t, h.TCPAddr())
	named := joinAs(t, h, "ANDROID-n", "NOVEMBER")
	h.Joined(t, 2) // the dial returns before the server has accepted
	// Found by its address: the server may accept the two in either order.
	var id uint64
	for _, c := range listClients(t, h) {
		if c.Remote == anon.Conn.LocalAddr().String() && c.UID == "" {
			id = c.ID
		}
	}
	if id == 0 {
		t.Fatalf("the unnamed connection is not listed: %+v", listClients(t, h))
	}
	path := fmt.Sprintf("/api/connections/%d", id)

	code, body := adminGet(t, h, path)
	var ci admin.ClientInfo
	if err := json.Unmarshal([]byte(body), &ci); code != http.StatusOK || err != nil || ci.ID != id || ci.Remote != anon.Conn.LocalAddr().String() {
		t.Fatalf("GET %s = %d %s (%v)", path, code, body, err)
	}
	if code, _, _ := adminDo(t, h, http.MethodGet, path+"/disconnect", "", ""); code != http.StatusMethodNotAllowed {
		t.Errorf("GET disconnect = %d, want 405", code)
	}
	if code, body := adminGet(t, h, "/api/connections/abc"); code != http.StatusBadRequest || !strings.Contains(body, "abc") {
		t.Errorf("bad id: %d %s", code, body)
	}

	if code, _, body := adminDo(t, h, http.MethodPost, path+"/disconnect", "", ""); code != http.StatusOK {
		t.Fatalf("disconnect %d = %d %s", id, code, body)
	}
	anon.Closed()
	h.WaitSample(t, `cotd_closes_total{reason="admin"}`, 1)
	if code, _ := adminGet(t, h, path); code != http.StatusNotFound {
		t.Errorf("GET a closed connection = %d, want 404", code)
	}
	if code, _, _ := adminDo(t, h, http.MethodPost, path+"/disconnect", "", ""); code != http.StatusNotFound {
		t.Errorf("disconnect a closed connection = %d, want 404", code)
	}
	// Nobody else was touched.
	named.Send(et.Ping("ANDROID-n"))
	named.Expect("a pong", et.Type(cot.TypePong))
	if !strings.Contains(h.Logs.String(), `"message":"admin disconnect"`) {
		t.Error("no audit line for the disconnect")
	}
}

// /api/connections lists every connection by id, handshaking ones too.
func TestAdminConnectionsList(t *testing.T) {
	p := et.NewPKI(t, pki.KeyECDSAP256)
	h := et.StartTLS(t, p, nil)
	if code, body := adminGet(t, h, "/api/connections"); code != http.StatusOK || strings.TrimSpace(body) != "[]" {
		t.Errorf("no connections: %d %q, want 200 []", code, body)
	}
	et.DialSilent(t, h.TLSAddr())
	alice := et.DialTLS(t, h.TLSAddr(), p.Client(t, "alice"))
	alice.Send(et.SA("U-alice", "ALICE", "a-f-G-U-C"))
	et.Eventually(t, "alice identified", func() bool { return len(h.Srv.Directory().Client("U-alice")) == 1 })

	code, body := adminGet(t, h, "/api/connections")
	var cs []admin.ClientInfo
	if err := json.Unmarshal([]byte(body), &cs); code != http.StatusOK || err != nil || len(cs) != 2 {
		t.Fatalf("GET /api/connections = %d %s (%v), want the two", code, body, err)
	}
	states := map[string]admin.ClientInfo{}
	for _, c := range cs {
		states[c.State] = c
	}
	if hs := states["handshaking"]; hs.ID == 0 || hs.Listener != "tls" || hs.CN != "" {
		t.Errorf("handshaking connection %+v", hs)
	}
	est := states["established"]
	if est.UID != "U-alice" || est.CN != "alice" || est.Identity != "alice" || est.BytesIn == 0 ||
		len(est.GroupsIn) == 0 || len(est.GroupsOut) == 0 {
		t.Errorf("established connection %+v", est)
	}
	if cs[0].ID >= cs[1].ID {
		t.Errorf("not oldest first: %d, %d", cs[0].ID, cs[1].ID)
	}
}

// Errors are JSON, the router's 404 and 405 included.
func TestAdminErrorsAreJSON(t *testing.T) {
	h := et.Start(t, nil)
	for _, tc := range []struct {
		method, path string
		code         int
		allow, says  string
	}{
		{http.MethodGet, "/nope", http.StatusNotFound, "", "/nope"},
		{http.MethodGet, "/api/clients/x/y/z", http.StatusNotFound, "", "/api/clients/x/y/z"},
		{http.MethodDelete, "/api/connections", http.StatusMethodNotAllowed, "GET, HEAD", "DELETE"},
		{http.MethodGet, "/api/clients/A/disconnect", http.StatusMethodNotAllowed, "POST", "GET"},
	} {
		code, hdr, body := adminDo(t, h, tc.method, tc.path, "", "")
		var e admin.Error
		if err := json.Unmarshal([]byte(body), &e); err != nil || code != tc.code || !strings.Contains(e.Error, tc.says) {
			t.Errorf("%s %s = %d %q (%v), want %d and a JSON error naming %q", tc.method, tc.path, code, body, err, tc.code, tc.says)
		}
		if ct := hdr.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: Content-Type %q", tc.method, tc.path, ct)
		}
		if hdr.Get("Allow") != tc.allow {
			t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.path, hdr.Get("Allow"), tc.allow)
		}
	}
}

// /metrics carries the Go runtime's and the process's figures under their
// customary names, beside the engine's.
func TestAdminRuntimeAndProcessMetrics(t *testing.T) {
	h := et.Start(t, nil)
	m := h.Metrics(t)
	for _, series := range []string{"go_goroutines", "go_threads", "go_memstats_heap_alloc_bytes", "go_gc_cycles_total",
		"process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds", "process_start_time_seconds"} {
		if _, ok := et.Sample(m, series); !ok {
			t.Errorf("no %s on /metrics", series)
		}
	}
	if v, _ := et.Sample(m, "go_goroutines"); v < 2 {
		t.Errorf("go_goroutines = %v", v)
	}
	if !strings.Contains(m, "# TYPE cotd_connections_open gauge") {
		t.Error("the engine's metrics are missing")
	}
}
