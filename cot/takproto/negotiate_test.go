package takproto

import (
	"testing"
	"time"

	"cotd/cot"
)

var negotiationNow = time.Date(2026, 5, 2, 14, 0, 0, 123_456_789, time.FixedZone("CEST", 2*3600))

func TestNegotiationMessages(t *testing.T) {
	const (
		times = `time="2026-05-02T12:00:00.123Z" start="2026-05-02T12:00:00.123Z" stale="2026-05-02T12:01:00.123Z">` +
			`<point lat="0" lon="0" hae="0" ce="999999" le="999999"/>`
		offer = `<event version="2.0" uid="9f3c&amp;1" type="t-x-takp-v" how="m-g" ` + times +
			`<detail><TakControl><TakProtocolSupport version="1"/></TakControl></detail></event>`
		yes = `<event version="2.0" uid="9f3c&amp;1" type="t-x-takp-r" how="m-g" ` + times +
			`<detail><TakControl><TakResponse status="true"/></TakControl></detail></event>`
		no = `<event version="2.0" uid="9f3c&amp;1" type="t-x-takp-r" how="m-g" ` + times +
			`<detail><TakControl><TakResponse status="false"/></TakControl></detail></event>`
		request = `<event version="2.0" uid="9f3c&amp;1" type="t-x-takp-q" how="m-g" ` + times +
			`<detail><TakControl><TakRequest version="1"/></TakControl></detail></event>`
	)
	for _, tc := range []struct {
		name, want, typ string
		got             []byte
	}{
		{"offer", offer, cot.TypeTakpOffer, AppendOffer([]byte("pre"), "9f3c&1", negotiationNow)},
		{"response true", yes, cot.TypeTakpResponse, AppendResponse([]byte("pre"), "9f3c&1", true, negotiationNow)},
		{"response false", no, cot.TypeTakpResponse, AppendResponse([]byte("pre"), "9f3c&1", false, negotiationNow)},
		{"request", request, cot.TypeTakpRequest, AppendRequest([]byte("pre"), "9f3c&1", 1, negotiationNow)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if string(tc.got) != "pre"+tc.want {
				t.Fatalf("got\n%s\nwant\n%s", tc.got, tc.want)
			}
			doc := tc.got[3:]
			var h cot.Header
			if err := cot.ScanHeader(doc, &h); err != nil {
				t.Fatal(err)
			}
			if h.Type != tc.typ || h.UID != "9f3c&1" || !cot.IsControl(h.Type) ||
				h.Stale.Sub(h.Time) != NegotiationStale {
				t.Errorf("header %+v", h)
			}
			parseXMLEvent(t, doc)
			// The events also convert, should a v1 peer ever need one.
			var m TakMessage
			if err := FromXML(doc, &m); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestParseRequest(t *testing.T) {
	const head = `<event version="2.0" uid="9f3c&amp;1" type="t-x-takp-q" how="m-g" time="2026-05-02T12:00:01Z" ` +
		`start="2026-05-02T12:00:01Z" stale="2026-05-02T12:01:01Z"><point lat="0" lon="0" hae="0" ce="999999" le="999999"/>`
	for _, tc := range []struct {
		name    string
		doc     string
		uid     string
		version int
		ok      bool
	}{
		{"commo request", "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n" + head +
			`<detail><TakControl><TakRequest version="1"/></TakControl></detail></event>`, "9f3c&1", 1, true},
		{"other version", head + `<detail><TakControl><TakRequest version='2'></TakRequest></TakControl></detail></event>`, "9f3c&1", 2, true},
		{"extra attributes and siblings", head + `<detail><x/><TakControl a="b"><y/><TakRequest z="1" version="1"/></TakControl></detail></event>`, "9f3c&1", 1, true},
		{"no request", head + `<detail><TakControl/></detail></event>`, "", 0, false},
		{"two requests", head + `<detail><TakControl><TakRequest version="1"/><TakRequest version="1"/></TakControl></detail></event>`, "", 0, false},
		{"no version", head + `<detail><TakControl><TakRequest/></TakControl></detail></event>`, "", 0, false},
		{"bad version", head + `<detail><TakControl><TakRequest version="one"/></TakControl></detail></event>`, "", 0, false},
		{"negative version", head + `<detail><TakControl><TakRequest version="-1"/></TakControl></detail></event>`, "", 0, false},
		{"request outside detail", head + `<TakControl><TakRequest version="1"/></TakControl><detail/></event>`, "", 0, false},
		{"request too deep", head + `<detail><a><TakControl><TakRequest version="1"/></TakControl></a></detail></event>`, "", 0, false},
		{"wrong type", `<event uid="u" type="t-x-takp-v"><detail><TakControl><TakRequest version="1"/></TakControl></detail></event>`, "", 0, false},
		{"no uid", `<event type="t-x-takp-q"><detail><TakControl><TakRequest version="1"/></TakControl></detail></event>`, "", 0, false},
		{"malformed", head + `<detail><TakControl><TakRequest version="1"></TakControl></detail></event>`, "", 0, false},
		{"auth", `<auth><cot username="a"/></auth>`, "", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uid, version, ok := ParseRequest([]byte(tc.doc))
			if uid != tc.uid || version != tc.version || ok != tc.ok {
				t.Errorf("ParseRequest = %q, %d, %v; want %q, %d, %v", uid, version, ok, tc.uid, tc.version, tc.ok)
			}
		})
	}
}

func TestNegotiationAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	buf := make([]byte, 0, 512)
	if n := testing.AllocsPerRun(100, func() { AppendOffer(buf[:0], "uid", negotiationNow) }); n != 0 {
		t.Errorf("AppendOffer: %v allocations with capacity", n)
	}
	req := []byte(`<event uid="u" type="t-x-takp-q"><detail><TakControl><TakRequest version="1"/></TakControl></detail></event>`)
	if n := testing.AllocsPerRun(100, func() { ParseRequest(req) }); n > 1 {
		t.Errorf("ParseRequest: %v allocations, want at most 1 (the uid)", n)
	}
}

// What one side writes, the other reads back; and a response that is not
// exactly one true or false TakResponse is not taken for one.
func TestParseResponse(t *testing.T) {
	for _, granted := range []bool{true, false} {
		uid, got, ok := ParseResponse(AppendResponse(nil, "offer-7", granted, negotiationNow))
		if !ok || uid != "offer-7" || got != granted {
			t.Errorf("ParseResponse(AppendResponse(%v)) = %q, %v, %v", granted, uid, got, ok)
		}
	}
	if uid, v, ok := ParseRequest(AppendRequest(nil, "offer-7", 1, negotiationNow)); !ok || uid != "offer-7" || v != 1 {
		t.Errorf("ParseRequest(AppendRequest) = %q, %d, %v", uid, v, ok)
	}
	const head = `<event version="2.0" uid="u" type="t-x-takp-r" how="m-g" time="2026-05-02T12:00:01Z" ` +
		`start="2026-05-02T12:00:01Z" stale="2026-05-02T12:01:01Z"><point lat="0" lon="0" hae="0" ce="9" le="9"/>`
	for name, doc := range map[string]string{
		"status yes":      head + `<detail><TakControl><TakResponse status="yes"/></TakControl></detail></event>`,
		"no status":       head + `<detail><TakControl><TakResponse/></TakControl></detail></event>`,
		"two responses":   head + `<detail><TakControl><TakResponse status="true"/><TakResponse status="true"/></TakControl></detail></event>`,
		"outside control": head + `<detail><TakResponse status="true"/></detail></event>`,
		"a request":       string(AppendRequest(nil, "u", 1, negotiationNow)),
		"broken":          head + `<detail><TakControl><TakResponse status="true"`,
	} {
		if uid, granted, ok := ParseResponse([]byte(doc)); ok {
			t.Errorf("%s: ParseResponse = %q, %v, true; want not ok", name, uid, granted)
		}
	}
}
