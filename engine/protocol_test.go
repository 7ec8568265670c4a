package engine_test

import (
	"bytes"
	"strings"
	"testing"

	"cotd/configs"
	"cotd/cot"
	"cotd/cot/takproto"
	"cotd/engine"
	et "cotd/engine/enginetest"
	"cotd/tlsstate/pki"
)

// sameEvent checks what a v1 client and an XML client must agree on.
func sameEvent(t *testing.T, what string, a, b *cot.Header) {
	t.Helper()
	if a.UID != b.UID || a.Type != b.Type || a.How != b.How ||
		!a.Time.Equal(b.Time) || !a.Start.Equal(b.Start) || !a.Stale.Equal(b.Stale) ||
		a.Lat != b.Lat || a.Lon != b.Lon || a.HAE != b.HAE || a.CE != b.CE || a.LE != b.LE ||
		a.Callsign != b.Callsign || a.Endpoint != b.Endpoint || a.GroupName != b.GroupName || a.LinkUID != b.LinkUID {
		t.Errorf("%s differs:\n v1  %+v\n xml %+v", what, *a, *b)
	}
}

func TestNegotiationAndMixedClients(t *testing.T) {
	p := et.NewPKI(t, pki.KeyECDSAP256)
	h := et.StartTLS(t, p, nil)
	for _, listener := range []string{"tcp", "tls"} {
		t.Run(listener, func(t *testing.T) {
			var v1 *et.Client
			if listener == "tcp" {
				v1 = et.Dial(t, h.TCPAddr())
			} else {
				v1 = et.DialTLS(t, h.TLSAddr(), p.Client(t, "v1"))
			}
			xml := et.Dial(t, h.TCPAddr())
			watcher := et.Dial(t, h.TCPAddr()) // stays XML and never asks
			// A dial returns before the server accepts; a client offered v1
			// has been accepted and joined, so broadcasts reach it.
			xml.Expect("the offer, once joined", et.Type(cot.TypeTakpOffer))
			watcher.Expect("the offer, once joined", et.Type(cot.TypeTakpOffer))
			resp := v1.Negotiate()
			if !bytes.Contains(resp.Raw, []byte(`status="true"`)) {
				t.Fatalf("response: %s", resp.Raw)
			}
			et.Eventually(t, "client switched", v1.V1)

			// Positions, chats and markers both ways.
			events := map[string]string{
				"sa-v1":     et.SA("V1-"+listener, "VONE", "a-f-G-U-C"),
				"chat-v1":   et.Chat("chat-v1-"+listener, "from v1", nil, nil),
				"marker-v1": et.Marker("mk-v1-" + listener),
			}
			for name, ev := range events {
				v1.SendEvent(ev)
				uid := uidOf(ev)
				got := xml.Expect(name+" at the XML client", et.UID(uid))
				w := watcher.Expect(name+" at the watcher", et.UID(uid))
				sameEvent(t, name, &got.H, &w.H)
				want := headerOf(t, ev)
				sameEvent(t, name+" vs sent", &got.H, want)
			}
			for _, ev := range xml.Events() {
				if ev.H.UID == "chat-v1-"+listener && !bytes.Contains(ev.Raw, []byte("<![CDATA[from v1]]>")) {
					t.Errorf("chat text lost crossing v1 -> XML: %s", ev.Raw)
				}
			}
			for name, ev := range map[string]string{
				"sa-xml":   et.SA("XML-"+listener, "XONE", "a-f-G-E"),
				"chat-xml": et.Chat("chat-xml-"+listener, "from xml", nil, nil),
			} {
				xml.Send(ev)
				got := v1.Expect(name+" at the v1 client", et.UID(uidOf(ev)))
				sameEvent(t, name, &got.H, headerOf(t, ev))
			}
			// A ping in v1 gets a pong in v1.
			v1.SendEvent(et.Ping("V1"))
			v1.Expect("pong in v1", et.Type(cot.TypePong))
			_ = v1.Conn.Close()
			_ = xml.Conn.Close()
			_ = watcher.Conn.Close()
		})
	}
	if n := h.Srv.Stats().Negotiations[engine.NegotiationV1].Value(); n != 2 {
		t.Errorf("v1 negotiations = %d", n)
	}
}

func TestNegotiationRefusesUnknownVersionAndWrongUID(t *testing.T) {
	h := et.Start(t, nil)
	c := et.Dial(t, h.TCPAddr())
	offer := c.Expect("offer", et.Type(cot.TypeTakpOffer))
	req := func(uid, version string) string {
		return `<event version="2.0" uid="` + uid + `" type="t-x-takp-q" how="m-g" time="2026-01-01T00:00:00Z" start="2026-01-01T00:00:00Z" stale="2026-01-01T00:01:00Z">` +
			`<point lat="0" lon="0" hae="0" ce="999999" le="999999"/><detail><TakControl><TakRequest version="` + version + `"/></TakControl></detail></event>`
	}
	c.Send(req(offer.H.UID, "2"))
	r := c.Expect("response to version 2", et.Type(cot.TypeTakpResponse))
	if !bytes.Contains(r.Raw, []byte(`status="false"`)) || r.H.UID != offer.H.UID {
		t.Errorf("version 2 answered %s", r.Raw)
	}
	c.Send(req("not-the-offer", "1"))
	r = c.Expect("response to a wrong uid", et.Type(cot.TypeTakpResponse))
	if !bytes.Contains(r.Raw, []byte(`status="false"`)) {
		t.Errorf("wrong uid answered %s", r.Raw)
	}
	// Still XML: a ping in XML gets an XML pong.
	c.Send(et.Ping("X"))
	c.Expect("XML pong", et.Type(cot.TypePong))
	if c.V1() {
		t.Error("client switched after refusals")
	}
	if n := h.Srv.Stats().Negotiations[engine.NegotiationRefused].Value(); n != 2 {
		t.Errorf("refusals counted %d", n)
	}
}

func TestProtobufListenerSpeaksV1FromTheFirstByte(t *testing.T) {
	h := et.Start(t, func(c *configs.Config) { c.TCP.Protocol = configs.ProtocolProtobuf })
	a := et.DialV1(t, h.TCPAddr())
	b := et.DialV1(t, h.TCPAddr())
	h.Joined(t, 2)
	sa := et.SA("PA", "PA", "a-f-G-U-C")
	a.SendEvent(sa)
	got := b.Expect("a's SA over v1", et.UID("PA"))
	sameEvent(t, "v1 SA", &got.H, headerOf(t, sa))
	for _, ev := range b.Events() {
		if ev.H.Type == cot.TypeTakpOffer {
			t.Error("a protobuf listener must not offer")
		}
	}
}

func TestBadV1FramesCloseOnlyThatClient(t *testing.T) {
	h := et.Start(t, func(c *configs.Config) {
		c.TCP.Protocol = configs.ProtocolProtobuf
		c.Limits.MaxFrameBytes = 4096
	})
	good := et.DialV1(t, h.TCPAddr())
	watcher := et.DialV1(t, h.TCPAddr())
	h.Joined(t, 2)
	cases := []struct {
		name   string
		bytes  []byte
		reason engine.CloseReason
	}{
		{"bad magic", []byte("<event/>"), engine.ReasonBadFrame},
		{"oversize length", []byte{takproto.Magic, 0x80, 0x80, 0x40}, engine.ReasonFrameTooLarge}, // 1 MiB > 4096
		{"undecodable payload", takproto.AppendFrame(nil, []byte{0x12, 0x05, 0x01}), engine.ReasonBadFrame},
	}
	for _, tc := range cases {
		bad := et.DialV1(t, h.TCPAddr())
		h.Joined(t, 3)
		if _, err := bad.Conn.Write(tc.bytes); err != nil {
			t.Fatal(err)
		}
		bad.Closed()
		et.Eventually(t, tc.name+" counted", func() bool { return h.Srv.Stats().Closes[tc.reason].Value() >= 1 })
		good.SendEvent(et.Marker("after-" + strings.ReplaceAll(tc.name, " ", "-")))
		watcher.Expect("traffic after "+tc.name, et.UID("after-"+strings.ReplaceAll(tc.name, " ", "-")))
	}
	if n := h.Srv.Stats().Closes[engine.ReasonBadFrame].Value(); n != 2 {
		t.Errorf("bad_frame closes %d, want 2", n)
	}
}

func uidOf(ev string) string {
	i := strings.Index(ev, ` uid="`) + len(` uid="`)
	return ev[i : i+strings.IndexByte(ev[i:], '"')]
}

func headerOf(t *testing.T, ev string) *cot.Header {
	t.Helper()
	var h cot.Header
	doc := ev[strings.Index(ev, "<event"):]
	if err := cot.ScanHeader([]byte(doc), &h); err != nil {
		t.Fatal(err)
	}
	return &h
}
