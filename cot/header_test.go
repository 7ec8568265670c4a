package cot

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	alphaUID = "ANDROID-5f3c9a1e2b7d4c60"
	bravoUID = "ANDROID-9d8e7f6a5b4c3d21"
)

func mustTime(tb testing.TB, s string) time.Time {
	tb.Helper()
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		tb.Fatal(err)
	}
	return t.UTC()
}

// oneDoc frames b, which must hold exactly one document, and returns it.
func oneDoc(tb testing.TB, b []byte) []byte {
	tb.Helper()
	docs, err := frameAll(0, [][]byte{b})
	if err != nil || len(docs) != 1 {
		tb.Fatalf("framing %q: %d docs, err %v", b, len(docs), err)
	}
	return []byte(docs[0])
}

// sameHeader compares headers, treating nil and empty slices alike.
func sameHeader(got, want Header) bool {
	for _, h := range []*Header{&got, &want} {
		if len(h.DestCallsigns) == 0 {
			h.DestCallsigns = nil
		}
		if len(h.DestUIDs) == 0 {
			h.DestUIDs = nil
		}
	}
	return reflect.DeepEqual(got, want)
}

func TestScanHeaderMix(t *testing.T) {
	chat := oneDoc(t, testdata(t, "geochat.xml"))
	martiStart := strings.Index(string(chat), "<marti>")
	martiEnd := strings.Index(string(chat), "</marti>") + len("</marti>")

	tests := []struct {
		file string
		want Header
	}{
		{"sa.xml", Header{
			Kind: DocEvent, UID: alphaUID, Type: "a-f-G-U-C", How: "m-g",
			Time:  mustTime(t, "2026-03-14T09:26:41.112Z"),
			Start: mustTime(t, "2026-03-14T09:26:41.112Z"),
			Stale: mustTime(t, "2026-03-14T09:28:41.112Z"),
			Lat:   47.6204121, Lon: -122.3491337, HAE: 58.913, CE: 4.9, LE: 9999999,
			Callsign: "ALPHA", Endpoint: "*:-1:stcp", GroupName: "Cyan", GroupRole: "Team Lead",
			MartiStart: -1, MartiEnd: -1,
		}},
		{"geochat.xml", Header{
			Kind: DocEvent, UID: "GeoChat." + alphaUID + "." + bravoUID + ".6c1f0e2a-3b4d-4e5f-8a9b-0c1d2e3f4a5b",
			Type: TypeChat, How: HowServer,
			Time:  mustTime(t, "2026-03-14T09:26:53.589Z"),
			Start: mustTime(t, "2026-03-14T09:26:53.589Z"),
			Stale: mustTime(t, "2026-03-15T09:26:53.589Z"),
			Lat:   47.6205063, Lon: -122.3492774, HAE: 56.2, CE: 9999999, LE: 9999999,
			DestCallsigns: []string{"BRAVO", "CHARLIE"}, DestUIDs: []string{bravoUID},
			LinkUID: alphaUID, LinkType: "a-f-G-U-C", LinkRelation: "p-p",
			MartiStart: martiStart, MartiEnd: martiEnd,
		}},
		{"drawing.xml", Header{
			Kind: DocEvent, UID: "3a7b9c2d-1e4f-4a6b-8c0d-2e1f3a4b5c6d", Type: "u-d-f", How: "h-e",
			Time:  mustTime(t, "2026-03-14T09:27:10.004Z"),
			Start: mustTime(t, "2026-03-14T09:27:10.004Z"),
			Stale: mustTime(t, "2026-03-15T09:27:10.004Z"),
			Lat:   47.6201, Lon: -122.3488, HAE: 9999999, CE: 9999999, LE: 9999999,
			Callsign:   "Perimeter 1",
			MartiStart: -1, MartiEnd: -1,
		}},
		{"ping.xml", Header{
			Kind: DocEvent, UID: alphaUID + "-ping", Type: TypePing, How: "m-g",
			Time:  mustTime(t, "2026-03-14T09:27:11Z"),
			Start: mustTime(t, "2026-03-14T09:27:11Z"),
			Stale: mustTime(t, "2026-03-14T09:27:21Z"),
			CE:    9999999, LE: 9999999,
			MartiStart: -1, MartiEnd: -1,
		}},
		{"auth.xml", Header{
			Kind: DocAuth, AuthUsername: "alpha", AuthPassword: `s3cr&t"`, AuthUID: alphaUID,
			MartiStart: -1, MartiEnd: -1,
		}},
	}
	var h Header // reused across documents, as the engine does
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			doc := oneDoc(t, testdata(t, tt.file))
			if err := ScanHeader(doc, &h); err != nil {
				t.Fatal(err)
			}
			if !sameHeader(h, tt.want) {
				t.Errorf("header:\n got %+v\nwant %+v", h, tt.want)
			}
		})
	}
	if err := ScanHeader(chat, &h); err != nil {
		t.Fatal(err)
	}
	if h.IsSA() || h.IsPositionReport() || IsControl(h.Type) {
		t.Errorf("chat classified as SA/position/control")
	}
	if got := string(chat[h.MartiStart:h.MartiEnd]); !strings.HasPrefix(got, "<marti>") || !strings.HasSuffix(got, "</marti>") {
		t.Errorf("marti range covers %q", got)
	}
}

func TestScanHeaderCases(t *testing.T) {
	const marti = `<marti><dest callsign="B" uid="U1"/><dest uid="U2"></dest><dest callsign="B"/><x><dest callsign="deep"/></x></marti>`
	tests := []struct {
		name    string
		doc     string
		check   func(h *Header) bool
		wantErr error
	}{
		{name: "several dests, both attributes, duplicates kept",
			doc: `<event><detail>` + marti + `</detail></event>`,
			check: func(h *Header) bool {
				return slices.Equal(h.DestCallsigns, []string{"B", "B"}) && slices.Equal(h.DestUIDs, []string{"U1", "U2"}) &&
					h.MartiStart == len(`<event><detail>`) && h.MartiEnd == len(`<event><detail>`+marti)
			}},
		{name: "empty marti element",
			doc: `<event><detail><marti/></detail></event>`,
			check: func(h *Header) bool {
				return len(h.DestCallsigns) == 0 && h.MartiStart == 15 && h.MartiEnd == 23
			}},
		{name: "only the first marti is read",
			doc: `<event><detail><marti><dest uid="1"/></marti><marti><dest uid="2"/></marti></detail></event>`,
			check: func(h *Header) bool {
				return slices.Equal(h.DestUIDs, []string{"1"}) && h.MartiEnd == 45
			}},
		{name: "marti outside detail is not routing",
			doc:   `<event><marti><dest callsign="X"/></marti><detail/></event>`,
			check: func(h *Header) bool { return h.MartiStart == -1 && len(h.DestCallsigns) == 0 }},
		{name: "entities resolved",
			doc: `<event uid="a&amp;b"><detail><contact callsign="A&lt;&#x41;&#66;&gt;" endpoint="&foo; & &#xZZ; &#1114112;"/></detail></event>`,
			check: func(h *Header) bool {
				return h.UID == "a&b" && h.Callsign == "A<AB>" && h.Endpoint == "&foo; & &#xZZ; &#1114112;"
			}},
		{name: "single quotes and spaces around '='",
			doc:   `<event uid = 'x"y' type=  "a-f"/>`,
			check: func(h *Header) bool { return h.UID == `x"y` && h.Type == "a-f" }},
		{name: "empty attribute values",
			doc:   `<event uid=""><detail><contact callsign="" endpoint=""/></detail></event>`,
			check: func(h *Header) bool { return h.UID == "" && !h.IsSA() }},
		{name: "point after detail, nested point ignored",
			doc:   `<event><detail><point lat="9"/></detail><point lat="1.5" lon="-2" hae="x" ce="NaN" le="1e3"/></event>`,
			check: func(h *Header) bool { return h.Lat == 1.5 && h.Lon == -2 && h.HAE == 0 && h.CE == 0 && h.LE == 1000 }},
		{name: "elements below detail's children are ignored",
			doc:   `<event><detail><x><contact callsign="no"/><__group name="no"/><link uid="no"/></x></detail></event>`,
			check: func(h *Header) bool { return h.Callsign == "" && h.GroupName == "" && h.LinkUID == "" }},
		{name: "first contact, group and link win",
			doc:   `<event><detail><contact callsign="1"/><contact callsign="2"/><__group name="1"/><__group name="2"/><link uid="1"/><link uid="2"/></detail></event>`,
			check: func(h *Header) bool { return h.Callsign == "1" && h.GroupName == "1" && h.LinkUID == "1" }},
		{name: "markup in comments and CDATA is text",
			doc: `<event><detail><remarks><![CDATA[<contact callsign="fake"/></detail>]]></remarks><!-- <marti> --><?pi <contact?></detail></event>`,
			check: func(h *Header) bool {
				return h.Callsign == "" && h.MartiStart == -1
			}},
		{name: "declaration before the root", doc: `<?xml version="1.0"?><!-- c --><event uid="u"/>`,
			check: func(h *Header) bool { return h.UID == "u" && h.Kind == DocEvent }},
		{name: "times with offsets and without fraction",
			doc: `<event time="2026-03-14T11:26:41+02:00" start="2026-03-14T09:26:41.5Z" stale="tomorrow"/>`,
			check: func(h *Header) bool {
				return h.Time.Equal(time.Date(2026, 3, 14, 9, 26, 41, 0, time.UTC)) &&
					h.Start.Equal(time.Date(2026, 3, 14, 9, 26, 41, 5e8, time.UTC)) && h.Stale.IsZero()
			}},
		{name: "auth with callsign", doc: `<auth><cot username="u" password="p" uid="id" callsign="CS"/></auth>`,
			check: func(h *Header) bool {
				return h.Kind == DocAuth && h.AuthCallsign == "CS" && h.AuthUID == "id" && !h.IsSA()
			}},
		{name: "event elements inside auth are ignored", doc: `<auth><detail><contact callsign="x"/></detail></auth>`,
			check: func(h *Header) bool { return h.Kind == DocAuth && h.Callsign == "" }},

		{name: "other root", doc: `<html><body/></html>`, wantErr: ErrNotEvent},
		{name: "empty", doc: ``, wantErr: ErrNotEvent},
		{name: "text only", doc: `event`, wantErr: ErrNotEvent},
		{name: "close tag first", doc: `</x><event uid="u"/>`, wantErr: ErrNotEvent},
		{name: "unclosed root", doc: `<event><detail/>`, wantErr: ErrMalformed},
		{name: "unterminated tag", doc: `<event><detail`, wantErr: ErrMalformed},
		{name: "unterminated quote", doc: `<event uid="x/>`, wantErr: ErrMalformed},
		{name: "unterminated comment", doc: `<event><!-- </event>`, wantErr: ErrMalformed},
		{name: "DOCTYPE", doc: `<!DOCTYPE x><event/>`, wantErr: ErrMalformed},
		{name: "bad close tag", doc: `<event></ >`, wantErr: ErrMalformed},

		// "</event" anywhere but in the root's end tag: TAK clients would cut the event there.
		{name: "event end in CDATA", doc: `<event><detail><remarks><![CDATA[</event>]]></remarks></detail></event>`, wantErr: ErrEmbeddedEventEnd},
		{name: "event end in a comment", doc: `<event><detail><!-- </event> --></detail></event>`, wantErr: ErrEmbeddedEventEnd},
		{name: "event end in a processing instruction", doc: `<event><?x </event> ?></event>`, wantErr: ErrEmbeddedEventEnd},
		{name: "event end in an attribute value", doc: `<event uid="</event>"/>`, wantErr: ErrEmbeddedEventEnd},
		{name: "event end in a value of an empty root", doc: `<event how='a</event'/>`, wantErr: ErrEmbeddedEventEnd},
		{name: "event end without its > in text", doc: `<event><detail><remarks>x</event</remarks></detail></event>`, wantErr: ErrEmbeddedEventEnd},
		{name: "event end after the root", doc: `<event></event></event>`, wantErr: ErrEmbeddedEventEnd},
		{name: "event end with space is the root's own", doc: `<event uid="u"><detail/></event >`,
			check: func(h *Header) bool { return h.UID == "u" }},
		{name: "escaped event end is text", doc: `<event><detail><remarks>&lt;/event&gt;</remarks></detail></event>`,
			check: func(h *Header) bool { return h.Kind == DocEvent }},
		{name: "event end tag inside auth is not an event's", doc: `<auth><event></event><cot username="u"/></auth>`,
			check: func(h *Header) bool { return h.Kind == DocAuth && h.AuthUsername == "u" }},
		{name: "auth end in auth is not an event's", doc: `<auth><cot username="</auth>"/></auth>`,
			check: func(h *Header) bool { return h.Kind == DocAuth && h.AuthUsername == "</auth>" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := Header{UID: "stale", DestUIDs: []string{"old"}, MartiStart: 3}
			err := ScanHeader([]byte(tt.doc), &h)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if !sameHeader(h, Header{MartiStart: -1, MartiEnd: -1}) {
					t.Errorf("header not reset after error: %+v", h)
				}
				return
			}
			if !tt.check(&h) {
				t.Errorf("header = %+v", h)
			}
		})
	}
}

func TestScanHeaderReusesSlices(t *testing.T) {
	doc := []byte(`<event><detail><marti><dest callsign="A"/><dest callsign="B"/></marti></detail></event>`)
	var h Header
	if err := ScanHeader(doc, &h); err != nil {
		t.Fatal(err)
	}
	first := &h.DestCallsigns[0]
	if err := ScanHeader(doc, &h); err != nil {
		t.Fatal(err)
	}
	if &h.DestCallsigns[0] != first {
		t.Error("DestCallsigns was reallocated")
	}
	allocs := testing.AllocsPerRun(100, func() { _ = ScanHeader(doc, &h) })
	if allocs > 1 {
		t.Errorf("%v allocs per ScanHeader, want at most 1", allocs)
	}
}

func TestScanHeaderAllocs(t *testing.T) {
	var h Header
	for _, name := range append(slices.Clone(mixFiles), "auth.xml") {
		doc := oneDoc(t, testdata(t, name))
		allocs := testing.AllocsPerRun(100, func() {
			if err := ScanHeader(doc, &h); err != nil {
				t.Fatal(err)
			}
		})
		if allocs > 1 {
			t.Errorf("%s: %v allocs per ScanHeader, want at most 1", name, allocs)
		}
	}
}

func TestParseTime(t *testing.T) {
	tests := []struct {
		in   string
		want string // RFC 3339 in UTC; "" for the zero Time
	}{
		{"2016-01-13T20:43:37.842Z", "2016-01-13T20:43:37.842Z"},
		{"2016-01-13T20:43:37Z", "2016-01-13T20:43:37Z"},
		{"2016-01-13T20:43:37.123456789Z", "2016-01-13T20:43:37.123456789Z"},
		{"2016-01-13T20:43:37.1234567891Z", "2016-01-13T20:43:37.123456789Z"},
		{"2016-01-13t20:43:37.5z", "2016-01-13T20:43:37.5Z"},
		{"2016-01-13T22:43:37+02:00", "2016-01-13T20:43:37Z"},
		{"2016-01-13T18:13:37.25-02:30", "2016-01-13T20:43:37.25Z"},
		{"2016-01-01T00:30:00+01:00", "2015-12-31T23:30:00Z"},
		{"2024-02-29T00:00:00Z", "2024-02-29T00:00:00Z"},
		{"2023-02-29T00:00:00Z", ""},
		{"2016-13-01T00:00:00Z", ""},
		{"2016-01-13T24:00:00Z", ""},
		{"2016-01-13T20:60:00Z", ""},
		{"2016-01-13T20:43:37", ""},
		{"2016-01-13T20:43:37.Z", ""},
		{"2016-01-13 20:43:37Z", ""},
		{"2016-01-13T20:43:37+0200", ""},
		{"2016-01-13T20:43:37+02:60", ""},
		{"2016-01-13T20:43:37ZZ", ""},
		{"2016-0a-13T20:43:37Z", ""},
		{"", ""},
		{"yesterday", ""},
	}
	for _, tt := range tests {
		got := parseTime([]byte(tt.in))
		var want time.Time
		if tt.want != "" {
			want = mustTime(t, tt.want)
		}
		if !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("parseTime(%q) = %v, want %v", tt.in, got, want)
		}
	}
}

func TestIsControl(t *testing.T) {
	for _, typ := range []string{TypeTB, TypeTBA, TypeTBC, TypeTBQ, TypeTXCF, TypePing, TypePong,
		TypeTakpRequest, TypeTakpOffer, TypeTakpResponse, TypeClientMetrics, TypeIncognitoEnable, TypeIncognitoDisable} {
		if !IsControl(typ) {
			t.Errorf("IsControl(%q) = false", typ)
		}
	}
	for _, typ := range []string{"", "a-f-G-U-C", TypeDelete, TypeChat, TypeChatDeliveryFailure, "t-x-c", "t-x-c-t-r-x", "t-x-m-c", "T-X-C-T"} {
		if IsControl(typ) {
			t.Errorf("IsControl(%q) = true", typ)
		}
	}
}

func TestIsSA(t *testing.T) {
	sa := Header{Kind: DocEvent, UID: "u", Type: "a-f-G-U-C", Callsign: "c", Endpoint: "*:-1:stcp"}
	tests := []struct {
		name         string
		mod          func(h *Header)
		sa, position bool
	}{
		{"position", func(*Header) {}, true, true},
		{"SA of a non-atom", func(h *Header) { h.Type = "b-m-p-s-p-i" }, true, false},
		{"no uid", func(h *Header) { h.UID = "" }, false, false},
		{"no callsign", func(h *Header) { h.Callsign = "" }, false, false},
		{"no endpoint", func(h *Header) { h.Endpoint = "" }, false, false},
		{"auth", func(h *Header) { h.Kind = DocAuth }, false, false},
	}
	for _, tt := range tests {
		h := sa
		tt.mod(&h)
		if h.IsSA() != tt.sa || h.IsPositionReport() != tt.position {
			t.Errorf("%s: IsSA %v IsPositionReport %v", tt.name, h.IsSA(), h.IsPositionReport())
		}
	}
}

func TestStripMarti(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"geochat", string(oneDoc(t, testdata(t, "geochat.xml"))),
			strings.Replace(string(oneDoc(t, testdata(t, "geochat.xml"))),
				`<marti><dest callsign='BRAVO'/><dest uid='ANDROID-9d8e7f6a5b4c3d21'/><dest callsign='CHARLIE'/></marti>`, "", 1)},
		{"with whitespace around",
			"<event>\n <detail>\n  <marti>\n   <dest uid=\"x\"/>\n  </marti>\n  <remarks/>\n </detail>\n</event>",
			"<event>\n <detail>\n  \n  <remarks/>\n </detail>\n</event>"},
		{"empty marti", `<event><detail><contact callsign="a"/><marti/></detail></event>`,
			`<event><detail><contact callsign="a"/></detail></event>`},
		{"marti alone in detail", `<event><detail><marti><dest callsign="B"/></marti></detail></event>`,
			`<event><detail></detail></event>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Header
			if err := ScanHeader([]byte(tt.doc), &h); err != nil {
				t.Fatal(err)
			}
			doc := []byte(tt.doc)
			got := StripMarti(doc, &h)
			if string(got) != tt.want {
				t.Errorf("StripMarti:\n got %q\nwant %q", got, tt.want)
			}
			if &got[0] == &doc[0] {
				t.Error("result aliases the input")
			}
			if string(doc) != tt.doc {
				t.Error("input modified")
			}
			oneDoc(t, got)
		})
	}

	doc := oneDoc(t, testdata(t, "sa.xml"))
	var h Header
	if err := ScanHeader(doc, &h); err != nil {
		t.Fatal(err)
	}
	if got := StripMarti(doc, &h); &got[0] != &doc[0] || len(got) != len(doc) {
		t.Error("without <marti> StripMarti must return doc itself")
	}
	if got := StripMarti(doc[:10], &Header{MartiStart: 5, MartiEnd: 20}); len(got) != 10 {
		t.Error("out-of-range marti bounds must be ignored")
	}
}

// parseTime is ParseTime with the zero Time for anything it refuses, as the tests compare.
func parseTime(b []byte) time.Time {
	t, _ := ParseTime(b)
	return t
}
