package cot

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file holds the one XML lexer of cotd. ScanHeader reads every inbound document with it
// (Lenient), and takproto reads documents and xmlDetail fragments with it (Strict and
// StrictContent) to convert between XML and TAK protocol v1.
//
// It works on a complete document held in memory, not on a stream: XMLFramer has already
// cut the stream, so every caller has the whole document. The lexer therefore keeps no state
// between documents, its tokens alias the document, and it skips text, comments and values
// with bytes.IndexByte. XMLFramer stays a separate, resumable byte machine because it must
// take a stream in whatever pieces reads return and bound its buffer before a document is
// complete; it shares this file's character classes.

// Strictness says how much of XML's syntax a Lexer checks. It is chosen once per input with
// Reset: no transitions.
type Strictness uint8

const (
	// Lenient reads tags as a router needs them and checks no more than it must to find
	// them: close tags are not matched against start tags, text may stand anywhere, a tag
	// ends at the first '>' outside quotes whatever its attribute syntax, and nothing stops
	// the lexer after the root element (the caller does). Input is a document XMLFramer
	// emitted, whose structure the framer has checked already.
	Lenient Strictness = iota
	// Strict checks that a document is well-formed as far as a converter must trust it:
	// close tags match, attribute syntax is exact, nesting is at most maxDepth, no text
	// stands outside the root, CDATA appears only inside an element, a processing
	// instruction has a target and the declaration appears only before the root. Nothing
	// after the root element is read.
	Strict
	// StrictContent is Strict for element content rather than a document (a v1 xmlDetail):
	// text and CDATA may stand at the top level, several top-level elements may follow
	// each other, and a close tag of an element the fragment did not open is an error.
	StrictContent
	numStrictness
)

var strictnessNames = [numStrictness]string{"lenient", "strict", "strict-content"}

func (s Strictness) String() string {
	if s < numStrictness {
		return strictnessNames[s]
	}
	return "Strictness(" + strconv.Itoa(int(s)) + ")"
}

// TokenKind says which of the three tag forms a Token is. It is a property of one token, not
// a state: no transitions.
type TokenKind uint8

const (
	// TokenStart is a start tag, <name ...>.
	TokenStart TokenKind = iota + 1
	// TokenEnd is a close tag, </name>.
	TokenEnd
	// TokenEmpty is an empty-element tag, <name .../>.
	TokenEmpty
)

func (k TokenKind) String() string {
	switch k {
	case TokenStart:
		return "start"
	case TokenEnd:
		return "end"
	case TokenEmpty:
		return "empty"
	}
	return "TokenKind(" + strconv.Itoa(int(k)) + ")"
}

// Token is one tag. Name and Attrs alias the lexer's input.
type Token struct {
	Kind TokenKind
	Name []byte
	// Attrs is what lies between the name and '>' (or "/>"): attributes and white space.
	// Empty for TokenEnd.
	Attrs Attrs
	// Start is the index of the tag's '<' in the input, End the index just past its '>'.
	Start, End int
	// Depth is the number of elements open around the tag; for TokenEnd, around the element
	// it closes. Lenient does not match close tags, so there it is a count of start tags
	// less close tags, and a stray close tag can make it negative.
	Depth int
}

// Lexer yields the tags of one document or fragment in order, skipping text, comments, CDATA
// sections and processing instructions. Its zero value lexes nothing; Reset gives it input.
// All its state is in the struct (about 300 bytes), so it lives on the caller's stack.
type Lexer struct {
	src   []byte
	pos   int
	mode  Strictness
	depth int
	// done: the root element has ended (Strict: what follows it is not read), or err is
	// set; Next returns err from then on.
	done bool
	err  error
	// marks counts the '<' bytes the lexer has read as the start of markup (a tag, comment,
	// CDATA section or processing instruction). Any other '<' in the input stands inside a
	// value, comment, CDATA section or processing instruction; ScanHeader compares the two
	// counts to learn cheaply that none does.
	marks int
	// open holds, in Strict modes, the index in src of each open element's name, so that a
	// close tag can be matched without keeping a copy.
	open [maxDepth]int32
}

// Reset makes l lex src with the given strictness from its start. src is not copied; the
// tokens alias it. In the Strict modes an element starting beyond 2 GiB is an error (the
// open-element table holds 32-bit offsets); no framer emits such a document.
func (l *Lexer) Reset(src []byte, mode Strictness) {
	l.src, l.pos, l.mode, l.depth, l.done, l.err, l.marks = src, 0, mode, 0, false, nil, 0
}

// errorf makes the lexer's sticky error, at its current offset.
func (l *Lexer) errorf(format string, args ...any) error {
	l.done = true
	l.err = fmt.Errorf("%w: %s at offset %d", ErrMalformed, fmt.Sprintf(format, args...), l.pos)
	return l.err
}

var (
	commentOpen  = []byte("<!--")
	commentClose = []byte("-->")
	cdataOpen    = []byte("<![CDATA[")
	cdataClose   = []byte("]]>")
	piOpen       = []byte("<?")
	piClose      = []byte("?>")
)

// Next returns the next tag. ok is false, with a nil error, at the end of the input or (in
// Strict) of the root element. Errors wrap ErrMalformed and give the offset; they are sticky:
// every later Next returns the same error until Reset.
func (l *Lexer) Next() (t Token, ok bool, err error) {
	if l.done {
		return t, false, l.err
	}
	for {
		j := bytes.IndexByte(l.src[l.pos:], '<')
		if j < 0 {
			j = len(l.src) - l.pos
		}
		if l.mode == Strict && l.depth == 0 && !allSpace(l.src[l.pos:l.pos+j]) {
			return t, false, l.errorf("text outside the root element")
		}
		l.pos += j
		if l.pos == len(l.src) {
			if l.mode != Lenient && l.depth > 0 {
				return t, false, l.errorf("<%s> is not closed", l.openName(l.depth-1))
			}
			return t, false, nil
		}
		l.marks++
		rest := l.src[l.pos:]
		switch {
		case bytes.HasPrefix(rest, commentOpen):
			if err := l.skip(len(commentOpen), commentClose); err != nil {
				return t, false, err
			}
			continue
		case bytes.HasPrefix(rest, cdataOpen) && (l.mode != Strict || l.depth > 0):
			if err := l.skip(len(cdataOpen), cdataClose); err != nil {
				return t, false, err
			}
			continue
		case bytes.HasPrefix(rest, piOpen):
			open := len(piOpen)
			if l.mode != Lenient {
				n := nameLen(rest[2:])
				if n == 0 {
					return t, false, l.errorf("processing instruction without target")
				}
				// The declaration is allowed only before the root element.
				if (l.mode == StrictContent || l.depth > 0) && n == 3 && bytes.EqualFold(rest[2:5], []byte("xml")) {
					return t, false, l.errorf("xml declaration inside an element")
				}
				open += n
			}
			if err := l.skip(open, piClose); err != nil {
				return t, false, err
			}
			continue
		case len(rest) > 1 && rest[1] == '/':
			if l.mode == Lenient {
				return l.endTagLenient()
			}
			return l.endTag()
		case l.mode != Lenient && len(rest) > 1 && rest[1] == '!':
			return t, false, l.errorf("'<!' is neither a comment nor CDATA")
		}
		if l.mode != Lenient {
			return l.startTag()
		}
		// The lenient start tag, inline: it is most of ScanHeader's tokens, and a call that
		// returns a Token costs a copy of it.
		n := nameLen(rest[1:])
		if n == 0 {
			return t, false, l.errorf("'<' not followed by a name")
		}
		// The tag ends at the first '>' outside a quoted value.
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
			return t, false, l.errorf("unterminated tag <%s", rest[1:1+n])
		}
		t = Token{Kind: TokenStart, Name: rest[1 : 1+n], Attrs: rest[1+n : k], Start: l.pos, End: l.pos + k + 1, Depth: l.depth}
		if a := t.Attrs; len(a) > 0 && a[len(a)-1] == '/' {
			t.Kind, t.Attrs = TokenEmpty, a[:len(a)-1]
		} else {
			l.depth++
		}
		l.pos = t.End
		return t, true, nil
	}
}

// skip moves past a comment, CDATA section or processing instruction whose opening is open
// bytes long and which ends with close.
func (l *Lexer) skip(open int, close []byte) error {
	k := bytes.Index(l.src[l.pos+open:], close)
	if k < 0 {
		return l.errorf("unterminated %q", l.src[l.pos:l.pos+open])
	}
	l.pos += open + k + len(close)
	return nil
}

func (l *Lexer) openName(i int) []byte {
	from := int(l.open[i])
	return l.src[from : from+nameLen(l.src[from:])]
}

// endTagLenient reads </name ... >: anything up to the first '>' belongs to the tag.
func (l *Lexer) endTagLenient() (Token, bool, error) {
	rest := l.src[l.pos:]
	n := nameLen(rest[2:])
	k := bytes.IndexByte(rest, '>')
	if n == 0 || k < 0 {
		return Token{}, false, l.errorf("bad close tag")
	}
	l.depth--
	t := Token{Kind: TokenEnd, Name: rest[2 : 2+n], Start: l.pos, End: l.pos + k + 1, Depth: l.depth}
	l.pos = t.End
	return t, true, nil
}

// endTag reads </name S?> and matches it against the innermost open element.
func (l *Lexer) endTag() (Token, bool, error) {
	rest := l.src[l.pos:]
	n := nameLen(rest[2:])
	if n == 0 {
		return Token{}, false, l.errorf("bad close tag")
	}
	name := rest[2 : 2+n]
	k := 2 + n
	for k < len(rest) && isSpace(rest[k]) {
		k++
	}
	if k == len(rest) || rest[k] != '>' {
		return Token{}, false, l.errorf("bad close tag </%s", name)
	}
	if l.depth == 0 {
		return Token{}, false, l.errorf("close tag </%s> without start tag", name)
	}
	if open := l.openName(l.depth - 1); !bytes.Equal(name, open) {
		return Token{}, false, l.errorf("close tag </%s> does not match <%s>", name, open)
	}
	l.depth--
	l.done = l.mode == Strict && l.depth == 0
	t := Token{Kind: TokenEnd, Name: name, Start: l.pos, End: l.pos + k + 1, Depth: l.depth}
	l.pos = t.End
	return t, true, nil
}

// startTag reads <name (S attr S? '=' S? quoted)* S? ('>' | "/>"). A value ends only at its
// quote; '<' and '>' inside it are tolerated, as XMLFramer tolerates them.
func (l *Lexer) startTag() (Token, bool, error) {
	rest := l.src[l.pos:]
	n := nameLen(rest[1:])
	if n == 0 {
		return Token{}, false, l.errorf("'<' not followed by a name")
	}
	t := Token{Kind: TokenStart, Name: rest[1 : 1+n], Start: l.pos, Depth: l.depth}
	k := 1 + n
	for {
		sp := k
		for k < len(rest) && isSpace(rest[k]) {
			k++
		}
		if k == len(rest) {
			return t, false, l.errorf("unterminated tag <%s", t.Name)
		}
		if rest[k] == '>' || rest[k] == '/' {
			break
		}
		if k == sp {
			return t, false, l.errorf("no space before attribute in <%s>", t.Name)
		}
		an := nameLen(rest[k:])
		if an == 0 {
			return t, false, l.errorf("bad attribute name in <%s>", t.Name)
		}
		k += an
		for k < len(rest) && isSpace(rest[k]) {
			k++
		}
		if k == len(rest) || rest[k] != '=' {
			return t, false, l.errorf("attribute without '=' in <%s>", t.Name)
		}
		k++
		for k < len(rest) && isSpace(rest[k]) {
			k++
		}
		if k == len(rest) || (rest[k] != '"' && rest[k] != '\'') {
			return t, false, l.errorf("unquoted attribute value in <%s>", t.Name)
		}
		e := bytes.IndexByte(rest[k+1:], rest[k])
		if e < 0 {
			return t, false, l.errorf("unterminated attribute value in <%s>", t.Name)
		}
		k += e + 2
	}
	t.Attrs = rest[1+n : k]
	if rest[k] == '/' {
		if k+1 == len(rest) || rest[k+1] != '>' {
			return t, false, l.errorf("'/' not followed by '>' in <%s>", t.Name)
		}
		t.Kind = TokenEmpty
		k++
	}
	t.End = l.pos + k + 1
	if t.Kind == TokenStart {
		if l.depth == maxDepth {
			return t, false, l.errorf("nesting deeper than %d", maxDepth)
		}
		if l.pos >= math.MaxInt32 {
			return t, false, l.errorf("element beyond 2 GiB")
		}
		l.open[l.depth] = int32(l.pos + 1)
		l.depth++
	} else if l.mode == Strict && l.depth == 0 {
		l.done = true
	}
	l.pos = t.End
	return t, true, nil
}

// Attrs is the attribute part of a start or empty-element tag, read one attribute at a time
// with Next.
type Attrs []byte

// Next splits the first attribute off a and returns its name and raw value (entity
// references unresolved; see Value.Decode). ok is false when no attribute is left or the
// syntax is broken (possible only for tags from a Lenient lexer); reading the tag stops there.
func (a *Attrs) Next() (name []byte, value Value, ok bool) {
	b := *a
	i := 0
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	n := nameLen(b[i:])
	if n == 0 {
		return nil, nil, false
	}
	name = b[i : i+n]
	i += n
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	if i == len(b) || b[i] != '=' {
		return nil, nil, false
	}
	i++
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	if i == len(b) || (b[i] != '"' && b[i] != '\'') {
		return nil, nil, false
	}
	e := bytes.IndexByte(b[i+1:], b[i])
	if e < 0 {
		return nil, nil, false
	}
	*a = b[i+2+e:]
	return name, Value(b[i+1 : i+1+e]), true
}

// Value is a raw attribute value as it stands in the document, between its quotes.
type Value []byte

// Decode appends v to sb with the XML entity references resolved and returns what it
// appended, as a string sharing sb's memory: callers that size sb once for many values get
// one allocation for all of them (resolving references only shrinks a value). Unknown or
// broken references are kept as written rather than rejected: the router only compares these
// strings, and the raw document is forwarded unchanged anyway.
func (v Value) Decode(sb *strings.Builder) string {
	from := sb.Len()
	for {
		j := bytes.IndexByte(v, '&')
		if j < 0 {
			sb.Write(v)
			return sb.String()[from:]
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

// Character classes of the bytes the framer and the lexer care about. Any byte of 0x80 and
// above counts as a name byte: names may hold any non-ASCII letter, and checking UTF-8 is
// left to whoever parses the document fully.
const (
	classSpace = 1 << iota
	classNameStart
	className
)

var charClass = func() (t [256]uint8) {
	for _, c := range []byte(" \t\r\n") {
		t[c] = classSpace
	}
	for c := 0; c < 256; c++ {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == ':' || c >= 0x80 {
			t[c] = classNameStart | className
		}
		if c >= '0' && c <= '9' || c == '-' || c == '.' {
			t[c] = className
		}
	}
	return t
}()

// isSpace reports whether c is XML white space.
func isSpace(c byte) bool { return charClass[c]&classSpace != 0 }

// isNameStart reports whether c may start an XML name.
func isNameStart(c byte) bool { return charClass[c]&classNameStart != 0 }

// isNameChar reports whether c may continue an XML name.
func isNameChar(c byte) bool { return charClass[c]&className != 0 }

// nameLen is the length of the XML name at the start of b (0 if b does not start with one).
func nameLen(b []byte) int {
	if len(b) == 0 || !isNameStart(b[0]) {
		return 0
	}
	n := 1
	for n < len(b) && isNameChar(b[n]) {
		n++
	}
	return n
}

// allSpace reports whether b is only XML white space.
func allSpace(b []byte) bool {
	for _, c := range b {
		if !isSpace(c) {
			return false
		}
	}
	return true
}
