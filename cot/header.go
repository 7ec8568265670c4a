package cot

import (
	"fmt"
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
// comments are skipped too). It resets h first; on error h is left reset. It returns
// ErrNotEvent when the root is neither <event> nor <auth>, ErrMalformed when the tags cannot
// be read. It allocates once when the document has any of the string fields, to hold them
// all.
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
		raw                             [numFields][]byte
		depth, destBytes                int
		inDetail, inMarti               bool
		seenPoint, seenCot, seenContact bool // the first of each element wins
		seenGroup, seenLink, seenMarti  bool
	)
	for i := 0; ; {
		t, ok, err := nextTag(doc, i)
		if err != nil {
			return err
		}
		if !ok {
			if h.Kind == DocUnknown {
				return fmt.Errorf("%w: no root element", ErrNotEvent)
			}
			return fmt.Errorf("%w: <%s> is not closed", ErrMalformed, h.Kind)
		}
		i = t.end
		if t.kind == tagEnd {
			depth--
			if inMarti && depth == 2 {
				inMarti, h.MartiEnd = false, t.end
			}
			if inDetail && depth == 1 {
				inDetail = false
			}
			if depth <= 0 {
				break
			}
			continue
		}
		parent := depth
		if t.kind == tagStart {
			depth++
		}
		// string(t.name) appears only in comparisons, where the compiler does not allocate.
		switch {
		case parent == 0:
			switch string(t.name) {
			case "event":
				h.Kind = DocEvent
				readEventAttrs(t.attrs, h, &raw)
			case "auth":
				h.Kind = DocAuth
			default:
				return fmt.Errorf("%w: root element <%s>", ErrNotEvent, t.name)
			}
		case parent == 1 && h.Kind == DocEvent:
			switch {
			case string(t.name) == "point" && !seenPoint:
				seenPoint = true
				readPoint(t.attrs, h)
			case string(t.name) == "detail":
				inDetail = t.kind == tagStart
			}
		case parent == 1 && h.Kind == DocAuth:
			if string(t.name) == "cot" && !seenCot {
				seenCot = true
				readAttrs(t.attrs, &raw, authAttrs)
			}
		case parent == 2 && inDetail:
			switch {
			case string(t.name) == "contact" && !seenContact:
				seenContact = true
				readAttrs(t.attrs, &raw, contactAttrs)
			case string(t.name) == "__group" && !seenGroup:
				seenGroup = true
				readAttrs(t.attrs, &raw, groupAttrs)
			case string(t.name) == "link" && !seenLink:
				seenLink = true
				readAttrs(t.attrs, &raw, linkAttrs)
			case string(t.name) == "marti" && !seenMarti:
				seenMarti = true
				h.MartiStart = t.start
				if t.kind == tagEmpty {
					h.MartiEnd = t.end
				} else {
					inMarti = true
				}
			}
		case parent == 3 && inMarti && string(t.name) == "dest":
			destBytes += eachDest(t.attrs, nil, nil)
		}
		if parent == 0 && t.kind == tagEmpty {
			break
		}
	}

	if h.Kind == DocUnknown {
		return fmt.Errorf("%w: close tag before the root element", ErrNotEvent)
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
		from := sb.Len()
		WriteUnescaped(&sb, v)
		*ptrs[k] = sb.String()[from:]
	}
	if destBytes > 0 && h.MartiEnd > h.MartiStart {
		martiDests(doc[h.MartiStart:h.MartiEnd], h, &sb)
	}
	return nil
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
func readAttrs(a []byte, raw *[numFields][]byte, want []attrField) {
	for {
		name, val, rest, ok := nextAttr(a)
		if !ok {
			return
		}
		a = rest
		for _, w := range want {
			if string(name) == w.name && raw[w.field] == nil {
				// A non-nil empty slice marks "present but empty".
				raw[w.field] = val[:len(val):len(val)]
			}
		}
	}
}

func readEventAttrs(a []byte, h *Header, raw *[numFields][]byte) {
	readAttrs(a, raw, eventAttrs)
	for {
		name, val, rest, ok := nextAttr(a)
		if !ok {
			return
		}
		a = rest
		switch string(name) {
		case "time":
			h.Time = parseTime(val)
		case "start":
			h.Start = parseTime(val)
		case "stale":
			h.Stale = parseTime(val)
		}
	}
}

func readPoint(a []byte, h *Header) {
	for {
		name, val, rest, ok := nextAttr(a)
		if !ok {
			return
		}
		a = rest
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
// when h is not nil it also unescapes each into sb and appends it to h.DestCallsigns or
// h.DestUIDs. The first pass calls it with h nil to size the arena, the second to fill h.
func eachDest(a []byte, h *Header, sb *strings.Builder) int {
	n := 0
	for {
		name, val, rest, ok := nextAttr(a)
		if !ok {
			return n
		}
		a = rest
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
			from := sb.Len()
			WriteUnescaped(sb, val)
			*list = append(*list, sb.String()[from:])
		}
	}
}

// martiDests is the second pass over the <marti> element, run once the string arena has been
// sized: it appends every dest's callsign and uid to h.
func martiDests(marti []byte, h *Header, sb *strings.Builder) {
	depth := 0
	for i := 0; ; {
		t, ok, err := nextTag(marti, i)
		if err != nil || !ok {
			return
		}
		i = t.end
		switch t.kind {
		case tagEnd:
			depth--
		case tagStart, tagEmpty:
			if depth == 1 && string(t.name) == "dest" {
				eachDest(t.attrs, h, sb)
			}
			if t.kind == tagStart {
				depth++
			}
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
