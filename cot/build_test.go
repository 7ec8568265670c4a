package cot

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name, or rewrites the file with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cot/ -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s:\n got %s\nwant %s", path, got, want)
	}
}

// Builders take a non-UTC now on purpose: the output must be in UTC regardless.
var buildNow = time.Date(2026, 3, 14, 10, 26, 53, 589_000_000, time.FixedZone("CET", 3600))

func TestPong(t *testing.T) {
	out := Pong(buildNow)
	golden(t, "pong.golden", out)
	checkBuilt(t, out)

	var h Header
	if err := ScanHeader(oneDoc(t, out), &h); err != nil {
		t.Fatal(err)
	}
	want := Header{
		Kind: DocEvent, UID: PongUID, Type: TypePong, How: HowServer,
		Time: buildNow.UTC(), Start: buildNow.UTC(), Stale: buildNow.Add(ControlStale).UTC(),
		CE: 9999999, LE: 9999999, MartiStart: -1, MartiEnd: -1,
	}
	if !sameHeader(h, want) {
		t.Errorf("re-parsed pong:\n got %+v\nwant %+v", h, want)
	}
	if !IsControl(h.Type) {
		t.Error("pong is not a control type")
	}
}

func TestDisconnectNotice(t *testing.T) {
	out := DisconnectNotice("9b2f6c1e-7d3a-4f5b-8e9c-0a1b2c3d4e5f", alphaUID, "a-f-G-U-C", buildNow)
	golden(t, "disconnect.golden", out)
	checkBuilt(t, out)

	var h Header
	if err := ScanHeader(oneDoc(t, out), &h); err != nil {
		t.Fatal(err)
	}
	want := Header{
		Kind: DocEvent, UID: "9b2f6c1e-7d3a-4f5b-8e9c-0a1b2c3d4e5f", Type: TypeDelete, How: HowServer,
		Time: buildNow.UTC(), Start: buildNow.UTC(), Stale: buildNow.Add(ControlStale).UTC(),
		CE: 9999999, LE: 9999999,
		LinkUID: alphaUID, LinkType: "a-f-G-U-C", LinkRelation: "p-p",
		MartiStart: -1, MartiEnd: -1,
	}
	if !sameHeader(h, want) {
		t.Errorf("re-parsed notice:\n got %+v\nwant %+v", h, want)
	}
}

// A client chooses its own uid; whatever it is, the notice must stay one well-formed event
// whose link names that uid.
func TestDisconnectNoticeEscapes(t *testing.T) {
	tests := []struct{ uid, want string }{
		{`a"b<c>&'d`, `a"b<c>&'d`},
		{"tab\tnl\ncr\r", "tab\tnl\ncr\r"},
		{"ctl\x01\x1f", "ctl\uFFFD\uFFFD"},
		{"bad\xff\xfe utf8", "bad\uFFFD\uFFFD utf8"},
		{"nonchar\uFFFE", "nonchar\uFFFD"},
		{"ünï 漢字 🙂", "ünï 漢字 🙂"},
		{"</event><event uid='x'>", "</event><event uid='x'>"},
	}
	for _, tt := range tests {
		out := DisconnectNotice("id", tt.uid, tt.uid, buildNow)
		checkBuilt(t, out)
		var h Header
		if err := ScanHeader(oneDoc(t, out), &h); err != nil {
			t.Fatalf("%q: %v", tt.uid, err)
		}
		if h.LinkUID != tt.want || h.LinkType != tt.want {
			t.Errorf("link uid %q type %q, want %q", h.LinkUID, h.LinkType, tt.want)
		}
	}
}

// checkBuilt asserts what clients need from every server-originated event: no declaration,
// nothing after "</event>", double-quoted attributes.
func checkBuilt(t *testing.T, out []byte) {
	t.Helper()
	if !bytes.HasPrefix(out, []byte(`<event version="2.0" uid="`)) || !bytes.HasSuffix(out, []byte("</event>")) {
		t.Errorf("bad framing: %s", out)
	}
	if bytes.ContainsRune(out, '\'') && !bytes.Contains(out, []byte("&apos;")) {
		t.Errorf("single quote used as an attribute delimiter: %s", out)
	}
}

func TestFormatTime(t *testing.T) {
	tests := []struct {
		in   time.Time
		want string
	}{
		{buildNow, "2026-03-14T09:26:53.589Z"},
		{time.Date(2026, 1, 1, 0, 30, 0, 0, time.FixedZone("", 3600)), "2025-12-31T23:30:00.000Z"},
		{time.Date(2026, 1, 2, 3, 4, 5, 999_999_999, time.UTC), "2026-01-02T03:04:05.999Z"},
	}
	for _, tt := range tests {
		if got := FormatTime(tt.in); got != tt.want {
			t.Errorf("FormatTime(%v) = %q, want %q", tt.in, got, tt.want)
		}
		if got := parseTime([]byte(FormatTime(tt.in))); !got.Equal(tt.in.Truncate(time.Millisecond)) {
			t.Errorf("round trip of %v gives %v", tt.in, got)
		}
	}
}

func TestBuildAllocs(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { Pong(buildNow) }); n != 1 {
		t.Errorf("Pong: %v allocs, want 1", n)
	}
	if n := testing.AllocsPerRun(100, func() { DisconnectNotice("id", alphaUID, "a-f-G-U-C", buildNow) }); n != 1 {
		t.Errorf("DisconnectNotice: %v allocs, want 1", n)
	}
}
