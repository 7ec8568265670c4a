package storefeed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"cotd/configs"
	"cotd/cot"
	"cotd/engine/directory"
	"cotd/engine/store"
)

// SubscriberName is the feed's Directory subscription: its drops are
// cotd_directory_dropped_total{subscriber="store"}.
const SubscriberName = "store"

// OfflineSender is the Directory identity the feed publishes kept chats
// as; the feed does not archive what it publishes under it.
const OfflineSender = "cotd-offline-chat"

// The bounds of offline delivery. They are failure bounds: delivery
// normally takes a database round trip or two.
const (
	// deliveryTimeout bounds one client's delivery (Sync, query, publish,
	// mark); what is not done stays pending for the next connect.
	deliveryTimeout = 30 * time.Second
	// routableWait bounds the wait for routing to know a client by the uid
	// of the SA that announced it (the SA may still be on a broker shard).
	routableWait = 5 * time.Second
	// deliveryQueue is how many clients may wait for delivery; past it a
	// client's chats wait for its next connect (counted).
	deliveryQueue = 4096
)

// Errors.
var (
	// ErrOptions: Start was given no Directory or no Store.
	ErrOptions = errors.New("storefeed: Directory and Store are required")
)

// Options configure a Feed.
type Options struct {
	Directory directory.Directory
	Store     store.Store
	// Config is the [store] section: OfflineChat turns offline delivery and
	// the b-t-f-s keeper on; QueueSize is the subscription's capacity
	// unless Capacity is set.
	Config configs.Store
	// Capacity of the Directory subscription; 0 means Config.QueueSize.
	Capacity int
	Log      zerolog.Logger
}

// Feed is a running subscription from the Directory to the store.
type Feed struct {
	o   Options
	log zerolog.Logger
	sub directory.Subscription

	// conns is the consumer goroutine's own: what it knows of each open
	// connection.
	conns map[uint64]*conn
	// known mirrors client_endpoint for the keeper (any goroutine reads):
	// uid -> *endpoint, and callsign -> uid of its latest holder.
	known     sync.Map
	callsigns sync.Map
	keeper    bool

	requests chan request
	ctx      context.Context
	cancel   context.CancelFunc
	done     chan struct{} // the consumer returned
	worked   chan struct{} // the delivery worker returned
	once     sync.Once

	delivered      atomic.Uint64
	deliveryErrors atomic.Uint64
	deliveryDrops  atomic.Uint64
	unarchivable   atomic.Uint64
}

// conn is one open connection as the feed has recorded it.
type conn struct {
	since time.Time
	// rec is its Connected record once its first SA named it.
	rec *store.ConnRecord
}

// endpoint is the part of a client endpoint the keeper needs. Values are
// replaced, never modified.
type endpoint struct {
	online bool
	groups []string
}

// request asks the delivery worker to hand uid's kept chats to connection.
type request struct {
	connID        uint64
	uid, callsign string
}

// Start loads what the store knows of client endpoints, subscribes to the
// Directory and starts the consumer. Close stops it.
func Start(ctx context.Context, o Options) (*Feed, error) {
	if o.Directory == nil || o.Store == nil {
		return nil, ErrOptions
	}
	capacity := o.Capacity
	if capacity <= 0 {
		capacity = o.Config.QueueSize
	}
	f := &Feed{
		o:        o,
		log:      o.Log.With().Str("component", "storefeed").Logger(),
		conns:    make(map[uint64]*conn),
		requests: make(chan request, deliveryQueue),
		done:     make(chan struct{}),
		worked:   make(chan struct{}),
	}
	if o.Config.OfflineChat {
		eps, err := o.Store.ClientEndpoints(ctx, store.EndpointQuery{Scope: store.Everything})
		if err != nil {
			return nil, fmt.Errorf("storefeed: loading client endpoints: %w", err)
		}
		// Newest first: the first holder of a callsign seen is its latest.
		for _, e := range eps {
			f.known.Store(e.UID, &endpoint{online: e.LastStatus == store.StatusConnected, groups: e.Groups})
			if e.Callsign != "" {
				f.callsigns.LoadOrStore(e.Callsign, e.UID)
			}
		}
	}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	f.sub = o.Directory.Subscribe(SubscriberName, directory.AllKinds, capacity)
	if k, ok := o.Directory.(directory.ChatKeeper); ok && o.Config.OfflineChat {
		k.KeepUndelivered(f.keeps)
		f.keeper = true
	}
	go f.run()
	go f.deliverer()
	return f, nil
}

// Close stops the subscription and lets the consumer hand the store what
// was already queued, until ctx ends; deliveries in progress are abandoned
// (their chats stay pending). Close the store after the feed.
func (f *Feed) Close(ctx context.Context) error {
	var err error
	f.once.Do(func() {
		if f.keeper {
			f.o.Directory.(directory.ChatKeeper).KeepUndelivered(nil)
		}
		f.sub.Close()
		select {
		case <-f.done:
		case <-ctx.Done():
			err = fmt.Errorf("storefeed: %d events not handed to the store: %w", len(f.sub.C()), ctx.Err())
		}
		f.cancel()
		<-f.worked
	})
	return err
}

func (f *Feed) run() {
	defer close(f.done)
	defer close(f.requests)
	for ev := range f.sub.C() {
		f.handle(ev)
	}
}

func (f *Feed) handle(ev directory.Event) {
	switch ev.Kind {
	case directory.Join:
		if _, ok := f.conns[ev.Client.ConnID]; !ok {
			f.conns[ev.Client.ConnID] = &conn{since: ev.Client.Since}
		}
	case directory.SA:
		if ev.Client.ConnID != 0 {
			f.identify(ev)
		}
		f.archive(ev)
	case directory.Routed:
		if ev.Client.ConnID == 0 && ev.Client.Identity == OfflineSender {
			return // a kept chat going out: archived when it came in
		}
		f.archive(ev)
	case directory.Leave:
		f.leave(ev)
	}
}

// identify records a connection's Connected once an SA names it: Join
// comes before the client said who it is.
func (f *Feed) identify(ev directory.Event) {
	id := ev.Client.ConnID
	c := f.conns[id]
	if c == nil { // its Join was dropped: the SA's snapshot has the rest
		c = &conn{since: ev.Client.Since}
		f.conns[id] = c
	}
	uid, callsign := ev.Client.UID, ev.Client.Callsign
	if uid == "" {
		return
	}
	if c.rec != nil && c.rec.UID == uid {
		if c.rec.Callsign != callsign {
			// A renamed callsign reaches the endpoint with the disconnect;
			// the keeper must find it by its new name now.
			c.rec.Callsign = callsign
			f.callsigns.Store(callsign, uid)
		}
		return
	}
	at := c.since
	if at.IsZero() {
		at = ev.At
	}
	rec := &store.ConnRecord{
		Status: store.StatusConnected, UID: uid, Callsign: callsign, User: ev.Client.Identity,
		Groups: ev.Client.Out, Address: ev.Client.Remote, Listener: ev.Client.Listener, Time: at,
	}
	if h := ev.Message.Header; h != nil {
		rec.Team, rec.Role = h.GroupName, h.GroupRole
	}
	c.rec = rec
	// The keeper's copy changes first, so that once the store shows the
	// new status the keeper answers by it too.
	f.setKnown(uid, callsign, true, rec.Groups)
	f.o.Store.RecordConn(*rec)
	if !f.o.Config.OfflineChat {
		return
	}
	select {
	case f.requests <- request{connID: id, uid: uid, callsign: callsign}:
	default:
		f.deliveryDrops.Add(1)
		f.log.Warn().Uint64("conn", id).Str("uid", uid).Msg("offline chat delivery queue full: kept chats wait for the next connect")
	}
}

// leave records a connection's Disconnected.
func (f *Feed) leave(ev directory.Event) {
	id := ev.Client.ConnID
	c := f.conns[id]
	delete(f.conns, id)
	rec := store.ConnRecord{
		Status: store.StatusDisconnected, UID: ev.Client.UID, Callsign: ev.Client.Callsign,
		User: ev.Client.Identity, Groups: ev.Client.Out, Address: ev.Client.Remote,
		Listener: ev.Client.Listener, Reason: ev.Reason, Time: ev.At,
	}
	if c != nil && c.rec != nil {
		rec.UID = c.rec.UID
		if rec.Callsign == "" {
			rec.Callsign = c.rec.Callsign
		}
		rec.Team, rec.Role = c.rec.Team, c.rec.Role
	}
	if rec.UID == "" && c != nil {
		// Never identified: the history still shows the connection.
		f.o.Store.RecordConn(store.ConnRecord{Status: store.StatusConnected, User: rec.User,
			Groups: rec.Groups, Address: rec.Address, Listener: rec.Listener, Time: c.since})
	}
	if rec.UID == "" {
		f.o.Store.RecordConn(rec)
		return
	}
	// A device that reconnected before its old connection was seen to
	// close is still online: its endpoint must not say otherwise, or chats
	// to it would be kept instead of delivered.
	var still *store.ConnRecord
	for _, other := range f.conns {
		if other.rec != nil && other.rec.UID == rec.UID {
			again := *other.rec
			again.Time = ev.At
			still = &again
			break
		}
	}
	if still != nil {
		f.setKnown(still.UID, still.Callsign, true, still.Groups)
		f.o.Store.RecordConn(rec)
		f.o.Store.RecordConn(*still)
		return
	}
	f.setKnown(rec.UID, rec.Callsign, false, rec.Groups)
	f.o.Store.RecordConn(rec)
}

func (f *Feed) setKnown(uid, callsign string, online bool, groups []string) {
	if !f.o.Config.OfflineChat {
		return
	}
	f.known.Store(uid, &endpoint{online: online, groups: slices.Clone(groups)})
	if callsign != "" {
		f.callsigns.Store(callsign, uid)
	}
}

// keeps is the b-t-f-s hook (directory.ChatKeeper): does the store keep
// this chat for one of its recipients? The store's own rule, on the feed's
// copy of the endpoints.
func (f *Feed) keeps(u directory.UndeliveredChat) bool {
	for _, uid := range u.DestUIDs {
		if f.keptFor(uid, u) {
			return true
		}
	}
	for _, cs := range u.DestCallsigns {
		if uid, ok := f.callsigns.Load(cs); ok && f.keptFor(uid.(string), u) {
			return true
		}
	}
	return false
}

func (f *Feed) keptFor(uid string, u directory.UndeliveredChat) bool {
	v, ok := f.known.Load(uid)
	if !ok {
		return false
	}
	e := v.(*endpoint)
	return store.KeepsFor(uid, !e.online, e.groups, u.SenderUID, u.In)
}

// archive hands a routed message to the store with the connection it came
// from. The forwarded XML has lost its <marti>; the header kept the
// recipients, which go back into the record.
func (f *Feed) archive(ev directory.Event) {
	m := ev.Message
	if m == nil || m.Header == nil {
		return
	}
	s := store.Sender{UID: ev.Client.UID, Callsign: ev.Client.Callsign, User: ev.Client.Identity, Groups: ev.Client.In}
	rec, chat, err := store.FromEvent(m.XML, m.Recv, s)
	switch {
	case errors.Is(err, store.ErrNotArchived):
		return
	case err != nil:
		f.unarchivable.Add(1)
		f.log.Warn().Err(err).Uint64("conn", ev.Client.ConnID).Str("uid", ev.Client.UID).
			Str("identity", ev.Client.Identity).Msg("routed event not archived")
		return
	}
	h := m.Header
	if chat != nil {
		if !chat.Directed() {
			chat.SetRecipients(h.DestUIDs, h.DestCallsigns)
			chat.Detail = withDests(chat.Detail, h.DestUIDs, h.DestCallsigns)
		}
		f.o.Store.ArchiveChat(*chat)
		return
	}
	rec.Detail = withDests(rec.Detail, h.DestUIDs, h.DestCallsigns)
	f.o.Store.ArchiveEvent(*rec)
}

// deliverer hands kept chats to clients that came back, one client at a
// time, off the consumer goroutine.
func (f *Feed) deliverer() {
	defer close(f.worked)
	for r := range f.requests {
		if f.ctx.Err() != nil {
			continue // shutting down: the chats stay pending
		}
		f.deliver(r)
	}
}

func (f *Feed) deliver(r request) {
	ctx, cancel := context.WithTimeout(f.ctx, deliveryTimeout)
	defer cancel()
	log := f.log.With().Uint64("conn", r.connID).Str("uid", r.uid).Str("callsign", r.callsign).Logger()
	fail := func(err error, what string) {
		f.deliveryErrors.Add(1)
		log.Warn().Err(err).Msg("offline chat delivery: " + what + "; the chats stay pending")
	}
	// Everything routed before the client came back is written, so a chat
	// kept for it is found now (and one routed after reached it live).
	if err := f.o.Store.Sync(ctx); err != nil {
		fail(err, "store sync")
		return
	}
	pending, err := f.o.Store.PendingChats(ctx, r.uid, r.callsign)
	if err != nil {
		fail(err, "query")
		return
	}
	if len(pending) == 0 {
		return
	}
	if !f.routable(ctx, r) {
		return
	}
	ids := make([]int64, 0, len(pending))
	for _, p := range pending {
		doc := directTo(p.Chat.XML(), r.uid)
		from := directory.Sender{Identity: OfflineSender, UID: p.Chat.SenderUID,
			Callsign: p.Chat.ChatSenderCallsign, Out: p.Chat.Groups}
		if err := f.o.Directory.Publish(ctx, from, doc); err != nil {
			fail(err, "publish")
			break
		}
		ids = append(ids, p.ID)
	}
	// Handed to routing while the client was connected: delivered (its
	// queue is the engine's business from here on).
	if _, ok := f.o.Directory.Connection(r.connID); !ok {
		log.Info().Msg("offline chat delivery: client left during delivery; the chats stay pending")
		return
	}
	if err := f.o.Store.MarkDelivered(ctx, ids, time.Now()); err != nil {
		fail(err, "mark delivered")
		return
	}
	f.delivered.Add(uint64(len(ids)))
	log.Info().Int("chats", len(ids)).Msg("offline chats delivered")
}

// routable waits until routing finds the connection by uid: the SA that
// named it is routed (and teaches the broker the uid) after the feed saw it.
func (f *Feed) routable(ctx context.Context, r request) bool {
	ctx, cancel := context.WithTimeout(ctx, routableWait)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		c, ok := f.o.Directory.Connection(r.connID)
		if !ok {
			return false
		}
		if c.UID == r.uid {
			return true
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			f.deliveryErrors.Add(1)
			f.log.Warn().Uint64("conn", r.connID).Str("uid", r.uid).Msg("offline chat delivery: routing never learned the client's uid; the chats stay pending")
			return false
		}
	}
}

// WriteMetrics writes the feed's counters in the Prometheus text format.
func (f *Feed) WriteMetrics(w io.Writer) error {
	for _, m := range [...]struct {
		name, help string
		v          uint64
	}{
		{"cotd_store_offline_chats_delivered_total", "Kept chats handed to their recipient when it came back.", f.delivered.Load()},
		{"cotd_store_offline_delivery_errors_total", "Offline chat deliveries that failed (the chats stay pending).", f.deliveryErrors.Load()},
		{"cotd_store_offline_delivery_dropped_total", "Clients whose kept chats waited for a later connect because the delivery queue was full.", f.deliveryDrops.Load()},
		{"cotd_store_unarchivable_total", "Routed events the store could not parse.", f.unarchivable.Load()},
	} {
		if _, err := fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", m.name, m.help, m.name, m.name, m.v); err != nil {
			return err
		}
	}
	return nil
}

// marti renders <marti> with the given recipients.
func marti(uids, callsigns []string) []byte {
	b := []byte("<marti>")
	for _, u := range uids {
		b = append(b, `<dest uid="`...)
		b = cot.AppendEscaped(b, u)
		b = append(b, `"/>`...)
	}
	for _, cs := range callsigns {
		b = append(b, `<dest callsign="`...)
		b = cot.AppendEscaped(b, cs)
		b = append(b, `"/>`...)
	}
	return append(b, "</marti>"...)
}

// withDests puts the recipients back into a <detail> element (as
// FromEvent cut it out of the document); nothing to add leaves it alone.
func withDests(detail string, uids, callsigns []string) string {
	if len(uids)+len(callsigns) == 0 {
		return detail
	}
	m := string(marti(uids, callsigns))
	const end = "</detail>"
	switch {
	case detail == "":
		return "<detail>" + m + end
	case strings.HasSuffix(detail, end):
		return detail[:len(detail)-len(end)] + m + end
	case strings.HasSuffix(detail, "/>"): // <detail/>
		return detail[:len(detail)-2] + ">" + m + end
	}
	return detail
}

// directTo addresses a rebuilt event to uid alone. EventRecord.XML writes
// the <point .../> element and then the stored <detail> (if any, <marti>
// removed) and nothing else, so the detail is what lies between the
// point's "/>" and </event>.
func directTo(doc []byte, uid string) []byte {
	const end = "</event>"
	p := bytes.Index(doc, []byte("<point "))
	if p < 0 || !bytes.HasSuffix(doc, []byte(end)) {
		return doc
	}
	q := bytes.Index(doc[p:], []byte("/>"))
	if q < 0 {
		return doc
	}
	cut := p + q + 2
	detail := strings.TrimSpace(string(doc[cut : len(doc)-len(end)]))
	out := make([]byte, 0, len(doc)+64)
	out = append(out, doc[:cut]...)
	out = append(out, withDests(detail, []string{uid}, nil)...)
	return append(out, end...)
}
