package takproto

import (
	"bytes"
	"errors"

	"cotd/cot"
)

// ClientReader is the client side of a streaming connection's input: XML documents until a
// response from the server grants TAK protocol v1 (cot.TypeTakpResponse, status true), and
// from the byte after it v1 frames, handed on as the XML events they stand for, so that one
// path reads both. Test clients and cotbench use it; the server's side switches at the
// request instead (engine).
type ClientReader struct {
	xml *cot.XMLFramer
	v1  *Framer
	max int
	tm  TakMessage
	doc []byte // the XML of the last v1 frame
	// granted is set before the granting response is emitted, so that V1 already says
	// true to a caller that sees it: the caller writes v1 from then on.
	granted bool
}

// NewClientReader returns a reader for frames up to maxFrame bytes that starts on XML, or on
// v1 when v1 is true (a listener that speaks v1 from the first byte).
func NewClientReader(maxFrame int, v1 bool) *ClientReader {
	r := &ClientReader{max: maxFrame}
	if v1 {
		r.v1 = NewFramer(maxFrame)
	} else {
		r.xml = cot.NewXMLFramer(maxFrame)
	}
	return r
}

// V1 reports whether the stream is on TAK protocol v1: from the granting response on.
func (r *ClientReader) V1() bool { return r.v1 != nil || r.granted }

// errGranted stops the XML framer at the response that switched the stream.
var errGranted = errors.New("takproto: switched to v1")

// Feed reads p and calls emit with each complete document, the granting response
// included; doc is only valid during the call. A v1 frame with no event (a bare TakControl)
// is skipped. The first error from the framers, the conversion or emit is returned.
func (r *ClientReader) Feed(p []byte, emit func(doc []byte) error) error {
	if r.v1 == nil {
		err := r.xml.Feed(p, func(doc []byte) error {
			// The substring test keeps the full parse off every other event.
			if bytes.Contains(doc, []byte(cot.TypeTakpResponse)) {
				_, granted, ok := ParseResponse(doc)
				r.granted = ok && granted
			}
			if err := emit(doc); err != nil {
				return err
			}
			if r.granted {
				return errGranted
			}
			return nil
		})
		if err != errGranted {
			return err
		}
		p = p[len(p)-r.xml.Unread():]
		r.xml, r.v1 = nil, NewFramer(r.max)
	}
	return r.v1.Feed(p, func(payload []byte) error {
		if err := r.tm.Unmarshal(payload); err != nil {
			return err
		}
		if r.tm.CotEvent == nil {
			return nil
		}
		doc, err := AppendXML(r.doc[:0], &r.tm)
		if err != nil {
			return err
		}
		r.doc = doc
		return emit(doc)
	})
}
