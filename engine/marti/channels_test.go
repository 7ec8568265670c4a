package marti_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	et "cotd/engine/enginetest"
)

// TestActiveGroupsChangeRoutingAndTellOtherDevices: alice turns HQ off on
// one device. Routing changes at once (dave, HQ only, no longer reaches
// her), her other device gets t-x-g-c, and groups/all shows HQ inactive.
func TestActiveGroupsChangeRoutingAndTellOtherDevices(t *testing.T) {
	w := newWorld(t, nil)
	a1 := w.device("alice", "ANDROID-A", "ALPHA")
	a2 := w.device("alice", "ANDROID-A2", "ALPHA2")
	dave := w.device("dave", "ANDROID-D", "DELTA")
	ac := w.http("alice")

	dave.Send(et.Marker("hq-1"))
	a1.Expect("dave's marker while HQ is active", et.UID("hq-1"))
	if _, ok := endpoints(t, ac, w.base+"/Marti/api/clientEndPoints")["ANDROID-D"]; !ok {
		t.Fatal("dave (HQ) not listed to alice while HQ is active")
	}

	body := `[{"name":"Blue","direction":"OUT","created":1700000000000,"type":"SYSTEM","bitpos":1,"active":true},` +
		`{"name":"HQ","direction":"OUT","created":1700000000000,"type":"SYSTEM","bitpos":2,"active":false}]`
	if code, got, _ := do(t, ac, "PUT", w.base+"/Marti/api/groups/active?clientUid=ANDROID-A", "application/json", strings.NewReader(body)); code != 200 {
		t.Fatalf("PUT groups/active: %d %s", code, got)
	}
	gc := a2.Expect("t-x-g-c on the other device", et.Type("t-x-g-c"))
	if !strings.HasSuffix(gc.H.UID, ".ANDROID-A") || gc.H.How != "h-g-i-g-o" || strings.Contains(string(gc.Raw), "<marti") {
		t.Fatalf("t-x-g-c: %s", gc.Raw)
	}
	if out := w.h.Srv.Directory().Client("ANDROID-A")[0].Out; !slices.Equal(out, []string{"Blue"}) {
		t.Fatalf("alice's device hears %v, want [Blue]", out)
	}

	if _, ok := endpoints(t, ac, w.base+"/Marti/api/clientEndPoints")["ANDROID-D"]; ok {
		t.Fatal("dave (HQ) still listed to alice after she turned HQ off")
	}
	dave.Send(et.Marker("hq-2"))
	// Barrier: dave's loop handed hq-2 to the broker (pong), the broker
	// routed it (idle), and a1's queue is FIFO (pong after anything
	// queued for it before).
	pingBarrier(dave, "ANDROID-D")
	et.Eventually(t, "broker idle", w.h.Srv.Broker().Idle)
	pingBarrier(a1, "ANDROID-A")
	if a1.Received(et.UID("hq-2")) {
		t.Fatal("dave's HQ marker reached alice after she turned HQ off")
	}
	if a1.Received(et.Type("t-x-g-c")) {
		t.Fatal("the device that made the change got t-x-g-c")
	}

	e := getEnvelope(t, ac, w.base+"/Marti/api/groups/all?useCache=true", "com.bbn.marti.remote.groups.Group")
	var groups []struct {
		Name   string
		Active bool
		Bitpos int
	}
	_ = json.Unmarshal(e.Data, &groups)
	bits := map[string]int{}
	for _, g := range groups {
		if g.Active != (g.Name == "Blue") {
			t.Fatalf("after the change: %+v", groups)
		}
		bits[g.Name] = g.Bitpos
	}

	// activebits turns HQ back on by bit position.
	body = "[" + itoa(bits["Blue"]) + "," + itoa(bits["HQ"]) + "]"
	if code, got, _ := do(t, ac, "PUT", w.base+"/Marti/api/groups/activebits?clientUid=ANDROID-A", "application/json", strings.NewReader(body)); code != 200 {
		t.Fatalf("PUT groups/activebits: %d %s", code, got)
	}
	dave.Send(et.Marker("hq-3"))
	a1.Expect("dave's marker once HQ is back", et.UID("hq-3"))

	for _, bad := range []string{`[{"name":"Red","active":true}]`, `{"not":"a list"}`} {
		if code, _, _ := do(t, ac, "PUT", w.base+"/Marti/api/groups/active?clientUid=ANDROID-A", "application/json", strings.NewReader(bad)); code != 400 {
			t.Fatalf("PUT groups/active %s: %d, want 400", bad, code)
		}
	}
	if code, _, _ := do(t, ac, "PUT", w.base+"/Marti/api/groups/activebits", "application/json", strings.NewReader("[9999]")); code != 400 {
		t.Fatalf("unknown bit: %d, want 400", code)
	}
}

// TestSendLatestSA: groups/all?sendLatestSA=true replays to the caller's
// devices the latest SA of those it can hear, and only those.
func TestSendLatestSA(t *testing.T) {
	w := newWorld(t, nil)
	_ = w.device("bob", "ANDROID-B", "BRAVO")
	_ = w.device("carol", "ANDROID-C", "CHARLIE")
	a1 := w.device("alice", "ANDROID-A", "ALPHA")
	// The join replay already brought bob's SA; take it so the next one
	// is the one Marti sends.
	a1.Expect("bob's SA at join", et.UID("ANDROID-B"))
	if code, _, _ := do(t, w.http("alice"), "GET", w.base+"/Marti/api/groups/all?useCache=true&sendLatestSA=true", "", nil); code != 200 {
		t.Fatalf("groups/all: %d", code)
	}
	a1.Expect("bob's SA again, sent by Marti", et.UID("ANDROID-B"))
	// Marti published before it answered; the broker routed it (idle);
	// a1's queue is FIFO.
	et.Eventually(t, "broker idle", w.h.Srv.Broker().Idle)
	pingBarrier(a1, "ANDROID-A")
	if a1.Received(et.UID("ANDROID-C")) {
		t.Fatal("carol's SA reached alice")
	}
}
