package marti_test

import (
	"encoding/json"
	"strings"
	"testing"

	et "cotd/engine/enginetest"
)

type missionJSON struct {
	Name, GUID, CreatorUid, Tool string
	Groups                       []string
	Contents                     []struct {
		Data struct{ Hash, Name string }
	}
	UIDs []struct{ Data string }
}

func missionsOf(t *testing.T, w *world, user, path string) []missionJSON {
	t.Helper()
	e := getEnvelope(t, w.http(user), w.base+path, "Mission")
	var ms []missionJSON
	if err := json.Unmarshal(e.Data, &ms); err != nil {
		t.Fatal(err)
	}
	return ms
}

// TestMissionDataSync: alice creates a mission in Blue, bob subscribes his
// device, alice adds a file and a marker uid; bob's device hears the
// changes as t-x-m-c; carol (Red) sees nothing of it.
func TestMissionDataSync(t *testing.T) { eachBackend(t, testMissionDataSync) }

func testMissionDataSync(t *testing.T, b backend) {
	w := newWorldOn(t, b, nil)
	alice := w.device("alice", "ANDROID-A", "ALPHA")
	bob := w.device("bob", "ANDROID-B", "BRAVO")
	carol := w.device("carol", "ANDROID-C", "CHARLIE")
	ac, bc := w.http("alice"), w.http("bob")

	code, body, _ := do(t, ac, "PUT", w.base+"/Marti/api/missions/ops?creatorUid=ANDROID-A&group=Blue&description=d&tool=public", "", nil)
	if code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	if n := bob.Expect("t-x-m-n", et.Type("t-x-m-n")); !strings.Contains(string(n.Raw), `name="ops"`) {
		t.Fatalf("create notice: %s", n.Raw)
	}
	if code, _, _ = do(t, ac, "PUT", w.base+"/Marti/api/missions/ops?creatorUid=ANDROID-A", "", nil); code != 200 {
		t.Fatalf("create again: %d, want 200 (exists)", code)
	}
	if code, _, _ = do(t, ac, "PUT", w.base+"/Marti/api/missions/x?group=Red", "", nil); code != 400 {
		t.Fatalf("create in a group alice is not in: %d, want 400", code)
	}
	if ms := missionsOf(t, w, "bob", "/Marti/api/missions"); len(ms) != 1 || ms[0].Name != "ops" || ms[0].CreatorUid != "ANDROID-A" {
		t.Fatalf("bob's list: %+v", ms)
	}
	if ms := missionsOf(t, w, "carol", "/Marti/api/missions"); len(ms) != 0 {
		t.Fatalf("carol's list: %+v", ms)
	}
	if code, _, _ = do(t, w.http("carol"), "GET", w.base+"/Marti/api/missions/ops", "", nil); code != 404 {
		t.Fatalf("carol's get: %d, want 404", code)
	}

	code, body, _ = do(t, bc, "PUT", w.base+"/Marti/api/missions/ops/subscription?uid=ANDROID-B", "", nil)
	var sub struct {
		Token     string
		ClientUID string `json:"clientUid"`
		Role      struct{ Type string }
	}
	var env struct{ Data json.RawMessage }
	_ = json.Unmarshal(body, &env)
	if err := json.Unmarshal(env.Data, &sub); code != 200 || err != nil || sub.ClientUID != "ANDROID-B" || sub.Role.Type != "MISSION_SUBSCRIBER" || sub.Token == "" {
		t.Fatalf("subscribe: %d %v %s", code, err, body)
	}

	mp := dataPackage(t, "for the mission")
	ctype, mb := multipartBody(t, "assetfile", "M.zip", "application/zip", mp)
	if code, _, _ = do(t, ac, "POST", w.base+"/Marti/sync/missionupload?filename=M.zip", ctype, mb); code != 200 {
		t.Fatalf("upload: %d", code)
	}
	hash := sha(mp)
	code, body, _ = do(t, ac, "PUT", w.base+"/Marti/api/missions/ops/contents?creatorUid=ANDROID-A", "application/json",
		strings.NewReader(`{"hashes":["`+hash+`"],"uids":["marker-1"]}`))
	if code != 200 {
		t.Fatalf("add contents: %d %s", code, body)
	}
	ch := bob.Expect("t-x-m-c", et.Type("t-x-m-c"))
	if !strings.Contains(string(ch.Raw), "<contentHash>"+hash+"</contentHash>") || !strings.Contains(string(ch.Raw), "<contentUid>marker-1</contentUid>") {
		t.Fatalf("change notice: %s", ch.Raw)
	}
	ms := missionsOf(t, w, "bob", "/Marti/api/missions/ops")
	if len(ms) != 1 || len(ms[0].Contents) != 1 || ms[0].Contents[0].Data.Hash != hash || len(ms[0].UIDs) != 1 || ms[0].UIDs[0].Data != "marker-1" {
		t.Fatalf("mission after add: %+v", ms)
	}
	// The mission's CoT: the marker alice placed.
	alice.Send(et.Marker("marker-1"))
	bob.Expect("alice's marker", et.UID("marker-1"))
	et.Eventually(t, "the marker in the mission's cot", func() bool {
		_, b, _ := do(t, bc, "GET", w.base+"/Marti/api/missions/ops/cot", "", nil)
		return strings.Contains(string(b), `uid="marker-1"`)
	})
	if code, _, _ = do(t, ac, "PUT", w.base+"/Marti/api/missions/ops/contents", "application/json", strings.NewReader(`{"hashes":["`+strings.Repeat("b", 64)+`"]}`)); code != 404 {
		t.Fatalf("adding an unknown file: %d, want 404", code)
	}

	if code, _, _ = do(t, ac, "DELETE", w.base+"/Marti/api/missions/ops/contents?hash="+hash, "", nil); code != 200 {
		t.Fatalf("remove: %d", code)
	}
	bob.Expect("t-x-m-c for the removal", et.Type("t-x-m-c"))
	e := getEnvelope(t, bc, w.base+"/Marti/api/missions/ops/changes", "MissionChange")
	var changes []struct{ Type string }
	_ = json.Unmarshal(e.Data, &changes)
	var types []string
	for _, c := range changes {
		types = append(types, c.Type)
	}
	if strings.Join(types, ",") != "CREATE_MISSION,ADD_CONTENT,ADD_CONTENT,REMOVE_CONTENT" {
		t.Fatalf("changes %v", types)
	}

	if code, _, _ = do(t, bc, "DELETE", w.base+"/Marti/api/missions/ops", "", nil); code != 403 {
		t.Fatalf("bob deleting alice's mission: %d, want 403", code)
	}
	if code, _, _ = do(t, ac, "DELETE", w.base+"/Marti/api/missions/ops", "", nil); code != 200 {
		t.Fatalf("delete: %d", code)
	}
	bob.Expect("t-x-m-d", et.Type("t-x-m-d"))
	pingBarrier(carol, "ANDROID-C")
	et.Eventually(t, "broker idle", w.h.Srv.Broker().Idle)
	pingBarrier(carol, "ANDROID-C")
	for _, typ := range []string{"t-x-m-n", "t-x-m-c", "t-x-m-d"} {
		if carol.Received(et.Type(typ)) {
			t.Fatalf("carol (Red) got %s of a Blue mission", typ)
		}
	}
}
