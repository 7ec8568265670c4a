package engine_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"cotd/configs"
	"cotd/cot"
	"cotd/engine"
	"cotd/engine/directory"
	et "cotd/engine/enginetest"
)

// next takes the next event of conn from sub, skipping other connections'.
func next(t *testing.T, sub directory.Subscription, conn uint64) directory.Event {
	t.Helper()
	timeout := time.After(et.Wait)
	for {
		select {
		case ev, ok := <-sub.C():
			if !ok {
				t.Fatal("subscription closed")
			}
			if ev.Client.ConnID == conn {
				return ev
			}
		case <-timeout:
			t.Fatalf("no event for connection %d", conn)
		}
	}
}

// pingBarrier sends a ping and waits for its pong: the loop answers it
// after handling everything the client sent before, so every event those
// documents made has been offered to the subscribers.
func pingBarrier(c *et.Client, uid string) {
	c.Send(et.Ping(uid))
	c.Expect("pong", et.Type(cot.TypePong))
}

func TestDirectorySeesAClientsLifeInOrder(t *testing.T) {
	h := et.Start(t, nil)
	dir := h.Srv.Directory()
	sub := dir.Subscribe("test", directory.AllKinds, 64)
	defer sub.Close()

	c := et.Dial(t, h.TCPAddr())
	c.Send(et.SA("U-1", "ONE", "a-f-G-U-C"))
	c.Send(et.Chat("chat-1", "hello", nil, nil))
	et.Eventually(t, "uid known", func() bool { return len(dir.Client("U-1")) == 1 })
	snap := dir.Client("U-1")[0]
	if snap.Callsign != "ONE" || snap.Listener != "tcp" || snap.Protocol != "xml" || snap.BytesIn == 0 ||
		snap.LastSA == nil || snap.LastSA.Header.UID != "U-1" {
		t.Errorf("snapshot %+v", snap)
	}
	if got, ok := dir.Connection(snap.ConnID); !ok || got.UID != "U-1" {
		t.Errorf("Connection(%d) = %+v, %v", snap.ConnID, got, ok)
	}
	// A half-close, so the server reads EOF (peer_closed): a full close with
	// server output still unread (the protocol offer) would make the kernel
	// answer with a reset, which the server rightly reports as io_error.
	if err := c.Conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	defer c.Conn.Close()

	id := snap.ConnID
	if ev := next(t, sub, id); ev.Kind != directory.Join {
		t.Fatalf("first event %v, want join", ev.Kind)
	}
	ev := next(t, sub, id)
	if ev.Kind != directory.SA || ev.Client.UID != "U-1" || ev.Message.Header.Callsign != "ONE" ||
		!strings.Contains(string(ev.Message.XML), `uid="U-1"`) {
		t.Fatalf("second event %v %+v, want U-1's SA", ev.Kind, ev.Client)
	}
	if ev = next(t, sub, id); ev.Kind != directory.Routed || ev.Message.Header.UID != "chat-1" {
		t.Fatalf("third event %v, want the chat", ev.Kind)
	}
	if ev = next(t, sub, id); ev.Kind != directory.Leave || ev.Reason != "peer_closed" {
		t.Fatalf("fourth event %v (%q), want leave peer_closed", ev.Kind, ev.Reason)
	}
	if sub.Dropped() != 0 {
		t.Errorf("%d dropped", sub.Dropped())
	}
}

func TestDirectoryFullSubscriberDropsAndCounts(t *testing.T) {
	const n = 7
	h := et.Start(t, func(c *configs.Config) { c.SA.MaxPerConnection = n })
	sub := h.Srv.Directory().Subscribe("slow", directory.KindsOf(directory.SA), 2)
	defer sub.Close()
	a, b := et.Dial(t, h.TCPAddr()), et.Dial(t, h.TCPAddr())
	h.Joined(t, 2)
	for i := range n {
		a.Send(et.SA(fmt.Sprintf("U-%d", i), "A", "a-f-G-U-C"))
	}
	// Served while the subscriber reads nothing.
	for i := range n {
		b.Expect("SA "+fmt.Sprint(i), et.UID(fmt.Sprintf("U-%d", i)))
	}
	pingBarrier(a, "U-0")
	if d := sub.Dropped(); d != n-2 {
		t.Fatalf("dropped %d, want %d", d, n-2)
	}
	h.WaitSample(t, `cotd_directory_dropped_total{subscriber="slow"}`, n-2)
	h.WaitSample(t, `cotd_directory_queued{subscriber="slow"}`, 2)
	sub.Close()
	// The counter outlives the subscription.
	h.WaitSample(t, `cotd_directory_dropped_total{subscriber="slow"}`, n-2)
}

func TestDirectoryPublishFollowsGroupsAndDest(t *testing.T) {
	w := newGroupWorld(t, "", nil)
	dir := w.h.Srv.Directory()
	ctx := context.Background()
	st := w.h.Srv.Broker().Stats()

	publish := func(from directory.Sender, uid, doc string, want ...string) {
		t.Helper()
		before := st.DeliveredAll()
		if err := dir.Publish(ctx, from, []byte(doc)); err != nil {
			t.Fatalf("Publish %s: %v", uid, err)
		}
		for _, name := range want {
			w.clients[name].Expect(uid+" at "+name, et.UID(uid))
		}
		et.Eventually(t, "broker idle", w.h.Srv.Broker().Idle)
		if got := st.DeliveredAll() - before; got != uint64(len(want)) {
			t.Errorf("%s: %d deliveries, want %d (%v)", uid, got, len(want), want)
		}
	}
	sub := dir.Subscribe("test", directory.KindsOf(directory.Routed), 16)
	defer sub.Close()
	red := directory.Sender{Identity: "console", Out: []string{"Red"}}
	publish(red, "srv-red", et.Marker("srv-red"), "red", "two")
	// Subscribers hear the server's own publications, named by the sender.
	if ev := next(t, sub, 0); ev.Client.Identity != "console" || ev.Message.Header.UID != "srv-red" {
		t.Errorf("event %v from %+v, want console's srv-red", ev.Kind, ev.Client)
	}
	publish(directory.Sender{Identity: "console", Out: []string{"Blue"}}, "srv-blue", et.Marker("srv-blue"),
		"blue", "blue2", "out-only", "two")
	// nil Out: every group a client hears.
	publish(directory.Sender{Identity: "console"}, "srv-all", et.Marker("srv-all"),
		"blue", "blue2", "red", "out-only", "two", "tcp", "stranger")

	for _, name := range []string{"blue", "red", "two"} {
		w.clients[name].Send(et.SA("U-"+name, "CS-"+name, "a-f-G-U-C"))
	}
	et.Eventually(t, "SAs cached", func() bool { return w.h.Srv.Broker().Idle() && w.h.Srv.Broker().CachedSAs() == 3 })
	// <marti><dest> directs it, within the sender's groups: red is
	// named but not reachable through Blue.
	publish(directory.Sender{Identity: "console", Out: []string{"Blue"}}, "dm",
		et.Chat("dm", "hi", []string{"CS-blue", "CS-red"}, nil), "blue")
	publish(red, "dm-uid", et.Chat("dm-uid", "hi", nil, []string{"U-two"}), "two")

	for _, bad := range []string{"<event", "<auth><cot username='x'/></auth>", et.Ping("x"), "junk"} {
		if err := dir.Publish(ctx, red, []byte(bad)); !errors.Is(err, directory.ErrInvalid) {
			t.Errorf("Publish(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestDirectoryDisconnectByIdentity(t *testing.T) {
	w := newGroupWorld(t, "", nil)
	dir := w.h.Srv.Directory()
	var blue uint64
	for _, c := range dir.Clients() {
		if c.Identity == "blue" {
			blue = c.ConnID
		}
	}
	if blue == 0 {
		t.Fatalf("no connection of identity blue in %+v", dir.Clients())
	}
	sub := dir.Subscribe("test", directory.KindsOf(directory.Leave), 16)
	defer sub.Close()
	if n := dir.Disconnect(directory.Selector{Identity: "blue"}, directory.ReasonRevoked); n != 1 {
		t.Fatalf("Disconnect(blue) = %d, want 1", n)
	}
	if ev := next(t, sub, blue); ev.Kind != directory.Leave || ev.Reason != "revoked" || ev.Client.Identity != "blue" {
		t.Errorf("event %v %q for %+v, want blue's leave, revoked", ev.Kind, ev.Reason, ev.Client)
	}
	if err := w.clients["blue"].Closed(); err == nil {
		t.Fatal("blue's connection still open")
	}
	et.Eventually(t, "revoked counted", func() bool {
		return w.h.Srv.Stats().Closes[engine.ReasonRevoked].Value() == 1
	})
	delete(w.clients, "blue")
	if n := dir.Disconnect(directory.Selector{Identity: "nobody"}, directory.ReasonDisable); n != 0 {
		t.Errorf("Disconnect(nobody) = %d", n)
	}
	// Everyone else is still served.
	w.expectOnly(t, "blue2", "after", et.Marker("after"), "out-only", "two")
	w.h.WaitSample(t, `cotd_closes_total{reason="revoked"}`, 1)
}

func TestDirectorySetActiveGroups(t *testing.T) {
	w := newGroupWorld(t, "", nil)
	dir := w.h.Srv.Directory()
	// two is in Blue and Red; with only Red active it neither hears nor
	// reaches Blue.
	if n := dir.SetActiveGroups("two", []string{"Red"}); n != 1 {
		t.Fatalf("SetActiveGroups = %d, want 1", n)
	}
	if c := dir.Clients(); len(c) == 0 {
		t.Fatal("no clients")
	}
	w.expectOnly(t, "blue", "a1", et.Marker("a1"), "blue2", "out-only")
	w.expectOnly(t, "two", "a2", et.Marker("a2"), "red")
	w.expectOnly(t, "red", "a3", et.Marker("a3"), "two")
	// Nothing active: the user's groups again.
	if n := dir.SetActiveGroups("two", nil); n != 1 {
		t.Fatalf("SetActiveGroups(nil) = %d, want 1", n)
	}
	w.expectOnly(t, "blue", "b1", et.Marker("b1"), "blue2", "out-only", "two")
	w.expectOnly(t, "two", "b2", et.Marker("b2"), "blue", "blue2", "red", "out-only")
}
