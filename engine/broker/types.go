package broker

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"cotd/cot"
)

// Message is one routed CoT event, encoded once and shared read-only by
// every recipient's outbound queue.
type Message struct {
	// XML is the event as forwarded: the sender's bytes minus <marti>.
	XML []byte
	// Type is the CoT type.
	Type string
	// Position marks a periodic position report, which a newer one
	// supersedes: back-pressure may drop it for a slow recipient.
	Position bool
	// Recv is when the server read the frame (unix nanos); 0 for events
	// the server made itself.
	Recv int64
	// Kind is what deliveries of the message are counted as.
	Kind Kind
	// Noisy: the sender was spending its inbound budget fast when it
	// sent this (Client.SetNoisy). A recipient short of room drops such
	// messages first, so that one sender cannot crowd out the others.
	Noisy bool
	// From is the client that published it (Broker.Publish); nil for the
	// events the broker makes itself (disconnect notices, delivery
	// failures), which every node makes for its own clients. Relays and
	// ghosts forward only messages from a RoleLocal sender: what came from
	// another node never goes back out (no echo between nodes).
	From *Client

	// enc holds the other wire formats, made on first use and shared by
	// every copy of the message: one encoding per format, whatever the
	// number of recipients.
	enc *encodings
}

type encodings struct {
	once   sync.Once
	encode Encoder
	v1     []byte
}

// Encoder turns an event's XML into one TAK protocol v1 stream frame
// (magic, length, payload), or returns nil when it does not convert. The
// engine provides it (Options.EncodeV1): the broker routes bytes and knows
// no wire format but XML.
type Encoder func(xml []byte) []byte

// NewMessage wraps an event that has no other wire format: V1 returns
// nil, so a v1 recipient counts it unencodable. Broker.NewMessage makes
// messages that convert.
func NewMessage(xml []byte, typ string, position bool, recv int64, v1 []byte) *Message {
	return newMessage(xml, typ, position, recv, v1, nil)
}

// NewMessage wraps an event. v1, when not nil, is the event as one TAK
// protocol v1 frame as received: a v1 recipient then gets the sender's
// bytes. Otherwise the v1 frame is made on first use with the broker's
// Options.EncodeV1.
func (b *Broker) NewMessage(xml []byte, typ string, position bool, recv int64, v1 []byte) *Message {
	return newMessage(xml, typ, position, recv, v1, b.opts.EncodeV1)
}

func newMessage(xml []byte, typ string, position bool, recv int64, v1 []byte, enc Encoder) *Message {
	m := &Message{XML: xml, Type: typ, Position: position, Recv: recv, Kind: kindOf(typ, position),
		enc: &encodings{encode: enc}}
	if v1 != nil {
		m.enc.once.Do(func() { m.enc.v1 = v1 })
	}
	return m
}

// V1 returns the message as one TAK protocol v1 stream frame, encoded on
// first use and shared by every recipient; nil when the XML does not
// convert or the message has no encoder.
func (m *Message) V1() []byte {
	m.enc.once.Do(func() {
		if m.enc.encode != nil {
			m.enc.v1 = m.enc.encode(m.XML)
		}
	})
	return m.enc.v1
}

// Verdict is what a recipient's Deliver did with a message.
type Verdict uint8

// The legal verdicts. Only Queued means the bytes will be written.
const (
	// Queued: appended to the recipient's outbound queue.
	Queued Verdict = iota
	// DroppedBackpressure: the recipient is above its soft limit and the
	// message was a position report.
	DroppedBackpressure
	// DroppedSlowConsumer: the recipient went above its hard limit and is
	// being closed.
	DroppedSlowConsumer
	// DroppedClosed: the recipient's connection is already closing.
	DroppedClosed
	// DroppedUnencodable: the recipient speaks TAK protocol v1 and the
	// event does not convert.
	DroppedUnencodable
	// DroppedNoisy: the message's sender is spending its inbound budget
	// fast (Message.Noisy) and the recipient's queue is over its share
	// for such senders.
	DroppedNoisy
)

// Outbox is the recipient side of a connection, implemented by the engine.
type Outbox interface {
	// Deliver queues m without blocking and applies the connection's
	// back-pressure policy. It is called from shard goroutines.
	Deliver(m *Message) Verdict
	// Replayed is the end of a join: the client's SA replay is queued (at
	// once, on the caller of Join, when replay is off; otherwise on the
	// replay's goroutine). It is not called for a client that left first.
	// TAK Server offers protocol v1 here, after the SAs.
	Replayed()
	// Drained arms a one-shot signal: the channel receives once the
	// connection's queue is below its soft limit again (it may already
	// be). A replay refused for back-pressure waits on it, and on the
	// client leaving, instead of polling. A stale signal only causes one
	// more try.
	Drained() <-chan struct{}
}

// Identity is what a client told about itself in its SA.
type Identity struct {
	UID      string
	Callsign string
}

// Role says what a Client stands for. The single-node server only has
// RoleLocal; a cluster link (engine's Link) adds the other two.
type Role uint8

// The roles.
const (
	// RoleLocal: a connection of this node, or a server-side sender.
	RoleLocal Role = iota
	// RoleGhost: a client of another node. It is found by uid and callsign
	// (a directed message to it goes to its Outbox, which forwards it to its
	// node), its SAs are cached for replay and its leave is announced to
	// local clients, but broadcasts skip it: they reach its node once,
	// through a relay. It is never replayed to.
	RoleGhost
	// RoleRelay: other nodes' ear for one group. A broadcast from a local
	// sender into that group reaches it once, whatever the number of
	// remote clients; it is never directed to and never replayed to.
	RoleRelay
	// NumRoles bounds the enum.
	NumRoles
)

var roleNames = [NumRoles]string{"local", "ghost", "relay"}

func (r Role) String() string {
	if r < NumRoles {
		return roleNames[r]
	}
	return "unknown"
}

// Client is the broker's view of one connection.
type Client struct {
	// ID is unique for the process's lifetime.
	ID   uint64
	out  Outbox
	role Role

	// ident is written only by the client's own shard and read anywhere.
	ident atomic.Pointer[Identity]
	// groups decides who the client reaches and hears; swapped whole when
	// the users file is reloaded.
	groups atomic.Pointer[Membership]
	// saType is the type of the client's last SA; owned by its shard.
	saType string
	// lastSeen is the unix-nano time of the client's last routed frame.
	lastSeen atomic.Int64
	// lastSA is the client's last SA as routed; written by its shard.
	lastSA atomic.Pointer[Message]
	left   atomic.Bool
	// gone is closed when the client leaves: it wakes a waiting replay.
	gone chan struct{}

	// owner is who holds the client's uids: the certificate CN or <auth>
	// user, nil while anonymous (a uid is then the connection's alone).
	// A new connection of the same owner takes a uid over at once.
	owner atomic.Pointer[string]
	// gateway: the client relays other devices' SAs (a users-file flag);
	// it may announce more uids and a device connecting directly takes
	// its uid from it.
	gateway atomic.Bool
	// heard is unix nanos of the last bytes read from the client, pings
	// included: a holder silent longer than Options.TakeoverQuiet loses
	// its uid to a new claimant (the half-open connection of a phone
	// that changed network).
	heard atomic.Int64
	// umu guards uids and refusedLogged. A connection's Publish calls
	// come from its event loop alone and its leave after them, so for
	// those it is never contended; a ghost's come from the cluster link,
	// whose presence (Identify) and messages (Publish) may overlap.
	umu sync.Mutex
	// uids are the uids the client announced SAs for, bounded by
	// Options.MaxSAsPerClient, with who holds each now. At leave their
	// cache entries go and, for the uids it still holds, t-x-d-d is sent.
	uids map[string]*uidSlot
	// refusedLogged: one log line per client for refused SAs.
	refusedLogged bool
	// noisy marks what the client publishes as Message.Noisy.
	noisy atomic.Bool
}

// Replacer is an Outbox that the broker can close when a newer connection
// takes its uid over (the same owner reconnecting, or the holder gone
// quiet). Optional: an Outbox without it keeps its connection.
type Replacer interface {
	// Replaced closes the connection, counted as replaced; by is the
	// client that took the uid. Called from a shard: it must not block.
	Replaced(by *Client, uid string)
}

// SetOwner records who the client is for uid ownership (certificate CN or
// <auth> user; "" keeps it anonymous) and whether it is a gateway that
// relays other devices' SAs. Set it before the client's first SA.
func (c *Client) SetOwner(name string, gateway bool) {
	if name != "" {
		c.owner.Store(&name)
	}
	c.gateway.Store(gateway)
}

// Owner is the client's owner name, "" when anonymous.
func (c *Client) Owner() string {
	if p := c.owner.Load(); p != nil {
		return *p
	}
	return ""
}

// SetNoisy says whether the client is spending its inbound budget fast:
// its messages are then the first a recipient short of room drops.
func (c *Client) SetNoisy(v bool) { c.noisy.Store(v) }

// Heard records that bytes arrived from the client at unix nanos now.
func (c *Client) Heard(now int64) { c.heard.Store(now) }

// NewClient wraps a connection's outbox. Its membership is m, or Anon
// both ways when m is nil; SetMembership changes it later. A server-side
// sender (one that publishes and never joins) has a nil outbox.
func NewClient(id uint64, out Outbox, m *Membership) *Client {
	c := &Client{ID: id, out: out, gone: make(chan struct{}), uids: make(map[string]*uidSlot, 1)}
	c.heard.Store(time.Now().UnixNano())
	if m != nil {
		c.groups.Store(m)
	}
	return c
}

// NewRemoteClient is NewClient for a ghost or a relay (a cluster link's
// recipients); see Role.
func NewRemoteClient(id uint64, out Outbox, m *Membership, role Role) *Client {
	c := NewClient(id, out, m)
	c.role = role
	return c
}

// Role says what the client stands for.
func (c *Client) Role() Role { return c.role }

// Server reports whether the client is a server-side sender of this node
// (one that publishes and never joins).
func (c *Client) Server() bool { return c.out == nil && c.role == RoleLocal }

// forwardable reports whether m may leave this node: it was published by a
// client or server-side sender of this node.
func forwardable(m *Message) bool { return m.From != nil && m.From.role == RoleLocal }

// anonymous is the membership of a client nobody gave groups to.
var anonymous = func() *Membership {
	m := &Membership{In: []string{Anon}, Out: []string{Anon}}
	// Anon is always index 0: every Broker interns it first (New).
	m.in.set(0)
	m.out.set(0)
	m.inIdx = []int{0}
	return m
}()

func (c *Client) membership() *Membership {
	if m := c.groups.Load(); m != nil {
		return m
	}
	return anonymous
}

// Groups returns the client's membership.
func (c *Client) Groups() *Membership { return c.membership() }

// Identity returns what the client has told about itself; zero before its
// first SA.
func (c *Client) Identity() Identity {
	if p := c.ident.Load(); p != nil {
		return *p
	}
	return Identity{}
}

// LastSeen is the time of the client's last routed frame, or zero.
func (c *Client) LastSeen() time.Time {
	if n := c.lastSeen.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// LastSA is the client's last SA as routed, or nil.
func (c *Client) LastSA() *Message { return c.lastSA.Load() }

// Left reports whether the client joined and has since left.
func (c *Client) Left() bool { return c.left.Load() }

// Kind classifies routed messages for the frames-out counters.
type Kind uint8

// The kinds of routed message.
const (
	// KindSA: position reports.
	KindSA Kind = iota
	// KindChat: GeoChat, its receipts and delivery failures (b-t-f...).
	KindChat
	// KindOther: markers, disconnect notices and everything else.
	KindOther
	// NumKinds bounds the enum.
	NumKinds
)

var kindNames = [NumKinds]string{"sa", "chat", "other"}

func (k Kind) String() string {
	if k < NumKinds {
		return kindNames[k]
	}
	return "unknown"
}

func kindOf(typ string, position bool) Kind {
	switch {
	case position:
		return KindSA
	case strings.HasPrefix(typ, cot.TypeChat):
		return KindChat
	}
	return KindOther
}
