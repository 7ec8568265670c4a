package broker

import (
	"bytes"
	"context"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"cotd/cot"
	"cotd/engine/metrics"
)

// DropReason says why a routed message did not reach a recipient.
type DropReason uint8

// Every way a message can be dropped. Each is counted.
const (
	// DropBackpressure: a position report to a recipient above its soft limit.
	DropBackpressure DropReason = iota
	// DropSlowConsumer: the recipient went above its hard limit.
	DropSlowConsumer
	// DropRecipientClosed: the recipient was closing.
	DropRecipientClosed
	// DropInboxFull: the sender's shard inbox was full; the frame was never routed.
	DropInboxFull
	// DropUnencodable: a v1 recipient and an event that does not convert.
	DropUnencodable
	// DropNoisySender: a message from a sender spending its inbound budget
	// fast, to a recipient whose queue is over its share for such senders.
	DropNoisySender
	// NumDropReasons bounds the enum.
	NumDropReasons
)

var dropNames = [NumDropReasons]string{"backpressure", "slow_consumer", "recipient_closed", "inbox_full", "unencodable", "noisy_sender"}

func (r DropReason) String() string {
	if r < NumDropReasons {
		return dropNames[r]
	}
	return "unknown"
}

// Stats are the broker's counters.
type Stats struct {
	// Routed counts frames accepted for routing.
	Routed metrics.Counter
	// Delivered counts messages queued to a recipient, by kind.
	Delivered [NumKinds]metrics.Counter
	// Unroutable counts directed frames none of whose destinations is online.
	Unroutable metrics.Counter
	// Replayed counts cached SAs sent to newly joined clients.
	Replayed metrics.Counter
	// DisconnectNotices counts t-x-d-d events generated for leaving clients.
	DisconnectNotices metrics.Counter
	// DeliveryFailures counts b-t-f-s returned for directed chats that
	// reached no one.
	DeliveryFailures metrics.Counter
	// KeptOffline counts directed chats that reached no one and that the
	// Keeper kept for later delivery instead of a b-t-f-s.
	KeptOffline metrics.Counter
	// Drops counts messages dropped, by reason.
	Drops [NumDropReasons]metrics.Counter
	// UIDRefused counts SAs dropped because another live client owns
	// their uid (an impostor).
	UIDRefused metrics.Counter
	// UIDTakeovers counts uids that moved to a newer connection (the
	// same owner reconnecting, a quiet holder, a gateway's device).
	UIDTakeovers metrics.Counter
	// SAOverCap counts SAs dropped because their sender announced
	// Options.MaxSAsPerClient other uids already (a uid rotator).
	SAOverCap metrics.Counter
	// SACacheFull counts SAs routed but not cached because the cache
	// held Options.MaxCachedSAs.
	SACacheFull metrics.Counter
}

// DeliveredAll is the number of messages queued to recipients, of every kind.
func (s *Stats) DeliveredAll() uint64 {
	var n uint64
	for i := range s.Delivered {
		n += s.Delivered[i].Value()
	}
	return n
}

// Options configure a Broker.
type Options struct {
	// Shards is the number of routing goroutines; 0 means GOMAXPROCS.
	Shards int
	// Inbox is each shard's queue length.
	Inbox int
	// InboxBytes bounds the bytes of the frames waiting in each shard's
	// inbox: past it frames are dropped as inbox_full, so that a stalled
	// shard holds a bounded amount of memory whatever the frames' size.
	// 0 means 64 MiB.
	InboxBytes int
	// Replay sends a joining client the cached SA of every other client.
	Replay bool
	// EncodeV1 makes the TAK protocol v1 frame of an event for v1
	// recipients; nil means none convert (they count as unencodable).
	EncodeV1 Encoder
	// PruneEvery is how often stale SAs leave the cache; 0 means 10s.
	PruneEvery time.Duration
	// TakeoverQuiet: a uid's holder silent this long loses it to a new
	// claimant; 0 means 15s (ATAK's ping interval).
	TakeoverQuiet time.Duration
	// MaxSAsPerClient bounds the uids one connection may announce SAs
	// for; past it its SAs for new uids are dropped. 0 means 4: a device
	// announces one. MaxSAsPerGateway is the bound for a gateway client
	// (Client.SetOwner); 0 means 10000.
	MaxSAsPerClient, MaxSAsPerGateway int
	// MaxCachedSAs bounds the replay cache; past it SAs of new uids are
	// routed but not cached. 0 means 100000.
	MaxCachedSAs int
	// DefaultStale is the cache lifetime of an SA without a stale time;
	// 0 means 5m.
	DefaultStale time.Duration
	// Log receives the broker's own events.
	Log zerolog.Logger
}

// Broker routes frames between clients.
type Broker struct {
	opts   Options
	stats  Stats
	reg    *registry
	sa     *saCache
	groups groupTable
	shards []*shard

	inflight atomic.Int64
	replays  atomic.Int64 // SA replays running (Join)
	keeper   atomic.Pointer[Keeper]
	quit     chan struct{}
	wg       sync.WaitGroup
	stopOnce sync.Once
}

// allStreaming is the dest callsign TAK Server reads as "broadcast".
const allStreaming = "All Streaming"

type jobKind uint8

const (
	jobFrame jobKind = iota
	jobLeave
)

type job struct {
	kind      jobKind
	from      *Client
	msg       *Message
	sa        bool
	uid       string
	callsign  string
	stale     time.Time
	callsigns []string
	uids      []string
	// slot is the sender's hold on the SA's uid, decided by Publish; nil
	// for a server-side sender, which holds no uid.
	slot *uidSlot
}

type shard struct {
	b     *Broker
	inbox chan job
	// bytes is what the frames in inbox hold (their XML).
	bytes   atomic.Int64
	targets []*Client
	seen    map[uint64]struct{}
}

// New builds a broker; Start runs it.
func New(opts Options) *Broker {
	if opts.Shards <= 0 {
		opts.Shards = runtime.GOMAXPROCS(0)
	}
	if opts.Inbox <= 0 {
		opts.Inbox = 16384
	}
	if opts.InboxBytes <= 0 {
		opts.InboxBytes = 64 << 20
	}
	if opts.PruneEvery <= 0 {
		opts.PruneEvery = 10 * time.Second
	}
	if opts.TakeoverQuiet <= 0 {
		opts.TakeoverQuiet = 15 * time.Second
	}
	if opts.MaxSAsPerClient <= 0 {
		opts.MaxSAsPerClient = 4
	}
	if opts.MaxSAsPerGateway <= 0 {
		opts.MaxSAsPerGateway = 10000
	}
	if opts.MaxCachedSAs <= 0 {
		opts.MaxCachedSAs = 100000
	}
	if opts.DefaultStale <= 0 {
		opts.DefaultStale = 5 * time.Minute
	}
	b := &Broker{
		opts: opts,
		reg:  newRegistry(),
		sa:   newSACache(),
		quit: make(chan struct{}),
	}
	// Anon takes index 0, which the shared anonymous membership assumes.
	b.groups.indexOf(Anon)
	for range opts.Shards {
		b.shards = append(b.shards, &shard{
			b:     b,
			inbox: make(chan job, opts.Inbox),
			seen:  make(map[uint64]struct{}),
		})
	}
	return b
}

// Stats exposes the counters.
func (b *Broker) Stats() *Stats { return &b.stats }

// Start launches the shard goroutines and the SA pruner.
func (b *Broker) Start() {
	for _, s := range b.shards {
		b.wg.Add(1)
		go s.run()
	}
	b.wg.Add(1)
	go b.prune()
}

// Drain waits until every accepted frame has been routed, or ctx ends.
func (b *Broker) Drain(ctx context.Context) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for b.inflight.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// Idle reports whether every accepted frame has been routed and no SA
// replay is running: every delivery made so far has been counted.
func (b *Broker) Idle() bool { return b.inflight.Load() == 0 && b.replays.Load() == 0 }

// Stop ends the goroutines. Frames still queued are dropped and counted;
// call Drain first for a clean stop.
func (b *Broker) Stop() {
	b.stopOnce.Do(func() { close(b.quit) })
	b.wg.Wait()
	for _, s := range b.shards {
		for {
			select {
			case j := <-s.inbox:
				if j.kind == jobFrame {
					b.stats.Drops[DropInboxFull].Inc()
				}
				b.inflight.Add(-1)
				continue
			default:
			}
			break
		}
	}
}

// Join makes c a recipient. With replay on, c is then sent the latest SA of
// every client it can hear, from a goroutine of its own so that the caller
// (an event loop) never copies the cache. The end of the replay is c's
// Outbox.Replayed (at once when replay is off).
func (b *Broker) Join(c *Client) {
	b.reg.add(c)
	if !b.opts.Replay || c.role != RoleLocal {
		// A ghost's or relay's node replays to its own clients.
		c.out.Replayed()
		return
	}
	// After the add: what was cached up to here is replayed, what comes
	// later reaches c live.
	upto := b.sa.seq.Load()
	b.replays.Add(1)
	go func() {
		defer b.replays.Add(-1)
		b.replay(c, upto)
		if !c.left.Load() {
			c.out.Replayed()
		}
	}()
}

// patience is how long a replay still waits for a client that does not
// read.
type patience struct {
	timer   *time.Timer
	expired bool
}

func (b *Broker) replay(c *Client, upto uint64) {
	p := &patience{timer: time.NewTimer(replayPatience)}
	defer p.timer.Stop()
	var msgs []*Message
	for i := range saStripes {
		msgs = b.sa.appendLive(msgs[:0], i, upto, time.Now(), c)
		for j, m := range msgs {
			// A replayed SA was read long ago: it must not count as routing
			// delay. The copy shares the encodings.
			cp := *m
			cp.Recv = 0
			switch v := b.replayOne(c, &cp, p); {
			case v == Queued:
				b.stats.Replayed.Inc()
			case v == DroppedBackpressure:
				// Out of patience: the rest is dropped, and counted.
				rest := len(msgs) - j - 1 + b.sa.countLive(i+1, upto, time.Now(), c)
				b.stats.Drops[DropBackpressure].Add(uint64(rest))
				return
			case v != DroppedUnencodable:
				return // the client is gone or going
			}
		}
		clear(msgs) // pin no message past its stripe
	}
}

// replayPatience bounds how long a replay waits for a client that is not
// reading; past it the rest of the replay is dropped (and counted).
const replayPatience = 30 * time.Second

// replayOne delivers one cached SA and counts the outcome. The replay runs
// in its own goroutine, so unlike a broadcast it can wait: an SA refused
// because the client's queue is over its soft limit is offered again when
// the connection signals that the queue drained, instead of being dropped.
// A late joiner on a server with thousands of clients is owed every one of
// their SAs, and its socket takes time to swallow them.
func (b *Broker) replayOne(c *Client, m *Message, p *patience) Verdict {
	for {
		if c.left.Load() {
			b.count(DroppedClosed, m.Kind)
			return DroppedClosed
		}
		v := c.out.Deliver(m)
		if v != DroppedBackpressure || p.expired {
			b.count(v, m.Kind)
			return v
		}
		select {
		case <-c.out.Drained():
		case <-c.gone:
		case <-p.timer.C:
			p.expired = true
		case <-b.quit:
			p.expired = true
		}
	}
}

// Leave removes c at once (no more deliveries) and lets its shard, after
// every frame c sent, forget its SA and tell the others it left. It never
// drops the notice: when the inbox is full the hand-off waits in a goroutine.
func (b *Broker) Leave(c *Client) {
	if !b.reg.remove(c) {
		return
	}
	c.left.Store(true)
	close(c.gone)
	b.inflight.Add(1)
	j := job{kind: jobLeave, from: c}
	s := b.shardOf(c)
	select {
	case s.inbox <- j:
	default:
		go func() {
			select {
			case s.inbox <- j:
			case <-b.quit:
				b.inflight.Add(-1)
			}
		}()
	}
}

// Publish hands one event from c to c's shard. doc is only valid during the
// call; h is its scanned header; recv is when it was read (unix nanos);
// v1 is the TAK protocol v1 frame it arrived as, or nil. It never blocks:
// a full inbox drops the frame, counts it and returns nil; so does an SA
// for a uid c may not announce (admitSA). Otherwise it returns the message
// as it will be routed (shared and read-only), for the engine's
// subscribers. Calls for one joined client must not overlap (its loop).
func (b *Broker) Publish(c *Client, h *cot.Header, doc []byte, recv int64, v1 []byte) *Message {
	var slot *uidSlot
	if h.IsSA() {
		var ok bool
		if slot, ok = b.admitSA(c, h.UID, recv); !ok {
			return nil
		}
	}
	var out []byte
	if h.MartiStart >= 0 {
		out = cot.StripMarti(doc, h)
		v1 = nil // the sender's bytes still carry <marti>: re-encode when needed
	} else {
		out = bytes.Clone(doc)
	}
	j := job{
		kind: jobFrame,
		from: c,
		msg:  b.NewMessage(out, h.Type, h.IsPositionReport(), recv, v1),
	}
	j.msg.Noisy = c.noisy.Load()
	j.msg.From = c
	if h.IsSA() {
		j.sa, j.uid, j.callsign, j.stale, j.slot = true, h.UID, h.Callsign, h.Stale, slot
	}
	if len(h.DestCallsigns) > 0 {
		j.callsigns = append([]string(nil), h.DestCallsigns...)
	}
	if len(h.DestUIDs) > 0 {
		j.uids = append([]string(nil), h.DestUIDs...)
	}
	sh := b.shardOf(c)
	size := int64(len(j.msg.XML))
	if sh.bytes.Add(size) > int64(b.opts.InboxBytes) {
		sh.bytes.Add(-size)
		b.stats.Drops[DropInboxFull].Inc()
		return nil
	}
	b.inflight.Add(1)
	select {
	case sh.inbox <- j:
		return j.msg
	default:
		sh.bytes.Add(-size)
		b.inflight.Add(-1)
		b.stats.Drops[DropInboxFull].Inc()
		return nil
	}
}

// Identify records what a ghost's node says about it (uid, callsign), so
// that directed messages find it before any of its SAs reached this node.
// Its uid is claimed as a local client's is (admitSA): a ghost for a uid a
// live local device holds is not found by it.
func (b *Broker) Identify(c *Client, id Identity) {
	if id.UID != "" {
		b.admitSA(c, id.UID, time.Now().UnixNano())
	}
	if c.Identity() != id {
		b.reg.identify(c, id)
	}
}

// SetMembership changes which groups c is in, effective for the next
// routed message: used when the users file is reloaded.
func (b *Broker) SetMembership(c *Client, m *Membership) {
	c.groups.Store(m)
	b.reg.changed()
}

// Clients returns the joined clients; the slice must not be modified.
func (b *Broker) Clients() []*Client { return b.reg.all() }

// Count is the number of joined clients of this node (ghosts and relays
// are not counted).
func (b *Broker) Count() int { return b.reg.count() }

// InboxDepth is the number of frames waiting in shard i.
func (b *Broker) InboxDepth(i int) int { return len(b.shards[i].inbox) }

// NumShards is the number of shards.
func (b *Broker) NumShards() int { return len(b.shards) }

// CachedSAs is the number of SAs in the replay cache.
func (b *Broker) CachedSAs() int { return b.sa.len() }

func (b *Broker) shardOf(c *Client) *shard {
	return b.shards[c.ID%uint64(len(b.shards))]
}

func (b *Broker) prune() {
	defer b.wg.Done()
	t := time.NewTicker(b.opts.PruneEvery)
	defer t.Stop()
	for {
		select {
		case <-b.quit:
			return
		case now := <-t.C:
			b.sa.prune(now)
		}
	}
}

// deliver hands m to c and counts the outcome.
func (b *Broker) deliver(c *Client, m *Message) bool {
	return b.count(c.out.Deliver(m), m.Kind)
}

// count records the verdict of delivering a message of kind k and reports
// whether it was queued.
func (b *Broker) count(v Verdict, k Kind) bool {
	b.countN(v, k, 1)
	return v == Queued
}

// countN records n deliveries of a message of kind k that had verdict v.
func (b *Broker) countN(v Verdict, k Kind, n uint64) {
	switch v {
	case Queued:
		b.stats.Delivered[k].Add(n)
	case DroppedBackpressure:
		b.stats.Drops[DropBackpressure].Add(n)
	case DroppedSlowConsumer:
		b.stats.Drops[DropSlowConsumer].Add(n)
	case DroppedUnencodable:
		b.stats.Drops[DropUnencodable].Add(n)
	case DroppedNoisy:
		b.stats.Drops[DropNoisySender].Add(n)
	default:
		b.stats.Drops[DropRecipientClosed].Add(n)
	}
}

// numVerdicts bounds the Verdict enum, for tally.
const numVerdicts = int(DroppedNoisy) + 1

// tally counts the verdicts of one message's deliveries on a shard's
// goroutine; commit adds them to the broker's counters. A broadcast to a
// hundred recipients then costs the shared counters one atomic add, not a
// hundred contended ones.
type tally [numVerdicts]uint64

func (t *tally) add(v Verdict) {
	if int(v) < numVerdicts {
		t[v]++
		return
	}
	t[DroppedClosed]++ // count, as count does, an unknown verdict as a close
}

func (b *Broker) commit(t *tally, k Kind) {
	for v, n := range t {
		if n > 0 {
			b.countN(Verdict(v), k, n)
		}
	}
}

func (s *shard) run() {
	defer s.b.wg.Done()
	for {
		select {
		case <-s.b.quit:
			return
		case j := <-s.inbox:
			s.handle(j, time.Now())
			if j.kind == jobFrame {
				s.bytes.Add(-int64(len(j.msg.XML)))
			}
			s.b.inflight.Add(-1)
		}
	}
}

func (s *shard) handle(j job, now time.Time) {
	switch j.kind {
	case jobLeave:
		s.leave(j.from, now)
	case jobFrame:
		s.route(j, now)
	}
}

func (s *shard) route(j job, now time.Time) {
	b := s.b
	from := j.from
	from.lastSeen.Store(now.UnixNano())
	b.stats.Routed.Inc()
	if j.sa {
		s.learn(from, j, now)
	}
	if len(j.callsigns) == 0 && len(j.uids) == 0 {
		s.broadcast(from, j.msg)
		return
	}
	targets := s.targets[:0]
	for _, cs := range j.callsigns {
		if cs == allStreaming {
			s.broadcast(from, j.msg)
			return
		}
		targets = b.reg.appendByCallsign(targets, cs)
	}
	for _, u := range j.uids {
		if c := b.reg.lookupUID(u); c != nil {
			targets = append(targets, c)
		}
	}
	clear(s.seen)
	sent := 0
	for _, c := range targets {
		if c == from || !reaches(from, c) || c.role == RoleGhost && !forwardable(j.msg) {
			continue
		}
		if _, dup := s.seen[c.ID]; dup {
			continue
		}
		s.seen[c.ID] = struct{}{}
		b.deliver(c, j.msg)
		sent++
	}
	clear(targets)
	s.targets = targets[:0]
	if sent == 0 {
		b.stats.Unroutable.Inc()
		if strings.HasPrefix(j.msg.Type, cot.TypeChat) && !strings.HasPrefix(j.msg.Type, cot.TypeChatDeliveryFailure) {
			if j.msg.Type == cot.TypeChat && b.kept(from, j) {
				b.stats.KeptOffline.Inc()
				return
			}
			s.deliveryFailure(from, j.msg)
		}
	}
}

// Keeper is asked, from a shard, about a directed GeoChat message (b-t-f)
// that reached nobody: true means someone kept it for later delivery, so
// the sender gets no b-t-f-s. It must answer from memory at once (no I/O, no
// contended lock) and not keep uids or callsigns, which are the job's.
type Keeper func(from *Client, uids, callsigns []string) bool

// SetKeeper installs k (nil removes it); any goroutine, at any time.
func (b *Broker) SetKeeper(k Keeper) {
	if k == nil {
		b.keeper.Store(nil)
		return
	}
	b.keeper.Store(&k)
}

func (b *Broker) kept(from *Client, j job) bool {
	k := b.keeper.Load()
	return k != nil && (*k)(from, j.uids, j.callsigns)
}

// deliveryFailure returns a directed chat that reached nobody to its sender
// as b-t-f-s, as TAK Server does, so ATAK shows the message as not
// delivered instead of waiting for a receipt.
func (s *shard) deliveryFailure(to *Client, m *Message) {
	if to.out == nil || to.role != RoleLocal {
		return // a server-side sender, or another node's client (not told: its node saw the chat leave)
	}
	doc, ok := retype(m.XML, cot.TypeChatDeliveryFailure)
	if !ok {
		return
	}
	s.b.stats.DeliveryFailures.Inc()
	s.b.deliver(to, s.b.NewMessage(doc, cot.TypeChatDeliveryFailure, false, m.Recv, nil))
}

// retype returns a copy of an event with its type attribute replaced.
func retype(doc []byte, typ string) ([]byte, bool) {
	end := bytes.IndexByte(doc, '>')
	if end < 0 {
		return nil, false
	}
	tag := doc[:end]
	for _, q := range []string{`"`, `'`} {
		key := []byte(" type=" + q)
		i := bytes.Index(tag, key)
		if i < 0 {
			continue
		}
		start := i + len(key)
		n := bytes.Index(tag[start:], []byte(q))
		if n < 0 {
			return nil, false
		}
		out := make([]byte, 0, len(doc)+len(typ))
		out = append(out, doc[:start]...)
		out = append(out, typ...)
		return append(out, doc[start+n:]...), true
	}
	return nil, false
}

// learn records what a client's SA says about it: its claim on the uid,
// its identity for directed routing and logs, its type for the disconnect
// notice, and the SA itself for replay. It reports false when the SA is
// refused: another live client owns the uid.
func (s *shard) learn(c *Client, j job, now time.Time) {
	b := s.b
	// Before the identity: whoever finds the client by uid sees its SA.
	c.lastSA.Store(j.msg)
	// The client's identity is its own uid: a gateway's relayed SAs do
	// not rename it (they are reachable by uid through the registry).
	if cur := c.Identity(); (cur.UID == "" || cur.UID == j.uid) && cur.Callsign != j.callsign {
		b.reg.identify(c, Identity{UID: j.uid, Callsign: j.callsign})
		b.opts.Log.Info().Uint64("conn", c.ID).Str("uid", clip(j.uid)).Str("callsign", clip(j.callsign)).Msg("client identified")
	}
	c.saType = j.msg.Type
	if j.slot != nil && j.slot.holder.Load() != c {
		// A newer connection took the uid since Publish: its SA is the
		// one to keep.
		return
	}
	stale := j.stale
	if stale.IsZero() {
		// Never expiring would keep a ghost for the server's lifetime.
		stale = now.Add(b.opts.DefaultStale)
	}
	if !b.sa.put(j.uid, saEntry{msg: j.msg, stale: stale, owner: c}, b.opts.MaxCachedSAs) {
		b.stats.SACacheFull.Inc()
	}
}

// admitSA decides, on the sender's event loop, whether c may announce an
// SA for uid: within its bound of uids, and for a uid no other live client
// owns (registry.claim). A refused SA is dropped before anyone, the
// engine's subscribers included, sees it. recv is the read time (unix
// nanos). It returns the sender's hold on the uid, nil for a server-side
// sender (no outbox), which holds none.
func (b *Broker) admitSA(c *Client, uid string, recv int64) (slot *uidSlot, ok bool) {
	if c.out == nil {
		return nil, true
	}
	if c.role != RoleLocal {
		// A ghost is heard from through its node's messages.
		c.heard.Store(recv)
	}
	c.umu.Lock()
	defer c.umu.Unlock()
	slot = c.uids[uid]
	if slot != nil && slot.holder.Load() == c {
		return slot, true // the common case: a device's next SA
	}
	if slot == nil {
		capN := b.opts.MaxSAsPerClient
		if c.gateway.Load() {
			capN = b.opts.MaxSAsPerGateway
		}
		if len(c.uids) >= capN {
			b.stats.SAOverCap.Inc()
			if !c.refusedLogged {
				c.refusedLogged = true
				b.opts.Log.Warn().Uint64("conn", c.ID).Str("owner", c.Owner()).Str("uid", clip(uid)).Int("max_uids", capN).
					Msg("SA for one uid more than a connection may announce; dropped (further ones are counted, not logged)")
			}
			return nil, false
		}
	}
	res, prev, replace, slot := b.reg.claim(c, uid, recv, b.opts.TakeoverQuiet)
	switch res {
	case claimRefused:
		b.stats.UIDRefused.Inc()
		if !c.refusedLogged {
			c.refusedLogged = true
			b.opts.Log.Warn().Uint64("conn", c.ID).Str("owner", c.Owner()).Str("uid", clip(uid)).
				Uint64("holder_conn", prev.ID).Str("holder_owner", prev.Owner()).
				Msg("SA for a uid another live client owns; dropped (further ones are counted, not logged)")
		}
		return nil, false
	case claimTaken:
		b.stats.UIDTakeovers.Inc()
		b.opts.Log.Info().Uint64("conn", c.ID).Str("owner", c.Owner()).Str("uid", clip(uid)).
			Uint64("previous_conn", prev.ID).Bool("previous_closed", replace).Msg("uid taken over by a newer connection")
		if r, ok := prev.out.(Replacer); ok && replace {
			r.Replaced(c, uid)
		}
	}
	if slot != nil {
		c.uids[uid] = slot
	}
	return slot, true
}

// clip bounds a client-supplied string for a log line.
func clip(s string) string {
	const max = 256
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

// broadcast delivers m to everyone from reaches: the clients receiving from
// each of from's IN groups, prepared in the snapshot, so the cost is the
// number of recipients, not the number of connections. A message of this
// node also reaches the relay of each of those groups that has one (other
// nodes hear it).
func (s *shard) broadcast(from *Client, m *Message) {
	snap := s.b.reg.current()
	mem := from.membership()
	var t tally
	defer s.b.commit(&t, m.Kind)
	if len(snap.relays) > 0 && forwardable(m) {
		for _, g := range mem.inIdx {
			if g < len(snap.relays) && snap.relays[g] != nil {
				t.add(snap.relays[g].out.Deliver(m))
			}
		}
	}
	if len(mem.inIdx) == 1 {
		g := mem.inIdx[0]
		if g < len(snap.byOut) {
			for _, c := range snap.byOut[g] {
				if c != from {
					t.add(c.out.Deliver(m))
				}
			}
		}
		return
	}
	// Several IN groups: a recipient in more than one of their OUT lists
	// gets the message once.
	clear(s.seen)
	for _, g := range mem.inIdx {
		if g >= len(snap.byOut) {
			continue
		}
		for _, c := range snap.byOut[g] {
			if c == from {
				continue
			}
			if _, dup := s.seen[c.ID]; dup {
				continue
			}
			s.seen[c.ID] = struct{}{}
			t.add(c.out.Deliver(m))
		}
	}
}

// leave forgets everything c announced and tells the others that each
// device it still held is gone. A uid a newer connection took over gets no
// notice: that would grey out a live contact.
func (s *shard) leave(c *Client, now time.Time) {
	c.umu.Lock()
	defer c.umu.Unlock()
	for uid := range c.uids {
		s.b.sa.drop(uid, c.ID)
		if !s.b.reg.release(c, uid) || c.saType == "" {
			continue
		}
		typ := c.saType
		notice := cot.DisconnectNotice(cot.NewUID(), uid, typ, now)
		s.b.stats.DisconnectNotices.Inc()
		s.broadcast(c, s.b.NewMessage(notice, cot.TypeDelete, false, 0, nil))
	}
	clear(c.uids)
}
