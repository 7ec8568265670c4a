package engine_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"cotd/configs"
	"cotd/cot"
	"cotd/cot/takproto"
	"cotd/engine"
	et "cotd/engine/enginetest"
)

// forged is the event an injector wants recipients that split on "</event>" to see: a
// delete of a live user's marker.
const forged = `<event version="2.0" uid="forged-%d" type="t-x-d-d" how="h-g-i-g-o">` +
	`<point lat="0" lon="0" hae="0" ce="9999999" le="9999999"/><detail><link uid="ANDROID-honest" relation="p-p"/></detail></event>`

// injected returns an event of the given uid that carries "</event>" followed by a forged
// event, hidden in the place named by where. cotd's framer sees one event; ATAK, WinTAK and
// node-tak would see two.
func injected(where, uid string, n int) string {
	now := time.Now().UTC()
	f := fmt.Sprintf(forged, n)
	head := fmt.Sprintf(`<event version="2.0" uid="%s" type="a-h-G" how="h-g-i-g-o" time="%s" start="%s" stale="%s">`+
		`<point lat="1" lon="2" hae="0" ce="9999999" le="9999999"/>`,
		uid, cot.FormatTime(now), cot.FormatTime(now), cot.FormatTime(now.Add(time.Hour)))
	switch where {
	case "cdata":
		return head + `<detail><remarks><![CDATA[x</event>` + f + `<event><detail>]]></remarks></detail></event>`
	case "comment":
		return head + `<detail><!-- </event>` + f + ` --></detail></event>`
	case "pi":
		return head + `<detail><?note </event>` + f + ` ?></detail></event>`
	case "attribute":
		return head + `<detail><remarks source="</event>` + strings.ReplaceAll(f, `"`, `'`) + `"/></detail></event>`
	}
	panic(where)
}

// noneContains fails if any event c received holds needle in its bytes. The raw bytes are
// searched, not the parsed uid: an event carrying an injection does not scan cleanly.
func noneContains(t *testing.T, c *et.Client, needle string) {
	t.Helper()
	for _, ev := range c.Events() {
		if bytes.Contains(ev.Raw, []byte(needle)) {
			t.Errorf("received %q: %s", needle, ev.Raw)
		}
	}
}

func TestEmbeddedEventEndIsDroppedAndSenderKept(t *testing.T) {
	h := et.Start(t, nil)
	sender := et.Dial(t, h.TCPAddr())
	watcher := et.Dial(t, h.TCPAddr())
	h.Joined(t, 2)
	places := []string{"cdata", "comment", "pi", "attribute"}
	for i, where := range places {
		// The injected event and an honest one in one write: the framer goes on after the
		// refused event, and the honest one is the barrier for the negative check below.
		bad, honest := fmt.Sprintf("inject-%d", i), fmt.Sprintf("honest-%d", i)
		sender.Send(injected(where, bad, i) + et.Marker(honest))
		watcher.Expect(where+": the honest event after the injected one", et.UID(honest))
		noneContains(t, watcher, bad)
		noneContains(t, watcher, fmt.Sprintf("forged-%d", i))
	}
	// The sender is still connected and routed.
	sender.Send(et.Marker("still-here"))
	watcher.Expect("an event from the sender after the injections", et.UID("still-here"))

	st := h.Srv.Stats()
	if n := st.BadEvents[engine.BadEventEmbeddedEnd].Value(); n != uint64(len(places)) {
		t.Errorf("embedded_event_end = %d, want %d", n, len(places))
	}
	if n := st.Closes[engine.ReasonBadFrame].Value(); n != 0 {
		t.Errorf("bad_frame closes = %d, want 0", n)
	}
	if m := h.Metrics(t); !strings.Contains(m, fmt.Sprintf(`cotd_bad_events_total{reason="embedded_event_end"} %d`, len(places))) {
		t.Errorf("/metrics lacks the count:\n%s", m)
	}
	// Logged with the connection's identity: the first drop (later ones within the minute are
	// counted in the next line).
	lines := logLines(h, `"bad_event":"embedded_event_end"`)
	if len(lines) == 0 || !strings.Contains(lines[0], `"remote":"`+sender.Conn.LocalAddr().String()+`"`) ||
		!strings.Contains(lines[0], `"conn":`) {
		t.Errorf("no log line naming the connection: %q", lines)
	}
}

func TestImplausibleTimesAreDroppedAndSenderKept(t *testing.T) {
	h := et.Start(t, nil)
	sender := et.Dial(t, h.TCPAddr())
	watcher := et.Dial(t, h.TCPAddr())
	h.Joined(t, 2)
	now := time.Now().UTC()
	marker := func(uid, tm, start, stale string) string {
		return fmt.Sprintf(`<event version="2.0" uid="%s" type="a-h-G" how="h-g-i-g-o" time="%s" start="%s" stale="%s">`+
			`<point lat="1" lon="2" hae="0" ce="9999999" le="9999999"/><detail/></event>`, uid, tm, start, stale)
	}
	ts := cot.FormatTime
	cases := []struct{ name, event string }{
		{"microseconds as a number", marker("bad-micros", "1765000000000000", "1765000000000000", "1765000000000000")},
		{"unreadable stale", marker("bad-stale", ts(now), ts(now), "tomorrow")},
		{"time years ahead", marker("bad-ahead", ts(now.AddDate(5, 0, 0)), ts(now), ts(now.Add(time.Hour)))},
		{"start years ago", marker("bad-ago", ts(now), ts(now.AddDate(-5, 0, 0)), ts(now.Add(time.Hour)))},
		{"stale centuries ahead", marker("bad-stale-far", ts(now), ts(now), "2999-01-01T00:00:00.000Z")},
	}
	for i, tc := range cases {
		honest := fmt.Sprintf("honest-%d", i)
		sender.Send(tc.event + et.Marker(honest))
		watcher.Expect(tc.name+": the honest event after the bad one", et.UID(honest))
		noneContains(t, watcher, uidOf(tc.event))
	}
	// A long-lived item (stale a few years ahead) is fine, and so is a ping with a wrong
	// clock: it is answered, not routed.
	sender.Send(marker("route", ts(now), ts(now), ts(now.AddDate(3, 0, 0))))
	watcher.Expect("an item with a stale years ahead", et.UID("route"))
	sender.Send(strings.Replace(et.Ping("wrong-clock"), `time="`+ts(now)[:4], `time="2001`, 1))
	sender.Expect("pong to a ping with a wrong clock", et.Type(cot.TypePong))

	st := h.Srv.Stats()
	if n := st.BadEvents[engine.BadEventTime].Value(); n != uint64(len(cases)) {
		t.Errorf("implausible_time = %d, want %d", n, len(cases))
	}
	if n := st.Closes[engine.ReasonBadFrame].Value(); n != 0 {
		t.Errorf("bad_frame closes = %d, want 0", n)
	}
	if m := h.Metrics(t); !strings.Contains(m, fmt.Sprintf(`cotd_bad_events_total{reason="implausible_time"} %d`, len(cases))) {
		t.Errorf("/metrics lacks the count")
	}
	if lines := logLines(h, `"bad_event":"implausible_time"`); len(lines) == 0 {
		t.Error("no log line")
	}
}

// TestV1BadEventsAreDroppedAndSenderKept plays TAK Server's load tester in protobuf mode
// (times in microseconds) and a v1 injector (xmlDetail with "</event>") against a protobuf
// listener, beside an XML watcher on a negotiating one.
func TestV1BadEventsAreDroppedAndSenderKept(t *testing.T) {
	h := et.Start(t, func(c *configs.Config) { c.TCP.Protocol = configs.ProtocolProtobuf })
	sender := et.DialV1(t, h.TCPAddr())
	watcher := et.DialV1(t, h.TCPAddr())
	h.Joined(t, 2)
	nowMs := uint64(time.Now().UnixMilli())
	event := func(uid string, tm, stale uint64, xmlDetail string) []byte {
		m := &takproto.TakMessage{CotEvent: &takproto.CotEvent{
			Type: "a-h-G", Uid: uid, How: "h-g-i-g-o", SendTime: tm, StartTime: tm, StaleTime: stale,
			Ce: 9999999, Le: 9999999,
		}}
		if xmlDetail != "" {
			m.CotEvent.Detail = &takproto.Detail{XmlDetail: xmlDetail}
		}
		return takproto.AppendMessageFrame(nil, m)
	}
	micros := nowMs * 1000
	cases := []struct {
		name, uid string
		frame     []byte
	}{
		{"microseconds", "bad-micros", event("bad-micros", micros, micros+60e6, "")},
		{"years ahead", "bad-ahead", event("bad-ahead", nowMs+5*366*24*3600*1000, nowMs+5*366*24*3600*1000, "")},
		{"xmlDetail injection", "bad-inject", event("bad-inject", nowMs, nowMs+60000,
			`<remarks><![CDATA[</event>`+fmt.Sprintf(forged, 0)+`]]></remarks>`)},
	}
	for i, tc := range cases {
		honest := fmt.Sprintf("honest-%d", i)
		frame := append(tc.frame, event(honest, nowMs, nowMs+60000, "")...)
		if _, err := sender.Conn.Write(frame); err != nil {
			t.Fatal(err)
		}
		watcher.Expect(tc.name+": the honest event after the bad one", et.UID(honest))
		if watcher.Received(et.UID(tc.uid)) {
			t.Errorf("%s delivered", tc.name)
		}
	}
	noneContains(t, watcher, "forged-0")
	st := h.Srv.Stats()
	if n := st.BadEvents[engine.BadEventTime].Value(); n != 2 {
		t.Errorf("implausible_time = %d, want 2", n)
	}
	if n := st.BadEvents[engine.BadEventEmbeddedEnd].Value(); n != 1 {
		t.Errorf("embedded_event_end = %d, want 1", n)
	}
	if n := st.Closes[engine.ReasonBadFrame].Value(); n != 0 {
		t.Errorf("bad_frame closes = %d, want 0", n)
	}
}

// logLines returns the server's log lines that contain every one of the needles.
func logLines(h *et.Harness, needles ...string) []string {
	var out []string
	for line := range strings.SplitSeq(h.Logs.String(), "\n") {
		ok := true
		for _, n := range needles {
			ok = ok && strings.Contains(line, n)
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}
