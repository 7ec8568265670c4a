package cot

import "strconv"

// CoT types the server branches on. Control types (see IsControl) are answered or consumed
// by the server and never routed to other clients.
const (
	// TypePing is a client keep-alive; commo sends it after 15 s without input.
	TypePing = "t-x-c-t"
	// TypePong answers TypePing.
	TypePong = "t-x-c-t-r"
	// TypeDelete tells clients that the item named by <link uid> is gone; a server sends it
	// when a client disconnects.
	TypeDelete = "t-x-d-d"
	// TypeChat is a GeoChat message.
	TypeChat = "b-t-f"
	// TypeChatDeliveryFailure is the copy of a directed chat returned to its sender when no
	// recipient was reachable.
	TypeChatDeliveryFailure = "b-t-f-s"
	// TypeTakpOffer is the server's offer of TAK protocol versions (XML -> protobuf).
	TypeTakpOffer = "t-x-takp-v"
	// TypeTakpRequest is the client's request for one offered version.
	TypeTakpRequest = "t-x-takp-q"
	// TypeTakpResponse is the server's answer to TypeTakpRequest.
	TypeTakpResponse = "t-x-takp-r"
	// TypeClientMetrics carries client metrics for the server.
	TypeClientMetrics = "t-x-c-m"
	// TypeIncognitoEnable and TypeIncognitoDisable switch a client's incognito mode.
	TypeIncognitoEnable  = "t-x-c-i-e"
	TypeIncognitoDisable = "t-x-c-i-d"
	// TypeTB, TypeTBA, TypeTBC, TypeTBQ and TypeTXCF are on TAK Server's list of control
	// types; their payloads are not documented, so they are named by their spelling.
	TypeTB   = "t-b"
	TypeTBA  = "t-b-a"
	TypeTBC  = "t-b-c"
	TypeTBQ  = "t-b-q"
	TypeTXCF = "t-x-c-f"

	// TypePrefixAtom starts the type of every atom: a unit, person, vehicle or other thing
	// with a position (a-f-G-U-C is a friendly ground combat unit).
	TypePrefixAtom = "a-"
)

// Values the server writes into the events it originates.
const (
	// HowServer is the "how" of server-generated control, pong and delete events.
	HowServer = "h-g-i-g-o"
	// PongUID is the uid every TAK server uses for its pong.
	PongUID = "takPong"
)

// IsControl reports whether typ is a control type: one the server handles itself and never
// routes (TAK Server's list, tak-protocol.md 2.1, plus the TAK protocol negotiation types,
// which only ever concern the two ends of one connection).
func IsControl(typ string) bool {
	switch typ {
	case TypeTB, TypeTBA, TypeTBC, TypeTBQ,
		TypeTXCF, TypePing, TypePong,
		TypeTakpRequest, TypeTakpOffer, TypeTakpResponse,
		TypeClientMetrics, TypeIncognitoEnable, TypeIncognitoDisable:
		return true
	}
	return false
}

// DocKind is the root element of a top-level document.
//
// ScanHeader sets it once per document: DocUnknown (the zero value, also what a reset Header
// holds) becomes DocEvent or DocAuth; nothing moves it back except the next ScanHeader.
type DocKind uint8

const (
	// DocUnknown: no document has been scanned, or the scan failed.
	DocUnknown DocKind = iota
	// DocEvent: an <event> document.
	DocEvent
	// DocAuth: an <auth> document (username/password login sent first on TLS).
	DocAuth
)

func (k DocKind) String() string {
	switch k {
	case DocUnknown:
		return "unknown"
	case DocEvent:
		return "event"
	case DocAuth:
		return "auth"
	}
	return "DocKind(" + strconv.Itoa(int(k)) + ")"
}
