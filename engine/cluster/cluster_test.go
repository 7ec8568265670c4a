package cluster_test

import (
	"testing"

	"cotd/cot"
	"cotd/engine/directory"
	et "cotd/engine/enginetest"
)

func TestBroadcastAcrossNodes(t *testing.T) {
	ns := startCluster(t, nil, nil, nil)
	a := dial(t, ns[0], "alpha")
	b := dial(t, ns[1], "bravo")
	c := dial(t, ns[2], "charlie")
	// Each SA crosses to the other two nodes.
	for _, x := range []struct {
		cl  *et.Client
		uid string
	}{{b, "alpha"}, {c, "alpha"}, {a, "bravo"}, {c, "bravo"}, {a, "charlie"}, {b, "charlie"}} {
		x.cl.Expect(x.uid+"'s SA", et.UID(x.uid))
	}
	for _, n := range ns[1:] {
		knows(t, n, "alpha", "n0")
	}
	if got := len(ns[2].dir.Clients()); got != 3 {
		t.Errorf("n2's directory lists %d clients, want the cluster's 3: %+v", got, ns[2].dir.Clients())
	}
	a.Send(et.Marker("m1"))
	b.Expect("m1 from n0", et.UID("m1"))
	c.Expect("m1 from n0", et.UID("m1"))
	// Barrier: a later message from the same sender arrived, so the first
	// came exactly once.
	a.Send(et.Marker("m2"))
	b.Expect("m2", et.UID("m2"))
	c.Expect("m2", et.UID("m2"))
	if n := count(b, et.UID("m1")); n != 1 {
		t.Errorf("bravo got m1 %d times, want once", n)
	}
	if n := count(a, et.UID("m1")); n != 0 {
		t.Errorf("alpha got its own m1 back %d times (echo between nodes)", n)
	}
}

func TestDirectedAcrossNodes(t *testing.T) {
	ns := startCluster(t, nil, nil, nil)
	a := dial(t, ns[0], "alpha")
	b := dial(t, ns[1], "bravo")
	c := dial(t, ns[2], "charlie")
	knows(t, ns[2], "alpha", "n0")
	knows(t, ns[2], "bravo", "n1")

	// By callsign: to ALPHA on n0 only.
	c.Send(et.Chat("chat-1", "to alpha", []string{"ALPHA"}, nil))
	a.Expect("chat-1 by callsign", et.UID("chat-1"))
	// By uid: to bravo on n1 only.
	c.Send(et.Chat("chat-2", "to bravo", nil, []string{"bravo"}))
	b.Expect("chat-2 by uid", et.UID("chat-2"))
	// Barrier: a broadcast from charlie after both reached everyone; a chat
	// sent to the wrong node would have come before it.
	c.Send(et.Marker("after"))
	a.Expect("barrier", et.UID("after"))
	b.Expect("barrier", et.UID("after"))
	if b.Received(et.UID("chat-1")) {
		t.Error("bravo got the chat for ALPHA")
	}
	if a.Received(et.UID("chat-2")) {
		t.Error("alpha got the chat for bravo")
	}
	for _, ev := range a.Events() {
		if ev.H.UID == "chat-1" && len(ev.H.DestCallsigns) > 0 {
			t.Errorf("chat-1 reached alpha with its <marti>: %s", ev.Raw)
		}
	}
}

func TestGroupsAcrossNodes(t *testing.T) {
	ns := startCluster(t, []string{"Blue"}, []string{"Red"}, []string{"Blue", "Red"})
	blue := dial(t, ns[0], "blue")
	red := dial(t, ns[1], "red")
	both := dial(t, ns[2], "both")
	knows(t, ns[0], "both", "n2")
	knows(t, ns[1], "both", "n2")
	knows(t, ns[2], "blue", "n0")
	knows(t, ns[2], "red", "n1")

	blue.Send(et.Marker("blue-1"))
	both.Expect("blue-1 (Blue)", et.UID("blue-1"))
	// Barrier: n0's server publishes into Red after blue-1 left n0.
	announce(t, ns[0], "red-notice", []string{"Red"})
	red.Expect("n0's notice into Red", et.UID("red-notice"))
	if red.Received(et.UID("blue-1")) {
		t.Error("red (n1) got a Blue message from n0")
	}
	if blue.Received(et.UID("red-notice")) {
		t.Error("blue got n0's notice into Red")
	}
	// Red cannot reach Blue across nodes either, even directed.
	red.Send(et.Chat("red-chat", "to blue", nil, []string{"blue"}))
	red.Send(et.Marker("red-after"))
	both.Expect("red-after", et.UID("red-after"))
	announce(t, ns[1], "blue-notice", []string{"Blue"})
	blue.Expect("n1's notice into Blue", et.UID("blue-notice"))
	if blue.Received(et.UID("red-chat")) {
		t.Error("red reached blue on another node with a directed chat")
	}

	// A message into Blue and Red comes to a node hearing both once per
	// group, and is routed once.
	announce(t, ns[1], "two-groups", []string{"Blue", "Red"})
	both.Expect("two-groups", et.UID("two-groups"))
	blue.Expect("two-groups", et.UID("two-groups"))
	announce(t, ns[1], "two-after", []string{"Blue", "Red"})
	both.Expect("two-after", et.UID("two-after"))
	if n := count(both, et.UID("two-groups")); n != 1 {
		t.Errorf("both got a message into Blue and Red %d times, want once", n)
	}
	if ns[2].n.Stats().Duplicates.Value() == 0 {
		t.Error("n2 counted no duplicate copy skipped")
	}
}

func TestReplayToLateJoinerOnAnotherNode(t *testing.T) {
	ns := startCluster(t, nil, nil)
	dial(t, ns[0], "early")
	knows(t, ns[1], "early", "n0")
	// n1 has no client yet: it heard no group and cached no SA. Its first
	// client still gets early's SA.
	late := et.Dial(t, ns[1].h.TCPAddr())
	ev := late.Expect("early's SA replayed", et.UID("early"))
	if ev.H.Callsign != "EARLY" {
		t.Errorf("replayed SA has callsign %q", ev.H.Callsign)
	}
	// And a second late joiner gets it from n1's own cache.
	later := et.Dial(t, ns[1].h.TCPAddr())
	later.Expect("early's SA replayed", et.UID("early"))
}

func TestLeaveAcrossNodes(t *testing.T) {
	ns := startCluster(t, nil, nil)
	a := dial(t, ns[0], "alpha")
	b := dial(t, ns[1], "bravo")
	b.Expect("alpha's SA", et.UID("alpha"))
	a.Expect("bravo's SA", et.UID("bravo"))
	a.Conn.Close()
	d := b.Expect("alpha's t-x-d-d", et.Type(cot.TypeDelete))
	if d.H.LinkUID != "alpha" {
		t.Errorf("t-x-d-d for %q, want alpha", d.H.LinkUID)
	}
	forgets(t, ns[1], "alpha")
	// Barrier, then: exactly one notice (n0's is not forwarded; n1 makes its own).
	dial(t, ns[0], "again")
	b.Expect("again's SA", et.UID("again"))
	if n := count(b, deleted("alpha")); n != 1 {
		t.Errorf("bravo got %d t-x-d-d for alpha, want 1", n)
	}
}

func TestNodeDeath(t *testing.T) {
	ns := startCluster(t, nil, nil, nil)
	dial(t, ns[0], "doomed")
	b := dial(t, ns[1], "bravo")
	c := dial(t, ns[2], "charlie")
	b.Expect("doomed's SA", et.UID("doomed"))
	c.Expect("doomed's SA", et.UID("doomed"))
	// No goodbye: n0's NATS goes first, then its engine.
	ns[0].n.Kill()
	_ = ns[0].h.Stop()
	b.Expect("doomed's t-x-d-d", deleted("doomed"))
	c.Expect("doomed's t-x-d-d", deleted("doomed"))
	forgets(t, ns[1], "doomed")
	if v := ns[1].n.Stats().NodesLost.Value(); v != 1 {
		t.Errorf("n1 counted %d nodes lost, want 1", v)
	}
	// The others still route to each other.
	c.Send(et.Marker("still"))
	b.Expect("still", et.UID("still"))
}

// A directed chat from another node whose recipient is gone by the time it
// arrives reaches nobody here; the sender is another node's, so nobody is
// sent a delivery failure, and routing goes on.
func TestDirectedToAGoneClientFromAnotherNode(t *testing.T) {
	ns := startCluster(t, nil, nil)
	a := dial(t, ns[0], "alpha")
	a2 := dial(t, ns[0], "alpha2")
	from := directory.Origin{Node: "n1", ConnID: 999, In: []string{"__ANON__"}, Out: []string{"__ANON__"}}
	if err := ns[0].n.Remote().RemotePublish(from, []byte(et.Chat("late-chat", "hi", nil, nil)), "nobody-here"); err != nil {
		t.Fatal(err)
	}
	// Barrier: the broker routed it.
	et.Eventually(t, "n0's broker idle", ns[0].h.Srv.Broker().Idle)
	a.Send(et.Marker("after"))
	a2.Expect("routing goes on", et.UID("after"))
	if a2.Received(et.UID("late-chat")) || a.Received(et.UID("late-chat")) {
		t.Error("a chat directed to a uid nobody has was delivered")
	}
}
