package cot

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Header is what the router needs from one document, found without building a tree. The
// document itself is forwarded as it came (minus <marti>), so nothing else is extracted.
//
// All strings of one Header share a single allocation holding just their bytes (not the
// document's). DestCallsigns and DestUIDs are reused by the next ScanHeader into the same
// Header: clone them to keep them.
type Header struct {
	Kind DocKind

	// <event uid type how time start stale>. Times are UTC; zero when absent or unparsable.
	UID, Type, How     string
	Time, Start, Stale time.Time

	// The first <point> child of <event>; 0 when absent or unparsable. ATAK writes 9999999
	// for an unknown ce, le or hae.
	Lat, Lon, HAE, CE, LE float64

	// <detail><contact callsign endpoint> and <detail><__group name role>, first of each.
	Callsign, Endpoint   string
	GroupName, GroupRole string

	// Every <detail><marti><dest callsign=…> and <dest uid=…>, in document order with
	// duplicates kept (the caller de-duplicates). Only the first <marti> is read.
	DestCallsigns, DestUIDs []string

	// The first <detail><link uid type relation>.
	LinkUID, LinkType, LinkRelation string

	// The byte range [MartiStart, MartiEnd) of the first <marti>…</marti> (or <marti/>)
	// element in the document; -1, -1 when there is none.
	MartiStart, MartiEnd int

	// For DocAuth: <auth><cot username password uid callsign/></auth>.
	AuthUsername, AuthPassword, AuthUID, AuthCallsign string

	// unreadable marks the time attributes that are present but cannot be read (their
	// field is zero then, like an absent one's); CheckTimes refuses them.
	unreadable timeAttr
}

// The string fields ScanHeader fills, as indexes into its table of raw values.
const (
	fieldUID = iota
	fieldType
	fieldHow
	fieldCallsign
	fieldEndpoint
	fieldGroupName
	fieldGroupRole
	fieldLinkUID
	fieldLinkType
	fieldLinkRelation
	fieldAuthUsername
	fieldAuthPassword
	fieldAuthUID
	fieldAuthCallsign
	numFields
)

// fields returns pointers to h's string fields in the order of the field constants.
func (h *Header) fields() [numFields]*string {
	return [numFields]*string{
		&h.UID, &h.Type, &h.How, &h.Callsign, &h.Endpoint, &h.GroupName, &h.GroupRole,
		&h.LinkUID, &h.LinkType, &h.LinkRelation,
		&h.AuthUsername, &h.AuthPassword, &h.AuthUID, &h.AuthCallsign,
	}
}

// reset zeroes h but keeps its slices' capacity. The old elements are cleared so that they
// do not pin the previous document's strings.
func (h *Header) reset() {
	dc, du := h.DestCallsigns, h.DestUIDs
	clear(dc[:cap(dc)])
	clear(du[:cap(du)])
	*h = Header{DestCallsigns: dc[:0], DestUIDs: du[:0], MartiStart: -1, MartiEnd: -1}
}

// ScanHeader fills h from one document as XMLFramer emits it (leading declarations and
// comments are skipped too), reading it with a Lenient Lexer. It resets h first; on error h
// is left reset. It returns ErrNotEvent when the root is neither <event> nor <auth>,
// ErrMalformed when the tags cannot be read, and ErrEmbeddedEventEnd when an <event> holds
// the bytes "</event" anywhere but in its own end tag (in CDATA, a comment, a processing
// instruction or an attribute value): such a document is one event to cotd but two to a TAK
// client that receives it. It allocates once when the document has any of the string fields,
// to hold them all.
//
// Times it cannot read are zero in h, as absent ones are; CheckTimes tells them apart.
func ScanHeader(doc []byte, h *Header) error {
	h.reset()
	if err := scanHeader(doc, h); err != nil {
		h.reset()
		return err
	}
	return nil
}

func scanHeader(doc []byte, h *Header) error {
	var (
		raw                             [numFields]Value
		destBytes                       int
		inDetail, inMarti               bool
		seenPoint, seenCot, seenContact bool // the first of each element wins
		seenGroup, seenLink, seenMarti  bool
		lx                              Lexer
		t                               Token
	)
	lx.Reset(doc, Lenient)
	for {
		var ok bool
		var err error
		t, ok, err = lx.Next()
		if err != nil {
			return err
		}
		if !ok {
			if h.Kind == DocUnknown {
				return fmt.Errorf("%w: no root element", ErrNotEvent)
			}
			return fmt.Errorf("%w: <%s> is not closed", ErrMalformed, h.Kind)
		}
		if t.Kind == TokenEnd {
			if t.Depth > 0 && h.Kind == DocEvent && bytes.HasPrefix(t.Name, eventName) {
				return fmt.Errorf("%w at offset %d", ErrEmbeddedEventEnd, t.Start)
			}
			if inMarti && t.Depth == 2 {
				inMarti, h.MartiEnd = false, t.End
			}
			if inDetail && t.Depth == 1 {
				inDetail = false
			}
			if t.Depth <= 0 {
				break
			}
			continue
		}
		// string(t.Name) appears only in comparisons, where the compiler does not allocate.
		switch parent := t.Depth; {
		case parent == 0:
			switch string(t.Name) {
			case "event":
				h.Kind = DocEvent
				readEventAttrs(t.Attrs, h, &raw)
			case "auth":
				h.Kind = DocAuth
			default:
				return fmt.Errorf("%w: root element <%s>", ErrNotEvent, t.Name)
			}
		case parent == 1 && h.Kind == DocEvent:
			switch {
			case string(t.Name) == "point" && !seenPoint:
				seenPoint = true
				readPoint(t.Attrs, h)
			case string(t.Name) == "detail":
				inDetail = t.Kind == TokenStart
			}
		case parent == 1 && h.Kind == DocAuth:
			if string(t.Name) == "cot" && !seenCot {
				seenCot = true
				readAttrs(t.Attrs, &raw, authAttrs)
			}
		case parent == 2 && inDetail:
			switch {
			case string(t.Name) == "contact" && !seenContact:
				seenContact = true
				readAttrs(t.Attrs, &raw, contactAttrs)
			case string(t.Name) == "__group" && !seenGroup:
				seenGroup = true
				readAttrs(t.Attrs, &raw, groupAttrs)
			case string(t.Name) == "link" && !seenLink:
				seenLink = true
				readAttrs(t.Attrs, &raw, linkAttrs)
			case string(t.Name) == "marti" && !seenMarti:
				seenMarti = true
				h.MartiStart = t.Start
				if t.Kind == TokenEmpty {
					h.MartiEnd = t.End
				} else {
					inMarti = true
				}
			}
		case parent == 3 && inMarti && string(t.Name) == "dest":
			destBytes += eachDest(t.Attrs, nil, nil)
		}
		if t.Depth == 0 && t.Kind == TokenEmpty {
			break
		}
	}

	if h.Kind == DocUnknown {
		return fmt.Errorf("%w: close tag before the root element", ErrNotEvent)
	}
	if h.Kind == DocEvent {
		if at := embeddedEventEnd(doc, t, lx.marks); at >= 0 {
			return fmt.Errorf("%w at offset %d", ErrEmbeddedEventEnd, at)
		}
	}
	total := destBytes
	for _, v := range raw {
		total += len(v)
	}
	if total == 0 {
		return nil
	}
	// One allocation for every string: values are written one after another into a builder
	// grown to their raw size (resolving entities only shrinks them) and sliced from it.
	var sb strings.Builder
	sb.Grow(total)
	ptrs := h.fields()
	for k, v := range raw {
		if v == nil {
			continue
		}
		*ptrs[k] = v.Decode(&sb)
	}
	if destBytes > 0 && h.MartiEnd > h.MartiStart {
		martiDests(doc[h.MartiStart:h.MartiEnd], h, &sb)
	}
	return nil
}

// eventEnd is what ATAK, WinTAK (commo) and node-tak cut their input streams at, wherever it
// stands: an event may hold it only as its own end tag.
var (
	eventEnd  = []byte("</event")
	eventName = eventEnd[2:]
)

// embeddedEventEnd returns the offset of a "</event" in doc other than the end tag of its
// root, or -1. root is the root's end tag (or the root itself when it is an empty-element
// tag), and marks the number of '<' bytes the lexer read as markup up to it; the scan has
// already refused inner close tags named event*. So when every '<' before the root's end was
// markup, no "</event" can hide in a value, comment, CDATA section or processing
// instruction, and the search through the document (a few percent of the scan) is skipped.
func embeddedEventEnd(doc []byte, root Token, marks int) int {
	if at := bytes.Index(doc[root.End:], eventEnd); at >= 0 {
		return root.End + at
	}
	if bytes.Count(doc[:root.End], eventEnd[:1]) == marks {
		return -1
	}
	body := doc[:root.End]
	if root.Kind == TokenEnd {
		body = doc[:root.Start]
	}
	return bytes.Index(body, eventEnd)
}

// The attributes read from each element, as (attribute name, field) pairs.
type attrField struct {
	name  string
	field int
}

var (
	eventAttrs   = []attrField{{"uid", fieldUID}, {"type", fieldType}, {"how", fieldHow}}
	contactAttrs = []attrField{{"callsign", fieldCallsign}, {"endpoint", fieldEndpoint}}
	groupAttrs   = []attrField{{"name", fieldGroupName}, {"role", fieldGroupRole}}
	linkAttrs    = []attrField{{"uid", fieldLinkUID}, {"type", fieldLinkType}, {"relation", fieldLinkRelation}}
	authAttrs    = []attrField{
		{"username", fieldAuthUsername}, {"password", fieldAuthPassword},
		{"uid", fieldAuthUID}, {"callsign", fieldAuthCallsign},
	}
)

// readAttrs records the raw values of the wanted attributes; the first occurrence wins.
func readAttrs(a Attrs, raw *[numFields]Value, want []attrField) {
	for {
		name, val, ok := a.Next()
		if !ok {
			return
		}
		recordAttr(name, val, raw, want)
	}
}

// recordAttr records val if name is one of the wanted attributes not yet seen.
func recordAttr(name []byte, val Value, raw *[numFields]Value, want []attrField) {
	for _, w := range want {
		if string(name) == w.name && raw[w.field] == nil {
			// A non-nil empty slice marks "present but empty".
			raw[w.field] = val[:len(val):len(val)]
		}
	}
}

// readEventAttrs reads <event>'s strings (the first occurrence wins) and times (the last
// wins) in one pass over its attributes: every document has one.
func readEventAttrs(a Attrs, h *Header, raw *[numFields]Value) {
	for {
		name, val, ok := a.Next()
		if !ok {
			return
		}
		var dst *time.Time
		var bit timeAttr
		switch string(name) {
		case "time":
			dst, bit = &h.Time, timeAttrTime
		case "start":
			dst, bit = &h.Start, timeAttrStart
		case "stale":
			dst, bit = &h.Stale, timeAttrStale
		default:
			recordAttr(name, val, raw, eventAttrs)
			continue
		}
		var good bool
		if *dst, good = ParseTime(val); !good {
			h.unreadable |= bit
		} else {
			h.unreadable &^= bit
		}
	}
}

func readPoint(a Attrs, h *Header) {
	for {
		name, val, ok := a.Next()
		if !ok {
			return
		}
		switch string(name) {
		case "lat":
			h.Lat = parseFloat(val)
		case "lon":
			h.Lon = parseFloat(val)
		case "hae":
			h.HAE = parseFloat(val)
		case "ce":
			h.CE = parseFloat(val)
		case "le":
			h.LE = parseFloat(val)
		}
	}
}

// eachDest returns the summed raw length of the callsign and uid attributes of one <dest>;
// when h is not nil it also decodes each into sb and appends it to h.DestCallsigns or
// h.DestUIDs. The first pass calls it with h nil to size the arena, the second to fill h.
func eachDest(a Attrs, h *Header, sb *strings.Builder) int {
	n := 0
	for {
		name, val, ok := a.Next()
		if !ok {
			return n
		}
		var list *[]string
		switch string(name) {
		case "callsign":
			n += len(val)
			if h != nil {
				list = &h.DestCallsigns
			}
		case "uid":
			n += len(val)
			if h != nil {
				list = &h.DestUIDs
			}
		}
		if list != nil {
			*list = append(*list, val.Decode(sb))
		}
	}
}

// martiDests is the second pass over the <marti> element, run once the string arena has been
// sized: it appends every dest's callsign and uid to h.
func martiDests(marti []byte, h *Header, sb *strings.Builder) {
	var lx Lexer
	lx.Reset(marti, Lenient)
	for {
		t, ok, err := lx.Next()
		if err != nil || !ok {
			return
		}
		if t.Kind != TokenEnd && t.Depth == 1 && string(t.Name) == "dest" {
			eachDest(t.Attrs, h, sb)
		}
	}
}

// IsSA reports whether the document is a situational-awareness report by TAK Server's rule:
// an event with a uid, a contact callsign and a contact endpoint. The latest SA of each
// client is what gets cached and replayed to newcomers.
func (h *Header) IsSA() bool {
	return h.Kind == DocEvent && h.UID != "" && h.Callsign != "" && h.Endpoint != ""
}

// IsPositionReport reports whether the document is an SA of an atom ("a-" type), i.e. a
// position that a newer one from the same uid fully supersedes. Back-pressure may drop such
// a report for a slow recipient without losing information, which it may not do for chat or
// drawings.
func (h *Header) IsPositionReport() bool {
	return h.IsSA() && strings.HasPrefix(h.Type, TypePrefixAtom)
}

// StripMarti returns doc without the <marti> element found by ScanHeader, as TAK Server
// removes it before delivery: recipients have no use for the routing list and should not see
// who else was addressed. When there is no <marti> it returns doc itself, otherwise a new
// slice. h must come from scanning this very doc; a range that does not fit doc is ignored.
func StripMarti(doc []byte, h *Header) []byte {
	s, e := h.MartiStart, h.MartiEnd
	if s < 0 || e <= s || e > len(doc) {
		return doc
	}
	out := make([]byte, 0, len(doc)-(e-s))
	out = append(out, doc[:s]...)
	return append(out, doc[e:]...)
}

// parseFloat reads a decimal attribute; absent, unparsable or non-finite values read as 0.
func parseFloat(b []byte) float64 {
	if len(b) == 0 {
		return 0
	}
	// string(b) does not escape here, so for short numbers the conversion uses a stack buffer.
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}
