package takproto

import (
	"bytes"
	"fmt"
	"strconv"
	"time"

	"cotd/cot"
)

// This file holds the XML tokenizer under FromXML, ParseRequest and AppendXML's check of
// xmlDetail. It works on a complete document or fragment in memory and, unlike cot's header
// scanner, checks structure: close tags must match, attribute syntax must be right, nesting
// is bounded. A v1 client's xmlDetail ends up inside the XML sent to other clients, so it
// must not be able to close elements it did not open.

// maxDepth bounds element nesting, as cot.XMLFramer does.
const maxDepth = 64

// tokKind says which of the three tag forms a token is.
//
// It is a property of one token, not a state: no transitions.
type tokKind uint8

const (
	tokStart tokKind = iota + 1 // <name ...>
	tokEnd                      // </name>
	tokEmpty                    // <name .../>
)

func (k tokKind) String() string {
	switch k {
	case tokStart:
		return "start"
	case tokEnd:
		return "end"
	case tokEmpty:
		return "empty"
	}
	return "tokKind(" + strconv.Itoa(int(k)) + ")"
}

// token is one tag. name and attrs alias the source.
type token struct {
	kind  tokKind
	name  []byte
	attrs []byte // between the name and '>' (or "/>"): attributes and whitespace
	start int    // index of '<'
	end   int    // index just past '>'
	depth int    // number of elements open around the tag (for tokEnd: around the element)
}

// scanner yields the tags of src in order, skipping text, comments, CDATA sections and
// processing instructions.
type scanner struct {
	src []byte
	pos int
	// fragment: src is element content (xmlDetail), not a document. Text, CDATA and close
	// tags of unopened elements are judged accordingly.
	fragment bool
	depth    int
	open     [maxDepth][2]int // name range in src of each open element
	// done: the root element of a document has ended; what follows it is not read.
	done bool
}

func (s *scanner) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s at offset %d", cot.ErrMalformed, fmt.Sprintf(format, args...), s.pos)
}

// next returns the next tag; ok is false at the end of src or of a document's root element.
// Before the root element only whitespace, comments and processing instructions may appear.
func (s *scanner) next() (t token, ok bool, err error) {
	if s.done {
		return t, false, nil
	}
	for {
		j := bytes.IndexByte(s.src[s.pos:], '<')
		if j < 0 {
			j = len(s.src) - s.pos
		}
		if !s.fragment && s.depth == 0 && !isAllSpace(s.src[s.pos:s.pos+j]) {
			return t, false, s.errorf("text outside the root element")
		}
		s.pos += j
		if s.pos == len(s.src) {
			if s.depth > 0 {
				return t, false, s.errorf("<%s> is not closed", string(s.openName(s.depth-1)))
			}
			return t, false, nil
		}
		rest := s.src[s.pos:]
		switch {
		case bytes.HasPrefix(rest, []byte("<!--")):
			if err := s.skip(len("<!--"), "-->"); err != nil {
				return t, false, err
			}
			continue
		case bytes.HasPrefix(rest, []byte("<![CDATA[")) && (s.fragment || s.depth > 0):
			if err := s.skip(len("<![CDATA["), "]]>"); err != nil {
				return t, false, err
			}
			continue
		case bytes.HasPrefix(rest, []byte("<?")):
			n := cot.NameLen(rest[2:])
			if n == 0 {
				return t, false, s.errorf("processing instruction without target")
			}
			// The declaration is allowed only before the root element.
			if (s.fragment || s.depth > 0) && n == 3 && bytes.EqualFold(rest[2:5], []byte("xml")) {
				return t, false, s.errorf("xml declaration inside an element")
			}
			if err := s.skip(2+n, "?>"); err != nil {
				return t, false, err
			}
			continue
		case len(rest) > 1 && rest[1] == '/':
			return s.endTag()
		case len(rest) > 1 && rest[1] == '!':
			return t, false, s.errorf("'<!' is neither a comment nor CDATA")
		}
		return s.startTag()
	}
}

// skip moves past a comment, CDATA section or processing instruction whose opening is open
// bytes long and which ends with close.
func (s *scanner) skip(open int, close string) error {
	k := bytes.Index(s.src[s.pos+open:], []byte(close))
	if k < 0 {
		return s.errorf("unterminated %q", string(s.src[s.pos:s.pos+open]))
	}
	s.pos += open + k + len(close)
	return nil
}

func (s *scanner) openName(i int) []byte {
	return s.src[s.open[i][0]:s.open[i][1]]
}

func (s *scanner) endTag() (token, bool, error) {
	rest := s.src[s.pos:]
	n := cot.NameLen(rest[2:])
	if n == 0 {
		return token{}, false, s.errorf("bad close tag")
	}
	name := rest[2 : 2+n]
	k := 2 + n
	for k < len(rest) && cot.IsSpace(rest[k]) {
		k++
	}
	if k == len(rest) || rest[k] != '>' {
		return token{}, false, s.errorf("bad close tag </%s", string(name))
	}
	if s.depth == 0 {
		return token{}, false, s.errorf("close tag </%s> without start tag", string(name))
	}
	if !bytes.Equal(name, s.openName(s.depth-1)) {
		return token{}, false, s.errorf("close tag </%s> does not match <%s>", string(name), string(s.openName(s.depth-1)))
	}
	s.depth--
	s.done = !s.fragment && s.depth == 0
	t := token{kind: tokEnd, name: name, start: s.pos, end: s.pos + k + 1, depth: s.depth}
	s.pos = t.end
	return t, true, nil
}

func (s *scanner) startTag() (token, bool, error) {
	rest := s.src[s.pos:]
	n := cot.NameLen(rest[1:])
	if n == 0 {
		return token{}, false, s.errorf("'<' not followed by a name")
	}
	t := token{kind: tokStart, name: rest[1 : 1+n], start: s.pos, depth: s.depth}
	// Attributes: (space+ name space* '=' space* quoted-value)* space* ('>' | "/>"). A value
	// ends only at its quote; '<' and '>' inside it are tolerated, as cot.XMLFramer does.
	k := 1 + n
	for {
		sp := k
		for k < len(rest) && cot.IsSpace(rest[k]) {
			k++
		}
		if k == len(rest) {
			return t, false, s.errorf("unterminated tag <%s", string(t.name))
		}
		if rest[k] == '>' || rest[k] == '/' {
			break
		}
		if k == sp {
			return t, false, s.errorf("no space before attribute in <%s>", string(t.name))
		}
		an := cot.NameLen(rest[k:])
		if an == 0 {
			return t, false, s.errorf("bad attribute name in <%s>", string(t.name))
		}
		k += an
		for k < len(rest) && cot.IsSpace(rest[k]) {
			k++
		}
		if k == len(rest) || rest[k] != '=' {
			return t, false, s.errorf("attribute without '=' in <%s>", string(t.name))
		}
		k++
		for k < len(rest) && cot.IsSpace(rest[k]) {
			k++
		}
		if k == len(rest) || (rest[k] != '"' && rest[k] != '\'') {
			return t, false, s.errorf("unquoted attribute value in <%s>", string(t.name))
		}
		e := bytes.IndexByte(rest[k+1:], rest[k])
		if e < 0 {
			return t, false, s.errorf("unterminated attribute value in <%s>", string(t.name))
		}
		k += e + 2
	}
	t.attrs = rest[1+n : k]
	if rest[k] == '/' {
		if k+1 == len(rest) || rest[k+1] != '>' {
			return t, false, s.errorf("'/' not followed by '>' in <%s>", string(t.name))
		}
		t.kind = tokEmpty
		k++
	}
	t.end = s.pos + k + 1
	if t.kind == tokStart {
		if s.depth == maxDepth {
			return t, false, s.errorf("nesting deeper than %d", maxDepth)
		}
		s.open[s.depth] = [2]int{s.pos + 1, s.pos + 1 + n}
		s.depth++
	} else if !s.fragment && s.depth == 0 {
		s.done = true
	}
	s.pos = t.end
	return t, true, nil
}

// nextAttr splits the first attribute off a tag's attribute bytes, which the scanner has
// checked. ok is false when none is left.
func nextAttr(a []byte) (name, val, rest []byte, ok bool) {
	i := 0
	for i < len(a) && cot.IsSpace(a[i]) {
		i++
	}
	n := cot.NameLen(a[i:])
	if n == 0 {
		return nil, nil, nil, false
	}
	name = a[i : i+n]
	i += n
	for i < len(a) && a[i] != '"' && a[i] != '\'' {
		i++
	}
	if i == len(a) {
		return nil, nil, nil, false
	}
	e := bytes.IndexByte(a[i+1:], a[i])
	if e < 0 {
		return nil, nil, nil, false
	}
	return name, a[i+1 : i+1+e], a[i+2+e:], true
}

// validValue reports whether a raw attribute value is free of control characters other than
// tab, LF and CR, which XML cannot carry and AppendXML would not write back as they were.
func validValue(v []byte) bool {
	for _, c := range v {
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
			return false
		}
	}
	return true
}

// parseMillis reads a CoT time as milliseconds since the Unix epoch, truncating below the
// millisecond. Times before the epoch do not fit the protocol's uint64.
func parseMillis(b []byte) (uint64, bool) {
	t, ok := cot.ParseTime(b)
	if !ok || t.Unix() < 0 {
		return 0, false
	}
	return uint64(t.UnixMilli()), true
}

// maxMillis is the last millisecond a CoT time can express with a four-digit year,
// 9999-12-31T23:59:59.999Z.
const maxMillis = 253402300799999

// appendMillis appends ms (at most maxMillis) formatted as cot.FormatTime does.
func appendMillis(b []byte, ms uint64) []byte {
	return time.UnixMilli(int64(ms)).UTC().AppendFormat(b, cot.TimeLayout)
}

// digits reads a run of ASCII digits.
func digits(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func isAllSpace(b []byte) bool {
	for _, c := range b {
		if !cot.IsSpace(c) {
			return false
		}
	}
	return true
}
