package store_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"cotd/configs"
	"cotd/cot"
	"cotd/engine/store"
)

// eachBackend runs f as a subtest against SQLite and against PostgreSQL,
// each with an empty database.
func eachBackend(t *testing.T, f func(t *testing.T, cfg configs.Store)) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) { f(t, be.cfg(t)) })
	}
}

func TestEventHistory(t *testing.T) {
	eachBackend(t, func(t *testing.T, cfg configs.Store) {
		db := open(t, cfg, store.Options{})
		ctx := ctxT(t)
		// alpha moves three times, bravo once, charlie sits across the
		// antimeridian; one marker comes from a parsed document.
		for i, e := range []store.EventRecord{
			ev("alpha", t0, 47.0, -122.0, "Cyan"),
			ev("alpha", t0.Add(time.Minute), 47.1, -122.1, "Cyan"),
			ev("bravo", t0.Add(90*time.Second), 10, 10, "Red"),
			ev("alpha", t0.Add(2*time.Minute), 47.2, -122.2, "Cyan"),
			ev("charlie", t0.Add(3*time.Minute), -17, 179.5, "Cyan", "Red"),
		} {
			if !db.ArchiveEvent(e) {
				t.Fatalf("event %d dropped", i)
			}
		}
		flush(t, db)

		latest, err := db.LatestEvent(ctx, "alpha", store.Everything)
		if err != nil {
			t.Fatal(err)
		}
		want := ev("alpha", t0.Add(2*time.Minute), 47.2, -122.2, "Cyan")
		want.ID = latest.ID
		if fmt.Sprint(latest) != fmt.Sprint(want) {
			t.Errorf("latest alpha:\n got %+v\nwant %+v", latest, want)
		}
		if _, err := db.LatestEvent(ctx, "alpha", store.Scope{Groups: []string{"Red"}}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("alpha seen by Red: err = %v, want ErrNotFound", err)
		}
		if _, err := db.LatestEvent(ctx, "nobody", store.Everything); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown uid: err = %v", err)
		}

		track, err := db.Events(ctx, store.EventQuery{UID: "alpha", From: t0.Add(30 * time.Second), To: t0.Add(3 * time.Minute), Scope: store.Everything})
		if err != nil {
			t.Fatal(err)
		}
		if got := lats(track); !slices.Equal(got, []float64{47.1, 47.2}) {
			t.Errorf("alpha track in window = %v, want [47.1 47.2]", got)
		}

		box, err := db.Events(ctx, store.EventQuery{From: t0, To: t0.Add(time.Hour),
			Box: &store.Box{MinLat: 46, MaxLat: 48, MinLon: -123, MaxLon: -122.05}, Scope: store.Everything})
		if err != nil {
			t.Fatal(err)
		}
		if got := lats(box); !slices.Equal(got, []float64{47.1, 47.2}) {
			t.Errorf("box = %v, want [47.1 47.2]", got)
		}
		across, err := db.Events(ctx, store.EventQuery{Box: &store.Box{MinLat: -20, MaxLat: -10, MinLon: 170, MaxLon: -170},
			Scope: store.Scope{Groups: []string{"Red"}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(across) != 1 || across[0].UID != "charlie" {
			t.Errorf("antimeridian box = %v, want charlie", across)
		}
		limited, _ := db.Events(ctx, store.EventQuery{Scope: store.Everything, Limit: 2})
		if len(limited) != 2 {
			t.Errorf("limit 2 returned %d", len(limited))
		}
		several, err := db.LatestEvents(ctx, []string{"bravo", "nobody", "alpha"}, store.Everything)
		if err != nil {
			t.Fatal(err)
		}
		if len(several) != 2 || several[0].UID != "bravo" || several[1].Lat != 47.2 {
			t.Errorf("LatestEvents = %v", several)
		}
	})
}

func lats(es []store.EventRecord) []float64 {
	var l []float64
	for _, e := range es {
		l = append(l, e.Lat)
	}
	return l
}

// TestArchiveParsedDocuments stores real documents and gives them back as
// CoT that parses to the same header, without <marti>.
func TestArchiveParsedDocuments(t *testing.T) {
	eachBackend(t, func(t *testing.T, cfg configs.Store) {
		db := open(t, cfg, store.Options{})
		ctx := ctxT(t)
		sender := store.Sender{UID: "ANDROID-5f3c9a1e2b7d4c60", Callsign: "ALPHA", User: "alice", Groups: []string{"Cyan"}}
		for _, f := range []string{"sa.xml", "drawing.xml", "node-tak-position.xml"} {
			if err := db.Archive(fixture(t, f), t0, sender); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
		}
		ping := []byte(`<event version="2.0" uid="x-ping" type="t-x-c-t" how="m-g" time="2026-03-14T09:00:00Z" start="2026-03-14T09:00:00Z" stale="2026-03-14T09:00:10Z"><point lat="0" lon="0" hae="0" ce="0" le="0"/><detail/></event>`)
		if err := db.Archive(ping, t0, sender); !errors.Is(err, store.ErrNotArchived) {
			t.Errorf("ping: err = %v, want ErrNotArchived", err)
		}
		flush(t, db)
		for _, f := range []string{"sa.xml", "drawing.xml", "node-tak-position.xml"} {
			doc := fixture(t, f)
			var want cot.Header
			if err := cot.ScanHeader(doc, &want); err != nil {
				t.Fatal(err)
			}
			got, err := db.LatestEvent(ctx, want.UID, store.Scope{Groups: []string{"Cyan"}})
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			var h cot.Header
			if err := cot.ScanHeader(got.XML(), &h); err != nil {
				t.Fatalf("%s: stored event does not parse: %v\n%s", f, err, got.XML())
			}
			if h.UID != want.UID || h.Type != want.Type || h.How != want.How || !h.Time.Equal(want.Time) ||
				!h.Stale.Equal(want.Stale) || h.Lat != want.Lat || h.Lon != want.Lon || h.HAE != want.HAE ||
				h.Callsign != want.Callsign || h.MartiStart != -1 {
				t.Errorf("%s: round trip header\n got %+v\nwant %+v", f, h, want)
			}
			if got.SenderUser != "alice" || !got.ServerTime.Equal(t0) {
				t.Errorf("%s: sender %q server time %v", f, got.SenderUser, got.ServerTime)
			}
		}
	})
}

func TestChatAndOfflineDelivery(t *testing.T) {
	eachBackend(t, func(t *testing.T, cfg configs.Store) {
		db := open(t, cfg, store.Options{})
		ctx := ctxT(t)
		const (
			alpha = "ANDROID-5f3c9a1e2b7d4c60"
			bravo = "ANDROID-9d8e7f6a5b4c3d21"
		)
		// BRAVO was here and left; DELTA is online; CHARLIE was never seen;
		// ECHO left too but shares no group with the sender.
		for _, r := range []store.ConnRecord{
			{Status: store.StatusConnected, UID: bravo, Callsign: "BRAVO", Groups: []string{"Cyan", "HQ"}, Time: t0},
			{Status: store.StatusConnected, UID: "delta-1", Callsign: "DELTA", Groups: []string{"Cyan"}, Time: t0},
			{Status: store.StatusDisconnected, UID: bravo, Time: t0.Add(time.Minute)},
			{Status: store.StatusDisconnected, UID: "echo-1", Callsign: "ECHO", Groups: []string{"Red"}, Time: t0},
		} {
			db.RecordConn(r)
		}
		sender := store.Sender{UID: alpha, Callsign: "ALPHA", Groups: []string{"Cyan"}}
		if err := db.Archive(fixture(t, "geochat.xml"), t0.Add(2*time.Minute), sender); err != nil {
			t.Fatal(err)
		}
		// A chat to DELTA (online) and one to everyone keep nothing.
		_, toDelta, err := store.FromEvent(chatDoc("m2", "to delta", []string{"DELTA"}), t0.Add(3*time.Minute), sender)
		if err != nil {
			t.Fatal(err)
		}
		db.ArchiveChat(*toDelta)
		_, all, _ := store.FromEvent(chatDoc("m3", "to all", nil), t0.Add(4*time.Minute), sender)
		db.ArchiveChat(*all)
		_, toEcho, _ := store.FromEvent(chatDoc("m4", "to echo", []string{"ECHO"}), t0.Add(4*time.Minute), sender)
		db.ArchiveChat(*toEcho)
		flush(t, db)

		chats, err := db.Chats(ctx, store.EventQuery{Scope: store.Everything})
		if err != nil {
			t.Fatal(err)
		}
		if len(chats) != 4 {
			t.Fatalf("%d chats stored, want 4", len(chats))
		}
		c := chats[0]
		if c.Text != "Meet at the north gate & bring the spare radio <PRC-152>" || c.Room != "BRAVO" ||
			c.RoomID != bravo || c.ChatSenderCallsign != "ALPHA" || c.MessageID != "6c1f0e2a-3b4d-4e5f-8a9b-0c1d2e3f4a5b" ||
			!slices.Equal(c.DestCallsigns, []string{"BRAVO", "CHARLIE"}) || !slices.Equal(c.DestUIDs, []string{bravo}) ||
			c.SenderUID != alpha {
			t.Errorf("chat fields: %+v", c)
		}
		if n, _ := db.Events(ctx, store.EventQuery{Scope: store.Everything}); len(n) != 0 {
			t.Errorf("chat also landed in cot_router: %v", n)
		}

		// BRAVO comes back (under its uid); a device reinstalled with a new
		// uid but the same callsign finds it too.
		for _, who := range [][2]string{{bravo, ""}, {"new-uid", "BRAVO"}} {
			p, err := db.PendingChats(ctx, who[0], who[1])
			if err != nil {
				t.Fatal(err)
			}
			if len(p) != 1 || p[0].RecipientUID != bravo || p[0].RecipientCallsign != "BRAVO" ||
				!strings.Contains(p[0].Chat.Text, "north gate") {
				t.Fatalf("pending for %v = %+v, want the one chat to BRAVO", who, p)
			}
			if x := p[0].Chat.XML(); strings.Contains(string(x), "<marti") || !strings.Contains(string(x), "north gate") {
				t.Errorf("pending chat XML: %s", x)
			}
		}
		for _, who := range [][2]string{{"delta-1", "DELTA"}, {"charlie", "CHARLIE"}, {alpha, "ALPHA"}, {"echo-1", "ECHO"}} {
			if p, _ := db.PendingChats(ctx, who[0], who[1]); len(p) != 0 {
				t.Errorf("pending for %v = %+v, want none", who, p)
			}
		}
		p, _ := db.PendingChats(ctx, bravo, "BRAVO")
		if err := db.MarkDelivered(ctx, []int64{p[0].ID}, t0.Add(5*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if p, _ := db.PendingChats(ctx, bravo, "BRAVO"); len(p) != 0 {
			t.Errorf("delivered chat still pending: %+v", p)
		}
	})
}

func TestOfflineChatOff(t *testing.T) {
	eachBackend(t, func(t *testing.T, cfg configs.Store) {
		cfg.OfflineChat = false
		db := open(t, cfg, store.Options{})
		db.RecordConn(store.ConnRecord{Status: store.StatusDisconnected, UID: "b", Callsign: "BRAVO", Time: t0})
		_, c, _ := store.FromEvent(chatDoc("m1", "hi", []string{"BRAVO"}), t0, store.Sender{UID: "a"})
		db.ArchiveChat(*c)
		flush(t, db)
		if chats, _ := db.Chats(ctxT(t), store.EventQuery{Scope: store.Everything}); len(chats) != 1 {
			t.Fatalf("chat not stored: %v", chats)
		}
		if p, _ := db.PendingChats(ctxT(t), "b", "BRAVO"); len(p) != 0 {
			t.Errorf("offline_chat=false kept %+v", p)
		}
	})
}

func chatDoc(id, text string, to []string) []byte {
	var marti string
	if len(to) > 0 {
		marti = "<marti>"
		for _, cs := range to {
			marti += `<dest callsign="` + cs + `"/>`
		}
		marti += "</marti>"
	}
	return []byte(`<event version="2.0" uid="GeoChat.a.` + id + `" type="b-t-f" how="h-g-i-g-o" time="2026-03-14T09:00:00Z" start="2026-03-14T09:00:00Z" stale="2026-03-15T09:00:00Z">` +
		`<point lat="0" lon="0" hae="0" ce="9999999" le="9999999"/><detail><__chat chatroom="R" id="R" senderCallsign="ALPHA" messageId="` + id + `"><chatgrp uid0="a" id="R"/></__chat>` +
		marti + `<remarks>` + text + `</remarks></detail></event>`)
}

func TestClientEndpoints(t *testing.T) {
	eachBackend(t, func(t *testing.T, cfg configs.Store) {
		db := open(t, cfg, store.Options{})
		ctx := ctxT(t)
		for _, r := range []store.ConnRecord{
			{Status: store.StatusConnected, UID: "a", Callsign: "ALPHA", User: "alice", Team: "Cyan", Role: "Team Lead",
				Groups: []string{"Cyan"}, Address: "127.0.0.1:5000", Listener: "tls", Time: t0},
			{Status: store.StatusConnected, UID: "b", Callsign: "BRAVO", Groups: []string{"Red"}, Time: t0.Add(time.Minute)},
			// A disconnect that knows no callsign keeps the one known.
			{Status: store.StatusDisconnected, UID: "a", Reason: "idle", Time: t0.Add(2 * time.Minute)},
			{Status: store.StatusConnected, Address: "127.0.0.1:6000", Time: t0.Add(3 * time.Minute)}, // no uid yet
		} {
			if !db.RecordConn(r) {
				t.Fatal("dropped")
			}
		}
		if db.RecordConn(store.ConnRecord{UID: "x"}) {
			t.Error("a record without a status was accepted")
		}
		flush(t, db)
		eps, err := db.ClientEndpoints(ctx, store.EndpointQuery{Scope: store.Everything})
		if err != nil {
			t.Fatal(err)
		}
		if len(eps) != 2 {
			t.Fatalf("endpoints = %+v", eps)
		}
		a := eps[0]
		if a.UID != "a" || a.Callsign != "ALPHA" || a.User != "alice" || a.Team != "Cyan" || a.Role != "Team Lead" ||
			a.LastStatus != store.StatusDisconnected || !a.LastEventTime.Equal(t0.Add(2*time.Minute)) ||
			a.Listener != "tls" || !slices.Equal(a.Groups, []string{"Cyan"}) {
			t.Errorf("alpha = %+v", a)
		}
		if eps[1].UID != "b" || eps[1].LastStatus != store.StatusConnected {
			t.Errorf("bravo = %+v", eps[1])
		}
		on, _ := db.ClientEndpoints(ctx, store.EndpointQuery{ConnectedOnly: true, Scope: store.Everything})
		if len(on) != 1 || on[0].UID != "b" {
			t.Errorf("connected only = %+v", on)
		}
		recent, _ := db.ClientEndpoints(ctx, store.EndpointQuery{Since: t0.Add(90 * time.Second), Scope: store.Everything})
		if len(recent) != 1 || recent[0].UID != "a" {
			t.Errorf("since = %+v", recent)
		}
		red, _ := db.ClientEndpoints(ctx, store.EndpointQuery{Scope: store.Scope{Groups: []string{"Red"}}})
		if len(red) != 1 || red[0].UID != "b" {
			t.Errorf("Red sees %+v", red)
		}
		if none, _ := db.ClientEndpoints(ctx, store.EndpointQuery{}); len(none) != 0 {
			t.Errorf("zero scope sees %+v", none)
		}
	})
}

func TestFiles(t *testing.T) {
	eachBackend(t, func(t *testing.T, cfg configs.Store) {
		db := open(t, cfg, store.Options{})
		ctx := ctxT(t)
		hash := strings.Repeat("ab", 32)
		f, err := db.PutFile(ctx, store.FileRecord{Hash: strings.ToUpper(hash), Name: "Route Plan.zip", Filename: "route.zip",
			MIMEType: "application/x-zip-compressed", Size: 1814, Keywords: []string{"missionpackage", "a,b"},
			Submitter: "alice", CreatorUID: "ANDROID-1", Groups: []string{"Cyan"}, Created: t0})
		if err != nil {
			t.Fatal(err)
		}
		if f.ID == 0 || f.UID == "" || f.Hash != hash || f.Tool != "public" {
			t.Errorf("stored = %+v", f)
		}
		got, err := db.File(ctx, hash)
		if err != nil {
			t.Fatal(err)
		}
		if got.Name != "Route Plan.zip" || got.Size != 1814 || !slices.Equal(got.Keywords, []string{"missionpackage", "a,b"}) ||
			!got.Created.Equal(t0) || got.ID != f.ID || got.UID != f.UID {
			t.Errorf("File = %+v", got)
		}
		if _, err := db.File(ctx, strings.Repeat("00", 32)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown hash: %v", err)
		}
		// Bob (Red) uploads the same bytes: one row, both groups see it.
		again, err := db.PutFile(ctx, store.FileRecord{Hash: hash, Name: "copy.zip", Groups: []string{"Red"}, Created: t0.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if again.ID != f.ID || again.UID != f.UID {
			t.Errorf("re-upload made a new row: %+v", again)
		}
		for _, g := range []string{"Cyan", "Red"} {
			if r, _ := db.SearchFiles(ctx, store.FileQuery{Scope: store.Scope{Groups: []string{g}}}); len(r) != 1 {
				t.Errorf("%s sees %d files", g, len(r))
			}
		}
		other := strings.Repeat("cd", 32)
		if _, err := db.PutFile(ctx, store.FileRecord{Hash: other, Name: "photo.jpg", MIMEType: "image/jpeg",
			Keywords: []string{"photo"}, Groups: []string{"Green"}, CreatorUID: "IOS-2", Created: t0}); err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			q    store.FileQuery
			want []string
		}{
			{store.FileQuery{Scope: store.Everything}, []string{hash, other}},
			{store.FileQuery{Name: "COPY", Scope: store.Everything}, []string{hash}},
			{store.FileQuery{Keywords: []string{"photo"}, Scope: store.Everything}, []string{other}},
			{store.FileQuery{Keywords: []string{"a,b"}, Scope: store.Everything}, []string{}},
			{store.FileQuery{CreatorUID: "IOS-2", Scope: store.Everything}, []string{other}},
			{store.FileQuery{Name: "%", Scope: store.Everything}, []string{}},
			{store.FileQuery{Scope: store.Scope{Groups: []string{"Green"}}}, []string{other}},
			{store.FileQuery{Scope: store.Scope{Groups: []string{"Nobody"}}}, []string{}},
		}
		for _, c := range cases {
			r, err := db.SearchFiles(ctx, c.q)
			if err != nil {
				t.Fatal(err)
			}
			got := []string{}
			for _, f := range r {
				got = append(got, f.Hash)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("search %+v = %v, want %v", c.q, got, c.want)
			}
		}
		if err := db.SetFileTool(ctx, hash, "private"); err != nil {
			t.Fatal(err)
		}
		if err := db.SetFileMIMEType(ctx, hash, "application/zip"); err != nil {
			t.Fatal(err)
		}
		if r, _ := db.SearchFiles(ctx, store.FileQuery{Tool: "private", MIMEType: "application/zip", Scope: store.Everything}); len(r) != 1 {
			t.Errorf("tool/mimetype update not found: %v", r)
		}
		if err := db.SetFileTool(ctx, other+"ff", "private"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("tool on unknown hash: %v", err)
		}
		if err := db.DeleteFile(ctx, hash); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteFile(ctx, hash); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("second delete: %v", err)
		}
	})
}

func TestCertificates(t *testing.T) {
	eachBackend(t, func(t *testing.T, cfg configs.Store) {
		db := open(t, cfg, store.Options{})
		ctx := ctxT(t)
		for i, c := range []store.CertRecord{
			{Serial: "0A1B", User: "alice", ClientUID: "ANDROID-1", SubjectDN: "CN=alice", Fingerprint: "AA", Issued: t0, Expires: t0.AddDate(1, 0, 0)},
			{Serial: "0c2d", User: "alice", Issued: t0.Add(time.Hour), Expires: t0.AddDate(1, 0, 0)},
			{Serial: "ffff", User: "bob", Issued: t0, Expires: t0.AddDate(1, 0, 0)},
		} {
			if err := db.PutCert(ctx, c); err != nil {
				t.Fatalf("cert %d: %v", i, err)
			}
		}
		if err := db.PutCert(ctx, store.CertRecord{Serial: "0a1b", User: "eve", Issued: t0, Expires: t0}); err == nil {
			t.Error("a duplicate serial was accepted")
		}
		c, err := db.Cert(ctx, "0a1b")
		if err != nil {
			t.Fatal(err)
		}
		if c.User != "alice" || c.ClientUID != "ANDROID-1" || c.Fingerprint != "aa" || !c.Expires.Equal(t0.AddDate(1, 0, 0)) || !c.Revoked.IsZero() {
			t.Errorf("cert = %+v", c)
		}
		if l, _ := db.CertsByUser(ctx, "alice"); len(l) != 2 || l[0].Serial != "0a1b" || l[1].Serial != "0c2d" {
			t.Errorf("alice's certs = %+v", l)
		}
		if err := db.RevokeCert(ctx, "0C2D", t0.Add(2*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := db.RevokeCert(ctx, "0c2d", t0.Add(5*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := db.RevokeCert(ctx, "9999", t0); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("revoke unknown: %v", err)
		}
		r, _ := db.RevokedCerts(ctx)
		if len(r) != 1 || r[0].Serial != "0c2d" || !r[0].Revoked.Equal(t0.Add(2*time.Hour)) {
			t.Errorf("revoked = %+v", r)
		}
		if n, err := db.RevokeUserCerts(ctx, "alice", t0.Add(6*time.Hour)); err != nil || n != 1 {
			t.Errorf("RevokeUserCerts(alice) = %d, %v; want the one still valid", n, err)
		}
		if r, _ := db.RevokedCerts(ctx); len(r) != 2 || !r[0].Revoked.Equal(t0.Add(6*time.Hour)) || !r[1].Revoked.Equal(t0.Add(2*time.Hour)) {
			t.Errorf("revoked after disabling alice = %+v", r)
		}
		if c, _ := db.Cert(ctx, "ffff"); !c.Revoked.IsZero() {
			t.Errorf("bob's certificate revoked: %+v", c)
		}
		if _, err := db.Cert(ctx, "1234"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown serial: %v", err)
		}
	})
}

// TestArchiveOff: with archive = false events are not kept, chats and
// connections still are.
func TestArchiveOff(t *testing.T) {
	eachBackend(t, func(t *testing.T, cfg configs.Store) {
		cfg.Archive = false
		db := open(t, cfg, store.Options{})
		if err := db.Archive(fixture(t, "sa.xml"), t0, store.Sender{UID: "a"}); err != nil {
			t.Fatal(err)
		}
		if err := db.Archive(chatDoc("m", "hi", nil), t0, store.Sender{UID: "a"}); err != nil {
			t.Fatal(err)
		}
		db.RecordConn(store.ConnRecord{Status: store.StatusConnected, UID: "a", Time: t0})
		flush(t, db)
		ctx := ctxT(t)
		if e, _ := db.Events(ctx, store.EventQuery{Scope: store.Everything}); len(e) != 0 {
			t.Errorf("archive=false stored %d events", len(e))
		}
		if c, _ := db.Chats(ctx, store.EventQuery{Scope: store.Everything}); len(c) != 1 {
			t.Errorf("chats = %d, want 1", len(c))
		}
		if eps, _ := db.ClientEndpoints(ctx, store.EndpointQuery{Scope: store.Everything}); len(eps) != 1 {
			t.Errorf("endpoints = %d, want 1", len(eps))
		}
	})
}
