package engine_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cotd/configs"
	"cotd/cot"
	"cotd/engine/directory"
	et "cotd/engine/enginetest"
	"cotd/tlsstate/pki"
)

// oneShard routes every frame and every leave through one shard, in order:
// a marker that arrives after a close was counted proves the leave was
// handled (OnClose counts the close after handing the leave to the shard).
func oneShard(quiet time.Duration) func(*configs.Config) {
	return func(c *configs.Config) {
		c.Broker.Shards = 1
		c.SA.TakeoverQuiet = configs.Duration{Duration: quiet}
	}
}

func callsign(cs string) func(*cot.Header) bool {
	return func(h *cot.Header) bool { return h.Callsign == cs }
}

func deleteOf(uid string) func(*cot.Header) bool {
	return func(h *cot.Header) bool {
		return h.Type == cot.TypeDelete && h.LinkUID == uid
	}
}

// An anonymous connection that announces a uid another live connection
// holds is refused: its SA reaches nobody and is not cached, directed
// messages still reach the holder, and its leaving produces no t-x-d-d for
// the holder's uid.
func TestUIDImpostorIsRefused(t *testing.T) {
	h := et.Start(t, oneShard(time.Hour))
	sub := h.Srv.Directory().Subscribe("own", directory.KindsOf(directory.SA), 64)
	defer sub.Close()
	alice := et.Dial(t, h.TCPAddr())
	bob := et.Dial(t, h.TCPAddr())
	h.Joined(t, 2)
	alice.Send(et.SA("ALICE", "ALICE", "a-f-G-U-C"))
	bob.Expect("alice's SA", et.UID("ALICE"))

	evil := et.Dial(t, h.TCPAddr())
	h.Joined(t, 3)
	evil.Send(et.SA("ALICE", "EVIL", "a-f-G-U-C"))
	evil.Send(et.SA("ALICE", "EVIL", "a-f-G-U-C"))
	barrier(t, evil, "evil-barrier", alice, bob)
	if bob.Received(callsign("EVIL")) || alice.Received(callsign("EVIL")) {
		t.Fatal("the impostor's SA for alice's uid was routed")
	}
	h.WaitSample(t, "cotd_uid_refused_total", 2)
	// The subscribers (store, Marti contacts) were offered what the
	// evil connection sent before its barrier, on its loop: nothing.
	for len(sub.C()) > 0 {
		if ev := <-sub.C(); ev.Message.Header.Callsign == "EVIL" {
			t.Fatal("the impostor's SA reached the engine's subscribers")
		}
	}
	if n := strings.Count(h.Logs.String(), "another live client owns"); n != 1 {
		t.Errorf("refused claims logged %d times, want once", n)
	}

	// Directed delivery follows the owner.
	bob.Send(et.Chat("to-alice", "hi", nil, []string{"ALICE"}))
	barrier(t, bob, "bob-barrier", alice, evil)
	alice.Expect("chat to alice's uid", et.UID("to-alice"))
	if evil.Received(et.UID("to-alice")) {
		t.Error("the impostor received a chat addressed to alice's uid")
	}

	// The cache kept alice's SA.
	carol := et.Dial(t, h.TCPAddr())
	if got := carol.Expect("alice's SA replayed", et.UID("ALICE")); got.H.Callsign != "ALICE" {
		t.Errorf("replayed SA for ALICE has callsign %q: the impostor replaced it", got.H.Callsign)
	}

	// The impostor leaves: no t-x-d-d for alice, who is online.
	_ = evil.Conn.Close()
	h.WaitSample(t, `cotd_closes_total{reason="peer_closed"}`, 1)
	barrier(t, alice, "after-leave", bob)
	if bob.Received(deleteOf("ALICE")) {
		t.Fatal("the impostor's leaving announced alice as gone")
	}
	// And alice's own leaving still does.
	_ = alice.Conn.Close()
	bob.Expect("alice's disconnect notice", deleteOf("ALICE"))
}

// The same user (certificate CN) reconnecting takes the uid over at once:
// the old connection is closed as replaced, nobody is told the device
// left, and directed messages reach the new connection. Another user's
// claim on the uid is refused.
func TestSameUserReconnectTakesUIDOver(t *testing.T) {
	p := et.NewPKI(t, pki.KeyECDSAP256)
	h := et.StartTLS(t, p, oneShard(time.Hour))
	a1 := et.DialTLS(t, h.TLSAddr(), p.Client(t, "alice"))
	bob := et.Dial(t, h.TCPAddr())
	h.Joined(t, 2)
	a1.Send(et.SA("ALICE", "ALICE-1", "a-f-G-U-C"))
	bob.Expect("alice's first SA", callsign("ALICE-1"))

	a2 := et.DialTLS(t, h.TLSAddr(), p.Client(t, "alice"))
	h.Joined(t, 3)
	a2.Send(et.SA("ALICE", "ALICE-2", "a-f-G-U-C"))
	bob.Expect("alice's SA on the new connection", callsign("ALICE-2"))
	a1.Closed()
	h.WaitSample(t, `cotd_closes_total{reason="replaced"}`, 1)
	barrier(t, a2, "a2-barrier", bob)
	if bob.Received(deleteOf("ALICE")) {
		t.Fatal("a reconnect announced the device as gone")
	}
	bob.Send(et.Chat("to-alice", "hi", nil, []string{"ALICE"}))
	a2.Expect("chat to alice's uid on the new connection", et.UID("to-alice"))

	// Mallory holds a valid certificate of her own.
	m := et.DialTLS(t, h.TLSAddr(), p.Client(t, "mallory"))
	m.Send(et.SA("ALICE", "MALLORY", "a-f-G-U-C"))
	barrier(t, m, "m-barrier", bob, a2)
	if bob.Received(callsign("MALLORY")) {
		t.Fatal("another user's claim on alice's uid was routed")
	}
	h.WaitSample(t, "cotd_uid_refused_total", 1)
	if !strings.Contains(h.Logs.String(), `"holder_owner":"alice"`) || !strings.Contains(h.Logs.String(), `"owner":"mallory"`) {
		t.Error("the refusal's log line does not name both identities")
	}
}

// A phone that changes network reconnects anonymously while its old
// connection lingers: when the holder has been quiet past
// sa.takeover_quiet, the new connection wins, the old one is closed as
// replaced, and no t-x-d-d is sent.
func TestQuietHolderLosesUIDToReconnect(t *testing.T) {
	// A quiet period shorter than any round trip: the holder is always
	// quiet by the time the second claim is routed.
	h := et.Start(t, oneShard(time.Nanosecond))
	old := et.Dial(t, h.TCPAddr())
	bob := et.Dial(t, h.TCPAddr())
	h.Joined(t, 2)
	old.Send(et.SA("PHONE", "PHONE-1", "a-f-G-U-C"))
	bob.Expect("phone's SA", callsign("PHONE-1"))

	fresh := et.Dial(t, h.TCPAddr())
	h.Joined(t, 3)
	fresh.Send(et.SA("PHONE", "PHONE-2", "a-f-G-U-C"))
	bob.Expect("phone's SA on the new connection", callsign("PHONE-2"))
	old.Closed()
	h.WaitSample(t, `cotd_closes_total{reason="replaced"}`, 1)
	barrier(t, fresh, "fresh-barrier", bob)
	if bob.Received(deleteOf("PHONE")) {
		t.Fatal("the replaced connection announced the device as gone")
	}
	h.WaitSample(t, "cotd_uid_takeovers_total", 1)
}

// A uid rotator gets sa.max_per_connection uids and no more; whatever a
// connection announced leaves the cache with it.
func TestSACacheBoundedPerConnection(t *testing.T) {
	h := et.Start(t, func(c *configs.Config) {
		c.Broker.Shards = 1
		c.SA.MaxPerConnection = 4
	})
	rot := et.Dial(t, h.TCPAddr())
	bob := et.Dial(t, h.TCPAddr())
	h.Joined(t, 2)
	bob.Send(et.SA("BOB", "BOB", "a-f-G-U-C"))
	rot.Expect("bob's SA", et.UID("BOB"))
	var b strings.Builder
	for i := range 50 {
		b.WriteString(et.SA(fmt.Sprintf("ROT-%d", i), fmt.Sprintf("ROT-%d", i), "a-f-G-U-C"))
	}
	rot.Send(b.String())
	barrier(t, rot, "rot-barrier", bob)
	got := 0
	for _, ev := range bob.Events() {
		if strings.HasPrefix(ev.H.UID, "ROT-") {
			got++
		}
	}
	if got != 4 {
		t.Errorf("bob received %d of the rotator's uids, want 4 (sa.max_per_connection)", got)
	}
	h.WaitSample(t, "cotd_sa_over_connection_cap_total", 46)
	h.WaitSample(t, "cotd_sa_cached", 5)

	_ = rot.Conn.Close()
	h.WaitSample(t, `cotd_closes_total{reason="peer_closed"}`, 1)
	// The leave is handled on the one shard before anything bob sends next.
	carol := et.Dial(t, h.TCPAddr())
	h.Joined(t, 2)
	barrier(t, bob, "bob-barrier", carol)
	h.WaitSample(t, "cotd_sa_cached", 1)
}

// An SA without a stale time is cached for sa.default_stale, not forever.
func TestSACacheDefaultLifetime(t *testing.T) {
	h := et.Start(t, func(c *configs.Config) {
		c.SA.DefaultStale = configs.Duration{Duration: time.Nanosecond}
	})
	a := et.Dial(t, h.TCPAddr())
	b := et.Dial(t, h.TCPAddr())
	h.Joined(t, 2)
	noStale := strings.Replace(et.SA("NOSTALE", "NOSTALE", "a-f-G-U-C"), ` stale="`, ` x-stale="`, 1)
	a.Send(noStale)
	b.Expect("the SA without stale, live", et.UID("NOSTALE"))
	// A joiner's replay ends with the protocol offer: once it has that,
	// it has every SA it was going to be replayed.
	j := et.Dial(t, h.TCPAddr())
	j.Expect("protocol offer after the replay", et.Type(cot.TypeTakpOffer))
	if j.Received(et.UID("NOSTALE")) {
		t.Error("an SA without a stale time was replayed after sa.default_stale")
	}
}

// The whole cache is capped by sa.max_cached: past it SAs are routed, not
// cached.
func TestSACacheCapped(t *testing.T) {
	h := et.Start(t, func(c *configs.Config) {
		c.Broker.Shards = 1
		c.SA.MaxCached = 2
	})
	cl := []*et.Client{et.Dial(t, h.TCPAddr()), et.Dial(t, h.TCPAddr()), et.Dial(t, h.TCPAddr())}
	h.Joined(t, 3)
	for i, c := range cl {
		c.Send(et.SA(fmt.Sprintf("CAP-%d", i), fmt.Sprintf("CAP-%d", i), "a-f-G-U-C"))
	}
	barrier(t, cl[2], "cap-barrier", cl[0], cl[1])
	cl[0].Expect("the third SA, routed though not cached", et.UID("CAP-2"))
	h.WaitSample(t, "cotd_sa_cache_full_total", 1)
	h.WaitSample(t, "cotd_sa_cached", 2)
}

// A user marked gateway in the users file relays other devices' SAs: its
// connection announces more uids than sa.max_per_connection, while an
// ordinary user's connection is held to it.
func TestGatewayUserAnnouncesMoreUIDs(t *testing.T) {
	users := filepath.Join(t.TempDir(), "users.toml")
	const toml = "[[user]]\nname = \"radio\"\ngateway = true\n\n[[user]]\nname = \"phone\"\n"
	if err := os.WriteFile(users, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	p := et.NewPKI(t, pki.KeyECDSAP256)
	h := et.StartTLS(t, p, func(c *configs.Config) {
		c.Auth.UsersFile = users
		c.Broker.Shards = 1
		c.SA.MaxPerConnection = 2
	})
	radio := et.DialTLS(t, h.TLSAddr(), p.Client(t, "radio"))
	phone := et.DialTLS(t, h.TLSAddr(), p.Client(t, "phone"))
	bob := et.Dial(t, h.TCPAddr())
	h.Joined(t, 3)
	announce := func(c *et.Client, prefix string) {
		var b strings.Builder
		for i := range 5 {
			uid := fmt.Sprintf("%s-%d", prefix, i)
			b.WriteString(et.SA(uid, uid, "a-f-G-U-C"))
		}
		c.Send(b.String())
	}
	announce(radio, "MESH")
	announce(phone, "ROT")
	barrier(t, radio, "radio-barrier", bob)
	barrier(t, phone, "phone-barrier", bob)
	count := func(prefix string) int {
		n := 0
		for _, ev := range bob.Events() {
			if strings.HasPrefix(ev.H.UID, prefix) {
				n++
			}
		}
		return n
	}
	if got := count("MESH-"); got != 5 {
		t.Errorf("bob received %d of the gateway's 5 uids", got)
	}
	if got := count("ROT-"); got != 2 {
		t.Errorf("bob received %d of the ordinary user's uids, want 2 (sa.max_per_connection)", got)
	}
}
