package engine

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"cotd/cot"
	"cotd/cot/takproto"
	"cotd/engine/broker"
	"cotd/engine/directory"
	"cotd/engine/metrics"
)

// Directory is the engine as the rest of the process sees it (the admin
// API, Marti, the store feed, the web console, the cluster link): the only
// way in for a peer of the hot path.
func (s *Server) Directory() directory.Directory { return &engineDirectory{s: s} }

// engineDirectory implements directory.Directory over a Server.
type engineDirectory struct{ s *Server }

// dirState is the engine's side of Directory: the subscribers, the
// server-side senders and the active-group choices.
type dirState struct {
	// want is the union of the kinds the subscribers asked for, as bits of
	// directory.Kinds: the one thing the hot path reads, so that with
	// nobody subscribed an event costs one atomic load.
	want atomic.Uint32
	subs atomic.Pointer[[]*directory.Queue]

	mu sync.Mutex
	// gone keeps the drops of closed subscriptions by name, so that the
	// exported counter never goes backwards.
	gone map[string]uint64
	// senders are the broker clients of server-side senders, by identity
	// and groups: one client per sender keeps its messages on one shard,
	// in order.
	senders map[string]*broker.Client
	// active narrows users' groups (SetActiveGroups), by identity.
	active map[string][]string
}

// maxSenders bounds the server-side sender cache; past it the cache starts
// over (a sender then changes shard once, which reorders nothing in flight
// that matters: each message is independent).
const maxSenders = 1024

// wants reports whether some subscriber asked for k.
func (d *dirState) wants(k directory.Kind) bool {
	return directory.Kinds(d.want.Load()).Has(k)
}

// offer hands ev to every subscriber that wants it; it never waits.
func (d *dirState) offer(ev directory.Event) {
	subs := d.subs.Load()
	if subs == nil {
		return
	}
	for _, q := range *subs {
		if q.Wants(ev.Kind) {
			q.Offer(ev)
		}
	}
}

// Subscribe implements directory.Directory.
func (d *engineDirectory) Subscribe(name string, want directory.Kinds, capacity int) directory.Subscription {
	st := &d.s.dir
	var q *directory.Queue
	q = directory.NewQueue(name, want, capacity, func() { st.remove(q) })
	st.mu.Lock()
	var next []*directory.Queue
	if cur := st.subs.Load(); cur != nil {
		next = slices.Clone(*cur)
	}
	next = append(next, q)
	st.publishSubs(next)
	st.mu.Unlock()
	return q
}

// remove unregisters a closed queue and keeps its drop count.
func (d *dirState) remove(q *directory.Queue) {
	d.mu.Lock()
	defer d.mu.Unlock()
	cur := d.subs.Load()
	if cur == nil {
		return
	}
	next := slices.DeleteFunc(slices.Clone(*cur), func(x *directory.Queue) bool { return x == q })
	if d.gone == nil {
		d.gone = make(map[string]uint64)
	}
	d.gone[q.Name()] += q.Dropped()
	d.publishSubs(next)
}

// publishSubs installs a new subscriber list and its kind union; mu is
// held, so that two changes cannot interleave their stores.
func (d *dirState) publishSubs(next []*directory.Queue) {
	var want directory.Kinds
	for k := range directory.NumKinds {
		for _, q := range next {
			if q.Wants(k) {
				want |= directory.KindsOf(k)
			}
		}
	}
	d.subs.Store(&next)
	d.want.Store(uint32(want))
}

// writeMetrics exports each subscriber's drops and backlog.
func (d *dirState) writeMetrics(m *metrics.Writer) {
	d.mu.Lock()
	dropped := make(map[string]uint64, len(d.gone))
	for name, n := range d.gone {
		dropped[name] = n
	}
	d.mu.Unlock()
	queued := map[string]int{}
	if subs := d.subs.Load(); subs != nil {
		for _, q := range *subs {
			dropped[q.Name()] += q.Dropped()
			queued[q.Name()] += q.Len()
		}
	}
	names := make([]string, 0, len(dropped))
	for name := range dropped {
		names = append(names, name)
	}
	sort.Strings(names)
	m.Family("cotd_directory_dropped_total", "Directory events dropped because a subscriber's queue was full, by subscriber.", "counter")
	for _, name := range names {
		m.Sample("cotd_directory_dropped_total", float64(dropped[name]), "subscriber", name)
	}
	m.Family("cotd_directory_queued", "Directory events waiting for a subscriber, by subscriber.", "gauge")
	for _, name := range names {
		if n, ok := queued[name]; ok {
			m.Sample("cotd_directory_queued", float64(n), "subscriber", name)
		}
	}
}

// joined tells subscribers that ss joined routing. Loop.
func (s *Server) joined(ss *session) {
	if !s.dir.wants(directory.Join) {
		return
	}
	s.dir.offer(directory.Event{Kind: directory.Join, At: time.Now(), Client: ss.snapshot(false)})
}

// left tells subscribers that ss, which had joined, closed with r. Loop.
func (s *Server) left(ss *session, r CloseReason) {
	if !s.dir.wants(directory.Leave) {
		return
	}
	s.dir.offer(directory.Event{Kind: directory.Leave, At: time.Now(), Client: ss.snapshot(false), Reason: r.String()})
}

// publish hands a client's event to the broker and, when a subscriber
// wants it, tells the subscribers what was routed. Loop. The event is
// built only after the check, so with no subscriber routing pays one
// atomic load.
func (ss *session) publish(h *cot.Header, doc []byte) {
	s := ss.srv
	var v1 []byte
	if ss.curV1 != nil && h.MartiStart < 0 {
		// The sender's v1 bytes, for v1 recipients; with a <marti> the
		// broker strips it and re-encodes instead.
		v1 = takproto.AppendFrame(nil, ss.curV1)
	}
	m := s.broker.Publish(ss.client, h, doc, ss.readAt, v1)
	if m == nil {
		return
	}
	k := directory.Routed
	if h.IsSA() {
		k = directory.SA
	}
	if !s.dir.wants(k) {
		return
	}
	c := ss.snapshot(false)
	if k == directory.SA {
		// The shard learns the identity after this; the event carries it.
		c.UID, c.Callsign = h.UID, h.Callsign
	}
	s.dir.offer(directory.Event{Kind: k, At: time.Now(), Client: c, Message: routedMessage(m, h, ss.readAt)})
}

// routedMessage makes the subscribers' copy of a routed message: the shared
// XML, and a copy of the header (the caller's is scratch), whose <marti>
// range no longer applies to the forwarded bytes.
func routedMessage(m *broker.Message, h *cot.Header, recv int64) *directory.Message {
	hc := *h
	hc.DestCallsigns = slices.Clone(h.DestCallsigns)
	hc.DestUIDs = slices.Clone(h.DestUIDs)
	hc.MartiStart, hc.MartiEnd = -1, -1
	return &directory.Message{XML: m.XML, Header: &hc, Recv: time.Unix(0, recv)}
}

// Clients implements directory.Directory.
func (d *engineDirectory) Clients() []directory.Client {
	return d.s.snapshots(func(*session) bool { return true })
}

// Client implements directory.Directory.
func (d *engineDirectory) Client(uid string) []directory.Client {
	return d.s.snapshots(func(ss *session) bool { return ss.client.Identity().UID == uid })
}

// Connection implements directory.Directory.
func (d *engineDirectory) Connection(id uint64) (directory.Client, bool) {
	v, ok := d.s.sessions.Load(id)
	if !ok {
		return directory.Client{}, false
	}
	return v.(*session).snapshot(true), true
}

// snapshots lists the sessions that match, oldest first.
func (s *Server) snapshots(match func(*session) bool) []directory.Client {
	var out []directory.Client
	s.sessions.Range(func(_, v any) bool {
		if ss := v.(*session); match(ss) {
			out = append(out, ss.snapshot(true))
		}
		return true
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ConnID < out[j].ConnID })
	return out
}

// snapshot describes a session from any goroutine; withSA adds its last
// SA (re-scanned, so it costs a parse: events leave it out).
func (ss *session) snapshot(withSA bool) directory.Client {
	id := ss.client.Identity()
	g := ss.client.Groups()
	c := directory.Client{
		ConnID:      ss.id,
		UID:         id.UID,
		Callsign:    id.Callsign,
		In:          slices.Clone(g.In),
		Out:         slices.Clone(g.Out),
		Listener:    ss.ln.kind.String(),
		Protocol:    "xml",
		State:       "established",
		Remote:      ss.remote,
		Since:       ss.opened,
		LastSeen:    ss.client.LastSeen(),
		BytesIn:     ss.bytesIn.Load(),
		QueuedBytes: ss.queued(),
	}
	if name := ss.userName.Load(); name != nil {
		c.Identity = *name
	}
	if ss.outV1.Load() {
		c.Protocol = "takproto/1"
	}
	if !ss.established.Load() {
		c.State = "handshaking"
	}
	if withSA {
		if m := ss.client.LastSA(); m != nil {
			var h cot.Header
			if cot.ScanHeader(m.XML, &h) == nil {
				c.LastSA = &directory.Message{XML: m.XML, Header: &h, Recv: time.Unix(0, m.Recv)}
			}
		}
	}
	return c
}

// Publish implements directory.Directory.
func (d *engineDirectory) Publish(ctx context.Context, from directory.Sender, doc []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s := d.s
	if len(doc) > s.cfg.Limits.MaxFrameBytes {
		return fmt.Errorf("%w: %d bytes, over limits.max_frame_bytes", directory.ErrInvalid, len(doc))
	}
	h := new(cot.Header)
	if err := cot.ScanHeader(doc, h); err != nil {
		return fmt.Errorf("%w: %w", directory.ErrInvalid, err)
	}
	switch {
	case h.Kind != cot.DocEvent:
		return fmt.Errorf("%w: not an <event>", directory.ErrInvalid)
	case h.Type == "":
		return fmt.Errorf("%w: no type", directory.ErrInvalid)
	case h.Type == cot.TypePing || cot.IsControl(h.Type):
		return fmt.Errorf("%w: %s is a control message", directory.ErrInvalid, h.Type)
	}
	c := s.dir.sender(s, from)
	now := time.Now()
	m := s.broker.Publish(c, h, doc, now.UnixNano(), nil)
	if m == nil {
		return directory.ErrBusy
	}
	k := directory.Routed
	if h.IsSA() {
		k = directory.SA
	}
	if s.dir.wants(k) {
		g := c.Groups()
		s.dir.offer(directory.Event{Kind: k, At: now, Message: routedMessage(m, h, now.UnixNano()),
			Client: directory.Client{Identity: from.Identity, UID: from.UID, Callsign: from.Callsign,
				In: slices.Clone(g.In), Listener: "server", Protocol: "xml", State: "established", Since: now}})
	}
	return nil
}

// sender returns the broker client a server-side sender publishes as: it
// publishes into from.Out, or into every group the broker knows when Out
// is nil, and hears nothing (it never joins).
func (d *dirState) sender(s *Server, from directory.Sender) *broker.Client {
	groups := from.Out
	if groups == nil {
		groups = s.broker.Groups()
	}
	key := from.Identity + "\x00" + strings.Join(groups, "\x00")
	d.mu.Lock()
	defer d.mu.Unlock()
	if c, ok := d.senders[key]; ok {
		return c
	}
	if d.senders == nil || len(d.senders) >= maxSenders {
		d.senders = make(map[string]*broker.Client)
	}
	c := broker.NewClient(s.nextID.Add(1), nil, s.broker.Membership(groups, nil))
	d.senders[key] = c
	return c
}

// KeepUndelivered implements directory.ChatKeeper: the broker asks keep
// before it bounces a directed chat as b-t-f-s.
func (d *engineDirectory) KeepUndelivered(keep func(directory.UndeliveredChat) bool) {
	if keep == nil {
		d.s.broker.SetKeeper(nil)
		return
	}
	d.s.broker.SetKeeper(func(from *broker.Client, uids, callsigns []string) bool {
		return keep(directory.UndeliveredChat{SenderUID: from.Identity().UID, In: from.Groups().In,
			DestUIDs: uids, DestCallsigns: callsigns})
	})
}

var _ directory.ChatKeeper = (*engineDirectory)(nil)

// Disconnect implements directory.Directory.
func (d *engineDirectory) Disconnect(sel directory.Selector, reason directory.Reason) int {
	r := ReasonAdmin
	switch reason {
	case directory.ReasonRevoked:
		r = ReasonRevoked
	case directory.ReasonDisable:
		r = ReasonDisabled
	}
	var match func(*session) bool
	switch {
	case sel.ConnID != 0:
		match = func(ss *session) bool { return ss.id == sel.ConnID }
	case sel.UID != "":
		match = func(ss *session) bool { return ss.client.Identity().UID == sel.UID }
	case sel.Identity != "":
		match = func(ss *session) bool { n := ss.userName.Load(); return n != nil && *n == sel.Identity }
	default:
		return 0
	}
	n := 0
	d.s.sessions.Range(func(_, v any) bool {
		ss := v.(*session)
		if match(ss) && ss.closeWith(r) {
			ss.logger().Info().Str("reason", r.String()).Msg("disconnected through the directory")
			n++
		}
		return true
	})
	return n
}

// SetActiveGroups implements directory.Directory.
func (d *engineDirectory) SetActiveGroups(identity string, active []string) int {
	s := d.s
	s.dir.mu.Lock()
	if len(active) == 0 {
		delete(s.dir.active, identity)
	} else {
		if s.dir.active == nil {
			s.dir.active = make(map[string][]string)
		}
		s.dir.active[identity] = slices.Clone(active)
	}
	s.dir.mu.Unlock()
	n := 0
	s.sessions.Range(func(_, v any) bool {
		ss := v.(*session)
		name := ss.userName.Load()
		if name == nil || *name != identity {
			return true
		}
		if m, _, refuse := s.membershipFor(ss.ln, identity); refuse == "" {
			s.broker.SetMembership(ss.client, m)
			n++
		}
		return true
	})
	return n
}

// membershipFor is a user's groups (userMembership) narrowed to the groups
// the user made active, if it chose any.
func (s *Server) membershipFor(ln *listener, name string) (m *broker.Membership, gateway bool, refuse string) {
	m, gateway, refuse = s.userMembership(ln, name)
	if refuse != "" {
		return m, gateway, refuse
	}
	s.dir.mu.Lock()
	active, ok := s.dir.active[name]
	s.dir.mu.Unlock()
	if !ok {
		return m, gateway, ""
	}
	keep := func(gs []string) []string {
		return slices.DeleteFunc(slices.Clone(gs), func(g string) bool { return !slices.Contains(active, g) })
	}
	return s.broker.Membership(keep(m.In), keep(m.Out)), gateway, ""
}
