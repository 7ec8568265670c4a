package cot

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// This file holds the pull tokenizer under ScanHeader: it walks the tags of one complete
// document held in memory, so unlike XMLFramer it needs no resumable state.

// tagKind says which of the three tag forms a tag is.
//
// It is a property of one token, not a state: no transitions.
type tagKind uint8

const (
	tagStart tagKind = iota + 1 // <name ...>
	tagEnd                      // </name>
	tagEmpty                    // <name .../>
)

func (k tagKind) String() string {
	switch k {
	case tagStart:
		return "start"
	case tagEnd:
		return "end"
	case tagEmpty:
		return "empty"
	}
	return "tagKind(" + strconv.Itoa(int(k)) + ")"
}

// tag is one start, end or empty-element tag. name and attrs alias the document.
type tag struct {
	kind  tagKind
	name  []byte
	attrs []byte // what lies between the name and '>' (or "/>"), attributes and whitespace
	start int    // index of the tag's '<'
	end   int    // index just past the tag's '>'
}

var (
	commentOpen  = []byte("<!--")
	commentClose = []byte("-->")
	cdataOpen    = []byte("<![CDATA[")
	cdataClose   = []byte("]]>")
	piOpen       = []byte("<?")
	piClose      = []byte("?>")
)

// nextTag returns the first tag in doc at or after index i, skipping text, comments, CDATA
// sections and processing instructions. ok is false when no tag is left.
func nextTag(doc []byte, i int) (t tag, ok bool, err error) {
	for {
		j := bytes.IndexByte(doc[i:], '<')
		if j < 0 {
			return t, false, nil
		}
		i += j
		rest := doc[i:]
		var skip, close []byte
		switch {
		case bytes.HasPrefix(rest, commentOpen):
			skip, close = commentOpen, commentClose
		case bytes.HasPrefix(rest, cdataOpen):
			skip, close = cdataOpen, cdataClose
		case bytes.HasPrefix(rest, piOpen):
			skip, close = piOpen, piClose
		}
		if skip != nil {
			k := bytes.Index(rest[len(skip):], close)
			if k < 0 {
				return t, false, fmt.Errorf("%w: unterminated %q at offset %d", ErrMalformed, skip, i)
			}
			i += len(skip) + k + len(close)
			continue
		}
		if len(rest) > 1 && rest[1] == '/' {
			n := NameLen(rest[2:])
			k := bytes.IndexByte(rest, '>')
			if n == 0 || k < 0 {
				return t, false, fmt.Errorf("%w: bad close tag at offset %d", ErrMalformed, i)
			}
			return tag{kind: tagEnd, name: rest[2 : 2+n], start: i, end: i + k + 1}, true, nil
		}
		n := NameLen(rest[1:])
		if n == 0 {
			return t, false, fmt.Errorf("%w: '<' not followed by a name at offset %d", ErrMalformed, i)
		}
		// Find the '>' that ends the tag; one inside a quoted value does not count.
		k := 1 + n
		for k < len(rest) && rest[k] != '>' {
			if q := rest[k]; q == '"' || q == '\'' {
				e := bytes.IndexByte(rest[k+1:], q)
				if e < 0 {
					k = len(rest)
					break
				}
				k += e + 1
			}
			k++
		}
		if k >= len(rest) {
			return t, false, fmt.Errorf("%w: unterminated tag <%s at offset %d", ErrMalformed, rest[1:1+n], i)
		}
		t = tag{kind: tagStart, name: rest[1 : 1+n], attrs: rest[1+n : k], start: i, end: i + k + 1}
		if a := t.attrs; len(a) > 0 && a[len(a)-1] == '/' {
			t.kind, t.attrs = tagEmpty, a[:len(a)-1]
		}
		return t, true, nil
	}
}

// NameLen is the length of the XML name at the start of b (0 if b does not start with one).
func NameLen(b []byte) int {
	if len(b) == 0 || !IsNameStart(b[0]) {
		return 0
	}
	n := 1
	for n < len(b) && IsNameChar(b[n]) {
		n++
	}
	return n
}

// nextAttr splits the first attribute off a tag's attribute bytes. ok is false when none is
// left or the syntax is broken; the caller then stops reading that tag.
func nextAttr(a []byte) (name, val, rest []byte, ok bool) {
	i := 0
	for i < len(a) && IsSpace(a[i]) {
		i++
	}
	n := NameLen(a[i:])
	if n == 0 {
		return nil, nil, nil, false
	}
	name = a[i : i+n]
	i += n
	for i < len(a) && IsSpace(a[i]) {
		i++
	}
	if i == len(a) || a[i] != '=' {
		return nil, nil, nil, false
	}
	i++
	for i < len(a) && IsSpace(a[i]) {
		i++
	}
	if i == len(a) || (a[i] != '"' && a[i] != '\'') {
		return nil, nil, nil, false
	}
	e := bytes.IndexByte(a[i+1:], a[i])
	if e < 0 {
		return nil, nil, nil, false
	}
	return name, a[i+1 : i+1+e], a[i+2+e:], true
}

// WriteUnescaped writes an attribute value to sb with the XML entity references resolved.
// Unknown or broken references are kept as written rather than rejected: the router only
// compares these strings, and the raw document is forwarded unchanged anyway.
func WriteUnescaped(sb *strings.Builder, v []byte) {
	for {
		j := bytes.IndexByte(v, '&')
		if j < 0 {
			sb.Write(v)
			return
		}
		sb.Write(v[:j])
		v = v[j:]
		k := bytes.IndexByte(v, ';')
		if r, ok := entity(v[1:max(k, 1)]); k > 0 && ok {
			sb.WriteRune(r)
			v = v[k+1:]
			continue
		}
		sb.WriteByte('&')
		v = v[1:]
	}
}

// entity resolves the name of an entity reference (what lies between '&' and ';').
func entity(name []byte) (rune, bool) {
	switch string(name) {
	case "amp":
		return '&', true
	case "lt":
		return '<', true
	case "gt":
		return '>', true
	case "quot":
		return '"', true
	case "apos":
		return '\'', true
	}
	if len(name) < 2 || len(name) > 10 || name[0] != '#' {
		return 0, false
	}
	digits, base := name[1:], 10
	if digits[0] == 'x' {
		digits, base = digits[1:], 16
	}
	var r rune
	for _, c := range digits {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case base == 16 && c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case base == 16 && c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		r = r*rune(base) + rune(d)
	}
	if len(digits) == 0 || !utf8.ValidRune(r) || !isXMLChar(r) {
		return 0, false
	}
	return r, true
}

// isXMLChar reports whether XML 1.0 allows r in a document: a reference to
// anything else (&#0;) is kept as written rather than decoded.
func isXMLChar(r rune) bool {
	return r == 0x9 || r == 0xA || r == 0xD || r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
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

// parseTime reads an RFC 3339 timestamp as CoT uses it (2016-01-13T20:43:37.842Z): fractional
// seconds optional and of any length, 'Z' or a numeric offset. Anything else reads as the
// zero Time. Written by hand because time.Parse needs a string, which would cost an
// allocation per attribute.
func parseTime(b []byte) time.Time {
	t, _ := ParseTime(b)
	return t
}

// ParseTime reads a CoT time (2016-01-13T20:43:37.842Z: RFC 3339 with fractional seconds
// optional and of any length, 'Z' or a numeric offset) without converting b to a string.
// ok is false, and t zero, for anything else.
func ParseTime(b []byte) (t time.Time, ok bool) {
	if len(b) < len("2006-01-02T15:04:05Z") ||
		b[4] != '-' || b[7] != '-' || (b[10] != 'T' && b[10] != 't') || b[13] != ':' || b[16] != ':' {
		return time.Time{}, false
	}
	year, ok1 := num(b[0:4])
	month, ok2 := num(b[5:7])
	day, ok3 := num(b[8:10])
	hour, ok4 := num(b[11:13])
	minute, ok5 := num(b[14:16])
	sec, ok6 := num(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) ||
		month < 1 || month > 12 || day < 1 || day > daysIn(month, year) ||
		hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	rest := b[19:]
	nsec := 0
	if rest[0] == '.' {
		k := 1
		for scale := 100_000_000; k < len(rest) && rest[k] >= '0' && rest[k] <= '9'; k++ {
			nsec += int(rest[k]-'0') * scale
			scale /= 10
		}
		if k == 1 {
			return time.Time{}, false
		}
		rest = rest[k:]
	}
	var offset int
	switch {
	case len(rest) == 1 && (rest[0] == 'Z' || rest[0] == 'z'):
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, okh := num(rest[1:3])
		om, okm := num(rest[4:6])
		if !okh || !okm || oh > 23 || om > 59 {
			return time.Time{}, false
		}
		offset = (oh*60 + om) * 60
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return time.Time{}, false
	}
	t = time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	return t.Add(-time.Duration(offset) * time.Second), true
}

// num reads a run of ASCII digits.
func num(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}
