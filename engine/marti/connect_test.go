package marti_test

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	et "cotd/engine/enginetest"
)

type envelope struct {
	Version string          `json:"version"`
	Type    string          `json:"type"`
	Data    json.RawMessage `json:"data"`
	NodeID  string          `json:"nodeId"`
}

func getEnvelope(t *testing.T, c *http.Client, url, wantType string) envelope {
	t.Helper()
	code, body, hdr := do(t, c, "GET", url, "", nil)
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
		t.Fatalf("GET %s: %d %s %q", url, code, hdr.Get("Content-Type"), body)
	}
	var e envelope
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("GET %s: %v in %s", url, err, body)
	}
	if e.Version != "3" || e.Type != wantType || e.NodeID == "" {
		t.Fatalf("GET %s: envelope %+v, want version 3 type %s", url, e, wantType)
	}
	return e
}

type endpointJSON struct {
	Callsign, UID, Username, LastEventTime, LastStatus, Team, Role string
}

func endpoints(t *testing.T, c *http.Client, url string) map[string]endpointJSON {
	t.Helper()
	e := getEnvelope(t, c, url, "com.bbn.marti.remote.ClientEndpoint")
	var list []endpointJSON
	if err := json.Unmarshal(e.Data, &list); err != nil {
		t.Fatal(err)
	}
	out := map[string]endpointJSON{}
	for _, x := range list {
		// What ATAK checks for every element, or it drops the list.
		if x.UID == "" || x.Callsign == "" || (x.LastStatus != "Connected" && x.LastStatus != "Disconnected") {
			t.Fatalf("element ATAK would reject: %+v", x)
		}
		if _, err := time.Parse("2006-01-02T15:04:05.000Z", x.LastEventTime); err != nil {
			t.Fatalf("lastEventTime %q: %v", x.LastEventTime, err)
		}
		out[x.UID] = x
	}
	return out
}

// TestATAKConnectSequence plays what ATAK 5.5 calls when its stream
// connects, in its order, over mutual TLS, against a live engine.
func TestATAKConnectSequence(t *testing.T) { eachBackend(t, testATAKConnectSequence) }

func testATAKConnectSequence(t *testing.T, b backend) {
	w := newWorldOn(t, b, nil)
	_ = w.device("alice", "ANDROID-A", "ALPHA")
	bob := w.device("bob", "ANDROID-B", "BRAVO")
	_ = w.device("carol", "ANDROID-C", "CHARLIE")
	ac := w.http("alice")

	// 1. version/config, every connect.
	e := getEnvelope(t, ac, w.base+"/Marti/api/version/config", "ServerConfig")
	var sc struct{ Version, API, Hostname string }
	if err := json.Unmarshal(e.Data, &sc); err != nil || sc.API != "3" || sc.Hostname != "127.0.0.1" || sc.Version != "cotd-test" {
		t.Fatalf("ServerConfig %+v (%v)", sc, err)
	}
	if code, body, _ := do(t, ac, "GET", w.base+"/Marti/api/version", "", nil); code != 200 || string(body) != "cotd-test" {
		t.Fatalf("version: %d %q", code, body)
	}

	// 2. clientEndPoints: bob (shares Blue) is listed, carol (Red) is not.
	eps := endpoints(t, ac, w.base+"/Marti/api/clientEndPoints")
	if b, ok := eps["ANDROID-B"]; !ok || b.Callsign != "BRAVO" || b.LastStatus != "Connected" || b.Username != "bob" ||
		b.Team != "Cyan" || b.Role != "Team Member" {
		t.Fatalf("bob not listed as connected: %+v", eps)
	}
	if _, ok := eps["ANDROID-C"]; ok {
		t.Fatalf("carol (another group) listed to alice: %+v", eps)
	}

	// 3. device profile on connect: nothing to send.
	if code, _, _ := do(t, ac, "GET", w.base+"/Marti/api/device/profile/connection?syncSecago=0&clientUid=ANDROID-A", "", nil); code != http.StatusNoContent {
		t.Fatalf("profile/connection: %d, want 204", code)
	}
	if code, _, _ := do(t, ac, "GET", w.base+"/Marti/api/device/profile/connection?clientUid=ANDROID-A", "", nil); code != http.StatusBadRequest {
		t.Fatalf("profile/connection without syncSecago: %d, want 400", code)
	}

	// 4. groups/all with the active-group cache.
	e = getEnvelope(t, ac, w.base+"/Marti/api/groups/all?useCache=true", "com.bbn.marti.remote.groups.Group")
	var groups []struct {
		Name, Direction, Created, Type string
		Bitpos                         int
		Active                         bool
	}
	if err := json.Unmarshal(e.Data, &groups); err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, g := range groups {
		if _, err := time.Parse("2006-01-02", g.Created); err != nil || g.Type == "" || g.Bitpos < 0 || !g.Active {
			t.Fatalf("group ATAK would reject or inactive: %+v", g)
		}
		seen = append(seen, g.Name+"/"+g.Direction)
	}
	slices.Sort(seen)
	if want := []string{"Blue/IN", "Blue/OUT", "HQ/IN", "HQ/OUT"}; !slices.Equal(seen, want) {
		t.Fatalf("alice's groups %v, want %v", seen, want)
	}

	e = getEnvelope(t, ac, w.base+"/Marti/api/groups/all", "com.bbn.marti.remote.groups.Group")
	_ = json.Unmarshal(e.Data, &groups)
	for _, g := range groups {
		if g.Direction != "OUT" {
			t.Fatalf("groups/all without the cache lists %+v; TAK Server gives OUT only", g)
		}
	}
	if len(groups) != 2 {
		t.Fatalf("groups/all without the cache: %+v", groups)
	}
	if code, _, _ := do(t, ac, "GET", w.base+"/Marti/api/device/profile/tool/vns?clientUid=ANDROID-A", "", nil); code != http.StatusNoContent {
		t.Fatalf("profile/tool: %d, want 204", code)
	}

	// 5. contacts/all: a bare array.
	code, body, _ := do(t, ac, "GET", w.base+"/Marti/api/contacts/all", "", nil)
	var contacts []struct{ UID, Callsign string }
	if err := json.Unmarshal(body, &contacts); code != 200 || err != nil {
		t.Fatalf("contacts/all: %d %v %s", code, err, body)
	}
	var uids []string
	for _, c := range contacts {
		uids = append(uids, c.UID)
	}
	slices.Sort(uids)
	if !slices.Equal(uids, []string{"ANDROID-A", "ANDROID-B"}) {
		t.Fatalf("contacts %v, want alice's and bob's devices only", uids)
	}

	// 6. cot/xml: bob's latest event; carol's is not alice's to read.
	code, body, _ = do(t, ac, "GET", w.base+"/Marti/api/cot/xml/ANDROID-B", "", nil)
	if code != 200 || !strings.HasPrefix(string(body), "<?xml version='1.0' encoding='UTF-8' standalone='yes'?><event") ||
		!strings.Contains(string(body), `uid="ANDROID-B"`) {
		t.Fatalf("cot/xml bob: %d %s", code, body)
	}
	if code, body, _ = do(t, ac, "GET", w.base+"/Marti/api/cot/xml/ANDROID-C", "", nil); code != 404 || len(body) != 0 {
		t.Fatalf("cot/xml carol for alice: %d %q, want 404 empty", code, body)
	}

	// 7. bob leaves: listed as Disconnected, from history.
	_ = bob.Conn.Close()
	et.Eventually(t, "bob listed as disconnected", func() bool {
		return endpoints(t, ac, w.base+"/Marti/api/clientEndPoints")["ANDROID-B"].LastStatus == "Disconnected"
	})
	if _, ok := endpoints(t, ac, w.base+"/Marti/api/clientEndPoints?showCurrentlyConnectedClients=true")["ANDROID-B"]; ok {
		t.Fatal("showCurrentlyConnectedClients listed bob after he left")
	}
	if code, _, _ := do(t, ac, "GET", w.base+"/Marti/api/clientEndPoints?group=Red", "", nil); code != http.StatusForbidden {
		t.Fatalf("clientEndPoints for a group alice is not in: %d, want 403", code)
	}
	if w.m.Requests("client_endpoints", 200) < 3 || w.m.Requests("client_endpoints", 403) != 1 {
		t.Fatalf("requests not counted: 200=%d 403=%d", w.m.Requests("client_endpoints", 200), w.m.Requests("client_endpoints", 403))
	}
	if !strings.Contains(w.h.Metrics(t), `cotd_http_requests_total{route="client_endpoints",code="403"} 1`) {
		t.Fatal("the engine's /metrics does not carry marti's counters")
	}
}

// TestHistoryQueries reads events back: cot/xml/{uid}/all, cot/sa and the
// KMZ track export, each filtered by groups.
func TestHistoryQueries(t *testing.T) { eachBackend(t, testHistoryQueries) }

func testHistoryQueries(t *testing.T, b backend) {
	w := newWorldOn(t, b, nil)
	bob := w.device("bob", "ANDROID-B", "BRAVO")
	carol := w.device("carol", "ANDROID-C", "CHARLIE")
	for range 3 {
		bob.Send(et.SA("ANDROID-B", "BRAVO", "a-f-G-U-C"))
		carol.Send(et.SA("ANDROID-C", "CHARLIE", "a-f-G-U-C"))
	}
	ac := w.http("alice")
	start := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	end := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	var body []byte
	et.Eventually(t, "bob's four reports in history", func() bool {
		var code int
		code, body, _ = do(t, ac, "GET", w.base+"/Marti/api/cot/xml/ANDROID-B/all?start="+start+"&end="+end, "", nil)
		return code == 200 && strings.Count(string(body), `uid="ANDROID-B"`) == 4
	})
	if !strings.Contains(string(body), "<events>") || !strings.HasSuffix(string(body), "</events>") {
		t.Fatalf("cot/xml/all: %s", body)
	}
	et.Eventually(t, "carol's reports in history", func() bool {
		_, b, _ := do(t, w.http("carol"), "GET", w.base+"/Marti/api/cot/xml/ANDROID-C/all?secago=3600", "", nil)
		return strings.Count(string(b), `uid="ANDROID-C"`) == 4
	})
	if _, b, _ := do(t, ac, "GET", w.base+"/Marti/api/cot/xml/ANDROID-C/all?secago=3600", "", nil); strings.Contains(string(b), "ANDROID-C") {
		t.Fatalf("alice read carol's history: %s", b)
	}
	code, body, _ := do(t, ac, "GET", w.base+"/Marti/api/cot/sa?start="+start+"&end="+end, "", nil)
	if code != 200 || !strings.Contains(string(body), "ANDROID-B") || strings.Contains(string(body), "ANDROID-C") {
		t.Fatalf("cot/sa for alice: %d %s", code, body)
	}
	if code, _, _ := do(t, ac, "GET", w.base+"/Marti/api/cot/sa?start="+start+"&end="+end+"&left=10&bottom=10&right=11&top=11", "", nil); code != 404 {
		t.Fatalf("cot/sa outside every report: %d, want 404", code)
	}
	if code, _, _ := do(t, ac, "GET", w.base+"/Marti/api/cot/sa?start="+start, "", nil); code != 400 {
		t.Fatalf("cot/sa without end: %d, want 400", code)
	}

	// Track history: a KMZ (zip with doc.kml) with bob's four reports.
	code, body, hdr := do(t, ac, "GET", w.base+"/Marti/ExportMissionKML?startTime="+start+"&endTime="+end+
		"&uid=ANDROID-B&multiTrackThreshold=10&extendedData=true&format=kmz&optimizeExport=true", "", nil)
	if code != 200 || hdr.Get("Content-Type") != "application/vnd.google-earth.kmz" {
		t.Fatalf("ExportMissionKML: %d %q %s", code, hdr.Get("Content-Type"), body)
	}
	zr, err := zip.NewReader(bytes.NewReader(body), int64(len(body)))
	if err != nil || len(zr.File) != 1 || zr.File[0].Name != "doc.kml" {
		t.Fatalf("KMZ: %v %v", err, zr)
	}
	f, _ := zr.File[0].Open()
	kml, _ := io.ReadAll(f)
	if strings.Count(string(kml), "<gx:coord>-97.2 35.1 300</gx:coord>") != 4 || strings.Count(string(kml), "<when>") != 4 ||
		!strings.Contains(string(kml), "<name>BRAVO</name>") {
		t.Fatalf("doc.kml: %s", kml)
	}
	if code, _, _ := do(t, ac, "GET", w.base+"/Marti/ExportMissionKML?uid=ANDROID-C&startTime="+start+"&endTime="+end, "", nil); code != 404 {
		t.Fatalf("carol's track for alice: %d, want 404", code)
	}
	if code, _, _ := do(t, ac, "GET", w.base+"/Marti/ExportMissionKML?startTime="+start, "", nil); code != 400 {
		t.Fatalf("no uid: %d, want 400", code)
	}
}
