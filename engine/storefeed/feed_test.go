package storefeed_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"cotd/configs"
	"cotd/cot"
	et "cotd/engine/enginetest"
	"cotd/engine/store"
	"cotd/engine/store/storetest"
)

// What real clients send lands in cot_router and cot_router_chat with the
// connection's identity and groups, and their connect and disconnect in
// client_endpoint and client_endpoint_event.
func TestArchivesTrafficAndConnections(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			w := newWorld(t, b, nil)
			cfg := w.h.Cfg.Store
			alice := w.dial(t, "alice", "ALICE-UID", "Alice")
			bob := w.dial(t, "bob", "BOB-UID", "Bob")
			bob.Expect("alice's SA", et.UID("ALICE-UID"))
			alice.SendEvent(et.Marker("marker-1"))
			alice.SendEvent(et.Chat("chat-all-1", "hello all", nil, nil))
			bob.Expect("the marker", et.UID("marker-1"))
			bob.Expect("the chat", et.UID("chat-all-1"))

			ctx := ctxT(t)
			var sa, marker []store.EventRecord
			var chats []store.ChatRecord
			et.Eventually(t, "the SA, marker and chat archived", func() bool {
				var err error
				if sa, err = w.h.Store.Events(ctx, store.EventQuery{UID: "ALICE-UID", Scope: store.Everything}); err != nil {
					t.Fatal(err)
				}
				if marker, err = w.h.Store.Events(ctx, store.EventQuery{UID: "marker-1", Scope: store.Everything}); err != nil {
					t.Fatal(err)
				}
				if chats, err = w.h.Store.Chats(ctx, store.EventQuery{UID: "chat-all-1", Scope: store.Everything}); err != nil {
					t.Fatal(err)
				}
				return len(sa) > 0 && len(marker) > 0 && len(chats) > 0
			})
			for _, e := range []store.EventRecord{sa[0], marker[0], chats[0].EventRecord} {
				if e.SenderUser != "alice" || e.SenderUID != "ALICE-UID" || e.SenderCallsign != "Alice" ||
					!slices.Equal(e.Groups, []string{"Blue"}) {
					t.Errorf("%s archived with sender %q/%q/%q groups %v, want alice/ALICE-UID/Alice [Blue]",
						e.UID, e.SenderUser, e.SenderUID, e.SenderCallsign, e.Groups)
				}
			}
			if sa[0].Type != "a-f-G-U-C" || marker[0].Type != "a-h-G" {
				t.Errorf("types %q %q", sa[0].Type, marker[0].Type)
			}
			if chats[0].Text != "hello all" {
				t.Errorf("chat text %q", chats[0].Text)
			}

			_ = bob.Conn.Close()
			et.Eventually(t, "bob's disconnect stored", func() bool { return w.status(t, "BOB-UID") == store.StatusDisconnected })
			rows, err := storetest.RawDB(t, cfg).QueryContext(ctx, q(cfg, `SELECT event_type, callsign, username, groups, address, listener, reason
				FROM client_endpoint_event WHERE uid = ? ORDER BY id`), "BOB-UID")
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var got []string
			for rows.Next() {
				var typ, cs, user, groups, addr, ln, reason string
				if err := rows.Scan(&typ, &cs, &user, &groups, &addr, &ln, &reason); err != nil {
					t.Fatal(err)
				}
				if !strings.HasPrefix(addr, "127.0.0.1:") {
					t.Errorf("%s event address %q", typ, addr)
				}
				got = append(got, fmt.Sprintf("%s %s %s %s %s reason=%v", typ, cs, user, groups, ln, reason != ""))
			}
			want := []string{"Connected Bob bob ,Blue, tls reason=false", "Disconnected Bob bob ,Blue, tls reason=true"}
			if !slices.Equal(got, want) {
				t.Errorf("client_endpoint_event for bob:\n got %q\nwant %q", got, want)
			}
		})
	}
}

// A directed chat to a known but offline recipient is kept (no b-t-f-s to
// the sender) and handed to the recipient when it connects again, exactly
// once; recipients nobody knows, or who could not have heard the chat,
// still bounce.
func TestOfflineChatDeliveredOnce(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			w := newWorld(t, b, nil)
			ctx := ctxT(t)
			pending := func() int {
				p, err := w.h.Store.PendingChats(ctx, "BOB-UID", "Bob")
				if err != nil {
					t.Fatal(err)
				}
				return len(p)
			}
			leaves := func(c *et.Client, uid string) {
				t.Helper()
				_ = c.Conn.Close()
				et.Eventually(t, uid+"'s disconnect stored", func() bool { return w.status(t, uid) == store.StatusDisconnected })
			}
			bounced := func(c *et.Client, uid string) bool {
				return c.Received(func(h *cot.Header) bool { return h.Type == cot.TypeChatDeliveryFailure && h.UID == uid })
			}
			for _, u := range [][3]string{{"bob", "BOB-UID", "Bob"}, {"red", "RED-UID", "Red"}} {
				c := w.dial(t, u[0], u[1], u[2])
				et.Eventually(t, u[1]+" connected in the store", func() bool { return w.status(t, u[1]) == store.StatusConnected })
				leaves(c, u[1])
			}

			alice := w.dial(t, "alice", "ALICE-UID", "Alice")
			alice.SendEvent(et.Chat("offline-1", "while you were out", nil, []string{"BOB-UID"}))
			alice.SendEvent(et.Chat("offline-2", "by callsign", []string{"Bob"}, nil))
			// red is known and offline but hears only Red: it could not have
			// heard alice live, so nothing is kept and alice is told.
			alice.SendEvent(et.Chat("to-red", "not your group", nil, []string{"RED-UID"}))
			alice.SendEvent(et.Chat("to-nobody", "nobody knows", nil, []string{"NOBODY"}))
			// The bounces come back in the order alice sent: once to-nobody's
			// is here, the chats before it were routed.
			alice.Expect("b-t-f-s for to-red", func(h *cot.Header) bool {
				return h.Type == cot.TypeChatDeliveryFailure && h.UID == "to-red"
			})
			alice.Expect("b-t-f-s for to-nobody", func(h *cot.Header) bool {
				return h.Type == cot.TypeChatDeliveryFailure && h.UID == "to-nobody"
			})
			for _, uid := range []string{"offline-1", "offline-2"} {
				if bounced(alice, uid) {
					t.Errorf("alice got b-t-f-s for %s, which the store kept for bob", uid)
				}
			}
			if n := w.h.Srv.Broker().Stats().KeptOffline.Value(); n != 2 {
				t.Errorf("cotd_chats_kept_offline_total %d, want 2", n)
			}
			et.Eventually(t, "two chats kept for bob", func() bool { return pending() == 2 })

			bob := w.dial(t, "bob", "BOB-UID", "Bob")
			first := bob.Expect("offline-1", et.UID("offline-1"))
			second := bob.Expect("offline-2", et.UID("offline-2"))
			if !bytes.Contains(first.Raw, []byte("while you were out")) || !bytes.Contains(second.Raw, []byte("by callsign")) {
				t.Errorf("delivered chats lost their text:\n%s\n%s", first.Raw, second.Raw)
			}
			if first.H.Type != cot.TypeChat {
				t.Errorf("delivered as %q, want %q", first.H.Type, cot.TypeChat)
			}
			et.Eventually(t, "bob's chats marked delivered", func() bool { return pending() == 0 })
			// Barrier: a live chat sent after the marking reaches bob.
			alice.SendEvent(et.Chat("live-1", "live", nil, []string{"BOB-UID"}))
			bob.Expect("live-1", et.UID("live-1"))
			for _, uid := range []string{"offline-1", "offline-2"} {
				if n := count(bob, uid); n != 1 {
					t.Errorf("bob received %s %d times, want once", uid, n)
				}
			}

			// A second reconnect delivers only what was kept since: were
			// offline-1 or -2 still pending, the delivery of offline-3 (one
			// run, oldest first, one sender) would bring them before it.
			leaves(bob, "BOB-UID")
			alice.SendEvent(et.Chat("offline-3", "again", nil, []string{"BOB-UID"}))
			et.Eventually(t, "offline-3 kept for bob", func() bool { return pending() == 1 })
			bob2 := w.dial(t, "bob", "BOB-UID", "Bob")
			bob2.Expect("offline-3", et.UID("offline-3"))
			for _, uid := range []string{"offline-1", "offline-2"} {
				if bob2.Received(et.UID(uid)) {
					t.Errorf("bob got %s again on reconnecting", uid)
				}
			}
			// Counted after the marking, which may follow bob's receipt.
			w.h.WaitSample(t, "cotd_store_offline_chats_delivered_total", 3)
		})
	}
}

func count(c *et.Client, uid string) int {
	n := 0
	for _, e := range c.Events() {
		if e.H.UID == uid {
			n++
		}
	}
	return n
}

// A store whose writer cannot write (another connection holds the lock)
// never slows routing: every delivery happens and the records that did
// not fit are counted as drops; once the lock goes the store recovers.
func TestBlockedStoreNeverSlowsRouting(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			w := newWorld(t, b, func(c *configs.Config) {
				c.Store.QueueSize = 16
				c.Store.BatchSize = 4
				// 2000 markers at once is a flood by the inbound budget's
				// measure (its messages dropped first): the budget is off,
				// this test is about the store.
				c.Limits.InboundBytesPerSec, c.Limits.InboundEventsPerSec = 0, 0
			})
			cfg := w.h.Cfg.Store
			alice := w.dial(t, "alice", "ALICE-UID", "Alice")
			bob := w.dial(t, "bob", "BOB-UID", "Bob")
			bob.Expect("alice's SA", et.UID("ALICE-UID"))
			et.Eventually(t, "both connected in the store", func() bool {
				return w.status(t, "ALICE-UID") == store.StatusConnected && w.status(t, "BOB-UID") == store.StatusConnected
			})

			ctx := ctxT(t)
			lock, err := storetest.RawDB(t, cfg).Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			hold(t, ctx, lock, cfg)
			released := false
			release := func() {
				if !released {
					released = true
					if _, err := lock.ExecContext(ctx, "ROLLBACK"); err != nil {
						t.Errorf("release the lock: %v", err)
					}
					_ = lock.Close()
				}
			}
			t.Cleanup(release)

			const n = 2000
			var batch strings.Builder
			for i := range n {
				batch.WriteString(et.Marker(fmt.Sprintf("m-%d", i)))
				if i%100 == 99 {
					alice.Send(batch.String())
					batch.Reset()
				}
			}
			et.Eventually(t, "bob received every marker", func() bool {
				got := 0
				for _, e := range bob.Events() {
					if strings.HasPrefix(e.H.UID, "m-") {
						got++
					}
				}
				return got == n
			})
			m := w.h.Metrics(t)
			storeDrops, _ := et.Sample(m, `cotd_store_dropped_total{reason="queue_full"}`)
			feedDrops, _ := et.Sample(m, `cotd_directory_dropped_total{subscriber="store"}`)
			if storeDrops+feedDrops == 0 {
				t.Errorf("no drops counted with the store blocked: store %v, directory %v", storeDrops, feedDrops)
			}
			for _, r := range []string{"backpressure", "slow_consumer", "inbox_full"} {
				if d, _ := et.Sample(m, `cotd_drops_total{reason="`+r+`"}`); d != 0 {
					t.Errorf("routing dropped %v (%s) while the store was blocked", d, r)
				}
			}

			// Released, the writer catches up (Sync returns once what was
			// queued is written), and what comes next is kept again.
			release()
			w.sync(t)
			alice.SendEvent(et.Marker("after"))
			bob.Expect("the marker after", et.UID("after"))
			et.Eventually(t, "the store writes again", func() bool {
				_, err := w.h.Store.LatestEvent(ctx, "after", store.Everything)
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					t.Fatal(err)
				}
				return err == nil
			})
		})
	}
}

// hold takes the database's write lock on conn until ROLLBACK.
func hold(t *testing.T, ctx context.Context, conn *sql.Conn, cfg configs.Store) {
	t.Helper()
	stmts := []string{"BEGIN IMMEDIATE"}
	if cfg.URL != "" {
		stmts = []string{"BEGIN", "LOCK TABLE cot_router, cot_router_chat, client_endpoint, client_endpoint_event IN ACCESS EXCLUSIVE MODE"}
	}
	for _, s := range stmts {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}
