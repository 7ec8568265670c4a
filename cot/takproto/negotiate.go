package takproto

import (
	"strings"
	"time"

	"cotd/cot"
)

// The XML events of TAK protocol negotiation (tak-protocol.md 2.3). The server offers, the
// client requests with the offer's uid, the server responds with the same uid; after a
// response with status true both directions are v1 from the next byte.

// ProtocolVersion is the TAK protocol version this package speaks, the one offered.
const ProtocolVersion = 1

// NegotiationStale is how long after its time a negotiation event is stale, as commo and
// TAK Server write them.
const NegotiationStale = 60 * time.Second

// howMachine is the "how" of negotiation events (machine-generated, as commo writes them).
const howMachine = "m-g"

// pointNegotiation is the point of negotiation events: the origin, errors unknown.
const pointNegotiation = `<point lat="0" lon="0" hae="0" ce="999999" le="999999"/>`

// AppendOffer appends the server's offer of TAK protocol version 1 (cot.TypeTakpOffer) to
// dst. uid should be fresh per connection; the client's request echoes it. The event has no
// declaration and nothing after "</event>".
func AppendOffer(dst []byte, uid string, now time.Time) []byte {
	dst = appendControlStart(dst, uid, cot.TypeTakpOffer, now)
	return append(dst, `<detail><TakControl><TakProtocolSupport version="1"/></TakControl></detail></event>`...)
}

// AppendResponse appends the server's answer (cot.TypeTakpResponse) to a client's request
// to dst; uid is the request's. After ok is sent the connection is v1 in both directions;
// after !ok it stays XML.
func AppendResponse(dst []byte, uid string, ok bool, now time.Time) []byte {
	dst = appendControlStart(dst, uid, cot.TypeTakpResponse, now)
	if ok {
		return append(dst, `<detail><TakControl><TakResponse status="true"/></TakControl></detail></event>`...)
	}
	return append(dst, `<detail><TakControl><TakResponse status="false"/></TakControl></detail></event>`...)
}

func appendControlStart(b []byte, uid, typ string, now time.Time) []byte {
	b = append(b, `<event version="2.0" uid="`...)
	b = cot.AppendEscaped(b, uid)
	b = append(b, `" type="`...)
	b = append(b, typ...)
	b = append(b, `" how="`+howMachine+`" time="`...)
	b = now.UTC().AppendFormat(b, cot.TimeLayout)
	b = append(b, `" start="`...)
	b = now.UTC().AppendFormat(b, cot.TimeLayout)
	b = append(b, `" stale="`...)
	b = now.Add(NegotiationStale).UTC().AppendFormat(b, cot.TimeLayout)
	b = append(b, `">`...)
	return append(b, pointNegotiation...)
}

// ParseRequest reads a client's request (cot.TypeTakpRequest): the event's uid, which should
// be that of the server's offer, and the version asked for in
// <detail><TakControl><TakRequest version="…"/></TakControl></detail>. ok is false when doc
// is not a well-formed request event or does not hold exactly one TakRequest with a
// non-negative decimal version.
func ParseRequest(doc []byte) (uid string, version int, ok bool) {
	s := scanner{src: doc}
	var (
		rawUID    []byte
		isRequest bool
		inDetail  bool
		inControl bool
		requests  int
	)
	version = -1
	for {
		t, more, err := s.next()
		if err != nil {
			return "", 0, false
		}
		if !more {
			break
		}
		switch {
		case t.kind == tokEnd:
			switch t.depth {
			case 1:
				inDetail = false
			case 2:
				inControl = false
			}
		case t.depth == 0:
			if string(t.name) != "event" {
				return "", 0, false
			}
			for a := t.attrs; ; {
				name, val, rest, more := nextAttr(a)
				if !more {
					break
				}
				a = rest
				switch string(name) {
				case "uid":
					if rawUID == nil {
						rawUID = val[:len(val):len(val)]
					}
				case "type":
					isRequest = string(val) == cot.TypeTakpRequest
				}
			}
		case t.depth == 1:
			inDetail = string(t.name) == "detail" && t.kind == tokStart
		case t.depth == 2 && inDetail:
			inControl = string(t.name) == "TakControl" && t.kind == tokStart
		case t.depth == 3 && inControl && string(t.name) == "TakRequest":
			requests++
			for a := t.attrs; ; {
				name, val, rest, more := nextAttr(a)
				if !more {
					break
				}
				a = rest
				if string(name) == "version" {
					v, good := digits(val)
					if !good || len(val) == 0 || len(val) > 9 {
						return "", 0, false
					}
					version = v
				}
			}
		}
	}
	if !isRequest || requests != 1 || version < 0 || rawUID == nil {
		return "", 0, false
	}
	if !validValue(rawUID) {
		return "", 0, false
	}
	var sb strings.Builder
	sb.Grow(len(rawUID))
	cot.WriteUnescaped(&sb, rawUID)
	return sb.String(), version, true
}
