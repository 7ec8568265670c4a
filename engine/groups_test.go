package engine_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"cotd/configs"
	"cotd/cot"
	"cotd/engine"
	"cotd/engine/auth"
	et "cotd/engine/enginetest"
	"cotd/tlsstate/pki"
)

const usersTOML = `
[[user]]
name = "blue"
groups = ["Blue"]

[[user]]
name = "blue2"
groups = ["Blue"]

[[user]]
name = "red"
groups = ["Red"]

[[user]]
name = "in-only"
groups_in = ["Blue"]

[[user]]
name = "out-only"
groups_out = ["Blue"]

[[user]]
name = "two"
groups = ["Blue", "Red"]

[[user]]
name = "gone"
groups = ["Blue"]
disabled = true
`

type groupWorld struct {
	h       *et.Harness
	p       *et.PKI
	clients map[string]*et.Client
	users   string
}

// newGroupWorld starts a TLS server with the users file above and connects
// one client per user (named by its certificate CN), one plain TCP client
// ("tcp", __ANON__) and one TLS client whose CN has no entry ("stranger").
func newGroupWorld(t *testing.T, extra string, mutate func(*configs.Config)) *groupWorld {
	t.Helper()
	users := filepath.Join(t.TempDir(), "users.toml")
	if err := os.WriteFile(users, []byte(usersTOML+extra), 0o600); err != nil {
		t.Fatal(err)
	}
	p := et.NewPKI(t, pki.KeyECDSAP256)
	h := et.StartTLS(t, p, func(c *configs.Config) {
		c.Auth.UsersFile = users
		if mutate != nil {
			mutate(c)
		}
	})
	w := &groupWorld{h: h, p: p, clients: map[string]*et.Client{}, users: users}
	for _, name := range []string{"blue", "blue2", "red", "in-only", "out-only", "two", "stranger"} {
		w.clients[name] = et.DialTLS(t, h.TLSAddr(), p.Client(t, name))
	}
	w.clients["tcp"] = et.Dial(t, h.TCPAddr())
	joined := len(w.clients)
	if h.Cfg.Auth.RequireKnownUser {
		joined-- // the stranger is refused
	}
	h.Joined(t, joined)
	return w
}

// routed waits until everything sender sent so far has been routed: the
// server answers a ping after it has handed every earlier frame of that
// connection to the broker, and the broker is idle once it has routed them
// (and counted their deliveries). A check that something did not happen
// follows it.
func (w *groupWorld) routed(t *testing.T, sender string) {
	t.Helper()
	w.clients[sender].Send(et.Ping(sender))
	w.clients[sender].Expect(sender+"'s pong", et.Type(cot.TypePong))
	et.Eventually(t, "broker idle", w.h.Srv.Broker().Idle)
}

// expectOnly sends doc (uid) from sender and checks that exactly want
// received it: they all get it, and once it has been routed the delivery
// count grew by exactly len(want), so nobody else got it. With want empty
// the barrier is what makes the check mean something: the broker is idle
// before the server has even read the frame.
func (w *groupWorld) expectOnly(t *testing.T, sender, uid, doc string, want ...string) {
	t.Helper()
	st := w.h.Srv.Broker().Stats()
	before := st.DeliveredAll()
	w.clients[sender].Send(doc)
	for _, name := range want {
		w.clients[name].Expect(fmt.Sprintf("%s's %s at %s", sender, uid, name), et.UID(uid))
	}
	w.routed(t, sender)
	if got := st.DeliveredAll() - before; got != uint64(len(want)) {
		var extra []string
		for name, c := range w.clients {
			if !slices.Contains(want, name) && c.Received(et.UID(uid)) {
				extra = append(extra, name)
			}
		}
		t.Errorf("%s from %s: %d deliveries, want %d (%v); also reached %v", uid, sender, got, len(want), want, extra)
	}
}

func TestGroupMatrixBroadcast(t *testing.T) {
	w := newGroupWorld(t, "", nil)
	cases := []struct {
		sender string
		want   []string
	}{
		{"blue", []string{"blue2", "out-only", "two"}},
		{"red", []string{"two"}},
		{"in-only", []string{"blue", "blue2", "out-only", "two"}},
		{"out-only", nil},
		{"two", []string{"blue", "blue2", "red", "out-only"}}, // once each, though blue2 hears Blue only and two publishes to both
		{"tcp", []string{"stranger"}},                         // __ANON__ reaches __ANON__ only
		{"stranger", []string{"tcp"}},
	}
	for i, tc := range cases {
		uid := fmt.Sprintf("m%d-%s", i, tc.sender)
		w.expectOnly(t, tc.sender, uid, et.Marker(uid), tc.want...)
	}
}

func TestGroupDirectedAndDeliveryFailure(t *testing.T) {
	w := newGroupWorld(t, "", nil)
	for name, c := range w.clients {
		c.Send(et.SA("U-"+name, "CS-"+name, "a-f-G-U-C"))
	}
	et.Eventually(t, "SAs routed", func() bool { return w.h.Srv.Broker().Idle() && w.h.Srv.Broker().CachedSAs() == len(w.clients) })

	// blue can reach blue2 by callsign and by uid.
	w.expectOnly(t, "blue", "dm-1", et.Chat("dm-1", "hi", []string{"CS-blue2"}, nil), "blue2")
	w.expectOnly(t, "blue", "dm-2", et.Chat("dm-2", "hi", nil, []string{"U-blue2"}), "blue2")
	// red is not reachable from blue: nothing is delivered, and blue gets
	// its chat back as b-t-f-s.
	before := w.h.Srv.Broker().Stats().DeliveredAll()
	w.clients["blue"].Send(et.Chat("dm-3", "hi red", []string{"CS-red"}, nil))
	fail := w.clients["blue"].Expect("delivery failure", et.Type(cot.TypeChatDeliveryFailure))
	if fail.H.UID != "dm-3" {
		t.Errorf("b-t-f-s for %q", fail.H.UID)
	}
	et.Eventually(t, "broker idle", w.h.Srv.Broker().Idle)
	if d := w.h.Srv.Broker().Stats().DeliveredAll() - before; d != 1 {
		t.Errorf("%d deliveries for an unreachable chat; want only the b-t-f-s to its sender", d)
	}
	if w.clients["red"].Received(et.UID("dm-3")) {
		t.Error("red got a chat from a group it does not hear")
	}
}

func TestGroupReplayAndDisconnect(t *testing.T) {
	w := newGroupWorld(t, `
[[user]]
name = "red2"
groups = ["Red"]
`, nil)
	for name, c := range w.clients {
		c.Send(et.SA("U-"+name, "CS-"+name, "a-f-G-U-C"))
	}
	et.Eventually(t, "SAs cached", func() bool { return w.h.Srv.Broker().Idle() && w.h.Srv.Broker().CachedSAs() == len(w.clients) })

	late := et.DialTLS(t, w.h.TLSAddr(), w.p.Client(t, "red2"))
	w.clients["red2"] = late
	late.Expect("red's SA", et.UID("U-red"))
	late.Expect("two's SA", et.UID("U-two"))
	// A replayed SA is counted just after it is delivered: wait for the
	// replay to end before counting deliveries.
	et.Eventually(t, "the replay done", w.h.Srv.Broker().Idle)
	// A message from two reaches red2 after its replay: what red2 holds
	// then is the whole replay.
	w.expectOnly(t, "two", "after-replay", et.Marker("after-replay"), "blue", "blue2", "red", "out-only", "red2")
	for _, ev := range late.Events() {
		if cot.IsControl(ev.H.Type) {
			continue // the protocol offer
		}
		switch ev.H.UID {
		case "U-red", "U-two", "after-replay":
		default:
			t.Errorf("red2 was replayed %s, which it cannot reach", ev.H.UID)
		}
	}

	// blue leaves: those who hear Blue get its t-x-d-d; red does not.
	st := w.h.Srv.Broker().Stats()
	before := st.DeliveredAll()
	_ = w.clients["blue"].Conn.Close()
	for _, name := range []string{"blue2", "out-only", "two"} {
		d := w.clients[name].Expect("blue's disconnect", et.Type(cot.TypeDelete))
		if d.H.LinkUID != "U-blue" {
			t.Errorf("%s got a t-x-d-d for %q", name, d.H.LinkUID)
		}
	}
	et.Eventually(t, "broker idle", w.h.Srv.Broker().Idle)
	if d := st.DeliveredAll() - before; d != 3 {
		t.Errorf("disconnect notice delivered %d times, want 3", d)
	}
}

func TestAuthDocument(t *testing.T) {
	hash, err := auth.HashPassword("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	w := newGroupWorld(t, fmt.Sprintf(`
[[user]]
name = "alice"
password_hash = %q
groups = ["Red"]
`, hash), nil)
	authDoc := func(user, pw string) string {
		return fmt.Sprintf(`<?xml version="1.0"?><auth><cot username="%s" password="%s" uid="ANDROID-x"/></auth>`, user, pw)
	}
	// Right password: the stranger (no entry for its CN) becomes alice and
	// is routed in Red from its next frame, which was sent right behind the
	// <auth> and held while the password was checked.
	st := w.h.Srv.Broker().Stats()
	before := st.DeliveredAll()
	w.clients["stranger"].Send(authDoc("alice", "s3cret") + et.Marker("alice-1"))
	w.clients["red"].Expect("alice's marker, in Red", et.UID("alice-1"))
	w.clients["two"].Expect("alice's marker, in Red", et.UID("alice-1"))
	w.routed(t, "stranger")
	if d := st.DeliveredAll() - before; d != 2 || w.clients["tcp"].Received(et.UID("alice-1")) {
		t.Errorf("alice's marker delivered %d times, want 2 (red, two): after <auth>, the client still published into __ANON__", d)
	}
	if w.h.Srv.Stats().Logins[engine.LoginOK].Value() != 1 {
		t.Error("login not counted")
	}

	// Wrong password: closed, counted, and what it sent is not routed.
	bad := et.DialTLS(t, w.h.TLSAddr(), w.p.Client(t, "stranger2"))
	w.h.Joined(t, len(w.clients)+1)
	et.Eventually(t, "broker idle", w.h.Srv.Broker().Idle) // stranger2's (empty) replay
	before = st.DeliveredAll()
	bad.Send(authDoc("alice", "wrong") + et.Marker("evil-1") + et.SA("EVIL", "EVIL", "a-f-G"))
	bad.Closed()
	et.Eventually(t, "auth_failed counted", func() bool {
		return w.h.Srv.Stats().Closes[engine.ReasonAuthFailed].Value() == 1
	})
	// The close comes after the server read the <auth> and the frames behind
	// it; once the broker is idle, anything routed would have been counted.
	et.Eventually(t, "broker idle", w.h.Srv.Broker().Idle)
	if d := st.DeliveredAll() - before; d != 0 {
		t.Errorf("%d deliveries from a client whose login failed", d)
	}
	for name, c := range w.clients {
		if c.Received(et.UID("evil-1")) || c.Received(et.UID("EVIL")) {
			t.Errorf("%s received a frame from a client whose login failed", name)
		}
	}
	if !strings.Contains(w.h.Logs.String(), "auth refused") {
		t.Error("refused login not logged")
	}
}

func TestRequireKnownUserAndDisabled(t *testing.T) {
	w := newGroupWorld(t, "", func(c *configs.Config) { c.Auth.RequireKnownUser = true })
	// newGroupWorld connected "stranger": with require_known_user it is
	// refused right after its handshake.
	w.clients["stranger"].Closed()
	gone := et.DialTLS(t, w.h.TLSAddr(), w.p.Client(t, "gone"))
	gone.Closed()
	et.Eventually(t, "both refused", func() bool {
		return w.h.Srv.Stats().Closes[engine.ReasonAuthFailed].Value() == 2
	})
	if !strings.Contains(w.h.Logs.String(), "unknown user") || !strings.Contains(w.h.Logs.String(), "user disabled") {
		t.Error("refusals not logged with their reason")
	}
}

func TestReloadChangesGroupsOfConnectedClients(t *testing.T) {
	w := newGroupWorld(t, "", nil)
	w.expectOnly(t, "blue", "before", et.Marker("before"), "blue2", "out-only", "two")
	// red moves to Blue; nobody reconnects.
	moved := strings.Replace(usersTOML, "name = \"red\"\ngroups = [\"Red\"]", "name = \"red\"\ngroups = [\"Blue\"]", 1)
	if moved == usersTOML {
		t.Fatal("test edit did not apply")
	}
	if err := os.WriteFile(w.users, []byte(moved), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := w.h.Srv.ReloadUsers(); err != nil {
		t.Fatal(err)
	}
	w.expectOnly(t, "blue", "after", et.Marker("after"), "blue2", "out-only", "two", "red")
}
