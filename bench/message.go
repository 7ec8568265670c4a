package bench

import (
	"bytes"
	"strconv"
	"time"

	"cotd/cot"
)

// msgKind is the kind of event a simulated EUD sends; it travels in the bench tag so that a
// receiver knows how the message was routed. Fixed per message.
type msgKind uint8

const (
	kindSA       msgKind = iota // self SA, broadcast
	kindChat                    // GeoChat to All Chat Rooms, broadcast
	kindDirected                // GeoChat to one callsign (<marti><dest callsign>)
	kindMarker                  // spot marker, broadcast
	numMsgKinds
)

var msgKindNames = [numMsgKinds]string{"sa", "chat", "dm", "marker"}

func (k msgKind) String() string {
	if k < numMsgKinds {
		return msgKindNames[k]
	}
	return "msgKind(" + strconv.Itoa(int(k)) + ")"
}

func parseMsgKind(b []byte) (msgKind, bool) {
	for k, name := range msgKindNames {
		if string(b) == name {
			return msgKind(k), true
		}
	}
	return 0, false
}

// Values the simulated EUDs write.
const (
	// TypeSelfSA is the type of the EUD's own position report (friendly ground unit).
	TypeSelfSA = "a-f-G-U-C"
	// TypeSpotMarker is ATAK's spot map marker.
	TypeSpotMarker = "b-m-p-s-m"
	// howMachine is "machine, GPS": how ATAK marks its own SA and pings.
	howMachine = "m-g"
	// endpointStreaming is the contact endpoint of a client that talks only through a
	// server.
	endpointStreaming = "*:-1:stcp"
	// allChatRooms is the GeoChat room of everyone.
	allChatRooms = "All Chat Rooms"
	// tagOpen starts the bench tag. A server passes unknown <detail> children through.
	tagOpen = "<__cotbench "
	// declJava precedes events ATAK's Java layer builds; declCommo precedes commo's pings.
	declJava  = "<?xml version='1.0' encoding='UTF-8' standalone='yes'?>\n"
	declCommo = `<?xml version="1.0"?>` + "\n"
	// staleSA, staleChat, staleMarker, stalePing are how long each event stays valid.
	staleSA     = 2 * time.Minute
	staleChat   = 24 * time.Hour
	staleMarker = 24 * time.Hour
	stalePing   = 10 * time.Second
)

// UID and Callsign of simulated client n.
func UID(n int) string      { return "BENCH-" + strconv.Itoa(n) }
func Callsign(n int) string { return "B" + strconv.Itoa(n) }

func appendUID(b []byte, n int) []byte {
	return strconv.AppendInt(append(b, "BENCH-"...), int64(n), 10)
}
func appendCallsign(b []byte, n int) []byte { return strconv.AppendInt(append(b, 'B'), int64(n), 10) }

func appendTime(b []byte, t time.Time) []byte { return t.UTC().AppendFormat(b, cot.TimeLayout) }

// appendEventStart writes the <event> start tag; uid is written by uidFn so that no string
// is built for it.
func appendEventStart(b []byte, typ, how string, now time.Time, stale time.Duration, uidFn func([]byte) []byte) []byte {
	b = append(b, `<event version="2.0" uid="`...)
	b = uidFn(b)
	b = append(b, `" type="`...)
	b = append(b, typ...)
	b = append(b, `" how="`...)
	b = append(b, how...)
	b = append(b, `" time="`...)
	b = appendTime(b, now)
	b = append(b, `" start="`...)
	b = appendTime(b, now)
	b = append(b, `" stale="`...)
	b = appendTime(b, now.Add(stale))
	return append(b, `">`...)
}

// position is client n's point: a grid around (35, -97), moving a little with seq.
func position(n int, seq uint64) (lat, lon float64) {
	step := float64(seq%120) * 1e-5
	return 35 + float64(n%100)*1e-3 + step, -97 + float64(n/100)*1e-3 + step
}

func appendPoint(b []byte, lat, lon float64, hae, ce string) []byte {
	b = append(b, `<point lat="`...)
	b = strconv.AppendFloat(b, lat, 'f', 6, 64)
	b = append(b, `" lon="`...)
	b = strconv.AppendFloat(b, lon, 'f', 6, 64)
	b = append(b, `" hae="`...)
	b = append(b, hae...)
	b = append(b, `" ce="`...)
	b = append(b, ce...)
	return append(b, `" le="9999999"/>`...)
}

// appendTag writes the bench tag: send time, sequence, sender, kind and, for a directed
// chat, the destination's number.
func appendTag(b []byte, now time.Time, seq uint64, src int, k msgKind, dst int) []byte {
	b = append(b, tagOpen...)
	b = append(b, `ts="`...)
	b = strconv.AppendInt(b, now.UnixNano(), 10)
	b = append(b, `" seq="`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `" src="`...)
	b = strconv.AppendInt(b, int64(src), 10)
	b = append(b, `" k="`...)
	b = append(b, k.String()...)
	if k == kindDirected {
		b = append(b, `" dst="`...)
		b = strconv.AppendInt(b, int64(dst), 10)
	}
	return append(b, `"/>`...)
}

// appendSA writes client n's self SA as ATAK sends it: declaration, a-f-G-U-C, how m-g,
// contact with the streaming endpoint, team, device, track; stale two minutes on.
func appendSA(b []byte, n int, seq uint64, now time.Time) []byte {
	lat, lon := position(n, seq)
	b = append(b, declJava...)
	b = appendEventStart(b, TypeSelfSA, howMachine, now, staleSA, func(b []byte) []byte { return appendUID(b, n) })
	b = appendPoint(b, lat, lon, "312.5", "9.9")
	b = append(b, `<detail><takv os="34" version="5.2.0.4 (cotbench)" device="COTBENCH SIM" platform="ATAK-CIV"/><contact endpoint="`...)
	b = append(b, endpointStreaming...)
	b = append(b, `" callsign="`...)
	b = appendCallsign(b, n)
	b = append(b, `"/><uid Droid="`...)
	b = appendCallsign(b, n)
	b = append(b, `"/><precisionlocation altsrc="GPS" geopointsrc="GPS"/><__group role="Team Member" name="Cyan"/>`+
		`<status battery="87"/><track course="42.0" speed="1.2"/>`...)
	b = appendTag(b, now, seq, n, kindSA, -1)
	return append(b, `</detail></event>`...)
}

// appendChat writes a GeoChat from client n: to All Chat Rooms when dst < 0, else to client
// dst, addressed by callsign in <marti>, as ATAK does for a direct message.
func appendChat(b []byte, n int, seq uint64, now time.Time, dst int) []byte {
	kind := kindChat
	room := func(b []byte) []byte { return append(b, allChatRooms...) }
	if dst >= 0 {
		kind = kindDirected
		room = func(b []byte) []byte { return appendUID(b, dst) }
	}
	msgID := func(b []byte) []byte {
		b = appendUID(b, n)
		b = append(b, '-')
		return strconv.AppendUint(b, seq, 10)
	}
	b = append(b, declJava...)
	b = appendEventStart(b, cot.TypeChat, cot.HowServer, now, staleChat, func(b []byte) []byte {
		b = append(b, "GeoChat."...)
		b = appendUID(b, n)
		b = append(b, '.')
		b = room(b)
		b = append(b, '.')
		return msgID(b)
	})
	b = appendPoint(b, 0, 0, "9999999", "9999999")
	b = append(b, `<detail><__chat parent="RootContactGroup" groupOwner="false" messageId="`...)
	b = msgID(b)
	b = append(b, `" chatroom="`...)
	if dst >= 0 {
		b = appendCallsign(b, dst)
	} else {
		b = append(b, allChatRooms...)
	}
	b = append(b, `" id="`...)
	b = room(b)
	b = append(b, `" senderCallsign="`...)
	b = appendCallsign(b, n)
	b = append(b, `"><chatgrp uid0="`...)
	b = appendUID(b, n)
	b = append(b, `" uid1="`...)
	b = room(b)
	b = append(b, `" id="`...)
	b = room(b)
	b = append(b, `"/></__chat><link uid="`...)
	b = appendUID(b, n)
	b = append(b, `" type="`+TypeSelfSA+`" relation="p-p"/><__serverdestination destinations="0.0.0.0:4242:tcp:`...)
	b = appendUID(b, n)
	b = append(b, `"/><remarks source="BAO.F.ATAK.`...)
	b = appendUID(b, n)
	b = append(b, `" to="`...)
	b = room(b)
	b = append(b, `" time="`...)
	b = appendTime(b, now)
	b = append(b, `">cotbench message `...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, ` &lt;/event&gt; is text here</remarks>`...)
	if dst >= 0 {
		b = append(b, `<marti><dest callsign="`...)
		b = appendCallsign(b, dst)
		b = append(b, `"/></marti>`...)
	}
	b = appendTag(b, now, seq, n, kind, dst)
	return append(b, `</detail></event>`...)
}

// appendMarker writes a spot marker placed by client n (linked to it as its creator).
func appendMarker(b []byte, n int, seq uint64, now time.Time) []byte {
	lat, lon := position(n, seq+60)
	b = append(b, declJava...)
	b = appendEventStart(b, TypeSpotMarker, cot.HowServer, now, staleMarker, func(b []byte) []byte {
		b = appendUID(b, n)
		b = append(b, "-marker-"...)
		return strconv.AppendUint(b, seq, 10)
	})
	b = appendPoint(b, lat, lon, "9999999", "9999999")
	b = append(b, `<detail><status readiness="true"/><archive/><link uid="`...)
	b = appendUID(b, n)
	b = append(b, `" type="`+TypeSelfSA+`" parent_callsign="`...)
	b = appendCallsign(b, n)
	b = append(b, `" relation="p-p"/><color argb="-1"/><usericon iconsetpath="COT_MAPPING_SPOTMAP/b-m-p-s-m/-1"/>`+
		`<remarks>marker `...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `</remarks>`...)
	b = appendTag(b, now, seq, n, kindMarker, -1)
	return append(b, `</detail></event>`...)
}

// appendPing writes commo's keep-alive for client n.
func appendPing(b []byte, n int, now time.Time) []byte {
	b = append(b, declCommo...)
	b = appendEventStart(b, cot.TypePing, howMachine, now, stalePing, func(b []byte) []byte {
		return append(appendUID(b, n), "-ping"...)
	})
	b = appendPoint(b, 0, 0, "0", "9999999")
	return append(b, `<detail/></event>`...)
}

// benchTag is the bench tag of a received event.
type benchTag struct {
	ts   int64 // sender's clock, unix nanoseconds
	seq  uint64
	src  int
	kind msgKind
	dst  int // destination client of a directed chat; -1 otherwise
}

// parseTag finds and reads the bench tag in doc. It accepts either quote and any attribute
// order, since a server may re-serialise what it forwards. ok is false when doc has no
// complete tag.
func parseTag(doc []byte) (t benchTag, ok bool) {
	i := bytes.Index(doc, []byte(tagOpen))
	if i < 0 {
		return t, false
	}
	a := doc[i+len(tagOpen):]
	t.dst = -1
	var have uint8
	for {
		for len(a) > 0 && (a[0] == ' ' || a[0] == '\t' || a[0] == '\n' || a[0] == '\r') {
			a = a[1:]
		}
		if len(a) == 0 || a[0] == '/' || a[0] == '>' {
			break
		}
		eq := bytes.IndexByte(a, '=')
		if eq < 1 || eq+1 >= len(a) {
			return t, false
		}
		name, q := bytes.TrimSpace(a[:eq]), a[eq+1]
		if q != '"' && q != '\'' {
			return t, false
		}
		end := bytes.IndexByte(a[eq+2:], q)
		if end < 0 {
			return t, false
		}
		val := a[eq+2 : eq+2+end]
		a = a[eq+2+end+1:]
		var err error
		switch string(name) {
		case "ts":
			t.ts, err = strconv.ParseInt(string(val), 10, 64)
			have |= 1
		case "seq":
			t.seq, err = strconv.ParseUint(string(val), 10, 64)
			have |= 2
		case "src":
			t.src, err = strconv.Atoi(string(val))
			have |= 4
		case "k":
			var good bool
			t.kind, good = parseMsgKind(val)
			if !good {
				return t, false
			}
			have |= 8
		case "dst":
			t.dst, err = strconv.Atoi(string(val))
		}
		if err != nil {
			return t, false
		}
	}
	if have != 15 || (t.kind == kindDirected) != (t.dst >= 0) {
		return t, false
	}
	return t, true
}
