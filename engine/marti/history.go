package marti

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"cotd/engine/directory"
)

// Record is one routed event as history keeps it.
type Record struct {
	At                  time.Time
	UID, Type, Callsign string
	Lat, Lon, HAE       float64
	// Groups are the sender's IN groups: whoever receives from one of them
	// could hear the event, and may read it back.
	Groups []string
	// XML is the event as routed (without <marti>).
	XML []byte
}

// Endpoint is a client that disconnected.
type Endpoint struct {
	UID, Callsign, Identity, Team, Role string
	Groups                              []string // the client's IN groups
	At                                  time.Time
}

// Query selects events from History.
type Query struct {
	// UID selects one uid's events; "" is every uid.
	UID string
	// From and To bound the server time; zero is open.
	From, To time.Time
	// SAOnly keeps position reports (atoms: a-…).
	SAOnly bool
	// Groups keeps what was published into one of them: the caller's OUT
	// groups, the routing rule.
	Groups []string
	// Limit bounds the answer (the oldest first up to it); 0 is maxEvents.
	Limit int
}

// History answers the queries about the past: the latest and all events of
// a uid, position reports in a time window, and clients that disconnected.
// Over engine/store (storeHistory) it survives restarts; memHistory keeps
// a bounded recent past in memory when there is no store. Every method
// filters by groups, so a limit never hides what the caller may see.
type History interface {
	Latest(ctx context.Context, uid string, groups []string) (Record, bool, error)
	Events(ctx context.Context, q Query) ([]Record, error)
	// Disconnected lists the clients whose last status is disconnected,
	// since since (zero: all), that published into one of groups.
	Disconnected(ctx context.Context, since time.Time, groups []string) ([]Endpoint, error)
}

// historyLimits bound memHistory.
type historyLimits struct {
	perUID       int   // events kept per uid
	uids         int   // uids kept
	bytes        int64 // event bytes kept in all
	disconnected int   // disconnected clients remembered
}

// defaultHistoryLimits hold about an hour of one SA a minute for each of
// thousands of devices, in at most 64 MiB of events.
var defaultHistoryLimits = historyLimits{perUID: 128, uids: 20000, bytes: 64 << 20, disconnected: 20000}

// memHistory is the History of a process without a store: a ring of recent
// events per uid and the clients that left, fed from a Directory
// subscription. It is bounded and forgets on restart.
type memHistory struct {
	lim historyLimits

	mu     sync.RWMutex
	byUID  map[string]*ring
	gone   map[string]Endpoint
	held   int64         // bytes of XML in the rings
	refuse atomic.Uint64 // events dropped because uids or bytes was reached
}

type ring struct {
	recs []Record
	next int // where the next record goes once full
}

// add stores rec, overwriting the oldest when full, and reports the
// change in bytes held.
func (r *ring) add(rec Record, capacity int) (delta int64) {
	if len(r.recs) < capacity {
		r.recs = append(r.recs, rec)
		return int64(len(rec.XML))
	}
	delta = int64(len(rec.XML) - len(r.recs[r.next].XML))
	r.recs[r.next] = rec
	r.next = (r.next + 1) % capacity
	return delta
}

// ordered returns the records oldest first.
func (r *ring) ordered() []Record {
	return append(slices.Clone(r.recs[r.next:]), r.recs[:r.next]...)
}

func newMemHistory(lim historyLimits) *memHistory {
	return &memHistory{lim: lim, byUID: map[string]*ring{}, gone: map[string]Endpoint{}}
}

// consume applies the subscription's events until ctx ends.
func (h *memHistory) consume(ctx context.Context, sub directory.Subscription) {
	defer sub.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-sub.C():
			if !ok {
				return
			}
			h.apply(ev)
		}
	}
}

func (h *memHistory) apply(ev directory.Event) {
	switch ev.Kind {
	case directory.Leave:
		c := ev.Client
		if c.UID == "" {
			return
		}
		e := Endpoint{UID: c.UID, Callsign: c.Callsign, Identity: c.Identity, Groups: slices.Clone(c.In), At: ev.At}
		if c.LastSA != nil && c.LastSA.Header != nil {
			e.Team, e.Role = c.LastSA.Header.GroupName, c.LastSA.Header.GroupRole
		}
		h.mu.Lock()
		if _, ok := h.gone[e.UID]; !ok && len(h.gone) >= h.lim.disconnected {
			h.evictOldestGoneLocked()
		}
		h.gone[e.UID] = e
		h.mu.Unlock()
	case directory.SA, directory.Routed:
		m := ev.Message
		if m == nil || m.Header == nil || m.Header.UID == "" || strings.HasPrefix(m.Header.Type, "t-x-") {
			return // control events (channel changes and the like) are no one's history
		}
		rec := Record{At: m.Recv, UID: m.Header.UID, Type: m.Header.Type, Callsign: m.Header.Callsign,
			Lat: m.Header.Lat, Lon: m.Header.Lon, HAE: m.Header.HAE, Groups: ev.Client.In, XML: m.XML}
		if rec.At.IsZero() {
			rec.At = ev.At
		}
		h.add(rec)
	}
}

func (h *memHistory) add(rec Record) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r, ok := h.byUID[rec.UID]
	full := h.held+int64(len(rec.XML)) > h.lim.bytes
	if !ok {
		if len(h.byUID) >= h.lim.uids || full {
			h.refuse.Add(1)
			return
		}
		r = &ring{}
		h.byUID[rec.UID] = r
	}
	if full && len(r.recs) < h.lim.perUID {
		// Over budget, only an overwrite (which frees as much as it takes,
		// give or take) may go in.
		h.refuse.Add(1)
		return
	}
	h.held += r.add(rec, h.lim.perUID)
}

func (h *memHistory) Latest(_ context.Context, uid string, groups []string) (Record, bool, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	r, ok := h.byUID[uid]
	if !ok {
		return Record{}, false, nil
	}
	recs := r.ordered()
	for i := len(recs) - 1; i >= 0; i-- {
		if intersects(recs[i].Groups, groups) {
			return recs[i], true, nil
		}
	}
	return Record{}, false, nil
}

func (h *memHistory) Events(_ context.Context, q Query) ([]Record, error) {
	var all []Record
	h.mu.RLock()
	if q.UID != "" {
		if r, ok := h.byUID[q.UID]; ok {
			all = r.ordered()
		}
	} else {
		for _, r := range h.byUID {
			all = append(all, r.recs...)
		}
	}
	h.mu.RUnlock()
	out := all[:0]
	for _, r := range all {
		if (q.SAOnly && !isSA(r.Type)) || !intersects(r.Groups, q.Groups) ||
			(!q.From.IsZero() && r.At.Before(q.From)) || (!q.To.IsZero() && r.At.After(q.To)) {
			continue
		}
		out = append(out, r)
	}
	slices.SortStableFunc(out, func(a, b Record) int { return a.At.Compare(b.At) })
	limit := q.Limit
	if limit <= 0 {
		limit = maxEvents
	}
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// evictOldestGoneLocked forgets the client that left longest ago; it runs
// only when the table is full, so its scan is rare.
func (h *memHistory) evictOldestGoneLocked() {
	var oldest string
	var at time.Time
	for uid, e := range h.gone {
		if oldest == "" || e.At.Before(at) {
			oldest, at = uid, e.At
		}
	}
	delete(h.gone, oldest)
}

func (h *memHistory) Disconnected(_ context.Context, since time.Time, groups []string) ([]Endpoint, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	var out []Endpoint
	for _, e := range h.gone {
		if !e.At.Before(since) && intersects(e.Groups, groups) {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b Endpoint) int { return a.At.Compare(b.At) })
	return out, nil
}

// intersects reports whether a and b share a group: the routing rule.
func intersects(a, b []string) bool {
	for _, g := range a {
		if slices.Contains(b, g) {
			return true
		}
	}
	return false
}

// isSA reports whether a CoT type is a position report of a thing (atoms:
// a-f-G-U-C and the like).
func isSA(typ string) bool { return len(typ) > 2 && typ[0] == 'a' && typ[1] == '-' }
