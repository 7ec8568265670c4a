package web

import (
	"bytes"
	"encoding/xml"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"cotd/cot"
)

// shape lists a document's elements with their attribute names, in order:
// what ATAK's parser looks at, without the values.
func shape(t *testing.T, doc []byte) []string {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(doc))
	var out []string
	for {
		tok, err := d.Token()
		if err != nil {
			break
		}
		if se, ok := tok.(xml.StartElement); ok {
			var names []string
			for _, a := range se.Attr {
				names = append(names, a.Name.Local)
			}
			slices.Sort(names)
			out = append(out, se.Name.Local+"("+strings.Join(names, " ")+")")
		}
	}
	return out
}

func TestGeoChatHasATAKsShape(t *testing.T) {
	fixture, err := os.ReadFile("testdata/geochat.xml")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 14, 9, 26, 53, 589e6, time.UTC)
	got := geoChat(chatFrom{UID: "cotd-web-console", Callsign: "HQ"},
		chatTo{UID: "ANDROID-9d8e7f6a5b4c3d21", Callsign: "BRAVO"}, "Meet at the north gate & bring <PRC-152>", "m1", now)

	// ATAK's chat minus what only a device adds (its server destination).
	want := slices.DeleteFunc(shape(t, fixture), func(s string) bool { return strings.HasPrefix(s, "__serverdestination") })
	// ATAK lists every recipient in <marti>; the console addresses one.
	want = slices.DeleteFunc(want, func(s string) bool { return strings.HasPrefix(s, "dest(") })
	gotShape := slices.DeleteFunc(shape(t, got), func(s string) bool { return strings.HasPrefix(s, "dest(") })
	if !slices.Equal(gotShape, want) {
		t.Errorf("shape differs from ATAK's\n got %v\nwant %v", gotShape, want)
	}

	var h cot.Header
	if err := cot.ScanHeader(got, &h); err != nil {
		t.Fatalf("the engine cannot scan it: %v\n%s", err, got)
	}
	if h.Type != cot.TypeChat || !slices.Equal(h.DestCallsigns, []string{"BRAVO"}) || len(h.DestUIDs) != 0 ||
		h.UID != "GeoChat.cotd-web-console.ANDROID-9d8e7f6a5b4c3d21.m1" || !h.Time.Equal(now) || !h.Stale.Equal(now.Add(24*time.Hour)) {
		t.Errorf("header %+v", h)
	}
	c, err := readChat(got)
	if err != nil || c.From != "HQ" || c.Room != "BRAVO" || c.FromUID != "cotd-web-console" || c.Text != "Meet at the north gate & bring <PRC-152>" {
		t.Errorf("read back %+v, %v", c, err)
	}
}

func TestGeoChatToAllChatRoomsHasNoMarti(t *testing.T) {
	got := geoChat(chatFrom{UID: "u", Callsign: "HQ"}, chatTo{}, "line one\nline \"two\"", "m2", time.Now())
	var h cot.Header
	if err := cot.ScanHeader(got, &h); err != nil {
		t.Fatal(err)
	}
	if h.MartiStart != -1 || !strings.Contains(string(got), `chatroom="All Chat Rooms" id="All Chat Rooms"`) {
		t.Errorf("a chat to All Chat Rooms must carry no <marti> and name the room:\n%s", got)
	}
	if c, err := readChat(got); err != nil || c.Text != "line one\nline \"two\"" || c.Room != AllChatRooms {
		t.Errorf("read back %+v, %v", c, err)
	}
}

func TestReadChatOfATAKsChat(t *testing.T) {
	fixture, _ := os.ReadFile("testdata/geochat.xml")
	c, err := readChat(fixture)
	if err != nil || c.From != "ALPHA" || c.Room != "BRAVO" || c.FromUID != "ANDROID-5f3c9a1e2b7d4c60" ||
		c.Text != "Meet at the north gate & bring the spare radio <PRC-152>" {
		t.Errorf("%+v, %v", c, err)
	}
	if _, err := readChat([]byte(`<event type="b-t-f"><detail><remarks>x</remarks></detail></event>`)); err == nil {
		t.Error("a b-t-f without <__chat> read as a chat")
	}
}

func TestReadMotion(t *testing.T) {
	fixture, _ := os.ReadFile("testdata/sa.xml")
	if m := readMotion(fixture); !m.OK || m.Course != 214.71 || m.Speed != 1.32 {
		t.Errorf("ATAK's SA: %+v", m)
	}
	for name, doc := range map[string]string{
		"double quotes, spaced": `<event><point lat="1"/><detail ><contact callsign="A"/><track  speed = "2.5"  course="3" /></detail></event>`,
		"after a deeper track":  `<event><detail><x><track course="9" speed="9"/></x><!-- c --><track course='3' speed='2.5'></track></detail></event>`,
		"after CDATA":           `<event><detail><remarks><![CDATA[a </detail> b]]></remarks><track course="3" speed="2.5"/></detail></event>`,
	} {
		if m := readMotion([]byte(doc)); !m.OK || m.Course != 3 || m.Speed != 2.5 {
			t.Errorf("%s: %+v", name, m)
		}
	}
	for name, doc := range map[string]string{
		"no track":        `<event><point lat="1" lon="2"/><detail><contact callsign="A"/></detail></event>`,
		"track elsewhere": `<event><point lat="1" lon="2"/><detail/><track course="1" speed="2"/></event>`,
		"not numbers":     `<event><detail><track course="north" speed="fast"/></detail></event>`,
		"NaN":             `<event><detail><track course="NaN" speed="1"/></detail></event>`,
		"broken":          `<event><detail><track course="1" speed="2"`,
		"in CDATA":        `<event><detail><remarks><![CDATA[<track course="1" speed="2"/>]]></remarks></detail></event>`,
		"in a comment":    `<event><detail><!-- <track course="1" speed="2"/> --></detail></event>`,
		"in a value":      `<event><detail><remarks note='<track course="1" speed="2"/>'/></detail></event>`,
		"nested deeper":   `<event><detail><x><track course="1" speed="2"/></x></detail></event>`,
		"not in an event": `<auth><detail><track course="1" speed="2"/></detail></auth>`,
	} {
		if m := readMotion([]byte(doc)); m.OK {
			t.Errorf("%s: read %+v", name, m)
		}
	}
}
