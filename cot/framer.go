package cot

import (
	"bytes"
	"fmt"
	"math"
)

// DefaultMaxFrame is the frame cap NewXMLFramer uses when given zero or less: large enough for
// any CoT event a client can itself receive (commo drops events over 64 KiB), small enough
// that a connection's buffer stays bounded.
const DefaultMaxFrame = 1 << 20

const (
	// maxDepth bounds element nesting. CoT nests four or five levels deep; anything far
	// deeper is an attack on whoever parses the document next.
	maxDepth = 64
	// maxNameBytes bounds the summed length of the names of the open elements, which the
	// framer keeps to match close tags.
	maxNameBytes = 1024
	// retainBuf is the largest split buffer kept after the document it held is emitted; a
	// client that once sent a large document should not pin that much memory forever.
	retainBuf = 64 << 10
)

// scanState is where the framer is within the stream. The names say what was seen last.
//
// Between documents: stTop -> stBOM1 -> stBOM2 -> stTop (a byte order mark), and
// stTop -> stOpen on '<'. From stOpen: '?' -> stPI, '!' -> stBang (comment only), a name
// -> stStartName (the root element). When a top-level declaration or comment ends the framer
// returns to stTop; when the root element closes it emits the document and returns to stTop.
//
// Inside a document: stContent -> stLT on '<'; stLT -> stStartName | stEndName | stBang |
// stPI. A start tag runs stStartName -> stInTag -> stAttrName -> stAttrAfterName ->
// stAttrEq -> stAttrValue -> stAfterValue -> stInTag ..., ending in stContent on '>' or via
// stEmptySlash on "/>". A close tag runs stEndName -> stEndTail -> stContent. Markup:
// stBang -> stCommentOpen -> stComment <-> stCommentDash <-> stCommentDash2 -> stContent,
// stBang -> stCDATAOpen -> stCDATA <-> stCDATABracket <-> stCDATABracket2 -> stContent,
// stPI <-> stPIQuestion -> stContent.
//
// Any state -> stFailed on a framing error; stFailed is left only by Reset.
type scanState uint8

const (
	stTop scanState = iota
	stBOM1
	stBOM2
	stOpen
	stLT
	stStartName
	stInTag
	stAttrName
	stAttrAfterName
	stAttrEq
	stAttrValue
	stAfterValue
	stEmptySlash
	stEndName
	stEndTail
	stBang
	stCommentOpen
	stComment
	stCommentDash
	stCommentDash2
	stCDATAOpen
	stCDATA
	stCDATABracket
	stCDATABracket2
	stPI
	stPIQuestion
	stContent
	stFailed
)

var scanStateNames = [...]string{
	stTop:           "top",
	stBOM1:          "bom1",
	stBOM2:          "bom2",
	stOpen:          "open",
	stLT:            "lt",
	stStartName:     "start-name",
	stInTag:         "in-tag",
	stAttrName:      "attr-name",
	stAttrAfterName: "attr-after-name",
	stAttrEq:        "attr-eq",
	stAttrValue:     "attr-value",
	stAfterValue:    "after-value",
	stEmptySlash:    "empty-slash",
	stEndName:       "end-name",
	stEndTail:       "end-tail",
	stBang:          "bang",
	stCommentOpen:   "comment-open",
	stComment:       "comment",
	stCommentDash:   "comment-dash",
	stCommentDash2:  "comment-dash2",
	stCDATAOpen:     "cdata-open",
	stCDATA:         "cdata",
	stCDATABracket:  "cdata-bracket",
	stCDATABracket2: "cdata-bracket2",
	stPI:            "pi",
	stPIQuestion:    "pi-question",
	stContent:       "content",
	stFailed:        "failed",
}

func (s scanState) String() string {
	if int(s) < len(scanStateNames) {
		return scanStateNames[s]
	}
	return fmt.Sprintf("scanState(%d)", uint8(s))
}

// between reports whether no top-level construct is open, i.e. no byte seen so far belongs to
// a document, declaration or comment that is still incomplete.
func (s scanState) between() bool { return s <= stBOM2 }

// XMLFramer splits a TCP byte stream into top-level CoT documents. It is resumable: Feed may
// be called with any split of the stream and all state lives in the struct. It is not safe
// for concurrent use; one framer belongs to one connection.
type XMLFramer struct {
	state    scanState
	quote    byte // the quote that ends the current attribute value
	inDoc    bool // the open top-level construct is a document whose bytes are kept
	depth    int  // open elements; nameAt[:depth] are valid
	match    int  // bytes matched of "CDATA[", or of the open element's name in a close tag
	maxFrame int
	// held is how many bytes of the open top-level construct arrived in earlier Feeds. For a
	// document they are in buf; for a declaration or comment they are only counted, so that
	// the cap applies to them without keeping them.
	held   int
	buf    []byte
	names  []byte          // names of the open elements, concatenated
	nameAt [maxDepth]int16 // start of each open element's name in names
	offset int64           // stream bytes consumed by earlier Feeds, for error messages
	unread int
	err    error
}

// NewXMLFramer returns a framer that rejects any document longer than maxFrame bytes
// (DefaultMaxFrame if maxFrame <= 0).
func NewXMLFramer(maxFrame int) *XMLFramer {
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrame
	}
	return &XMLFramer{maxFrame: maxFrame}
}

// Buffered returns the number of bytes held for an incomplete document.
func (f *XMLFramer) Buffered() int { return len(f.buf) }

// Unread returns how many bytes at the end of the last Feed's input were not scanned because
// emit returned an error; the framer stands at the document boundary before them, so a
// caller that switches framing (e.g. to TAK protocol v1) hands p[len(p)-Unread():] on.
func (f *XMLFramer) Unread() int { return f.unread }

// Reset returns the framer to its initial state, clearing a sticky error. It keeps the
// buffer's capacity for reuse.
func (f *XMLFramer) Reset() {
	*f = XMLFramer{maxFrame: f.maxFrame, buf: f.buf[:0], names: f.names[:0]}
}

// Feed scans p and calls emit once per complete top-level document (an <event> or <auth>
// element), in order. The slice given to emit starts at the '<' of the root element (a
// declaration, whitespace or comment before it is dropped) and ends at the root's final '>';
// it is valid only during the call, since it aliases p or the framer's buffer.
//
// If emit returns an error, Feed stops and returns that error unchanged; the framer is then
// between documents and Unread tells how much of p is left. Framing errors (ErrFrameTooLarge,
// ErrJunk, ErrMalformed, wrapped with the stream offset) are sticky: every later Feed returns
// the same error until Reset.
//
// A document longer than the cap is reported as soon as its byte number maxFrame+1 is seen,
// before anything past the cap is buffered. The cap applies to a top-level declaration or
// comment too (counted, never kept), so that no construct can hold a connection open by
// never ending; only whitespace between documents is not counted.
func (f *XMLFramer) Feed(p []byte, emit func(doc []byte) error) error {
	f.unread = 0
	if f.err != nil {
		return f.err
	}
	// start is the index in p where the open top-level construct began; negative when it
	// began in an earlier Feed. lim is the first index in p that would make it too large.
	start, lim := 0, math.MaxInt
	if !f.state.between() {
		start = -f.held
		lim = start + f.maxFrame
	}
	for i := 0; i < len(p); i++ {
		if i >= lim {
			return f.fail(ErrFrameTooLarge, i, fmt.Sprintf("over %d bytes", f.maxFrame))
		}
		c := p[i]
		switch f.state {
		case stTop:
			switch {
			case c == '<':
				f.state, f.inDoc = stOpen, true
				start, lim = i, i+f.maxFrame
			case isSpace(c):
			case c == 0xEF:
				f.state = stBOM1
			default:
				return f.fail(ErrJunk, i, fmt.Sprintf("byte 0x%02x", c))
			}
		case stBOM1:
			if c != 0xBB {
				return f.fail(ErrJunk, i, "broken byte order mark")
			}
			f.state = stBOM2
		case stBOM2:
			if c != 0xBF {
				return f.fail(ErrJunk, i, "broken byte order mark")
			}
			f.state = stTop
		case stOpen:
			switch {
			case c == '?':
				f.leaveDoc(stPI)
			case c == '!':
				f.leaveDoc(stBang)
			case isNameStart(c):
				if err := f.push(c, i); err != nil {
					return err
				}
				f.state = stStartName
			default:
				return f.fail(ErrJunk, i, "'<' not followed by a name")
			}
		case stLT:
			switch {
			case c == '/':
				f.state, f.match = stEndName, 0
			case c == '!':
				f.state = stBang
			case c == '?':
				f.state = stPI
			case isNameStart(c):
				if err := f.push(c, i); err != nil {
					return err
				}
				f.state = stStartName
			default:
				return f.fail(ErrMalformed, i, "'<' not followed by a name")
			}
		case stStartName:
			if isNameChar(c) {
				if err := f.extendName(c, i); err != nil {
					return err
				}
				continue
			}
			if f.depth == 1 && !isRootName(f.names) {
				return f.fail(ErrJunk, i, fmt.Sprintf("root element <%s>", f.names))
			}
			if err := f.tagSpace(c, i, "after element name"); err != nil {
				return err
			}
		case stInTag:
			if isNameStart(c) {
				f.state = stAttrName
			} else if err := f.tagSpace(c, i, "in start tag"); err != nil {
				return err
			}
		case stAttrName:
			switch {
			case isNameChar(c):
			case isSpace(c):
				f.state = stAttrAfterName
			case c == '=':
				f.state = stAttrEq
			default:
				return f.fail(ErrMalformed, i, "in attribute name")
			}
		case stAttrAfterName:
			switch {
			case isSpace(c):
			case c == '=':
				f.state = stAttrEq
			default:
				return f.fail(ErrMalformed, i, "attribute without '='")
			}
		case stAttrEq:
			switch {
			case isSpace(c):
			case c == '"' || c == '\'':
				f.state, f.quote = stAttrValue, c
			default:
				return f.fail(ErrMalformed, i, "unquoted attribute value")
			}
		case stAttrValue:
			// Skip to the closing quote in one step. XML forbids '<' in a value, but clients
			// that build XML by string concatenation do send it, and the value is opaque to
			// the framer: only the quote ends it. An unterminated quote is caught by the cap.
			end := min(len(p), lim)
			j := bytes.IndexByte(p[i:end], f.quote)
			if j < 0 {
				i = end - 1
				continue
			}
			i += j
			f.state = stAfterValue
		case stAfterValue:
			if err := f.tagSpace(c, i, "after attribute value"); err != nil {
				return err
			}
		case stEmptySlash:
			if c != '>' {
				return f.fail(ErrMalformed, i, "'/' not followed by '>'")
			}
			f.pop()
			if f.depth == 0 {
				if err := f.finish(p, start, i, emit); err != nil {
					return err
				}
				start, lim = 0, math.MaxInt
				continue
			}
			f.state = stContent
		case stEndName:
			name := f.names[f.nameAt[f.depth-1]:]
			if f.match < len(name) && c == name[f.match] {
				f.match++
				continue
			}
			if f.match < len(name) || isNameChar(c) {
				return f.fail(ErrMalformed, i, fmt.Sprintf("close tag does not match <%s>", name))
			}
			f.state = stEndTail
			fallthrough
		case stEndTail:
			switch {
			case isSpace(c):
			case c == '>':
				f.pop()
				if f.depth == 0 {
					if err := f.finish(p, start, i, emit); err != nil {
						return err
					}
					start, lim = 0, math.MaxInt
					continue
				}
				f.state = stContent
			default:
				return f.fail(ErrMalformed, i, "in close tag")
			}
		case stBang:
			switch {
			case c == '-':
				f.state = stCommentOpen
			case c == '[' && f.inDoc:
				f.state, f.match = stCDATAOpen, 0
			default:
				return f.fail(f.syntaxErr(), i, "'<!' is neither a comment nor CDATA")
			}
		case stCommentOpen:
			if c != '-' {
				return f.fail(f.syntaxErr(), i, "'<!-' not followed by '-'")
			}
			f.state = stComment
		case stComment:
			end := min(len(p), lim)
			j := bytes.IndexByte(p[i:end], '-')
			if j < 0 {
				i = end - 1
				continue
			}
			i += j
			f.state = stCommentDash
		case stCommentDash:
			if c == '-' {
				f.state = stCommentDash2
			} else {
				f.state = stComment
			}
		case stCommentDash2:
			switch c {
			case '>':
				if f.endMarkup() {
					start, lim = 0, math.MaxInt
				}
			case '-':
			default:
				f.state = stComment
			}
		case stCDATAOpen:
			const open = "CDATA["
			if c != open[f.match] {
				return f.fail(ErrMalformed, i, "'<![' not followed by 'CDATA['")
			}
			f.match++
			if f.match == len(open) {
				f.state = stCDATA
			}
		case stCDATA:
			end := min(len(p), lim)
			j := bytes.IndexByte(p[i:end], ']')
			if j < 0 {
				i = end - 1
				continue
			}
			i += j
			f.state = stCDATABracket
		case stCDATABracket:
			if c == ']' {
				f.state = stCDATABracket2
			} else {
				f.state = stCDATA
			}
		case stCDATABracket2:
			switch c {
			case '>':
				f.state = stContent
			case ']':
			default:
				f.state = stCDATA
			}
		case stPI:
			end := min(len(p), lim)
			j := bytes.IndexByte(p[i:end], '?')
			if j < 0 {
				i = end - 1
				continue
			}
			i += j
			f.state = stPIQuestion
		case stPIQuestion:
			switch c {
			case '>':
				if f.endMarkup() {
					start, lim = 0, math.MaxInt
				}
			case '?':
			default:
				f.state = stPI
			}
		case stContent:
			end := min(len(p), lim)
			j := bytes.IndexByte(p[i:end], '<')
			if j < 0 {
				i = end - 1
				continue
			}
			i += j
			f.state = stLT
		default:
			return f.fail(ErrMalformed, i, "framer in state "+f.state.String())
		}
	}

	// The split-buffer block: a document still open at the end of p is kept (only its bytes
	// from this Feed are new), a declaration or comment is only counted. The loop above has
	// already refused every byte past the cap, so the buffer never grows beyond maxFrame.
	if !f.state.between() {
		from := max(start, 0)
		if f.inDoc {
			f.keep(p[from:])
		}
		f.held += len(p) - from
	}
	f.offset += int64(len(p))
	return nil
}

// tagSpace handles the bytes that may follow a name or value inside a start tag: whitespace,
// '/' of an empty-element tag, or the closing '>'.
func (f *XMLFramer) tagSpace(c byte, i int, where string) error {
	switch {
	case isSpace(c):
		f.state = stInTag
	case c == '/':
		f.state = stEmptySlash
	case c == '>':
		f.state = stContent
	default:
		return f.fail(ErrMalformed, i, fmt.Sprintf("byte %q %s", c, where))
	}
	return nil
}

// push opens an element whose name starts with c.
func (f *XMLFramer) push(c byte, i int) error {
	if f.depth == maxDepth {
		return f.fail(ErrMalformed, i, fmt.Sprintf("nesting deeper than %d", maxDepth))
	}
	f.nameAt[f.depth] = int16(len(f.names))
	f.depth++
	return f.extendName(c, i)
}

func (f *XMLFramer) extendName(c byte, i int) error {
	if f.depth == 1 && len(f.names) == len("event") {
		// No root name is longer than "event"; say "junk" now rather than after a long name.
		return f.fail(ErrJunk, i, "root element is neither <event> nor <auth>")
	}
	if len(f.names) == maxNameBytes {
		return f.fail(ErrMalformed, i, fmt.Sprintf("open element names exceed %d bytes", maxNameBytes))
	}
	f.names = append(f.names, c)
	return nil
}

// pop closes the innermost element.
func (f *XMLFramer) pop() {
	f.depth--
	f.names = f.names[:f.nameAt[f.depth]]
}

// leaveDoc is called when the '<' at top level turns out to open a declaration or a comment,
// whose bytes are not kept.
func (f *XMLFramer) leaveDoc(next scanState) {
	f.state, f.inDoc = next, false
	f.buf = f.buf[:0]
}

// endMarkup is called at the '>' ending a comment or processing instruction. It reports
// whether that ended a top-level construct, i.e. the framer is between documents again.
func (f *XMLFramer) endMarkup() bool {
	if f.inDoc {
		f.state = stContent
		return false
	}
	f.state, f.held = stTop, 0
	return true
}

// syntaxErr is the error for a broken construct: junk when it sits between documents,
// malformed XML when it is inside one.
func (f *XMLFramer) syntaxErr() error {
	if f.inDoc {
		return ErrMalformed
	}
	return ErrJunk
}

// finish emits the document that ends at p[i] and returns the framer to stTop.
func (f *XMLFramer) finish(p []byte, start, i int, emit func([]byte) error) error {
	doc := p[max(start, 0) : i+1]
	buffered := start < 0
	if buffered {
		f.keep(doc)
		doc = f.buf
	}
	f.state, f.inDoc, f.held = stTop, false, 0
	err := emit(doc)
	if buffered {
		if cap(f.buf) > retainBuf {
			f.buf = nil
		} else {
			f.buf = f.buf[:0]
		}
	}
	if err != nil {
		f.unread = len(p) - (i + 1)
		f.offset += int64(i + 1)
	}
	return err
}

// keep appends b to the split buffer. Callers guarantee len(buf)+len(b) <= maxFrame, and
// growth is capped there too so that the buffer's capacity respects the cap as well.
func (f *XMLFramer) keep(b []byte) {
	need := len(f.buf) + len(b)
	if need > cap(f.buf) {
		newCap := min(max(2*cap(f.buf), need, 512), f.maxFrame)
		nb := make([]byte, len(f.buf), max(newCap, need))
		copy(nb, f.buf)
		f.buf = nb
	}
	f.buf = append(f.buf, b...)
}

// fail records a sticky framing error at index i of the current input.
func (f *XMLFramer) fail(kind error, i int, detail string) error {
	f.err = fmt.Errorf("%w: %s at stream offset %d", kind, detail, f.offset+int64(i))
	f.state = stFailed
	return f.err
}

func isRootName(name []byte) bool {
	return string(name) == "event" || string(name) == "auth"
}
