package takproto

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"cotd/cot"
)

// xmlChild is one child of <detail> as encoding/xml, a parser independent of ours, reads it.
type xmlChild struct {
	name  string
	attrs map[string]string
	raw   string // its bytes in the document
}

type xmlEvent struct {
	attrs, point map[string]string
	detail       []xmlChild
	hasDetail    bool
}

func attrMap(as []xml.Attr) map[string]string {
	m := make(map[string]string, len(as))
	for _, a := range as {
		m[a.Name.Local] = a.Value
	}
	return m
}

// parseXMLEvent reads doc with encoding/xml, which also proves it well-formed.
func parseXMLEvent(t *testing.T, doc []byte) xmlEvent {
	t.Helper()
	var ev xmlEvent
	d := xml.NewDecoder(bytes.NewReader(doc))
	depth, start := 0, int64(0)
	var cur *xmlChild
	for {
		off := d.InputOffset()
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("encoding/xml: %v in\n%s", err, doc)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			depth++
			switch {
			case depth == 1:
				ev.attrs = attrMap(tok.Attr)
			case depth == 2 && tok.Name.Local == "point":
				ev.point = attrMap(tok.Attr)
			case depth == 2 && tok.Name.Local == "detail":
				ev.hasDetail = true
			case depth == 3:
				start = off
				cur = &xmlChild{name: tok.Name.Local, attrs: attrMap(tok.Attr)}
			}
		case xml.EndElement:
			if depth == 3 {
				cur.raw = string(doc[start:d.InputOffset()])
				ev.detail = append(ev.detail, *cur)
			}
			depth--
		}
	}
	return ev
}

// canonical renders a detail child so that a typed element regenerated from its fields
// compares equal to the source element: attributes sorted, numbers of typed elements
// compared as numbers. Other elements must come back byte for byte.
func (c xmlChild) canonical() string {
	if _, ok := typedByName([]byte(c.name)); !ok {
		return c.raw
	}
	keys := make([]string, 0, len(c.attrs))
	for k := range c.attrs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	s := c.name
	for _, k := range keys {
		v := c.attrs[k]
		if c.name == "track" || c.name == "status" {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				v = strconv.FormatFloat(f, 'g', -1, 64)
			}
		}
		s += " " + k + "=" + strconv.Quote(v)
	}
	return s
}

func canonicalDetail(cs []xmlChild) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.canonical())
	}
	slices.Sort(out)
	return out
}

// roundTripCases say what FromXML must make of each fixture's <detail>.
var roundTripCases = map[string]struct {
	xmlDetail string
	typed     []string // typed fields set
}{
	"sa":     {`<uid Droid='VIKING'/>`, []string{"contact", "__group", "precisionlocation", "status", "takv", "track"}},
	"chat":   {"", nil}, // the whole detail content; filled in from the fixture
	"marker": {"", []string{"contact"}},
	"ping":   {"", nil},
	"nodetak": {`<uid Droid="PROXY"/><_flow-tags_><NodeCoT-14.23.2>2026-11-26T06:52:43.026Z</NodeCoT-14.23.2></_flow-tags_>`,
		[]string{"contact", "__group", "takv"}},
}

func typedSet(d *Detail) []string {
	var s []string
	if d == nil {
		return nil
	}
	for k, present := range [numTyped]bool{d.Contact != nil, d.Group != nil, d.PrecisionLocation != nil,
		d.Status != nil, d.Takv != nil, d.Track != nil} {
		if present {
			s = append(s, typed(k).String())
		}
	}
	return s
}

func innerDetail(t *testing.T, doc []byte) string {
	t.Helper()
	i := bytes.Index(doc, []byte("<detail>"))
	j := bytes.LastIndex(doc, []byte("</detail>"))
	if i < 0 || j < i {
		t.Fatalf("no <detail> in %s", doc)
	}
	return string(doc[i+len("<detail>") : j])
}

// TestXMLRoundTrip converts each fixture XML -> v1 frame -> XML and checks that uid, type,
// how, times (to the millisecond), point and detail survive: typed fields regenerated, the
// rest byte for byte.
func TestXMLRoundTrip(t *testing.T) {
	for _, fx := range xmlFixtures {
		t.Run(fx.name, func(t *testing.T) {
			doc := fixtureDoc(t, fx.name)
			want := roundTripCases[fx.name]
			switch fx.name {
			case "chat":
				want.xmlDetail = innerDetail(t, doc)
			case "marker":
				want.xmlDetail = strings.Replace(innerDetail(t, doc), `<contact callsign='Route Alpha'/>`, "", 1)
			}

			var m TakMessage
			if err := FromXML(doc, &m); err != nil {
				t.Fatal(err)
			}
			var xmlDetail string
			if m.CotEvent.Detail != nil {
				xmlDetail = m.CotEvent.Detail.XmlDetail
			}
			if xmlDetail != want.xmlDetail {
				t.Errorf("XmlDetail = %q\nwant       %q", xmlDetail, want.xmlDetail)
			}
			if got := typedSet(m.CotEvent.Detail); !slices.Equal(got, want.typed) {
				t.Errorf("typed fields %q, want %q", got, want.typed)
			}

			// Through the wire format and back.
			stream := AppendMessageFrame(nil, &m)
			var back TakMessage
			res := frameAllWays(t, 1<<16, stream)
			if len(res.payloads) != 1 || res.err != nil {
				t.Fatalf("framing: %v", res)
			}
			if err := back.Unmarshal([]byte(res.payloads[0])); err != nil {
				t.Fatal(err)
			}
			if !equalMsg(&back, &m) {
				t.Fatalf("v1 round trip:\n%s\n%s", dump(&back), dump(&m))
			}
			out, err := AppendXML(nil, &back)
			if err != nil {
				t.Fatal(err)
			}

			// The router's view of both documents is the same.
			var h0, h1 cot.Header
			if err := cot.ScanHeader(doc, &h0); err != nil {
				t.Fatal(err)
			}
			if err := cot.ScanHeader(out, &h1); err != nil {
				t.Fatalf("cot.ScanHeader(output): %v\n%s", err, out)
			}
			for _, p := range []*time.Time{&h0.Time, &h0.Start, &h0.Stale} {
				*p = p.Truncate(time.Millisecond)
			}
			h0.MartiStart, h0.MartiEnd, h1.MartiStart, h1.MartiEnd = 0, 0, 0, 0
			if !headersEqual(&h0, &h1) {
				t.Errorf("headers differ:\nin  %+v\nout %+v", h0, h1)
			}

			// Detail content: typed elements regenerated, the rest byte for byte in place.
			in, got := parseXMLEvent(t, doc), parseXMLEvent(t, out)
			if !slices.Equal(canonicalDetail(in.detail), canonicalDetail(got.detail)) {
				t.Errorf("detail children differ:\nin  %q\nout %q", canonicalDetail(in.detail), canonicalDetail(got.detail))
			}
			if !bytes.Contains(out, []byte("<detail>"+want.xmlDetail)) && want.xmlDetail != "" {
				t.Errorf("xmlDetail not kept byte for byte in\n%s", out)
			}
			for _, k := range []string{"uid", "type", "how"} {
				if in.attrs[k] != got.attrs[k] {
					t.Errorf("event %s: %q -> %q", k, in.attrs[k], got.attrs[k])
				}
			}
			for k, v := range in.point {
				a, _ := strconv.ParseFloat(v, 64)
				b, err := strconv.ParseFloat(got.point[k], 64)
				if err != nil || a != b {
					t.Errorf("point %s: %q -> %q", k, v, got.point[k])
				}
			}

			// XML -> v1 -> XML -> v1 is stable.
			var again TakMessage
			if err := FromXML(out, &again); err != nil || !equalMsg(&again, &m) {
				t.Errorf("second conversion: %v\n%s\n%s", err, dump(&again), dump(&m))
			}
			golden(t, fx.name+".v1.golden", stream)
			golden(t, fx.name+".out.xml", out)
		})
	}
}

func headersEqual(a, b *cot.Header) bool {
	return a.Kind == b.Kind && a.UID == b.UID && a.Type == b.Type && a.How == b.How &&
		a.Time.Equal(b.Time) && a.Start.Equal(b.Start) && a.Stale.Equal(b.Stale) &&
		a.Lat == b.Lat && a.Lon == b.Lon && a.HAE == b.HAE && a.CE == b.CE && a.LE == b.LE &&
		a.Callsign == b.Callsign && a.Endpoint == b.Endpoint && a.GroupName == b.GroupName &&
		a.GroupRole == b.GroupRole && slices.Equal(a.DestCallsigns, b.DestCallsigns) &&
		slices.Equal(a.DestUIDs, b.DestUIDs) && a.LinkUID == b.LinkUID && a.LinkType == b.LinkType &&
		a.LinkRelation == b.LinkRelation && a.IsSA() == b.IsSA()
}

// TestGoldenFramesDecode reads the golden v1 frames back (the decoder direction of the
// byte-exact check): fed whole, byte by byte and in random chunks, each is one payload that
// decodes to what FromXML makes of the fixture.
func TestGoldenFramesDecode(t *testing.T) {
	for _, fx := range xmlFixtures {
		t.Run(fx.name, func(t *testing.T) {
			stream := readFile(t, "testdata/"+fx.name+".v1.golden")
			res := frameAllWays(t, 1<<16, stream)
			if len(res.payloads) != 1 || res.err != nil || res.buffered != 0 {
				t.Fatalf("framing golden: %v", res)
			}
			var m TakMessage
			if err := m.Unmarshal([]byte(res.payloads[0])); err != nil {
				t.Fatal(err)
			}
			if want := fixtureMsg(t, fx.name); !equalMsg(&m, want) {
				t.Errorf("golden decodes to\n%s\nwant\n%s", dump(&m), dump(want))
			}
		})
	}
}

// detailEvent wraps detail content in an event.
func detailEvent(inner string) []byte {
	return []byte(`<event version="2.0" uid="u" type="a-f-G" how="m-g" time="2026-01-01T00:00:00Z" start="2026-01-01T00:00:00Z" stale="2026-01-01T00:01:00Z"><point lat="1" lon="2" hae="3" ce="4" le="5"/><detail>` + inner + `</detail></event>`)
}

func TestFromXMLDetailRules(t *testing.T) {
	for _, tc := range []struct {
		name   string
		inner  string
		xml    string  // expected XmlDetail
		detail *Detail // expected typed fields (XmlDetail set from xml)
	}{
		{"nothing", "", "", nil},
		{"whitespace only", " \n\t", "", nil},
		{"contact callsign only", `<contact callsign="A"/>`, "", &Detail{Contact: &Contact{Callsign: "A"}}},
		{"contact both, start and end tag", `<contact endpoint="*:-1:stcp" callsign="A"></contact>`, "",
			&Detail{Contact: &Contact{Callsign: "A", Endpoint: "*:-1:stcp"}}},
		{"contact empty callsign", `<contact callsign=""/>`, "", &Detail{Contact: &Contact{}}},
		{"contact twice", `<contact callsign="A"/><contact callsign="B"/>`, `<contact callsign="A"/><contact callsign="B"/>`, nil},
		{"contact unmapped attribute", `<contact callsign="A" phone="1"/>`, `<contact callsign="A" phone="1"/>`, nil},
		{"contact without callsign", `<contact endpoint="e"/>`, `<contact endpoint="e"/>`, nil},
		{"contact repeated attribute", `<contact callsign="A" callsign="B"/>`, `<contact callsign="A" callsign="B"/>`, nil},
		{"contact with child", `<contact callsign="A"><x/></contact>`, `<contact callsign="A"><x/></contact>`, nil},
		{"contact with space", `<contact callsign="A"> </contact>`, `<contact callsign="A"> </contact>`, nil},
		{"contact with comment", `<contact callsign="A"><!--c--></contact>`, `<contact callsign="A"><!--c--></contact>`, nil},
		{"contact references", `<contact callsign="A&amp;B &#x4e2d;&#20013; &bogus; &#0;"/>`, "",
			&Detail{Contact: &Contact{Callsign: "A&B 中中 &bogus; &#0;"}}},
		{"contact control character", "<contact callsign=\"A\x01\"/>", "<contact callsign=\"A\x01\"/>", nil},
		{"nested contact does not count", `<a><contact callsign="X"/></a><contact callsign="Y"/>`,
			`<a><contact callsign="X"/></a>`, &Detail{Contact: &Contact{Callsign: "Y"}}},
		{"group", `<__group name="Cyan" role="Team Lead"/>`, "", &Detail{Group: &Group{Name: "Cyan", Role: "Team Lead"}}},
		{"group without role", `<__group name="Cyan"/>`, `<__group name="Cyan"/>`, nil},
		{"precisionlocation", `<precisionlocation geopointsrc="GPS" altsrc="DTED0"/>`, "",
			&Detail{PrecisionLocation: &PrecisionLocation{Geopointsrc: "GPS", Altsrc: "DTED0"}}},
		{"precisionlocation altsrc only", `<precisionlocation altsrc="???"/>`, `<precisionlocation altsrc="???"/>`, nil},
		{"status", `<status battery="0087"/>`, "", &Detail{Status: &Status{Battery: 87}}},
		{"status max", `<status battery="2147483647"/>`, "", &Detail{Status: &Status{Battery: math.MaxInt32}}},
		{"status over int", `<status battery="2147483648"/>`, `<status battery="2147483648"/>`, nil},
		{"status fraction", `<status battery="87.5"/>`, `<status battery="87.5"/>`, nil},
		{"status negative", `<status battery="-1"/>`, `<status battery="-1"/>`, nil},
		{"status empty", `<status battery=""/>`, `<status battery=""/>`, nil},
		{"status extra", `<status battery="5" readiness="true"/>`, `<status battery="5" readiness="true"/>`, nil},
		{"takv", `<takv device="d" platform="p" os="o" version="v"/>`, "",
			&Detail{Takv: &Takv{Device: "d", Platform: "p", Os: "o", Version: "v"}}},
		{"takv without os", `<takv device="d" platform="p" version="v"/>`, `<takv device="d" platform="p" version="v"/>`, nil},
		{"track", `<track course="359.9" speed="1e1"/>`, "", &Detail{Track: &Track{Speed: 10, Course: 359.9}}},
		{"track NaN", `<track course="1" speed="NaN"/>`, `<track course="1" speed="NaN"/>`, nil},
		{"track not a number", `<track course="1" speed="fast"/>`, `<track course="1" speed="fast"/>`, nil},
		{"track without course", `<track speed="1"/>`, `<track speed="1"/>`, nil},
		{"holes keep the bytes around them", "\n <remarks/>\n <contact callsign=\"A\"/>\n <!-- c -->",
			"\n <remarks/>\n \n <!-- c -->", &Detail{Contact: &Contact{Callsign: "A"}}},
		{"everything typed plus one", `<contact callsign="A"/><uid Droid="A"/><track speed="0" course="0"/>`,
			`<uid Droid="A"/>`, &Detail{Contact: &Contact{Callsign: "A"}, Track: &Track{}}},
		{"cdata and text kept", `<remarks><![CDATA[a<b]]> &amp; x</remarks>`, `<remarks><![CDATA[a<b]]> &amp; x</remarks>`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m TakMessage
			if err := FromXML(detailEvent(tc.inner), &m); err != nil {
				t.Fatal(err)
			}
			want := tc.detail
			if tc.xml != "" {
				if want == nil {
					want = &Detail{}
				}
				want.XmlDetail = tc.xml
			}
			if got := m.CotEvent.Detail; !equalMsg(&TakMessage{CotEvent: &CotEvent{Detail: got}}, &TakMessage{CotEvent: &CotEvent{Detail: want}}) {
				t.Errorf("got  %s\nwant %s", dump(&TakMessage{CotEvent: &CotEvent{Detail: got}}),
					dump(&TakMessage{CotEvent: &CotEvent{Detail: want}}))
			}
			// Whatever FromXML accepts, AppendXML writes back, and it converts the same.
			out, err := AppendXML(nil, &m)
			if err != nil {
				t.Fatal(err)
			}
			var again TakMessage
			if err := FromXML(out, &again); err != nil || !equalMsg(&again, &m) {
				t.Errorf("second conversion: %v\n%s\n%s", err, dump(&again), dump(&m))
			}
		})
	}
}

func TestFromXMLEvent(t *testing.T) {
	doc := "\xEF\xBB\xBF<?xml version='1.0'?>\n<!-- hi -->\n" +
		`<event version="2.0" uid="a&amp;b" type="a-h-G" how="h-e" access="Unrestricted" qos="1-r-c" opex="e-x" ` +
		`caveat="FOUO" releaseableTo="USA" extra="dropped" uid="second ignored" ` +
		`time="2026-05-02T16:05:09.3189+02:00" start="2026-05-02T14:05:09Z" stale='2026-05-02T14:05:09.5z'>` +
		`<point lat="-33.8688" lon="151.2093" hae="-12.5" ce="9999999" le="9999999.0" extra="1"/>` +
		`<point lat="1" lon="1"/></event>` + "\n"
	var m TakMessage
	if err := FromXML([]byte(doc), &m); err != nil {
		t.Fatal(err)
	}
	ms := time.Date(2026, 5, 2, 14, 5, 9, 0, time.UTC).UnixMilli()
	want := &CotEvent{Type: "a-h-G", Access: "Unrestricted", Qos: "1-r-c", Opex: "e-x", Uid: "a&b",
		SendTime: uint64(ms + 318), StartTime: uint64(ms), StaleTime: uint64(ms + 500), How: "h-e",
		Lat: -33.8688, Lon: 151.2093, Hae: -12.5, Ce: 9999999, Le: 9999999, Caveat: "FOUO", ReleaseableTo: "USA"}
	if !equalMsg(&m, &TakMessage{CotEvent: want}) {
		t.Errorf("got  %s\nwant %s", dump(&m), dump(&TakMessage{CotEvent: want}))
	}
	out, err := AppendXML(nil, &m)
	if err != nil {
		t.Fatal(err)
	}
	const wantOut = `<event version="2.0" uid="a&amp;b" type="a-h-G" how="h-e" time="2026-05-02T14:05:09.318Z" ` +
		`start="2026-05-02T14:05:09.000Z" stale="2026-05-02T14:05:09.500Z" access="Unrestricted" qos="1-r-c" ` +
		`opex="e-x" caveat="FOUO" releaseableTo="USA"><point lat="-33.8688" lon="151.2093" hae="-12.5" ` +
		`ce="9999999" le="9999999"/><detail/></event>`
	if string(out) != wantOut {
		t.Errorf("AppendXML:\n%s\nwant\n%s", out, wantOut)
	}
}

func TestFromXMLErrors(t *testing.T) {
	ev := func(attrs, body string) string {
		return `<event uid="u" type="t" ` + attrs + `><point lat="1" lon="2" hae="3" ce="4" le="5"/>` + body + `</event>`
	}
	for _, tc := range []struct {
		name string
		doc  string
		err  error
	}{
		{"auth", `<auth><cot username="a" password="b" uid="c"/></auth>`, cot.ErrNotEvent},
		{"other root", `<foo/>`, cot.ErrNotEvent},
		{"empty", ``, cot.ErrNotEvent},
		{"bad time", ev(`time="yesterday"`, ""), cot.ErrMalformed},
		{"time before the epoch", ev(`time="1969-12-31T23:59:59.999Z"`, ""), cot.ErrMalformed},
		{"bad day", ev(`time="2026-02-30T00:00:00Z"`, ""), cot.ErrMalformed},
		{"bad point", `<event><point lat="north"/></event>`, cot.ErrMalformed},
		{"infinite point", `<event><point lat="1e999"/></event>`, cot.ErrMalformed},
		{"NaN point", `<event><point lon="NaN"/></event>`, cot.ErrMalformed},
		{"mismatched tags", ev("", `<detail><a></b></detail>`), cot.ErrMalformed},
		{"unclosed", `<event><detail>`, cot.ErrMalformed},
		{"stray close", `</event>`, cot.ErrMalformed},
		{"junk before root", `x<event/>`, cot.ErrMalformed},
		{"bad attribute", `<event uid=u/>`, cot.ErrMalformed},
		{"attribute without space", `<event uid="u"type="t"/>`, cot.ErrMalformed},
		{"not UTF-8", ev("", "<detail><remarks>\xff</remarks></detail>"), cot.ErrMalformed},
		{"control character in uid", "<event uid=\"a\x02\"/>", cot.ErrMalformed},
		{"end tag in CDATA", ev("", `<detail><remarks><![CDATA[</event>]]></remarks></detail>`), cot.ErrMalformed},
		{"end tag in attribute", ev("", `<detail><x a="</event>"/></detail>`), cot.ErrMalformed},
		{"auth end tag in comment", ev("", `<detail><!--</auth>--></detail>`), cot.ErrMalformed},
		{"declaration inside", ev("", `<detail><?xml version="1.0"?></detail>`), cot.ErrMalformed},
		{"doctype", `<!DOCTYPE event><event/>`, cot.ErrMalformed},
		{"too deep", `<event><detail>` + strings.Repeat("<a>", 70) + strings.Repeat("</a>", 70) + `</detail></event>`, cot.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := TakMessage{SubmissionTime: 1}
			err := FromXML([]byte(tc.doc), &m)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if !equalMsg(&m, &TakMessage{}) {
				t.Errorf("not reset: %s", dump(&m))
			}
		})
	}
	// Errors about the event alone carry the cot sentinel the engine drops events by.
	for doc, want := range map[string]error{
		ev(`time="yesterday"`, ""):                                         cot.ErrImplausibleTime,
		ev(`stale="1969-12-31T23:59:59.999Z"`, ""):                         cot.ErrImplausibleTime,
		ev("", `<detail><remarks><![CDATA[</event>]]></remarks></detail>`): cot.ErrEmbeddedEventEnd,
		ev("", `<detail><!--</auth>--></detail>`):                          cot.ErrEmbeddedEventEnd,
		ev("", `<detail><a></b></detail>`):                                 nil,
	} {
		err := FromXML([]byte(doc), &TakMessage{})
		for _, e := range []error{cot.ErrImplausibleTime, cot.ErrEmbeddedEventEnd} {
			if errors.Is(err, e) != (e == want) {
				t.Errorf("FromXML(%s) = %v: wraps %v = %v", doc, err, e, !(e == want))
			}
		}
	}
	// A typed element's value may hold what would be refused in XmlDetail: it is escaped on
	// the way out.
	var m TakMessage
	if err := FromXML(detailEvent(`<contact callsign="</event>"/>`), &m); err != nil {
		t.Fatal(err)
	}
	out, err := AppendXML(nil, &m)
	if err != nil || !bytes.Contains(out, []byte(`callsign="&lt;/event&gt;"`)) {
		t.Errorf("%s %v", out, err)
	}
}

func TestAppendXMLDetail(t *testing.T) {
	base := func(d *Detail) *TakMessage {
		return &TakMessage{CotEvent: &CotEvent{Uid: "u", Type: "t", How: "h", Detail: d}}
	}
	const head = `<event version="2.0" uid="u" type="t" how="h" time="1970-01-01T00:00:00.000Z" ` +
		`start="1970-01-01T00:00:00.000Z" stale="1970-01-01T00:00:00.000Z"><point lat="0" lon="0" hae="0" ce="0" le="0"/>`
	for _, tc := range []struct {
		name string
		d    *Detail
		want string
	}{
		{"nil detail", nil, `<detail/>`},
		{"empty detail", &Detail{}, `<detail/>`},
		{"xml only", &Detail{XmlDetail: `<uid Droid="A"/>`}, `<detail><uid Droid="A"/></detail>`},
		{"typed in field order", &Detail{
			Track:             &Track{Speed: 1.5, Course: 270},
			Takv:              &Takv{Device: "d", Platform: "p", Os: "o", Version: "v"},
			Status:            &Status{Battery: 4294967295},
			PrecisionLocation: &PrecisionLocation{Geopointsrc: "g", Altsrc: "a"},
			Group:             &Group{Name: "n", Role: "r"},
			Contact:           &Contact{Callsign: "c"},
		}, `<detail><contact callsign="c"/><__group name="n" role="r"/><precisionlocation geopointsrc="g" altsrc="a"/>` +
			`<status battery="2147483647"/><takv device="d" platform="p" os="o" version="v"/>` +
			`<track speed="1.5" course="270"/></detail>`},
		{"xmlDetail wins", &Detail{XmlDetail: `<contact callsign="x" phone="1"/><a><track/></a>`,
			Contact: &Contact{Callsign: "c", Endpoint: "e"}, Track: &Track{Speed: 1}},
			`<detail><contact callsign="x" phone="1"/><a><track/></a><track speed="1" course="0"/></detail>`},
		{"escaping", &Detail{Contact: &Contact{Callsign: "<\"&'>\t\n\r\x01\xff€", Endpoint: "a b"}},
			`<detail><contact endpoint="a b" callsign="&lt;&quot;&amp;&apos;&gt;&#9;&#10;&#13;` + "\uFFFD\uFFFD€" + `"/></detail>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := AppendXML([]byte("pre"), base(tc.d))
			if err != nil {
				t.Fatal(err)
			}
			if want := "pre" + head + tc.want + "</event>"; string(out) != want {
				t.Errorf("got\n%s\nwant\n%s", out, want)
			}
			parseXMLEvent(t, out[3:])
			var h cot.Header
			if err := cot.ScanHeader(out[3:], &h); err != nil || h.UID != "u" {
				t.Errorf("cot.ScanHeader: %v", err)
			}
		})
	}
}

func TestAppendXMLRejects(t *testing.T) {
	ev := func(x string) *TakMessage {
		return &TakMessage{CotEvent: &CotEvent{Uid: "u", Detail: &Detail{XmlDetail: x}}}
	}
	// Microseconds since the epoch, as TAK Server's load tester sends them in protobuf mode.
	const micros = 1_765_000_000_000_000
	for _, tc := range []struct {
		name string
		m    *TakMessage
		also error // a cot error the event-level failures wrap besides ErrMalformed
	}{
		{"nil", nil, nil},
		{"no event", &TakMessage{TakControl: &TakControl{}}, nil},
		{"time out of range", &TakMessage{CotEvent: &CotEvent{StaleTime: maxMillis + 1}}, cot.ErrImplausibleTime},
		{"microseconds", &TakMessage{CotEvent: &CotEvent{SendTime: micros, StartTime: micros, StaleTime: micros}}, cot.ErrImplausibleTime},
		{"injection", ev(`</detail></event><event uid="forged"><detail>`), cot.ErrEmbeddedEventEnd},
		{"end tag in CDATA", ev(`<![CDATA[</event>]]>`), cot.ErrEmbeddedEventEnd},
		{"end tag in attribute", ev(`<a b="</event>"/>`), cot.ErrEmbeddedEventEnd},
		{"auth end tag", ev(`</auth>`), cot.ErrEmbeddedEventEnd},
		{"stray close", ev(`</detail>`), nil},
		{"unclosed", ev(`<remarks>`), nil},
		{"mismatch", ev(`<a></b>`), nil},
		{"declaration", ev(`<?xml version="1.0"?><a/>`), nil},
		{"bad tag", ev(`<a b=c/>`), nil},
		{"lone lt", ev(`a < b`), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := AppendXML([]byte("pre"), tc.m)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
			for _, e := range []error{cot.ErrImplausibleTime, cot.ErrEmbeddedEventEnd} {
				if errors.Is(err, e) != (e == tc.also) {
					t.Errorf("err = %v: wraps %v = %v, want %v", err, e, errors.Is(err, e), e == tc.also)
				}
			}
			if string(out) != "pre" {
				t.Errorf("dst changed to %q", out)
			}
		})
	}
	// The largest time is fine.
	if _, err := AppendXML(nil, &TakMessage{CotEvent: &CotEvent{SendTime: maxMillis}}); err != nil {
		t.Error(err)
	}
}

func TestAppendFloat(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		want string
	}{
		{0, "0"},
		{math.Copysign(0, -1), "-0"},
		{47.6204121, "47.6204121"},
		{-122.3491337, "-122.3491337"},
		{9999999, "9999999"},
		{0.30000000000000004, "0.30000000000000004"},
		{1e-6, "0.000001"},
		{1e-7, "1e-07"},
		{1e20, "100000000000000000000"},
		{1e21, "1e+21"},
		{5e-324, "5e-324"},
		{math.NaN(), "NaN"},
		{math.Inf(1), "Infinity"},
		{math.Inf(-1), "-Infinity"},
	} {
		got := string(appendFloat(nil, tc.v))
		if got != tc.want {
			t.Errorf("appendFloat(%v) = %q, want %q", tc.v, got, tc.want)
		}
		if back, err := strconv.ParseFloat(got, 64); err != nil || math.Float64bits(back) != math.Float64bits(tc.v) && !math.IsNaN(tc.v) {
			t.Errorf("%q reads back as %v, %v", got, back, err)
		}
	}
}

func TestConversionAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	for _, name := range []string{"sa", "chat", "ping"} {
		doc := fixtureDoc(t, name)
		var m TakMessage
		if n := testing.AllocsPerRun(100, func() { _ = FromXML(doc, &m) }); n > 2 {
			t.Errorf("%s: FromXML allocates %v times, want at most 2", name, n)
		}
		buf := make([]byte, 0, 4096)
		if n := testing.AllocsPerRun(100, func() { _, _ = AppendXML(buf[:0], &m) }); n != 0 {
			t.Errorf("%s: AppendXML allocates %v times with capacity", name, n)
		}
	}
}
