package bench

import (
	"strings"
	"testing"
	"time"

	"cotd/cot"
)

// frame feeds data to a fresh framer whole, byte by byte, and split in two at every
// eighth offset, and checks each way yields the same documents.
func frame(t *testing.T, data []byte) [][]byte {
	t.Helper()
	feed := func(chunks ...[]byte) [][]byte {
		f := cot.NewXMLFramer(0)
		var docs [][]byte
		for _, c := range chunks {
			if err := f.Feed(c, func(doc []byte) error {
				docs = append(docs, append([]byte(nil), doc...))
				return nil
			}); err != nil {
				t.Fatalf("framer: %v", err)
			}
		}
		return docs
	}
	whole := feed(data)
	var bytewise [][]byte
	{
		chunks := make([][]byte, len(data))
		for i := range data {
			chunks[i] = data[i : i+1]
		}
		bytewise = feed(chunks...)
	}
	if len(bytewise) != len(whole) {
		t.Fatalf("byte by byte: %d docs, whole: %d", len(bytewise), len(whole))
	}
	for i := 0; i < len(data); i += 8 {
		if split := feed(data[:i], data[i:]); len(split) != len(whole) {
			t.Fatalf("split at %d: %d docs, want %d", i, len(split), len(whole))
		}
	}
	return whole
}

func TestMessagesAreWhatTAKClientsSend(t *testing.T) {
	now := time.Date(2025, 3, 4, 5, 6, 7, 890_000_000, time.UTC)
	var stream []byte
	stream = appendSA(stream, 12, 1, now)
	stream = appendChat(stream, 12, 2, now, -1)
	stream = appendChat(stream, 12, 3, now, 7)
	stream = appendMarker(stream, 12, 4, now)
	stream = appendPing(stream, 12, now)
	docs := frame(t, stream)
	if len(docs) != 5 {
		t.Fatalf("%d documents, want 5", len(docs))
	}
	var h cot.Header
	check := func(i int, typ, uid string) {
		t.Helper()
		if err := cot.ScanHeader(docs[i], &h); err != nil {
			t.Fatalf("doc %d: %v\n%s", i, err, docs[i])
		}
		if h.Type != typ || h.UID != uid || !h.Time.Equal(now.Truncate(time.Millisecond)) || !h.Stale.After(now) {
			t.Errorf("doc %d: type %q uid %q time %v stale %v", i, h.Type, h.UID, h.Time, h.Stale)
		}
	}
	check(0, TypeSelfSA, "BENCH-12")
	if !h.IsSA() || h.Callsign != "B12" || h.Endpoint != "*:-1:stcp" || h.How != "m-g" || h.Stale.Sub(h.Time) != 2*time.Minute {
		t.Errorf("SA header %+v", h)
	}
	check(1, cot.TypeChat, "GeoChat.BENCH-12.All Chat Rooms.BENCH-12-2")
	if len(h.DestCallsigns) != 0 || h.MartiStart != -1 {
		t.Errorf("all-chat has marti: %+v", h)
	}
	check(2, cot.TypeChat, "GeoChat.BENCH-12.BENCH-7.BENCH-12-3")
	if len(h.DestCallsigns) != 1 || h.DestCallsigns[0] != "B7" || h.LinkUID != "BENCH-12" {
		t.Errorf("directed chat: dests %v link %q", h.DestCallsigns, h.LinkUID)
	}
	// The tag must survive the server stripping <marti>.
	if tag, ok := parseTag(cot.StripMarti(docs[2], &h)); !ok || tag.dst != 7 || tag.kind != kindDirected {
		t.Errorf("tag after StripMarti: %+v %v", tag, ok)
	}
	check(3, TypeSpotMarker, "BENCH-12-marker-4")
	if h.IsSA() {
		t.Error("a marker must not look like an SA")
	}
	check(4, cot.TypePing, "BENCH-12-ping")
	if !strings.Contains(string(stream), declCommo+`<event version="2.0" uid="BENCH-12-ping"`) {
		t.Error("ping is not preceded by commo's declaration")
	}
	for i, want := range []struct {
		kind msgKind
		seq  uint64
		dst  int
	}{{kindSA, 1, -1}, {kindChat, 2, -1}, {kindDirected, 3, 7}, {kindMarker, 4, -1}} {
		tag, ok := parseTag(docs[i])
		if !ok || tag.kind != want.kind || tag.seq != want.seq || tag.dst != want.dst || tag.src != 12 || tag.ts != now.UnixNano() {
			t.Errorf("doc %d tag %+v ok %v, want %+v", i, tag, ok, want)
		}
	}
	if _, ok := parseTag(docs[4]); ok {
		t.Error("a ping has no tag")
	}
}

func TestParseTag(t *testing.T) {
	for _, tc := range []struct {
		in   string
		ok   bool
		want benchTag
	}{
		{`<detail><__cotbench ts="5" seq="6" src="7" k="sa"/></detail>`, true, benchTag{5, 6, 7, kindSA, -1}},
		{`<__cotbench k='dm' dst='3' src='1' seq='2' ts='9' />`, true, benchTag{9, 2, 1, kindDirected, 3}},
		{`<__cotbench  ts="5"  seq="6"  src="7"  k="marker"></__cotbench>`, true, benchTag{5, 6, 7, kindMarker, -1}},
		{`<__cotbench ts="5" seq="6" src="7"/>`, false, benchTag{}},                // no kind
		{`<__cotbench ts="5" seq="6" src="7" k="dm"/>`, false, benchTag{}},         // dm without dst
		{`<__cotbench ts="5" seq="6" src="7" k="sa" dst="1"/>`, false, benchTag{}}, // dst on a broadcast
		{`<__cotbench ts="x" seq="6" src="7" k="sa"/>`, false, benchTag{}},
		{`<__cotbench ts="5" seq="6" src="7" k="fax"/>`, false, benchTag{}},
		{`<__cotbench ts="5`, false, benchTag{}},
		{`<remarks>__cotbench</remarks>`, false, benchTag{}},
	} {
		got, ok := parseTag([]byte(tc.in))
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("parseTag(%s) = %+v, %v; want %+v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestHalfClientHello(t *testing.T) {
	h, err := halfClientHello()
	if err != nil {
		t.Fatal(err)
	}
	// A handshake record header (type 22, TLS 1.x) announcing more than is there.
	if len(h) < 50 || h[0] != 22 || h[1] != 3 || int(h[3])<<8|int(h[4]) <= len(h)-5 {
		t.Errorf("half hello % x…", h[:min(len(h), 8)])
	}
}
