package takproto

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"cotd/cot"
)

// typed is one of the <detail> children that have a typed field in Detail, in field order.
//
// It names an element kind, not a state: no transitions.
type typed uint8

const (
	typedContact typed = iota
	typedGroup
	typedPrecisionLocation
	typedStatus
	typedTakv
	typedTrack
	numTyped
)

// typedSpecs describes each typed element: its name and its attributes, required ones
// first. Only an element whose attributes are all listed, each once, with every required one
// present, moves into its typed field; commo applies the same rule.
var typedSpecs = [numTyped]struct {
	name     string
	attrs    []string
	required int
}{
	typedContact:           {"contact", []string{"callsign", "endpoint"}, 1},
	typedGroup:             {"__group", []string{"name", "role"}, 2},
	typedPrecisionLocation: {"precisionlocation", []string{"geopointsrc", "altsrc"}, 2},
	typedStatus:            {"status", []string{"battery"}, 1},
	typedTakv:              {"takv", []string{"device", "platform", "os", "version"}, 4},
	typedTrack:             {"track", []string{"speed", "course"}, 2},
}

func (k typed) String() string {
	if k < numTyped {
		return typedSpecs[k].name
	}
	return "typed(" + strconv.Itoa(int(k)) + ")"
}

// typedByName returns the typed element called name.
func typedByName(name []byte) (typed, bool) {
	for k := range numTyped {
		if string(name) == typedSpecs[k].name {
			return k, true
		}
	}
	return 0, false
}

// maxTypedAttrs is the most attributes any typed element has (takv).
const maxTypedAttrs = 4

// candidate is an occurrence of a typed element among the children of <detail>.
type candidate struct {
	count      int // occurrences; only a single one can move
	start, end int // the element's bytes in the document
	tagEnd     int // end of its start tag
	attrs      cot.Attrs
	empty      bool                     // <x/> or <x></x>: libxml gives it no child nodes
	vals       [maxTypedAttrs]cot.Value // raw attribute values in typedSpecs order
	num        [2]float64               // track: speed, course
	battery    uint32
}

// qualify reports whether the single occurrence c of the typed element k moves into its
// typed field, reading its attribute values into c.
func (c *candidate) qualify(k typed) bool {
	if c.count != 1 || !c.empty {
		return false
	}
	spec := &typedSpecs[k]
	for a := c.attrs; ; {
		name, val, ok := a.Next()
		if !ok {
			break
		}
		i := 0
		for i < len(spec.attrs) && string(name) != spec.attrs[i] {
			i++
		}
		if i == len(spec.attrs) || c.vals[i] != nil {
			return false // unmapped or repeated attribute
		}
		if !validValue(val) {
			return false
		}
		c.vals[i] = val[:len(val):len(val)] // non-nil even when empty: present
	}
	for _, v := range c.vals[:spec.required] {
		if v == nil {
			return false
		}
	}
	switch k {
	case typedStatus:
		// commo reads battery as an int from 0 to INT_MAX.
		// ParseUint takes no sign, and bit size 31 bounds it at INT_MAX. string() of a value
		// that does not escape costs no allocation.
		v, err := strconv.ParseUint(string(c.vals[0]), 10, 31)
		if err != nil || len(c.vals[0]) > 10 {
			return false
		}
		c.battery = uint32(v)
	case typedTrack:
		for i := range c.num {
			v, ok := parseFloat(c.vals[i])
			if !ok {
				return false
			}
			c.num[i] = v
		}
	}
	return true
}

// The string fields of an event, as indexes into FromXML's table of raw values.
const (
	strType = iota
	strAccess
	strQos
	strOpex
	strUid
	strHow
	strCaveat
	strReleaseableTo
	numEventStrs
)

var eventAttrNames = [numEventStrs]string{
	strType: "type", strAccess: "access", strQos: "qos", strOpex: "opex", strUid: "uid",
	strHow: "how", strCaveat: "caveat", strReleaseableTo: "releaseableTo",
}

// FromXML resets m and fills it from one CoT <event> document: m.CotEvent with the event's
// attributes (other than the version), times in milliseconds, the <point>, and the <detail>
// split as commo splits it (tak-protocol.md 2.4). A child of <detail> moves into its typed
// field only if it occurs once, has no content, and all its attributes map, required ones
// present (contact: callsign, endpoint optional; __group: name and role; precisionlocation:
// both; status: battery, an integer from 0 to 2^31-1; takv: all four; track: speed and
// course, finite numbers). Everything else stays in XmlDetail: the content of <detail> as it
// was in the source, minus the moved elements; XmlDetail that is only whitespace is dropped.
// m.CotEvent.Detail is nil when nothing is left. A missing attribute reads as empty or zero.
//
// doc is what cot.XMLFramer emits; a leading byte order mark, declaration, comments and
// whitespace are skipped, and nothing after the root element is read. Errors wrap
// cot.ErrNotEvent when the root is not <event>, and cot.ErrMalformed when doc is not UTF-8,
// is not well-formed (read with a cot.Strict lexer), has a time, point value or event
// attribute value that cannot be read, or has a <detail> that keeps "</event" or "</auth" in
// XmlDetail (commo and others cut streams at these bytes wherever they are, so an XML
// recipient could not receive the event back). The time errors also wrap
// cot.ErrImplausibleTime and the end-tag errors cot.ErrEmbeddedEventEnd, as AppendXML's do.
// On error m is left reset.
//
// It allocates twice: one string holding every string field (so any one of them keeps it
// alive), and one block for the sub-messages. doc is not retained.
func FromXML(doc []byte, m *TakMessage) error {
	*m = TakMessage{}
	if err := fromXML(doc, m); err != nil {
		*m = TakMessage{}
		return err
	}
	return nil
}

func fromXML(doc []byte, m *TakMessage) error {
	if !utf8.Valid(doc) {
		return fmt.Errorf("%w: not UTF-8", cot.ErrMalformed)
	}
	var p eventParts
	if err := p.scan(bytes.TrimPrefix(doc, []byte("\xEF\xBB\xBF"))); err != nil {
		return err
	}
	return p.build(m)
}

// eventParts is what the pass over a document finds, before any string is made.
type eventParts struct {
	doc   []byte
	ev    CotEvent // times and point
	raw   [numEventStrs]cot.Value
	cands [numTyped]candidate
	// The content of the first <detail> is doc[detailFrom:detailTo].
	detailFrom, detailTo int
}

func (p *eventParts) scan(doc []byte) error {
	p.doc = doc
	var (
		seenEvent, seenPoint, seenDetail bool
		inDetail                         bool
		open                             *candidate // a typed element whose end tag is pending
	)
	var lx cot.Lexer
	lx.Reset(doc, cot.Strict)
	for {
		t, ok, err := lx.Next()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		switch {
		case t.Depth == 0:
			if t.Kind == cot.TokenEnd {
				break
			}
			if string(t.Name) != "event" {
				return fmt.Errorf("%w: root element <%s>", cot.ErrNotEvent, t.Name)
			}
			seenEvent = true
			if err := readEvent(t.Attrs, &p.ev, &p.raw); err != nil {
				return err
			}
		case t.Depth == 1 && t.Kind != cot.TokenEnd:
			switch {
			case string(t.Name) == "point" && !seenPoint:
				seenPoint = true
				if err := readPoint(t.Attrs, &p.ev); err != nil {
					return err
				}
			case string(t.Name) == "detail" && !seenDetail:
				seenDetail = true
				inDetail = t.Kind == cot.TokenStart
				p.detailFrom, p.detailTo = t.End, t.End
			}
		case t.Depth == 1 && inDetail && string(t.Name) == "detail":
			inDetail, p.detailTo = false, t.Start
		case t.Depth == 2 && inDetail:
			if t.Kind == cot.TokenEnd {
				if open != nil {
					open.end = t.End
					open.empty = t.Start == open.tagEnd
					open = nil
				}
				break
			}
			k, ok := typedByName(t.Name)
			if !ok {
				break
			}
			c := &p.cands[k]
			c.count++
			c.start, c.end, c.tagEnd, c.attrs = t.Start, t.End, t.End, t.Attrs
			c.empty = t.Kind == cot.TokenEmpty
			if t.Kind == cot.TokenStart {
				open = c
			}
		}
	}
	if !seenEvent {
		return fmt.Errorf("%w: no root element", cot.ErrNotEvent)
	}
	return nil
}

// build fills m from the parts: it decides which typed elements move, cuts them out of
// the detail content, and makes every string at once.
func (p *eventParts) build(m *TakMessage) error {
	var (
		moved  [numTyped]bool
		holes  [numTyped][2]int // the moved elements, in document order
		nholes int
		// total bounds the bytes of every string field, to size the one string holding
		// them: resolving references only shrinks a value.
		total int
	)
	for _, v := range p.raw {
		total += len(v)
	}
	for k := range numTyped {
		c := &p.cands[k]
		if !c.qualify(k) {
			continue
		}
		moved[k] = true
		for _, v := range c.vals {
			total += len(v)
		}
		i := nholes
		for ; i > 0 && holes[i-1][0] > c.start; i-- {
			holes[i] = holes[i-1]
		}
		holes[i] = [2]int{c.start, c.end}
		nholes++
	}
	xmlLen, blank := 0, true
	p.eachPiece(holes[:nholes], func(piece []byte) {
		xmlLen += len(piece)
		blank = blank && len(bytes.TrimLeft(piece, " \t\r\n")) == 0
	})
	if blank {
		xmlLen = 0
	}
	total += xmlLen

	var sb strings.Builder
	sb.Grow(total)
	str := func(v cot.Value) string {
		if len(v) == 0 {
			return ""
		}
		return v.Decode(&sb)
	}
	blk := new(block)
	e := &blk.event
	*e = p.ev
	raw := &p.raw
	e.Type, e.Access, e.Qos, e.Opex = str(raw[strType]), str(raw[strAccess]), str(raw[strQos]), str(raw[strOpex])
	e.Uid, e.How, e.Caveat = str(raw[strUid]), str(raw[strHow]), str(raw[strCaveat])
	e.ReleaseableTo = str(raw[strReleaseableTo])
	m.CotEvent = e

	d := &blk.detail
	if xmlLen > 0 {
		from := sb.Len()
		p.eachPiece(holes[:nholes], func(piece []byte) { sb.Write(piece) })
		d.XmlDetail = sb.String()[from:]
		if strings.Contains(d.XmlDetail, "</event") || strings.Contains(d.XmlDetail, "</auth") {
			return fmt.Errorf("%w: %w: detail contains a document end tag", cot.ErrMalformed, cot.ErrEmbeddedEventEnd)
		}
	}
	for k := range numTyped {
		if !moved[k] {
			continue
		}
		c := &p.cands[k]
		v := &c.vals
		switch k {
		case typedContact:
			blk.contact = Contact{Callsign: str(v[0]), Endpoint: str(v[1])}
			d.Contact = &blk.contact
		case typedGroup:
			blk.group = Group{Name: str(v[0]), Role: str(v[1])}
			d.Group = &blk.group
		case typedPrecisionLocation:
			blk.precLoc = PrecisionLocation{Geopointsrc: str(v[0]), Altsrc: str(v[1])}
			d.PrecisionLocation = &blk.precLoc
		case typedStatus:
			blk.status = Status{Battery: c.battery}
			d.Status = &blk.status
		case typedTakv:
			blk.takv = Takv{Device: str(v[0]), Platform: str(v[1]), Os: str(v[2]), Version: str(v[3])}
			d.Takv = &blk.takv
		case typedTrack:
			blk.track = Track{Speed: c.num[0], Course: c.num[1]}
			d.Track = &blk.track
		}
	}
	if xmlLen > 0 || nholes > 0 {
		e.Detail = d
	}
	return nil
}

// eachPiece calls fn with each run of the detail content between the holes (sorted,
// non-overlapping ranges of the document), in order.
func (p *eventParts) eachPiece(holes [][2]int, fn func(piece []byte)) {
	at := p.detailFrom
	for _, h := range holes {
		if h[0] > at {
			fn(p.doc[at:h[0]])
		}
		at = h[1]
	}
	if p.detailTo > at {
		fn(p.doc[at:p.detailTo])
	}
}

// readEvent reads the attributes of <event>. The first of repeated attributes counts.
func readEvent(a cot.Attrs, ev *CotEvent, raw *[numEventStrs]cot.Value) error {
	var seenTime [3]bool
	for {
		name, val, ok := a.Next()
		if !ok {
			return nil
		}
		var (
			ms   *uint64
			seen *bool
		)
		switch string(name) {
		case "time":
			ms, seen = &ev.SendTime, &seenTime[0]
		case "start":
			ms, seen = &ev.StartTime, &seenTime[1]
		case "stale":
			ms, seen = &ev.StaleTime, &seenTime[2]
		}
		if ms != nil {
			if *seen {
				continue
			}
			*seen = true
			v, ok := parseMillis(val)
			if !ok {
				return fmt.Errorf("%w: %w: event %s %q", cot.ErrMalformed, cot.ErrImplausibleTime, name, val)
			}
			*ms = v
			continue
		}
		for i, n := range eventAttrNames {
			if string(name) != n || raw[i] != nil {
				continue
			}
			if !validValue(val) {
				return fmt.Errorf("%w: control character in event %s", cot.ErrMalformed, name)
			}
			raw[i] = val[:len(val):len(val)]
		}
	}
}

// readPoint reads the attributes of <point>. The first of repeated attributes counts.
func readPoint(a cot.Attrs, ev *CotEvent) error {
	var seen [5]bool
	for {
		name, val, ok := a.Next()
		if !ok {
			return nil
		}
		var (
			dst *float64
			i   int
		)
		switch string(name) {
		case "lat":
			dst, i = &ev.Lat, 0
		case "lon":
			dst, i = &ev.Lon, 1
		case "hae":
			dst, i = &ev.Hae, 2
		case "ce":
			dst, i = &ev.Ce, 3
		case "le":
			dst, i = &ev.Le, 4
		default:
			continue
		}
		if seen[i] {
			continue
		}
		seen[i] = true
		v, ok := parseFloat(val)
		if !ok {
			return fmt.Errorf("%w: point %s %q", cot.ErrMalformed, name, val)
		}
		*dst = v
	}
}

// parseFloat reads a decimal attribute value; it must be a finite number.
func parseFloat(b []byte) (float64, bool) {
	// string(b) does not escape, so for short numbers the conversion uses a stack buffer.
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, false
	}
	return v, true
}
