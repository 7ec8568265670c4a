package broker

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"cotd/cot"
	"cotd/cot/takproto"
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

	// enc holds the other wire formats, made on first use and shared by
	// every copy of the message: one encoding per format, whatever the
	// number of recipients.
	enc *encodings
}

type encodings struct {
	once sync.Once
	v1   []byte
}

// NewMessage wraps an event. v1, when not nil, is the event's TAK protocol
// v1 payload as received: a v1 recipient then gets the sender's bytes.
func NewMessage(xml []byte, typ string, position bool, recv int64, v1 []byte) *Message {
	m := &Message{XML: xml, Type: typ, Position: position, Recv: recv, Kind: kindOf(typ, position), enc: &encodings{}}
	if v1 != nil {
		frame := takproto.AppendFrame(nil, v1)
		m.enc.once.Do(func() { m.enc.v1 = frame })
	}
	return m
}

// V1 returns the message as one TAK protocol v1 stream frame (magic,
// length, payload), encoded on first use; nil when the XML does not convert.
func (m *Message) V1() []byte {
	m.enc.once.Do(func() {
		var tm takproto.TakMessage
		if takproto.FromXML(m.XML, &tm) == nil {
			m.enc.v1 = takproto.AppendMessageFrame(nil, &tm)
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
)

// Outbox is the recipient side of a connection, implemented by the engine.
type Outbox interface {
	// Deliver queues m without blocking and applies the connection's
	// back-pressure policy. It is called from shard goroutines.
	Deliver(m *Message) Verdict
}

// Identity is what a client told about itself in its SA.
type Identity struct {
	UID      string
	Callsign string
}

// Client is the broker's view of one connection.
type Client struct {
	// ID is unique for the process's lifetime.
	ID  uint64
	out Outbox

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
}

// NewClient wraps a connection's outbox. Its membership is m, or Anon
// both ways when m is nil; SetMembership changes it later. A server-side
// sender (one that publishes and never joins) has a nil outbox.
func NewClient(id uint64, out Outbox, m *Membership) *Client {
	c := &Client{ID: id, out: out}
	if m != nil {
		c.groups.Store(m)
	}
	return c
}

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
