package web

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"cotd/cot"
	"cotd/engine/directory"
)

// trailLength is how many past positions of each client the map draws.
const trailLength = 20

// The hub's two queues from the engine. The picture (joins, leaves,
// positions) is apart from routed messages, which the hub reads only for
// chats: a flood of markers or file shares can then drop only chat lines,
// never a position, and does not force every browser to reload. The hub
// does little per event, so a queue rarely holds more than a few; the
// margin absorbs a burst of joins at startup.
var (
	pictureCapacity = 4096 // a variable only so that a test can make it overflow
	routedCapacity  = 1024
)

// statsEvery is how often viewers get the table's changing counters.
const statsEvery = 5 * time.Second

// position is a client's last reported position as the browser draws it.
type position struct {
	Lat      float64  `json:"lat"`
	Lon      float64  `json:"lon"`
	HAE      float64  `json:"hae"`
	Course   *float64 `json:"course,omitempty"`
	Speed    *float64 `json:"speed,omitempty"` // m/s
	Team     string   `json:"team,omitempty"`
	Role     string   `json:"role,omitempty"`
	Type     string   `json:"type"`
	AtMillis int64    `json:"at"`
}

// viewClient is one connection as the browser sees it.
type viewClient struct {
	ID          uint64       `json:"id"`
	Identity    string       `json:"identity"`
	UID         string       `json:"uid"`
	Callsign    string       `json:"callsign"`
	In          []string     `json:"in"`
	Out         []string     `json:"out"`
	Listener    string       `json:"listener"`
	Protocol    string       `json:"protocol"`
	State       string       `json:"state"`
	Node        string       `json:"node,omitempty"`
	Remote      string       `json:"remote"`
	Since       int64        `json:"since"`
	LastSeen    int64        `json:"lastSeen,omitempty"`
	BytesIn     uint64       `json:"bytesIn"`
	QueuedBytes int64        `json:"queued"`
	Pos         *position    `json:"pos,omitempty"`
	Trail       [][2]float64 `json:"trail,omitempty"`
}

// updateKind says what a message to the browser carries; the names are the
// page's (app.js).
type updateKind string

// The kinds of message to the browser.
const (
	updateSnapshot updateKind = "snapshot" // the whole picture; replaces what the page has
	updateJoin     updateKind = "join"     // a connection joined routing
	updateLeave    updateKind = "leave"    // a connection closed
	updateSA       updateKind = "sa"       // a client's position report
	updateChat     updateKind = "chat"     // a GeoChat was routed
	updateStats    updateKind = "stats"    // the table's changing counters
	updateSample   updateKind = "sample"   // a new chart point
)

// message is one update to the browser; T says which fields are set.
type message struct {
	T       updateKind   `json:"t"`
	Clients []viewClient `json:"clients,omitempty"` // snapshot
	Client  *viewClient  `json:"c,omitempty"`       // join, sa
	ID      uint64       `json:"id,omitempty"`      // leave
	Reason  string       `json:"reason,omitempty"`  // leave
	Chat    *chatLine    `json:"chat,omitempty"`    // chat
	Stats   [][4]int64   `json:"stats,omitempty"`   // stats: id, bytes in, queued, last seen
	Sample  *sample      `json:"sample,omitempty"`  // sample
	Chats   []chatLine   `json:"chats,omitempty"`   // snapshot: the last chat lines
	Dropped uint64       `json:"dropped,omitempty"` // snapshot: this viewer's drops so far
}

// track is what the hub remembers of a client between events.
type track struct {
	pos   position
	trail [][2]float64
}

// add records a new position: the last one, and the trail's newest point
// unless the client did not move.
func (tr *track) add(p position) {
	tr.pos = p
	pt := [2]float64{p.Lat, p.Lon}
	if n := len(tr.trail); n == 0 || tr.trail[n-1] != pt {
		if n == trailLength {
			copy(tr.trail, tr.trail[1:])
			tr.trail = tr.trail[:n-1]
		}
		tr.trail = append(tr.trail, pt)
	}
}

// hub owns the subscriptions to the engine and the viewers' queues.
type hub struct {
	dir     directory.Directory
	log     zerolog.Logger
	dropped atomic.Uint64 // every viewer's drops, for cotd_web_dropped_total

	mu      sync.Mutex
	viewers map[*viewer]struct{}
	tracks  map[uint64]*track // by connection id; owned by run, read by snapshot
	chats   []chatLine        // the last few, for a new viewer
}

// maxChats is how many chat lines a new viewer is shown.
const maxChats = 50

func newHub(dir directory.Directory, log zerolog.Logger) *hub {
	return &hub{dir: dir, log: log, viewers: map[*viewer]struct{}{}, tracks: map[uint64]*track{}}
}

// run consumes the engine's events until ctx ends. It is the only writer
// of tracks.
func (h *hub) run(ctx context.Context, sub, routed directory.Subscription, samples <-chan sample) {
	defer sub.Close()
	defer routed.Close()
	tick := time.NewTicker(statsEvery)
	defer tick.Stop()
	var lost uint64
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-sub.C():
			if !ok {
				return
			}
			h.handle(ev)
		case ev, ok := <-routed.C():
			if !ok {
				return
			}
			h.handle(ev)
		case s := <-samples:
			h.broadcast(message{T: updateSample, Sample: &s})
		case <-tick.C:
			// Events the engine dropped for the hub leave every viewer's
			// picture stale: send everyone a fresh one.
			if d := sub.Dropped(); d != lost {
				h.log.Warn().Uint64("dropped", d-lost).Msg("web: the console's subscription lost events; resending the picture")
				lost = d
				h.reconcile(sub)
				h.resyncAll()
				continue
			}
			h.broadcastStats()
		}
	}
}

func (h *hub) handle(ev directory.Event) {
	switch ev.Kind {
	case directory.Join:
		vc := h.view(ev.Client)
		h.broadcast(message{T: updateJoin, Client: &vc})
	case directory.Leave:
		h.mu.Lock()
		delete(h.tracks, ev.Client.ConnID)
		h.mu.Unlock()
		h.broadcast(message{T: updateLeave, ID: ev.Client.ConnID, Reason: ev.Reason})
	case directory.SA:
		if ev.Message == nil || ev.Message.Header == nil || ev.Client.ConnID == 0 {
			return
		}
		p := positionOf(ev.Message)
		h.mu.Lock()
		tr := h.tracks[ev.Client.ConnID]
		if tr == nil {
			tr = &track{}
			h.tracks[ev.Client.ConnID] = tr
		}
		if p.AtMillis < tr.pos.AtMillis {
			// Older than what reconcile read from the engine after lost
			// events: the picture already has a newer position.
			h.mu.Unlock()
			return
		}
		tr.add(p)
		h.mu.Unlock()
		vc := h.view(ev.Client)
		h.broadcast(message{T: updateSA, Client: &vc})
	case directory.Routed:
		if ev.Message == nil || ev.Message.Header == nil || ev.Message.Header.Type != cot.TypeChat {
			return
		}
		c, err := readChat(ev.Message.XML)
		if err != nil {
			return // a b-t-f without <__chat> is not a chat line the console can show
		}
		c.AtMillis = ev.At.UnixMilli()
		h.mu.Lock()
		if len(h.chats) == maxChats {
			h.chats = append(h.chats[:0], h.chats[1:]...)
		}
		h.chats = append(h.chats, c)
		h.mu.Unlock()
		h.broadcast(message{T: updateChat, Chat: &c})
	}
}

// positionOf reads a position report. Course and speed come from <track>,
// which the engine's header does not carry.
func positionOf(m *directory.Message) position {
	hd := m.Header
	p := position{Lat: hd.Lat, Lon: hd.Lon, HAE: hd.HAE, Team: hd.GroupName, Role: hd.GroupRole, Type: hd.Type, AtMillis: m.Recv.UnixMilli()}
	if mo := readMotion(m.XML); mo.OK {
		p.Course, p.Speed = &mo.Course, &mo.Speed
	}
	return p
}

// view converts a snapshot of a connection, with what the hub knows of its
// positions. A client the hub has no track of (it reported before the
// console started), or a newer one, is placed at its last SA.
func (h *hub) view(c directory.Client) viewClient {
	vc := viewClient{
		ID: c.ConnID, Identity: c.Identity, UID: c.UID, Callsign: c.Callsign,
		In: nonNil(c.In), Out: nonNil(c.Out), Listener: c.Listener, Protocol: c.Protocol,
		State: c.State, Node: c.Node, Remote: c.Remote, Since: c.Since.UnixMilli(),
		BytesIn: c.BytesIn, QueuedBytes: c.QueuedBytes,
	}
	if !c.LastSeen.IsZero() {
		vc.LastSeen = c.LastSeen.UnixMilli()
	}
	h.mu.Lock()
	if tr := h.tracks[c.ConnID]; tr != nil {
		p := tr.pos
		vc.Pos = &p
		vc.Trail = append([][2]float64(nil), tr.trail...)
	}
	h.mu.Unlock()
	// A snapshot's LastSA is the engine's latest word on where the client
	// is: the hub may not have caught up, or events were lost. (The
	// clients of events carry none.)
	if sa := c.LastSA; sa != nil && sa.Header != nil {
		p := positionOf(sa)
		vc.Pos = &p
		if pt := [2]float64{p.Lat, p.Lon}; len(vc.Trail) == 0 || vc.Trail[len(vc.Trail)-1] != pt {
			vc.Trail = append(vc.Trail, pt)
		}
	}
	return vc
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// clients is every connection as the browser sees it, oldest first.
func (h *hub) clients() []viewClient {
	cs := h.dir.Clients()
	out := make([]viewClient, len(cs))
	for i, c := range cs {
		out[i] = h.view(c)
	}
	return out
}

// snapshot is the whole picture for one viewer.
func (h *hub) snapshot(v *viewer) []byte {
	b, _ := json.Marshal(message{T: updateSnapshot, Clients: h.clients(), Chats: h.recentChats(), Dropped: v.dropped.Load()})
	return b
}

// recentChats is a copy of the last chat lines, oldest first.
func (h *hub) recentChats() []chatLine {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]chatLine(nil), h.chats...)
}

// broadcast encodes m once and offers the bytes to every viewer.
func (h *hub) broadcast(m message) {
	h.mu.Lock()
	n := len(h.viewers)
	h.mu.Unlock()
	if n == 0 {
		return
	}
	b, err := json.Marshal(m)
	if err != nil {
		h.log.Error().Err(err).Str("kind", string(m.T)).Msg("web: cannot encode an update")
		return
	}
	h.mu.Lock()
	for v := range h.viewers {
		if !v.offer(b) {
			h.dropped.Add(1)
		}
	}
	h.mu.Unlock()
}

func (h *hub) broadcastStats() {
	h.mu.Lock()
	n := len(h.viewers)
	h.mu.Unlock()
	if n == 0 {
		return
	}
	cs := h.dir.Clients()
	st := make([][4]int64, len(cs))
	for i, c := range cs {
		var seen int64
		if !c.LastSeen.IsZero() {
			seen = c.LastSeen.UnixMilli()
		}
		st[i] = [4]int64{int64(c.ConnID), int64(c.BytesIn), c.QueuedBytes, seen}
	}
	h.broadcast(message{T: updateStats, Stats: st})
}

// reconcile brings the tracks back in line with the engine after lost
// events: it first handles what is still queued (older than what the
// engine reports now), then forgets connections that are gone (a Leave
// may have been lost) and moves each client to its last SA (SAs may have
// been lost). Only run calls it.
func (h *hub) reconcile(sub directory.Subscription) {
	for drained := false; !drained; {
		select {
		case ev, ok := <-sub.C():
			if !ok {
				return
			}
			h.handle(ev)
		default:
			drained = true
		}
	}
	cs := h.dir.Clients()
	open := make(map[uint64]bool, len(cs))
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range cs {
		open[c.ConnID] = true
		if c.LastSA == nil || c.LastSA.Header == nil {
			continue
		}
		tr := h.tracks[c.ConnID]
		if tr == nil {
			tr = &track{}
			h.tracks[c.ConnID] = tr
		}
		tr.add(positionOf(c.LastSA))
	}
	for id := range h.tracks {
		if !open[id] {
			delete(h.tracks, id)
		}
	}
}

func (h *hub) resyncAll() {
	h.mu.Lock()
	for v := range h.viewers {
		v.requestResync()
	}
	h.mu.Unlock()
}

func (h *hub) add(v *viewer) {
	h.mu.Lock()
	h.viewers[v] = struct{}{}
	h.mu.Unlock()
}

func (h *hub) remove(v *viewer) {
	h.mu.Lock()
	delete(h.viewers, v)
	h.mu.Unlock()
}

// viewerCount is the number of connected browsers.
func (h *hub) viewerCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.viewers)
}

// viewer is one browser's queue. The hub offers and never waits; the
// browser's writer goroutine takes.
type viewer struct {
	q       chan []byte
	wake    chan struct{} // capacity 1: a resync was requested
	resync  atomic.Bool
	dropped atomic.Uint64
	// lastSnapshot is when the writer last sent one; only it touches it.
	lastSnapshot time.Time
}

func newViewer(capacity int) *viewer {
	v := &viewer{q: make(chan []byte, capacity), wake: make(chan struct{}, 1)}
	v.requestResync() // the first thing a viewer gets is the whole picture
	return v
}

// offer queues b, or drops it, counts the drop, and asks for a resync:
// after a lost update the browser's picture can no longer be patched.
func (v *viewer) offer(b []byte) bool {
	select {
	case v.q <- b:
		return true
	default:
		v.dropped.Add(1)
		v.requestResync()
		return false
	}
}

func (v *viewer) requestResync() {
	v.resync.Store(true)
	select {
	case v.wake <- struct{}{}:
	default:
	}
}

// minResync spaces the snapshots of a browser that keeps falling behind: a
// snapshot of thousands of clients is megabytes, and a browser too slow
// for the updates would otherwise be sent nothing else.
const minResync = time.Second

// next returns the next bytes to send: a fresh snapshot when one was asked
// for (after discarding what was queued, which it supersedes), otherwise
// the next queued update. It returns nil when ctx ends.
func (v *viewer) next(ctx context.Context, h *hub) []byte {
	for {
		if v.resync.Load() {
			if wait := minResync - time.Since(v.lastSnapshot); !v.lastSnapshot.IsZero() && wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
					return nil
				}
			}
			v.resync.Store(false)
			for len(v.q) > 0 {
				<-v.q
			}
			v.lastSnapshot = time.Now()
			return h.snapshot(v)
		}
		select {
		case b := <-v.q:
			return b
		case <-v.wake:
		case <-ctx.Done():
			return nil
		}
	}
}
