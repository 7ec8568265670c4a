package store

import (
	"strconv"
	"strings"
	"time"

	"cotd/cot"
)

// Sender is who a routed document came from, as the engine knows the
// connection (not as the document claims).
type Sender struct {
	// UID and Callsign are the connection's, from its SA; "" before the first.
	UID, Callsign string
	// User is the identity: certificate CN or <auth> user; "" when anonymous.
	User string
	// Groups are the groups the document was routed to (the sender's OUT
	// groups); readers see it when they share one.
	Groups []string
}

// EventRecord is one routed event: a row of cot_router.
type EventRecord struct {
	// ID is the row id; set by queries, ignored on write.
	ID int64
	// The <event> attributes. Times are UTC; zero when absent.
	UID, Type, How     string
	Time, Start, Stale time.Time
	// The <point>. ATAK writes 9999999 for an unknown hae, ce or le.
	Lat, Lon, HAE, CE, LE float64
	// Detail is the whole <detail> element as received ("" when there is
	// none), <marti> included: the archive keeps who it was addressed to.
	Detail string
	// ServerTime is when the server received the document.
	ServerTime time.Time
	// The connection it came from.
	SenderUID, SenderCallsign, SenderUser string
	Groups                                []string
}

// ChatRecord is one GeoChat message: a row of cot_router_chat. It has every
// column of an event and the chat's own fields.
type ChatRecord struct {
	EventRecord
	// ChatSenderCallsign is <__chat senderCallsign>, falling back to the
	// connection's callsign.
	ChatSenderCallsign string
	// Room is <__chat chatroom> (a callsign for a direct chat, a room or
	// group name otherwise); RoomID is <__chat id> (the peer's uid for a
	// direct chat).
	Room, RoomID string
	// MessageID is <__chat messageId>.
	MessageID string
	// Text is the <remarks> text, entities and CDATA resolved.
	Text string
	// DestUIDs and DestCallsigns are the <marti><dest> recipients; both
	// empty for a chat to everyone (All Chat Rooms).
	DestUIDs, DestCallsigns []string
}

// Directed reports whether the chat names its recipients.
func (c *ChatRecord) Directed() bool { return len(c.DestUIDs)+len(c.DestCallsigns) > 0 }

// SetRecipients sets DestUIDs and DestCallsigns from a header's <dest>
// lists: empty names and repeats dropped. Routing keeps the recipients in
// the message header when it cuts <marti> from the forwarded document, so
// the Directory feed sets them from there.
func (c *ChatRecord) SetRecipients(uids, callsigns []string) {
	c.DestUIDs, c.DestCallsigns = dedupe(uids), dedupe(callsigns)
}

// ConnStatus is a client's connection status as the Marti API reports it.
//
// A client endpoint moves Connected -> Disconnected -> Connected … with each
// ConnRecord; StatusUnknown is only the zero value of an unset record.
type ConnStatus uint8

const (
	// StatusUnknown is the zero value; RecordConn refuses it.
	StatusUnknown ConnStatus = iota
	// StatusConnected: the client joined.
	StatusConnected
	// StatusDisconnected: the client left.
	StatusDisconnected
)

// String is the spelling TAK Server's clientEndPoints uses (lastStatus).
func (s ConnStatus) String() string {
	switch s {
	case StatusUnknown:
		return "Unknown"
	case StatusConnected:
		return "Connected"
	case StatusDisconnected:
		return "Disconnected"
	}
	return "ConnStatus(" + strconv.Itoa(int(s)) + ")"
}

func parseStatus(s string) ConnStatus {
	switch s {
	case "Connected":
		return StatusConnected
	case "Disconnected":
		return StatusDisconnected
	}
	return StatusUnknown
}

// ConnRecord is one connect or disconnect: a row of client_endpoint_event,
// and the new state of the client_endpoint with that uid.
type ConnRecord struct {
	Status ConnStatus
	// UID and Callsign of the client; with UID "" only the event row is
	// written (the endpoint is keyed by uid).
	UID, Callsign string
	// User is the identity (certificate CN or <auth> user).
	User string
	// Team and Role are the SA's <__group name role>.
	Team, Role string
	Groups     []string
	// Address is the remote host:port; Listener the listener's name (tcp,
	// tls); Reason why a disconnect happened (the engine's close reason).
	Address, Listener, Reason string
	// Time of the connect or disconnect.
	Time time.Time
}

// Endpoint is what the Marti API's clientEndPoints lists: a client the
// server has seen, with its last status.
type Endpoint struct {
	UID, Callsign, User, Team, Role string
	Groups                          []string
	Address, Listener               string
	LastStatus                      ConnStatus
	LastEventTime                   time.Time
}

// FileRecord is the metadata of one file in Enterprise Sync (a row of
// resource); the bytes live on disk, named by Hash.
type FileRecord struct {
	// ID is TAK Server's PrimaryKey; set by the store.
	ID int64
	// Hash is the lowercase hex SHA-256 of the content; the key.
	Hash string
	// UID is the resource's own uid (search results' "UID").
	UID string
	// Name is what the search shows; Filename what the upload called it.
	Name, Filename string
	MIMEType       string
	Size           int64
	Keywords       []string
	// Submitter is the uploader's identity (SubmissionUser); CreatorUID
	// the uploading device's uid.
	Submitter, CreatorUID string
	// Tool is "public" or "private" (metadata/{hash}/tool); "" reads as public.
	Tool string
	// Groups are the uploader's groups: who may see and fetch the file.
	Groups []string
	// Created is SubmissionDateTime.
	Created time.Time
	// Expiration removes the file after this time; zero means never.
	Expiration time.Time
}

// CertRecord is one certificate enrollment issued (a row of certificate).
type CertRecord struct {
	// Serial is the certificate serial number in lowercase hex.
	Serial string
	// User is the authenticated user it was issued to; ClientUID the
	// enrolling device's uid when it gave one.
	User, ClientUID string
	// SubjectDN is the certificate's subject; Fingerprint the hex SHA-256
	// of its DER.
	SubjectDN, Fingerprint string
	Issued, Expires        time.Time
	// Revoked is when it was revoked; zero while valid.
	Revoked time.Time
}

// PendingChat is a directed chat kept for a recipient who was offline.
type PendingChat struct {
	// ID names this (chat, recipient) pair for MarkDelivered.
	ID int64
	// RecipientUID and RecipientCallsign as the client endpoint knew them.
	RecipientUID, RecipientCallsign string
	Chat                            ChatRecord
}

// Scope says which rows a reader may see by group. The zero Scope sees
// nothing; All sees everything (server-side callers and administrators).
type Scope struct {
	All bool
	// Groups: a row is visible when it shares at least one with these.
	Groups []string
}

// Everything is the Scope of server-side callers.
var Everything = Scope{All: true}

// XML renders the event as a CoT document, as TAK Server's /api/cot/xml
// does: the stored columns with the stored detail, <marti> left out.
func (e *EventRecord) XML() []byte {
	b := make([]byte, 0, 256+len(e.Detail))
	b = append(b, `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>`...)
	b = append(b, `<event version="2.0" uid="`...)
	b = cot.AppendEscaped(b, e.UID)
	b = append(b, `" type="`...)
	b = cot.AppendEscaped(b, e.Type)
	b = append(b, `" how="`...)
	b = cot.AppendEscaped(b, e.How)
	for _, a := range [...]struct {
		name string
		t    time.Time
	}{{"time", e.Time}, {"start", e.Start}, {"stale", e.Stale}} {
		if a.t.IsZero() {
			continue
		}
		b = append(b, `" `...)
		b = append(b, a.name...)
		b = append(b, `="`...)
		b = append(b, cot.FormatTime(a.t)...)
	}
	b = append(b, `"><point lat="`...)
	for i, v := range [...]float64{e.Lat, e.Lon, e.HAE, e.CE, e.LE} {
		if i > 0 {
			b = append(b, `" `...)
			b = append(b, [...]string{"", "lon", "hae", "ce", "le"}[i]...)
			b = append(b, `="`...)
		}
		b = strconv.AppendFloat(b, v, 'f', -1, 64)
	}
	b = append(b, `"/>`...)
	b = append(b, e.Detail...)
	b = append(b, `</event>`...)
	var h cot.Header
	if cot.ScanHeader(b, &h) != nil {
		return b
	}
	return cot.StripMarti(b, &h)
}

// The list columns (groups, keywords, recipients) hold ",a,b," so that one
// member matches LIKE '%,a,%' on both backends; ',' and '%' inside a member
// are percent-encoded so that they cannot break that match.
var listEscaper = strings.NewReplacer("%", "%25", ",", "%2C")
var listUnescaper = strings.NewReplacer("%2C", ",", "%25", "%")

func encodeList(l []string) string {
	if len(l) == 0 {
		return ""
	}
	var sb strings.Builder
	sb.WriteByte(',')
	for _, s := range l {
		sb.WriteString(listEscaper.Replace(s))
		sb.WriteByte(',')
	}
	return sb.String()
}

func decodeList(s string) []string {
	s = strings.Trim(s, ",")
	if s == "" {
		return nil
	}
	l := strings.Split(s, ",")
	for i, v := range l {
		l[i] = listUnescaper.Replace(v)
	}
	return l
}
