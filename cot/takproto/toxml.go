package takproto

import (
	"bytes"
	"cotd/cot"
	"fmt"
	"math"
	"slices"
	"strconv"
)

// AppendXML appends m's event to dst as a CoT <event> document and returns the extended
// slice: no XML declaration and nothing after "</event>" (a client splits the stream there,
// so trailing bytes would start its next chunk). Attribute values are escaped, times are
// formatted as cot.FormatTime does, numbers in plain decimal where that is exact and short
// (lat/lon always are) and in exponent form otherwise, both of which Java's
// Double.parseDouble reads back to the same value. <detail> is XmlDetail followed by each
// typed field whose element XmlDetail does not already have at its top level, as commo
// rebuilds it; it is <detail/> when both are empty.
//
// Errors wrap ErrMalformed: m has no CotEvent, a time is after 9999-12-31T23:59:59.999Z
// (also wrapping cot.ErrImplausibleTime: microseconds sent as milliseconds land there), or
// XmlDetail is not well-formed element content (read with a cot.StrictContent lexer) or
// contains "</event" or "</auth" (also wrapping cot.ErrEmbeddedEventEnd: XML recipients cut
// their streams at these bytes, so a v1 peer could otherwise inject events). The two wrapped
// cot errors concern this one event, not the stream it came on. On error dst is returned
// unchanged. It allocates only when dst lacks the capacity, and then
// once unless values need much escaping.
func AppendXML(dst []byte, m *TakMessage) ([]byte, error) {
	if m == nil || m.CotEvent == nil {
		return dst, fmt.Errorf("%w: no cotEvent", ErrMalformed)
	}
	e := m.CotEvent
	for _, ms := range [...]uint64{e.SendTime, e.StartTime, e.StaleTime} {
		if ms > maxMillis {
			return dst, fmt.Errorf("%w: %w: time %d ms after year 9999", ErrMalformed, cot.ErrImplausibleTime, ms)
		}
	}
	in := dst
	dst = slices.Grow(dst, xmlSize(e))
	dst = append(dst, `<event version="2.0" uid="`...)
	dst = cot.AppendEscaped(dst, e.Uid)
	dst = append(dst, `" type="`...)
	dst = cot.AppendEscaped(dst, e.Type)
	dst = append(dst, `" how="`...)
	dst = cot.AppendEscaped(dst, e.How)
	dst = append(dst, `" time="`...)
	dst = appendMillis(dst, e.SendTime)
	dst = append(dst, `" start="`...)
	dst = appendMillis(dst, e.StartTime)
	dst = append(dst, `" stale="`...)
	dst = appendMillis(dst, e.StaleTime)
	dst = append(dst, '"')
	dst = appendAttr(dst, "access", e.Access)
	dst = appendAttr(dst, "qos", e.Qos)
	dst = appendAttr(dst, "opex", e.Opex)
	dst = appendAttr(dst, "caveat", e.Caveat)
	dst = appendAttr(dst, "releaseableTo", e.ReleaseableTo)
	dst = append(dst, `><point lat="`...)
	dst = appendFloat(dst, e.Lat)
	dst = append(dst, `" lon="`...)
	dst = appendFloat(dst, e.Lon)
	dst = append(dst, `" hae="`...)
	dst = appendFloat(dst, e.Hae)
	dst = append(dst, `" ce="`...)
	dst = appendFloat(dst, e.Ce)
	dst = append(dst, `" le="`...)
	dst = appendFloat(dst, e.Le)
	dst = append(dst, `"/>`...)

	mark := len(dst)
	dst = append(dst, "<detail>"...)
	var shadowed [numTyped]bool // typed fields that XmlDetail overrides
	if d := e.Detail; d != nil && d.XmlDetail != "" {
		// XmlDetail is checked where it was copied to, which spares a conversion to []byte.
		from := len(dst)
		dst = append(dst, d.XmlDetail...)
		var err error
		if shadowed, err = checkXMLDetail(dst[from:]); err != nil {
			return in, err
		}
	}
	if e.Detail != nil {
		dst = appendTyped(dst, e.Detail, &shadowed)
	}
	if len(dst) == mark+len("<detail>") {
		dst = append(dst[:mark], "<detail/>"...)
	} else {
		dst = append(dst, "</detail>"...)
	}
	return append(dst, "</event>"...), nil
}

// appendTyped appends the element of each typed field of d that XmlDetail does not have.
func appendTyped(dst []byte, d *Detail, shadowed *[numTyped]bool) []byte {
	if c := d.Contact; c != nil && !shadowed[typedContact] {
		dst = append(dst, "<contact"...)
		dst = appendAttr(dst, "endpoint", c.Endpoint)
		dst = append(dst, ` callsign="`...)
		dst = cot.AppendEscaped(dst, c.Callsign)
		dst = append(dst, `"/>`...)
	}
	if g := d.Group; g != nil && !shadowed[typedGroup] {
		dst = append(dst, `<__group name="`...)
		dst = cot.AppendEscaped(dst, g.Name)
		dst = append(dst, `" role="`...)
		dst = cot.AppendEscaped(dst, g.Role)
		dst = append(dst, `"/>`...)
	}
	if p := d.PrecisionLocation; p != nil && !shadowed[typedPrecisionLocation] {
		dst = append(dst, `<precisionlocation geopointsrc="`...)
		dst = cot.AppendEscaped(dst, p.Geopointsrc)
		dst = append(dst, `" altsrc="`...)
		dst = cot.AppendEscaped(dst, p.Altsrc)
		dst = append(dst, `"/>`...)
	}
	if s := d.Status; s != nil && !shadowed[typedStatus] {
		// ATAK reads battery as a Java int; commo clamps it the same way.
		dst = append(dst, `<status battery="`...)
		dst = strconv.AppendUint(dst, uint64(min(s.Battery, math.MaxInt32)), 10)
		dst = append(dst, `"/>`...)
	}
	if t := d.Takv; t != nil && !shadowed[typedTakv] {
		dst = append(dst, `<takv device="`...)
		dst = cot.AppendEscaped(dst, t.Device)
		dst = append(dst, `" platform="`...)
		dst = cot.AppendEscaped(dst, t.Platform)
		dst = append(dst, `" os="`...)
		dst = cot.AppendEscaped(dst, t.Os)
		dst = append(dst, `" version="`...)
		dst = cot.AppendEscaped(dst, t.Version)
		dst = append(dst, `"/>`...)
	}
	if t := d.Track; t != nil && !shadowed[typedTrack] {
		dst = append(dst, `<track speed="`...)
		dst = appendFloat(dst, t.Speed)
		dst = append(dst, `" course="`...)
		dst = appendFloat(dst, t.Course)
		dst = append(dst, `"/>`...)
	}
	return dst
}

// xmlSize estimates the length of e as XML, so that AppendXML grows dst at most once for
// events whose values need little escaping: the markup and the numbers at their longest,
// plus every string.
func xmlSize(e *CotEvent) int {
	const (
		eventMarkup = 400 // <event ...> with all attributes, <point .../>, <detail></detail></event>
		typedMarkup = 300 // every typed element with its attribute names and numbers
	)
	n := eventMarkup + len(e.Uid) + len(e.Type) + len(e.How) + len(e.Access) + len(e.Qos) +
		len(e.Opex) + len(e.Caveat) + len(e.ReleaseableTo)
	if d := e.Detail; d != nil {
		n += len(d.XmlDetail) + typedMarkup
		if c := d.Contact; c != nil {
			n += len(c.Endpoint) + len(c.Callsign)
		}
		if g := d.Group; g != nil {
			n += len(g.Name) + len(g.Role)
		}
		if p := d.PrecisionLocation; p != nil {
			n += len(p.Geopointsrc) + len(p.Altsrc)
		}
		if t := d.Takv; t != nil {
			n += len(t.Device) + len(t.Platform) + len(t.Os) + len(t.Version)
		}
	}
	return n
}

// checkXMLDetail checks that x is well-formed element content that cannot end the
// document around it, and reports which typed elements it has at its top level.
func checkXMLDetail(x []byte) (shadowed [numTyped]bool, err error) {
	if bytes.Contains(x, []byte("</event")) || bytes.Contains(x, []byte("</auth")) {
		return shadowed, fmt.Errorf("%w: %w: xmlDetail contains a document end tag", ErrMalformed, cot.ErrEmbeddedEventEnd)
	}
	var lx cot.Lexer
	lx.Reset(x, cot.StrictContent)
	for {
		t, ok, err := lx.Next()
		if err != nil {
			return shadowed, fmt.Errorf("%w: xmlDetail: %w", ErrMalformed, err)
		}
		if !ok {
			return shadowed, nil
		}
		if t.Depth == 0 && t.Kind != cot.TokenEnd {
			if k, ok := typedByName(t.Name); ok {
				shadowed[k] = true
			}
		}
	}
}

// appendAttr appends ` name="value"` when value is not empty.
func appendAttr(b []byte, name, value string) []byte {
	if value == "" {
		return b
	}
	b = append(b, ' ')
	b = append(b, name...)
	b = append(b, `="`...)
	b = cot.AppendEscaped(b, value)
	return append(b, '"')
}

// appendFloat appends v so that both Go's strconv.ParseFloat and Java's Double.parseDouble
// read back the same float64: the shortest plain decimal for magnitudes from 1e-6 to 1e21
// (every coordinate), the shortest exponent form outside that range, and NaN, Infinity or
// -Infinity, spelt as Java spells them.
func appendFloat(b []byte, v float64) []byte {
	switch {
	case math.IsNaN(v):
		return append(b, "NaN"...)
	case math.IsInf(v, 1):
		return append(b, "Infinity"...)
	case math.IsInf(v, -1):
		return append(b, "-Infinity"...)
	}
	if a := math.Abs(v); a != 0 && (a < 1e-6 || a >= 1e21) {
		return strconv.AppendFloat(b, v, 'e', -1, 64)
	}
	return strconv.AppendFloat(b, v, 'f', -1, 64)
}
