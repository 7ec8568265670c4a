package takproto

import (
	"strconv"
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

// AppendRequest appends a client's request (cot.TypeTakpRequest) for TAK protocol version
// to dst; uid is the server's offer's. A client that sends it speaks v1 from the next byte
// and reads v1 after a response with status true.
func AppendRequest(dst []byte, uid string, version int, now time.Time) []byte {
	dst = appendControlStart(dst, uid, cot.TypeTakpRequest, now)
	dst = append(dst, `<detail><TakControl><TakRequest version="`...)
	dst = strconv.AppendInt(dst, int64(version), 10)
	return append(dst, `"/></TakControl></detail></event>`...)
}

// ParseRequest reads a client's request (cot.TypeTakpRequest): the event's uid, which should
// be that of the server's offer, and the version asked for in
// <detail><TakControl><TakRequest version="…"/></TakControl></detail>. ok is false when doc
// is not a well-formed request event or does not hold exactly one TakRequest with a
// non-negative decimal version.
func ParseRequest(doc []byte) (uid string, version int, ok bool) {
	uid, val, ok := parseControl(doc, cot.TypeTakpRequest, "TakRequest", "version")
	if !ok {
		return "", 0, false
	}
	// ParseUint takes no sign; nine digits keep the version within an int anywhere.
	v, err := strconv.ParseUint(string(val), 10, 32)
	if err != nil || len(val) > 9 {
		return "", 0, false
	}
	return uid, int(v), true
}

// ParseResponse reads the server's answer (cot.TypeTakpResponse): the event's uid, the
// request's, and whether <TakResponse status="…"/> granted it. ok is false when doc is not a
// well-formed response holding exactly one TakResponse with status true or false.
func ParseResponse(doc []byte) (uid string, granted bool, ok bool) {
	uid, val, ok := parseControl(doc, cot.TypeTakpResponse, "TakResponse", "status")
	switch {
	case !ok:
		return "", false, false
	case string(val) == "true":
		return uid, true, true
	case string(val) == "false":
		return uid, false, true
	}
	return "", false, false
}

// parseControl reads a negotiation event of type typ: its uid and the raw value of attr on
// the one <elem> in <detail><TakControl>. ok is false when doc is not a well-formed event of
// that type, holds no or several <elem>, or the attribute is missing.
func parseControl(doc []byte, typ, elem, attr string) (uid string, val []byte, ok bool) {
	var lx cot.Lexer
	lx.Reset(doc, cot.Strict)
	var (
		rawUID    cot.Value
		isType    bool
		inDetail  bool
		inControl bool
		elems     int
	)
	for {
		t, more, err := lx.Next()
		if err != nil {
			return "", nil, false
		}
		if !more {
			break
		}
		switch {
		case t.Kind == cot.TokenEnd:
			switch t.Depth {
			case 1:
				inDetail = false
			case 2:
				inControl = false
			}
		case t.Depth == 0:
			if string(t.Name) != "event" {
				return "", nil, false
			}
			for a := t.Attrs; ; {
				name, v, more := a.Next()
				if !more {
					break
				}
				switch string(name) {
				case "uid":
					if rawUID == nil {
						rawUID = v[:len(v):len(v)]
					}
				case "type":
					isType = string(v) == typ
				}
			}
		case t.Depth == 1:
			inDetail = string(t.Name) == "detail" && t.Kind == cot.TokenStart
		case t.Depth == 2 && inDetail:
			inControl = string(t.Name) == "TakControl" && t.Kind == cot.TokenStart
		case t.Depth == 3 && inControl && string(t.Name) == elem:
			elems++
			for a := t.Attrs; ; {
				name, v, more := a.Next()
				if !more {
					break
				}
				if string(name) == attr {
					val = v
				}
			}
		}
	}
	if !isType || elems != 1 || val == nil || rawUID == nil || !validValue(rawUID) {
		return "", nil, false
	}
	var sb strings.Builder
	sb.Grow(len(rawUID))
	return rawUID.Decode(&sb), val, true
}
