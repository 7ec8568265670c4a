package directory

import (
	"context"
	"errors"
	"time"

	"cotd/cot"
)

// Directory is the engine as the rest of the process sees it: who is
// connected, what happens to them, and the two things a peer of the hot
// path may do to the stream (publish as the server, disconnect). It is the
// only way in: the admin API, Marti, the store feed, the web console and the
// cluster link hold a Directory and nothing else of the engine.
//
// Every method may be called from any goroutine and none blocks on a
// client: reads are snapshots, Publish queues or refuses at once.
type Directory interface {
	// Clients lists every open connection, oldest first.
	Clients() []Client
	// Client returns the connections whose device uid is uid (a device that
	// reconnected may briefly have two), oldest first.
	Client(uid string) []Client
	// Connection returns the open connection with id id.
	Connection(id uint64) (Client, bool)

	// Subscribe registers a consumer of the kinds in want. Events reach it
	// through a queue of capacity events that never makes the engine wait:
	// when it is full the event is dropped and counted on the subscription
	// (and in the engine's metrics under name). Close the subscription when
	// done.
	Subscribe(name string, want Kinds, capacity int) Subscription

	// Publish routes one CoT event (a complete <event> document) from a
	// server-side sender through the same routing, groups and back-pressure
	// as a client's: <marti><dest> directs it, from's groups decide who may
	// hear it. It returns ErrInvalid (wrapped, with the cause) for a
	// document that is not one routable event and ErrBusy when the
	// engine's queue refused it (counted); it never blocks.
	Publish(ctx context.Context, from Sender, doc []byte) error

	// Disconnect closes the open connections that match sel, with reason
	// (one of the Reason constants), and reports how many it closed.
	Disconnect(sel Selector, reason Reason) int

	// SetActiveGroups narrows what the connections of user identity hear
	// and reach to the groups in active (TAK's active channels): each
	// connection's membership becomes its user's groups intersected with
	// active, at once. An empty active restores the user's full groups. It
	// reports how many connections changed.
	SetActiveGroups(identity string, active []string) int
}

// ChatKeeper is implemented by a Directory whose engine answers a directed
// GeoChat message (b-t-f) that reached no connected client with a b-t-f-s
// (not delivered) to its sender, as TAK Server does. A peer that keeps such
// chats for later delivery (the store feed) registers keep: the engine
// asks it before bouncing and sends no b-t-f-s when it reports true.
//
// It is a separate interface so that a Directory that never bounces (a
// test's, a cluster peer's) need not implement it.
type ChatKeeper interface {
	// KeepUndelivered installs keep; nil removes it. keep runs on the
	// routing path: it must answer from memory at once (no I/O, no
	// contended lock) and not keep the chat's slices.
	KeepUndelivered(keep func(UndeliveredChat) bool)
}

// UndeliveredChat is a directed GeoChat message that reached nobody.
type UndeliveredChat struct {
	// SenderUID is the sending device's uid; "" for a client that sent no
	// SA yet.
	SenderUID string
	// In are the groups the sender publishes into: the recipient must hear
	// one of them.
	In []string
	// DestUIDs and DestCallsigns are the <marti><dest> recipients.
	DestUIDs, DestCallsigns []string
}

// Client is a snapshot of one connection.
type Client struct {
	// ConnID is unique for the process's lifetime.
	ConnID uint64
	// Identity is the user the connection is known as: the certificate CN
	// on mutual TLS, the <auth> user once logged in; "" when anonymous.
	Identity string
	// UID and Callsign come from the client's SA; "" before the first one.
	UID, Callsign string
	// In and Out are the groups the client publishes into (In: it reaches
	// their members) and receives from (Out: it hears them), sorted, as in
	// the users file and TAK Server; {"__ANON__"} for a client nobody gave
	// groups to. A message from S reaches R when S's In meets R's Out.
	In, Out []string
	// Listener is the listener's kind ("tcp", "tls").
	Listener string
	// Protocol is "xml" or "takproto/1".
	Protocol string
	// State is "handshaking" or "established".
	State string
	// Node is the cluster node the client is connected to; "" for this one.
	Node string
	// Remote is the peer's address.
	Remote string
	// Since is when the connection was accepted.
	Since time.Time
	// LastSeen is the time of the client's last routed frame, or zero.
	LastSeen time.Time
	// BytesIn counts what the client sent; QueuedBytes is what the server
	// still owes it (queued plus unwritten).
	BytesIn     uint64
	QueuedBytes int64
	// LastSA is the client's last position report as routed, or nil.
	LastSA *Message
}

// Message is one routed CoT event. It is shared and read-only: consumers
// must not modify XML or Header.
type Message struct {
	// XML is the event as forwarded (the sender's bytes minus <marti>).
	XML []byte
	// Header is what the engine scanned out of the event, including the
	// <marti><dest> lists it was routed by.
	Header *cot.Header
	// Recv is when the server read it (or, for a server-side sender, when
	// Publish was called).
	Recv time.Time
}

// Kind says what an Event reports.
type Kind uint8

// The kinds of event, in no particular order.
const (
	// Join: a connection joined routing: at accept on plain TCP, after its
	// TLS handshake (Identity is then the certificate CN). An <auth> login
	// later changes Identity and groups without another Join; the events
	// of one connection arrive in the order they happened.
	Join Kind = iota
	// Leave: a joined connection closed; Event.Reason says why.
	Leave
	// SA: a client's position report was routed (Event.Message).
	SA
	// Routed: any other event was routed (Event.Message): chat, markers,
	// file shares, the server's own publications.
	Routed
	// NumKinds bounds the enum.
	NumKinds
)

var kindNames = [NumKinds]string{"join", "leave", "sa", "routed"}

func (k Kind) String() string {
	if k < NumKinds {
		return kindNames[k]
	}
	return "unknown"
}

// Kinds is a set of Kind.
type Kinds uint8

// KindsOf makes a set.
func KindsOf(ks ...Kind) Kinds {
	var s Kinds
	for _, k := range ks {
		s |= 1 << k
	}
	return s
}

// AllKinds is every kind.
const AllKinds = Kinds(1<<NumKinds - 1)

// Has reports whether k is in the set.
func (s Kinds) Has(k Kind) bool { return s&(1<<k) != 0 }

// Event is one thing that happened, delivered to subscribers off the event
// loops and shards.
type Event struct {
	Kind Kind
	// At is the server's time of the event.
	At time.Time
	// Client is the connection it concerns: the sender for SA and Routed
	// (zero ConnID for a server-side sender), the joining or leaving one.
	Client Client
	// Message is set for SA and Routed.
	Message *Message
	// Reason is set for Leave.
	Reason string
}

// Subscription is one consumer's queue of events.
type Subscription interface {
	// C delivers the events; it is closed after Close.
	C() <-chan Event
	// Dropped counts events lost because the queue was full.
	Dropped() uint64
	// Close stops delivery; safe to call more than once.
	Close()
}

// Sender is a server-side publisher: the web console's chat, Marti's
// file-share and mission notices, a cluster peer.
type Sender struct {
	// Identity names the sender in logs and to the store.
	Identity string
	// UID and Callsign are the sender's device identity, if it has one.
	UID, Callsign string
	// Out are the groups the message reaches; nil means every group a
	// connected client can hear (a server announcement).
	Out []string
}

// Selector picks connections for Disconnect; the first non-zero field
// decides.
type Selector struct {
	ConnID   uint64
	UID      string
	Identity string
}

// Reason is why a peer of the engine closed a connection.
type Reason string

// The reasons a peer may give.
const (
	ReasonAdmin   Reason = "admin"    // an administrator asked
	ReasonRevoked Reason = "revoked"  // the client's certificate was revoked
	ReasonDisable Reason = "disabled" // the user was disabled
)

// The errors Publish returns.
var (
	ErrInvalid = errors.New("directory: not a routable event")
	ErrBusy    = errors.New("directory: routing queue full")
)
