package marti

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"cotd/cot"
	"cotd/engine/directory"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares v, encoded as the handlers encode it, with
// testdata/name byte for byte: ATAK drops a whole list for one bad element,
// so the exact bytes are the contract.
func golden(t *testing.T, name string, v any) {
	t.Helper()
	got, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", name)
	if *update {
		var pretty bytes.Buffer
		_ = json.Indent(&pretty, got, "", "  ")
		// The file holds the compact bytes on the first line and an
		// indented copy for people below it.
		if err := os.WriteFile(path, append(append(got, '\n'), pretty.Bytes()...), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if i := bytes.IndexByte(want, '\n'); i >= 0 {
		want = want[:i]
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s:\n got %s\nwant %s", name, got, want)
	}
}

var t0 = time.Date(2025, 1, 2, 12, 30, 45, 123e6, time.UTC)

func sa(uid, callsign, team, role string) *directory.Message {
	h := &cot.Header{UID: uid, Type: "a-f-G-U-C", Callsign: callsign, GroupName: team, GroupRole: role}
	return &directory.Message{XML: []byte(`<event uid="` + uid + `"/>`), Header: h, Recv: t0}
}

func TestGoldenEnvelopes(t *testing.T) {
	golden(t, "version_config.json", newEnvelope("ServerConfig", serverConfig{Version: "cotd-1.2.3", API: apiVersion, Hostname: "tak.example"}, "node-1"))
	golden(t, "group_cache_enabled.json", newEnvelope("java.lang.Boolean", true, "node-1"))

	clients := []directory.Client{
		{ConnID: 1, Identity: "alice", UID: "ANDROID-A", Callsign: "ALPHA", In: []string{"Blue"}, LastSeen: t0, LastSA: sa("ANDROID-A", "ALPHA", "Cyan", "Team Member")},
		{ConnID: 2, Identity: "bob", UID: "ANDROID-B", Callsign: "", In: []string{"Blue"}, Since: t0},            // no SA yet: never listed
		{ConnID: 3, Identity: "carol", UID: "ANDROID-C", Callsign: "CHARLIE", In: []string{"Red"}, LastSeen: t0}, // another group
		{ConnID: 4, Identity: "alice", UID: "ANDROID-A", Callsign: "ALPHA", In: []string{"Blue"}, LastSeen: t0.Add(time.Second)},
	}
	gone := []Endpoint{
		{UID: "ANDROID-D", Callsign: "DELTA", Identity: "dave", Team: "Red", Role: "HQ", Groups: []string{"Blue"}, At: t0.Add(-time.Minute)},
		{UID: "ANDROID-A", Callsign: "ALPHA", Identity: "alice", Groups: []string{"Blue"}, At: t0.Add(-time.Hour)}, // connected again
	}
	blue := &caller{Name: "alice", In: []string{"Blue"}, Out: []string{"Blue"}, Hears: []string{"Blue"}}
	golden(t, "client_endpoints.json", newEnvelope("com.bbn.marti.remote.ClientEndpoint", clientEndpoints(clients, gone, time.Time{}, blue.sees), "node-1"))
	golden(t, "client_endpoints_empty.json", newEnvelope("com.bbn.marti.remote.ClientEndpoint", clientEndpoints(nil, nil, time.Time{}, blue.sees), "node-1"))

	ch := newChannels()
	c := &caller{Name: "alice", In: []string{"Blue", "HQ"}, Out: []string{"Blue", "Red"}}
	ch.setActive("alice", []string{"Blue"})
	golden(t, "groups_all.json", newEnvelope("com.bbn.marti.remote.groups.Group", ch.groupsOf(c, t0), "node-1"))

	golden(t, "contacts_all.json", contacts(clients, blue.sees))

	m := FileMeta{Hash: "0c5b8f1ad0d2c8b1d3bd0b10e4c1a2f0c7c2d8c7f1a9b0e3c4d5e6f708192a3b", UID: "5f1d2c3b-1111-4222-8333-944455556666",
		Name: "MP.zip", MIMEType: "application/x-zip-compressed", Keywords: []string{"missionpackage"}, Tool: "public",
		Submitter: "alice", CreatorUID: "ANDROID-A", Size: 1814, Submitted: t0, Groups: []string{"Blue"}, PrimaryKey: 12}
	golden(t, "search.json", searchResults{ResultCount: 1, Results: []searchResult{searchResultOf(m)}})
	golden(t, "search_empty.json", searchResults{Results: []searchResult{}})
	golden(t, "sync_upload.json", searchResultOf(m))
}

func TestGroupChangeEvent(t *testing.T) {
	got := string(groupChange("r-1.ANDROID-A", "ANDROID-A2", t0))
	want := `<event version="2.0" uid="r-1.ANDROID-A" type="t-x-g-c" how="h-g-i-g-o" time="2025-01-02T12:30:45.123Z" start="2025-01-02T12:30:45.123Z" stale="2025-01-02T12:31:05.123Z">` +
		`<point lat="0" lon="0" hae="0" ce="9999999" le="9999999"/><detail><link relation="p-p"/><marti><dest uid="ANDROID-A2"/></marti></detail></event>`
	if got != want {
		t.Fatalf("t-x-g-c\n got %s\nwant %s", got, want)
	}
	var h cot.Header
	if err := cot.ScanHeader([]byte(got), &h); err != nil || len(h.DestUIDs) != 1 || h.DestUIDs[0] != "ANDROID-A2" {
		t.Fatalf("scan: %v %+v", err, h)
	}
	for _, tc := range []struct{ in, want string }{
		{`<event uid="x"><detail><contact/></detail></event>`, `<event uid="x"><detail><contact/><marti><dest uid="U"/></marti></detail></event>`},
		{`<event uid="x"><detail/></event>`, `<event uid="x"><detail><marti><dest uid="U"/></marti></detail></event>`},
		{`<event uid="x"><point/></event>`, `<event uid="x"><point/><detail><marti><dest uid="U"/></marti></detail></event>`},
	} {
		if got := string(withDest([]byte(tc.in), []string{"U"})); got != tc.want {
			t.Errorf("withDest(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestCleanName(t *testing.T) {
	for in, want := range map[string]string{
		"MP.zip": "MP.zip", "../../etc/passwd": "passwd", `..\..\win.ini`: "win.ini", "..": "file", "": "file",
		"a\r\nSet-Cookie: x": "aSet-Cookie: x", "dir/": "file", " spaced .zip ": "spaced .zip",
	} {
		if got := cleanName(in); got != want {
			t.Errorf("cleanName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMemHistoryIsBounded(t *testing.T) {
	h := newMemHistory(historyLimits{perUID: 3, uids: 2, bytes: 1 << 20, disconnected: 2})
	ctx := context.Background()
	blue := []string{"Blue"}
	for i := range 5 {
		h.add(Record{UID: "A", Type: "a-f", At: t0.Add(time.Duration(i) * time.Second), Groups: blue})
	}
	h.add(Record{UID: "A", Type: "a-f", At: t0.Add(5 * time.Second), Groups: []string{"Red"}})
	h.add(Record{UID: "B", Type: "a-f", At: t0, Groups: blue})
	h.add(Record{UID: "C", Type: "a-f", At: t0, Groups: blue}) // a third uid: refused, counted
	got, _ := h.Events(ctx, Query{UID: "A", Groups: blue})
	if len(got) != 2 || !got[0].At.Equal(t0.Add(3*time.Second)) || !got[1].At.Equal(t0.Add(4*time.Second)) {
		t.Fatalf("ring kept %v, want the 2 newest Blue of the 3 kept", got)
	}
	if l, ok, _ := h.Latest(ctx, "A", blue); !ok || !l.At.Equal(t0.Add(4*time.Second)) {
		t.Fatalf("latest Blue %v", l)
	}
	if l, ok, _ := h.Latest(ctx, "A", []string{"Red"}); !ok || !l.At.Equal(t0.Add(5*time.Second)) {
		t.Fatalf("latest Red %v", l)
	}
	if _, ok, _ := h.Latest(ctx, "C", blue); ok || h.refuse.Load() != 1 {
		t.Fatalf("uid bound not applied: refused %d", h.refuse.Load())
	}
	// The byte budget: a uid may not grow past it.
	small := newMemHistory(historyLimits{perUID: 10, uids: 10, bytes: 10})
	small.add(Record{UID: "A", XML: []byte("12345678")})
	small.add(Record{UID: "A", XML: []byte("12345678")})
	small.add(Record{UID: "B", XML: []byte("123")})
	if small.held != 8 || small.refuse.Load() != 2 {
		t.Fatalf("byte budget: held %d refused %d, want 8 and 2", small.held, small.refuse.Load())
	}
	for i, uid := range []string{"X", "Y", "Z"} {
		h.apply(directory.Event{Kind: directory.Leave, At: t0.Add(time.Duration(i) * time.Minute), Client: directory.Client{UID: uid, Callsign: uid, In: blue}})
	}
	if d, _ := h.Disconnected(ctx, time.Time{}, []string{"Red"}); len(d) != 0 {
		t.Fatalf("Red sees Blue's clients: %v", d)
	}
	d, _ := h.Disconnected(ctx, time.Time{}, blue)
	if len(d) != 2 || d[0].UID != "Y" || d[1].UID != "Z" {
		t.Fatalf("disconnected %v, want the two newest", d)
	}
}
