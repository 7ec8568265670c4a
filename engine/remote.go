package engine

import (
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"cotd/cot"
	"cotd/engine/broker"
	"cotd/engine/directory"
)

// Link attaches a cluster link (ARCHITECTURE.md §11): f receives what
// local clients send that other nodes' clients may hear, and the returned
// Remote takes what they send and who they are. Other nodes' clients
// become broker clients of two roles: a ghost per remote client (found by
// uid and callsign, its SAs cached for replay, its leave announced) and a
// relay per group a remote client hears (one delivery per broadcast and
// group, whatever the number of remote clients). Both hand messages to f,
// which queues or refuses at once: the shards never wait on the cluster.
// Without a Link the broker has neither, and routing is unchanged.
func (s *Server) Link(f directory.Forwarder) directory.Remote {
	return &link{s: s, f: f,
		ghosts:  make(map[ghostKey]*ghost),
		senders: make(map[ghostKey]*broker.Client),
		relays:  make(map[string]*broker.Client),
		hear:    make(map[string]int),
	}
}

type ghostKey struct {
	node string
	conn uint64
}

// link implements directory.Remote.
type link struct {
	s *Server
	f directory.Forwarder

	mu     sync.Mutex
	ghosts map[ghostKey]*ghost
	// senders are other nodes' server-side senders: they publish and never
	// join.
	senders map[ghostKey]*broker.Client
	relays  map[string]*broker.Client
	// hear counts the ghosts that hear each group: a relay exists while
	// its count is above zero.
	hear map[string]int
}

type ghost struct {
	c       *broker.Client
	in, out []string
}

// ghostBox is a ghost's outbox: a directed message goes to its node.
type ghostBox struct {
	f    directory.Forwarder
	node string
	conn uint64
	c    *broker.Client
}

// Deliver implements broker.Outbox. Shard.
func (g *ghostBox) Deliver(m *broker.Message) broker.Verdict {
	if !g.f.ToClient(g.node, g.conn, g.c.Identity().UID, outgoing(m)) {
		return broker.DroppedBackpressure
	}
	return broker.Queued
}

// Replayed implements broker.Outbox; a ghost is never replayed to.
func (g *ghostBox) Replayed() {}

// Drained implements broker.Outbox; a ghost is never replayed to.
func (g *ghostBox) Drained() <-chan struct{} { return closedSignal }

// relayBox is a relay's outbox: a broadcast into its group goes to the
// nodes that hear the group.
type relayBox struct {
	f     directory.Forwarder
	group string
}

// Deliver implements broker.Outbox. Shard.
func (r *relayBox) Deliver(m *broker.Message) broker.Verdict {
	if !r.f.ToGroup(r.group, outgoing(m)) {
		return broker.DroppedBackpressure
	}
	return broker.Queued
}

// Replayed implements broker.Outbox; a relay is never replayed to.
func (r *relayBox) Replayed() {}

// Drained implements broker.Outbox; a relay is never replayed to.
func (r *relayBox) Drained() <-chan struct{} { return closedSignal }

var closedSignal = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// outgoing describes a message of this node for the link; the broker
// forwards only messages with a local sender (Message.From).
func outgoing(m *broker.Message) directory.Outgoing {
	g := m.From.Groups()
	return directory.Outgoing{XML: m.XML, Recv: m.Recv, From: directory.Origin{
		ConnID: m.From.ID, Server: m.From.Server(), In: g.In, Out: g.Out}}
}

// RemoteJoin implements directory.Remote.
func (l *link) RemoteJoin(c directory.Client) {
	l.mu.Lock()
	defer l.mu.Unlock()
	gh := l.ghostLocked(c.Node, c.ConnID, c.In, c.Out)
	if c.UID != "" {
		l.s.broker.Identify(gh.c, broker.Identity{UID: c.UID, Callsign: c.Callsign})
	}
}

// ghostLocked returns the ghost of conn on node with groups in and out,
// joining it or updating its groups as needed. l.mu is held.
func (l *link) ghostLocked(node string, conn uint64, in, out []string) *ghost {
	key := ghostKey{node, conn}
	gh, ok := l.ghosts[key]
	switch {
	case !ok:
		box := &ghostBox{f: l.f, node: node, conn: conn}
		gh = &ghost{c: broker.NewRemoteClient(l.s.nextID.Add(1), box, l.s.broker.Membership(in, out), broker.RoleGhost)}
		box.c = gh.c
		l.ghosts[key] = gh
		l.s.broker.Join(gh.c)
	case !slices.Equal(gh.in, in) || !slices.Equal(gh.out, out):
		l.s.broker.SetMembership(gh.c, l.s.broker.Membership(in, out))
	default:
		return gh
	}
	l.hearLocked(gh.out, out)
	gh.in, gh.out = slices.Clone(in), slices.Clone(out)
	return gh
}

// hearLocked moves one ghost's hearing from groups was to groups now,
// making a relay for a group the first ghost hears and removing it after
// the last. l.mu is held.
func (l *link) hearLocked(was, now []string) {
	for _, g := range now {
		if slices.Contains(was, g) {
			continue
		}
		l.hear[g]++
		if l.hear[g] == 1 {
			r := broker.NewRemoteClient(l.s.nextID.Add(1), &relayBox{f: l.f, group: g},
				l.s.broker.Membership(nil, []string{g}), broker.RoleRelay)
			l.relays[g] = r
			l.s.broker.Join(r)
		}
	}
	for _, g := range was {
		if slices.Contains(now, g) {
			continue
		}
		l.hear[g]--
		if l.hear[g] <= 0 {
			delete(l.hear, g)
			if r := l.relays[g]; r != nil {
				delete(l.relays, g)
				l.s.broker.Leave(r)
			}
		}
	}
}

// RemoteLeave implements directory.Remote.
func (l *link) RemoteLeave(node string, conn uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	key := ghostKey{node, conn}
	gh, ok := l.ghosts[key]
	if !ok {
		return
	}
	delete(l.ghosts, key)
	l.hearLocked(gh.out, nil)
	l.s.broker.Leave(gh.c)
}

// RemoteNode implements directory.Remote.
func (l *link) RemoteNode(node string) []uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []uint64
	for k := range l.ghosts {
		if k.node == node {
			out = append(out, k.conn)
		}
	}
	slices.Sort(out)
	return out
}

// maxRemoteSenders bounds the cache of other nodes' server-side senders.
const maxRemoteSenders = 1024

// RemotePublish implements directory.Remote.
func (l *link) RemotePublish(from directory.Origin, doc []byte, toUID string) error {
	if len(doc) > l.s.cfg.Limits.MaxFrameBytes {
		return fmt.Errorf("%w: %d bytes, over limits.max_frame_bytes", directory.ErrInvalid, len(doc))
	}
	h := new(cot.Header)
	if err := cot.ScanHeader(doc, h); err != nil {
		return fmt.Errorf("%w: %w", directory.ErrInvalid, err)
	}
	if h.Kind != cot.DocEvent || h.Type == "" {
		return fmt.Errorf("%w: not a typed <event>", directory.ErrInvalid)
	}
	if from.Node == "" {
		return fmt.Errorf("%w: no origin node", directory.ErrInvalid)
	}
	l.mu.Lock()
	var c *broker.Client
	if from.Server {
		key := ghostKey{from.Node + "\x00" + strconv.Quote(from.Identity), from.ConnID}
		if c = l.senders[key]; c == nil || !slices.Equal(c.Groups().In, from.In) {
			if len(l.senders) >= maxRemoteSenders {
				clear(l.senders)
			}
			// A ghost that never joins: its messages reach local clients
			// only, and nothing is ever delivered to it.
			c = broker.NewRemoteClient(l.s.nextID.Add(1), nil, l.s.broker.Membership(from.In, nil), broker.RoleGhost)
			l.senders[key] = c
		}
	} else {
		// A message may come before the presence that announces its
		// sender: it carries the groups, which is all routing needs.
		c = l.ghostLocked(from.Node, from.ConnID, from.In, from.Out).c
	}
	l.mu.Unlock()
	if toUID != "" {
		h.DestUIDs, h.DestCallsigns = []string{toUID}, nil
	}
	if l.s.broker.Publish(c, h, doc, time.Now().UnixNano(), nil) == nil {
		return directory.ErrBusy
	}
	return nil
}
