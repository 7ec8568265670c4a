package cot

import "errors"

// Sentinel errors. Callers test them with errors.Is; the framer and the header scanner wrap
// them with the stream offset or the element at fault so that a log line says where a
// stream went wrong.
var (
	// ErrFrameTooLarge: a top-level document (or declaration/comment) grew past the
	// framer's cap. Reported before the bytes past the cap are buffered.
	ErrFrameTooLarge = errors.New("cot: frame too large")
	// ErrJunk: bytes between documents that are not whitespace, a byte order mark, an XML
	// declaration/processing instruction, a comment, or the start of an <event> or <auth>
	// root. A TLS ClientHello or an HTTP request on the plain port lands here.
	ErrJunk = errors.New("cot: junk between documents")
	// ErrMalformed: a document that cannot be well-formed XML, e.g. a close tag that does not
	// match its start tag, '<' where a name must start, or bad attribute syntax.
	ErrMalformed = errors.New("cot: malformed xml")
	// ErrNotEvent: ScanHeader was given bytes that it cannot read as an <event> or <auth>
	// document.
	ErrNotEvent = errors.New("cot: not an event")
	// ErrEmbeddedEventEnd: an <event> holds "</event" other than as its own end tag (inside
	// CDATA, a comment, a processing instruction or an attribute value). Well-formed XML,
	// but ATAK, WinTAK and node-tak cut their input at those bytes wherever they are, so
	// forwarding it would let the sender forge a second event. The document is refused; the
	// stream around it is intact.
	ErrEmbeddedEventEnd = errors.New("cot: </event inside an event")
	// ErrImplausibleTime: an event's time, start or stale cannot be read, or lies further
	// from now than TimeSkew (stale: StaleAhead into the future), e.g. microseconds sent
	// where milliseconds belong. The event is refused; the stream around it is intact.
	ErrImplausibleTime = errors.New("cot: implausible event time")
)
