package cot

import (
	"crypto/rand"
	"encoding/hex"
	"time"
	"unicode/utf8"
)

// Builders of the events the server originates. Their output has no XML declaration and no
// trailing whitespace: commo splits the stream after "</event>", so anything written after it
// would become the start of the next chunk, and a declaration anywhere but at a chunk's start
// is a parse error there.

// TimeLayout is how CoT writes times: UTC, millisecond precision, 'Z'.
const TimeLayout = "2006-01-02T15:04:05.000Z"

// ControlStale is how long the server's pong and disconnect notices stay valid, as TAK Server
// sets them.
const ControlStale = 20 * time.Second

// pointUnknown is the point of control events: the origin with unknown errors.
const pointUnknown = `<point lat="0" lon="0" hae="0" ce="9999999" le="9999999"/>`

// FormatTime formats t as CoT does: 2006-01-02T15:04:05.000Z in UTC.
func FormatTime(t time.Time) string {
	return t.UTC().Format(TimeLayout)
}

// Pong builds the answer to a client's ping (TypePing): the same event every TAK server
// sends, uid PongUID, type TypePong, stale 20 s after now.
func Pong(now time.Time) []byte {
	b := make([]byte, 0, 320)
	b = appendEventStart(b, PongUID, TypePong, HowServer, now, now.Add(ControlStale))
	b = append(b, pointUnknown...)
	return append(b, "<detail/></event>"...)
}

// DisconnectNotice builds the t-x-d-d event sent to other clients when a client leaves. The
// link names the client (linkUID, and linkType = the type of its last SA) with relation
// "p-p": ATAK ignores a delete whose link lacks uid, type or relation, and with them it marks
// the contact's marker as disconnected instead of removing it. eventUID should be fresh for
// every notice.
func DisconnectNotice(eventUID, linkUID, linkType string, now time.Time) []byte {
	b := make([]byte, 0, 384+len(eventUID)+len(linkUID)+len(linkType))
	b = appendEventStart(b, eventUID, TypeDelete, HowServer, now, now.Add(ControlStale))
	b = append(b, pointUnknown...)
	b = append(b, `<detail><link uid="`...)
	b = AppendEscaped(b, linkUID)
	b = append(b, `" type="`...)
	b = AppendEscaped(b, linkType)
	return append(b, `" relation="p-p"/></detail></event>`...)
}

// appendEventStart appends the <event> start tag with time and start = now.
func appendEventStart(b []byte, uid, typ, how string, now, stale time.Time) []byte {
	b = append(b, `<event version="2.0" uid="`...)
	b = AppendEscaped(b, uid)
	b = append(b, `" type="`...)
	b = AppendEscaped(b, typ)
	b = append(b, `" how="`...)
	b = AppendEscaped(b, how)
	b = append(b, `" time="`...)
	b = now.UTC().AppendFormat(b, TimeLayout)
	b = append(b, `" start="`...)
	b = now.UTC().AppendFormat(b, TimeLayout)
	b = append(b, `" stale="`...)
	b = stale.UTC().AppendFormat(b, TimeLayout)
	return append(b, `">`...)
}

// AppendEscaped appends s escaped for a double- or single-quoted attribute value. Tab, LF and
// CR are written as character references because a parser would otherwise turn them into
// spaces; other control characters and invalid UTF-8, which XML 1.0 cannot carry at all,
// become U+FFFD so that one bad uid cannot make the whole event unparsable for recipients.
func AppendEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < utf8.RuneSelf && c != '&' && c != '<' && c != '>' && c != '"' && c != '\'' {
			b = append(b, c)
			i++
			continue
		}
		switch c {
		case '&':
			b = append(b, "&amp;"...)
		case '<':
			b = append(b, "&lt;"...)
		case '>':
			b = append(b, "&gt;"...)
		case '"':
			b = append(b, "&quot;"...)
		case '\'':
			b = append(b, "&apos;"...)
		case '\t':
			b = append(b, "&#9;"...)
		case '\n':
			b = append(b, "&#10;"...)
		case '\r':
			b = append(b, "&#13;"...)
		default:
			if c < 0x20 {
				b = utf8.AppendRune(b, utf8.RuneError)
				break
			}
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 || r == 0xFFFE || r == 0xFFFF {
				b = utf8.AppendRune(b, utf8.RuneError)
			} else {
				b = append(b, s[i:i+n]...)
			}
			i += n
			continue
		}
		i++
	}
	return b
}

// NewUID returns a random version-4 UUID, the form TAK software uses for
// the uids of events it makes.
func NewUID() string {
	var u [16]byte
	_, _ = rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], u[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], u[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], u[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], u[8:10])
	s[23] = '-'
	hex.Encode(s[24:], u[10:])
	return string(s[:])
}
