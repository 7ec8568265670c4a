package engine_test

import (
	"strings"
	"testing"
	"time"

	"cotd/configs"
	"cotd/cot"
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
