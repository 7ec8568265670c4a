package store

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"slices"
	"strings"
	"time"

	"cotd/cot"
)

// typeChatPrefix starts the type of every GeoChat document (messages, and
// the delivered/read receipts b-t-f-d and b-t-f-r): TAK Server files all of
// them in cot_router_chat.
const typeChatPrefix = cot.TypeChat + "-"

// IsChatType reports whether typ belongs in cot_router_chat.
func IsChatType(typ string) bool {
	return typ == cot.TypeChat || strings.HasPrefix(typ, typeChatPrefix)
}

// FromEvent turns one routed document into the record the store keeps: an
// EventRecord, or for GeoChat a ChatRecord (exactly one of the two is
// non-nil). recv is the server time; s the connection it came from. Control
// messages and <auth> are ErrNotArchived; a document ScanHeader refuses is
// ErrBadEvent.
func FromEvent(doc []byte, recv time.Time, s Sender) (*EventRecord, *ChatRecord, error) {
	var h cot.Header
	if err := cot.ScanHeader(doc, &h); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrBadEvent, err)
	}
	if h.Kind != cot.DocEvent || cot.IsControl(h.Type) {
		return nil, nil, fmt.Errorf("%w: %s %q", ErrNotArchived, h.Kind, h.Type)
	}
	if h.UID == "" {
		return nil, nil, fmt.Errorf("%w: event without uid", ErrBadEvent)
	}
	ev := EventRecord{
		UID: h.UID, Type: h.Type, How: h.How,
		Time: h.Time, Start: h.Start, Stale: h.Stale,
		Lat: h.Lat, Lon: h.Lon, HAE: h.HAE, CE: h.CE, LE: h.LE,
		ServerTime: recv.UTC(),
		SenderUID:  s.UID, SenderCallsign: s.Callsign, SenderUser: s.User,
		Groups: slices.Clone(s.Groups),
	}
	var detail []byte
	if from, to, ok := detailRange(doc); ok {
		detail = doc[from:to]
		ev.Detail = string(detail)
	}
	if !IsChatType(h.Type) {
		return &ev, nil, nil
	}
	c := &ChatRecord{EventRecord: ev}
	c.SetRecipients(h.DestUIDs, h.DestCallsigns)
	readChat(detail, c)
	if c.SenderUID == "" {
		c.SenderUID = h.LinkUID
	}
	if c.ChatSenderCallsign == "" {
		c.ChatSenderCallsign = s.Callsign
	}
	return nil, c, nil
}

func dedupe(l []string) []string {
	var out []string
	for _, s := range l {
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// chatDetail is the part of a GeoChat <detail> the store keeps. GeoChat is a
// small share of traffic, so the standard decoder's cost does not matter
// here and its entity and CDATA handling is exactly what <remarks> needs.
type chatDetail struct {
	Chat struct {
		Room           string `xml:"chatroom,attr"`
		ID             string `xml:"id,attr"`
		SenderCallsign string `xml:"senderCallsign,attr"`
		MessageID      string `xml:"messageId,attr"`
		Grp            struct {
			UID0 string `xml:"uid0,attr"`
		} `xml:"chatgrp"`
	} `xml:"__chat"`
	Remarks string `xml:"remarks"`
}

// readChat fills c's chat fields from the <detail> element; what cannot be
// read stays empty (the event itself is still archived).
func readChat(detail []byte, c *ChatRecord) {
	if len(detail) == 0 {
		return
	}
	var d chatDetail
	dec := xml.NewDecoder(bytes.NewReader(detail))
	dec.Strict = false // an unknown entity in a chat text must not lose the chat
	if err := dec.Decode(&d); err != nil {
		return
	}
	c.Room, c.RoomID = d.Chat.Room, d.Chat.ID
	c.ChatSenderCallsign, c.MessageID = d.Chat.SenderCallsign, d.Chat.MessageID
	c.Text = d.Remarks
	if c.SenderUID == "" {
		c.SenderUID = d.Chat.Grp.UID0
	}
}

// detailRange finds the <detail> child of the root element: [from, to) spans
// it from '<' to the end of its close tag (or of <detail/>). It skips
// comments, CDATA, processing instructions and declarations, and ignores '>'
// inside quoted attribute values, so a chat text cannot fake the boundary.
// The document has already passed cot.ScanHeader.
func detailRange(doc []byte) (from, to int, ok bool) {
	depth := 0
	inDetail := false
	for i := 0; ; {
		j := bytes.IndexByte(doc[i:], '<')
		if j < 0 {
			return 0, 0, false
		}
		i += j
		rest := doc[i:]
		if skip := skipLen(rest); skip != 0 {
			if skip < 0 {
				return 0, 0, false
			}
			i += skip
			continue
		}
		end := tagEnd(rest)
		if end < 0 {
			return 0, 0, false
		}
		if len(rest) > 1 && rest[1] == '/' {
			depth--
			if inDetail && depth == 1 {
				return from, i + end, true
			}
			i += end
			continue
		}
		empty := rest[end-2] == '/'
		if depth == 1 && !inDetail && isName(rest[1:], "detail") {
			from = i
			if empty {
				return from, i + end, true
			}
			inDetail = true
		}
		if !empty {
			depth++
		}
		i += end
	}
}

var skips = [...]struct{ open, close string }{
	{"<!--", "-->"}, {"<![CDATA[", "]]>"}, {"<?", "?>"}, {"<!", ">"},
}

// skipLen is the length of the comment, CDATA section, processing
// instruction or declaration at the start of b; 0 when b starts a tag, -1
// when it is unterminated.
func skipLen(b []byte) int {
	for _, s := range skips {
		if bytes.HasPrefix(b, []byte(s.open)) {
			k := bytes.Index(b[len(s.open):], []byte(s.close))
			if k < 0 {
				return -1
			}
			return len(s.open) + k + len(s.close)
		}
	}
	return 0
}

// tagEnd is the length of the tag at the start of b, through its '>'; -1
// when unterminated.
func tagEnd(b []byte) int {
	for k := 1; k < len(b); k++ {
		switch c := b[k]; c {
		case '>':
			return k + 1
		case '"', '\'':
			e := bytes.IndexByte(b[k+1:], c)
			if e < 0 {
				return -1
			}
			k += e + 1
		}
	}
	return -1
}

// isName reports whether b starts with the element name want, followed by
// the end of the name.
func isName(b []byte, want string) bool {
	if !bytes.HasPrefix(b, []byte(want)) || len(b) == len(want) {
		return false
	}
	switch b[len(want)] {
	case ' ', '\t', '\n', '\r', '/', '>':
		return true
	}
	return false
}
