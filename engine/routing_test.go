package engine_test

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"cotd/cot"
	et "cotd/engine/enginetest"
)

// barrier sends a broadcast marker from sender and waits until every
// listener has it. A sender's frames are routed in order and each
// recipient's queue is FIFO, so anything the sender sent before the marker
// has reached every listener that was going to get it.
func barrier(t *testing.T, sender *et.Client, uid string, listeners ...*et.Client) {
	t.Helper()
	sender.Send(et.Marker(uid))
	for _, l := range listeners {
		l.Expect("barrier "+uid, et.UID(uid))
	}
}

func TestTwoClientsSeeEachOther(t *testing.T) {
	h := et.Start(t, nil)
	a := et.Dial(t, h.TCPAddr())
	b := et.Dial(t, h.TCPAddr())
	a.Send(et.SA("ANDROID-a", "ALPHA", "a-f-G-U-C"))
	b.Send(et.SA("ANDROID-b", "BRAVO", "a-f-G-U-C"))

	got := b.Expect("alpha's SA", et.UID("ANDROID-a"))
	if got.H.Callsign != "ALPHA" || got.H.Type != "a-f-G-U-C" {
		t.Errorf("b got %+v", got.H)
	}
	if bytes.HasPrefix(got.Raw, []byte("<?xml")) {
		t.Error("the declaration must not be forwarded: ATAK splits on </event>")
	}
	a.Expect("bravo's SA", et.UID("ANDROID-b"))
	barrier(t, a, "m1", b)
	if a.Received(et.UID("ANDROID-a")) {
		t.Error("a sender must not get its own event back")
	}
}

func TestDirectedMessagesReachOnlyTheirDestination(t *testing.T) {
	h := et.Start(t, nil)
	a := et.Dial(t, h.TCPAddr())
	b := et.Dial(t, h.TCPAddr())
	c := et.Dial(t, h.TCPAddr())
	h.Joined(t, 3)
	for _, x := range []struct {
		cl      *et.Client
		uid, cs string
	}{{a, "A", "ALPHA"}, {b, "B", "BRAVO"}, {c, "C", "CHARLIE"}} {
		x.cl.Send(et.SA(x.uid, x.cs, "a-f-G-U-C"))
	}
	// Everyone is identified once each has seen the others' SAs.
	a.Expect("B", et.UID("B"))
	a.Expect("C", et.UID("C"))
	b.Expect("C", et.UID("C"))
	c.Expect("B", et.UID("B"))

	a.Send(et.Chat("chat-by-callsign", "hi bravo </detail> still text", []string{"BRAVO"}, nil))
	a.Send(et.Chat("chat-by-uid", "hi charlie", nil, []string{"C"}))
	// Both attributes naming the same client: delivered once.
	a.Send(et.Chat("chat-both", "hi again", []string{"BRAVO"}, []string{"B"}))
	barrier(t, a, "barrier-1", b, c)

	got := b.Expect("chat by callsign", et.UID("chat-by-callsign"))
	if bytes.Contains(got.Raw, []byte("<marti")) {
		t.Errorf("<marti> must be stripped before delivery: %s", got.Raw)
	}
	if !bytes.Contains(got.Raw, []byte("</detail> still text")) {
		t.Errorf("CDATA text lost: %s", got.Raw)
	}
	c.Expect("chat by uid", et.UID("chat-by-uid"))
	if b.Received(et.UID("chat-by-uid")) {
		t.Error("B got C's directed chat")
	}
	if c.Received(et.UID("chat-by-callsign")) || c.Received(et.UID("chat-both")) {
		t.Error("C got B's directed chat")
	}
	n := 0
	for _, ev := range b.Events() {
		if ev.H.UID == "chat-both" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("chat addressed by callsign and uid delivered %d times, want 1", n)
	}
}

func TestPingGetsPongAndIsNotRouted(t *testing.T) {
	h := et.Start(t, nil)
	a := et.Dial(t, h.TCPAddr())
	b := et.Dial(t, h.TCPAddr())
	h.Joined(t, 2)
	a.Send(et.Ping("ANDROID-a"))
	pong := a.Expect("pong", et.Type(cot.TypePong))
	if pong.H.UID != cot.PongUID || pong.H.How != cot.HowServer {
		t.Errorf("pong = %+v", pong.H)
	}
	barrier(t, a, "after-ping", b)
	if b.Received(et.Type(cot.TypePing)) {
		t.Error("a ping was routed to another client")
	}
}

func TestLateJoinerGetsLatestSAOfEachOnlineClient(t *testing.T) {
	h := et.Start(t, nil)
	a := et.Dial(t, h.TCPAddr())
	b := et.Dial(t, h.TCPAddr())
	a.Send(et.SA("A", "ALPHA", "a-f-G-U-C"))
	b.Send(et.SA("B", "BRAVO", "a-f-G-E-V"))
	// A newer SA from A replaces the first one in the cache.
	a.Send(strings.Replace(et.SA("A", "ALPHA-2", "a-f-G-U-C"), "35.1", "36.6", 1))
	b.Expect("A's second SA", func(h *cot.Header) bool { return h.Callsign == "ALPHA-2" })
	a.Expect("B's SA", et.UID("B"))

	late := et.Dial(t, h.TCPAddr())
	ga := late.Expect("A replayed", et.UID("A"))
	late.Expect("B replayed", et.UID("B"))
	if ga.H.Callsign != "ALPHA-2" || ga.H.Lat != 36.6 {
		t.Errorf("replayed SA is not the latest: %+v", ga.H)
	}
	// A client that left is not replayed.
	_ = b.Conn.Close()
	a.Expect("B's disconnect", et.Type(cot.TypeDelete))
	later := et.Dial(t, h.TCPAddr())
	later.Expect("A replayed", et.UID("A"))
	barrier(t, a, "m-late", later)
	if later.Received(et.UID("B")) {
		t.Error("the SA of a client that left was replayed")
	}
}

func TestDisconnectNoticeCarriesLinkAndType(t *testing.T) {
	h := et.Start(t, nil)
	a := et.Dial(t, h.TCPAddr())
	b := et.Dial(t, h.TCPAddr())
	h.Joined(t, 2)
	b.Send(et.SA("ANDROID-b", "BRAVO", "a-f-G-U-C-I"))
	a.Expect("b's SA", et.UID("ANDROID-b"))
	_ = b.Conn.Close()
	d := a.Expect("t-x-d-d", et.Type(cot.TypeDelete))
	if d.H.LinkUID != "ANDROID-b" || d.H.LinkType != "a-f-G-U-C-I" || d.H.LinkRelation != "p-p" {
		t.Errorf("link = uid %q type %q relation %q", d.H.LinkUID, d.H.LinkType, d.H.LinkRelation)
	}
	if d.H.How != cot.HowServer || d.H.UID == "" || d.H.UID == "ANDROID-b" {
		t.Errorf("notice header = %+v", d.H)
	}
}

func TestNodeTAKFixtureIsRoutedAsSent(t *testing.T) {
	stream, err := os.ReadFile("../testdata/node-tak/connect-stream.bin")
	if err != nil {
		t.Fatal(err)
	}
	h := et.Start(t, nil)
	watcher := et.Dial(t, h.TCPAddr())
	node := et.Dial(t, h.TCPAddr())
	h.Joined(t, 2)
	// Sent in two writes split inside the first event, as TCP may deliver it.
	node.Send(string(stream[:100]))
	node.Send(string(stream[100:]))
	got := watcher.Expect("node-tak position", et.UID("NODE-TAK-PROXY"))
	if got.H.Callsign != "PROXY" || got.H.GroupName != "Cyan" {
		t.Errorf("fixture header = %+v", got.H)
	}
	want, err := os.ReadFile("../testdata/node-tak/position.xml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Raw, bytes.TrimRight(want, "\n")) {
		t.Errorf("forwarded bytes differ from what node-tak sent:\n got %s\nwant %s", got.Raw, want)
	}
	node.Expect("pong to node-tak's ping", et.Type(cot.TypePong))
	// node-tak never asks for TAK protocol v1: the offer reaches it as an
	// ordinary event and it stays on XML.
	node.Expect("the v1 offer", et.Type(cot.TypeTakpOffer))
	barrier(t, node, "m-node", watcher)
	if watcher.Received(et.Type(cot.TypePing)) {
		t.Error("node-tak's ping was routed")
	}
}
