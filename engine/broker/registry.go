package broker

import (
	"sync"
	"sync/atomic"
	"time"
)

// registry knows every joined client and indexes them by uid and callsign.
//
// Join and leave run on event loops, so the mutex is held only for a map
// update. Broadcasts read an immutable slice that is rebuilt lazily, by the
// first shard that needs it after a change, so a burst of joins costs one
// rebuild per routed frame at most, not one per join.
type registry struct {
	mu         sync.Mutex
	clients    map[uint64]*Client
	byUID      map[string]*uidSlot
	byCallsign map[string][]*Client
	// remote counts the ghosts and relays among clients.
	remote int

	dirty atomic.Bool
	snap  atomic.Pointer[snapshot]
}

// snapshot is the registry as a broadcast sees it: immutable, rebuilt after
// joins, leaves and membership changes.
type snapshot struct {
	all []*Client
	// byOut[g] are the clients that receive from group g: a broadcast walks
	// the lists of its sender's IN groups and never looks at anyone else.
	byOut [][]*Client
	// relays[g] is the relay of group g, or nil; empty on a single node.
	relays []*Client
}

func newRegistry() *registry {
	r := &registry{
		clients:    make(map[uint64]*Client),
		byUID:      make(map[string]*uidSlot),
		byCallsign: make(map[string][]*Client),
	}
	r.snap.Store(&snapshot{})
	return r
}

func (r *registry) add(c *Client) {
	r.mu.Lock()
	if _, ok := r.clients[c.ID]; !ok && c.role != RoleLocal {
		r.remote++
	}
	r.clients[c.ID] = c
	r.dirty.Store(true)
	r.mu.Unlock()
}

// remove forgets c and its index entries. It reports whether c was there.
func (r *registry) remove(c *Client) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.clients[c.ID]; !ok {
		return false
	}
	delete(r.clients, c.ID)
	if c.role != RoleLocal {
		r.remote--
	}
	// Its uids stay indexed until its shard releases them (after the
	// frames it sent before leaving): directed messages to them count as
	// for a closed recipient meanwhile.
	id := c.Identity()
	if id.Callsign != "" {
		r.byCallsign[id.Callsign] = without(r.byCallsign[id.Callsign], c)
		if len(r.byCallsign[id.Callsign]) == 0 {
			delete(r.byCallsign, id.Callsign)
		}
	}
	r.dirty.Store(true)
	return true
}

// claimResult is what a claim on a uid decided.
type claimResult uint8

const (
	// claimHeld: the uid was free, or the claimant's already.
	claimHeld claimResult = iota
	// claimTaken: the uid moved to the claimant from another client.
	claimTaken
	// claimRefused: another live client owns the uid.
	claimRefused
)

// uidSlot is who holds one uid. A client keeps the slots of its uids, so
// that an SA for a uid it still holds is checked with one atomic load, and
// the registry's lock is taken only when a uid changes hands.
type uidSlot struct {
	holder atomic.Pointer[Client]
}

// claim decides whether c may announce uid, at unix nanos now. A uid
// belongs to the client that holds it; another client gets it when:
//   - the holder has left (its shard has not released it yet);
//   - both have the same owner (certificate CN or <auth> user): the
//     user reconnected, and the holder is to be closed (replace);
//   - the holder has sent nothing for quiet: a phone that changed
//     network reconnects while its old connection lingers half-open, and
//     ownership must not lock it out (replace);
//   - the holder is a gateway relaying the device and the device itself
//     connects (the gateway keeps its connection).
//
// Anything else is an impostor's claim and refused. prev is the client the
// uid was taken from, or the holder that refused it. slot is nil for a
// client not joined (it holds nothing).
func (r *registry) claim(c *Client, uid string, now int64, quiet time.Duration) (res claimResult, prev *Client, replace bool, slot *uidSlot) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.clients[c.ID]; !ok {
		return claimHeld, nil, false, nil
	}
	slot = r.byUID[uid]
	if slot == nil {
		slot = &uidSlot{}
		r.byUID[uid] = slot
	}
	h := slot.holder.Load()
	switch {
	case h == nil || h == c:
		slot.holder.Store(c)
		return claimHeld, nil, false, slot
	case h.left.Load():
	case sameOwner(h, c), now-h.heard.Load() > int64(quiet):
		replace = true
	case h.gateway.Load() && !c.gateway.Load():
	default:
		return claimRefused, h, false, nil
	}
	slot.holder.Store(c)
	return claimTaken, h, replace, slot
}

func sameOwner(a, b *Client) bool {
	x, y := a.owner.Load(), b.owner.Load()
	return x != nil && y != nil && *x == *y
}

// release frees uid if c holds it, or if nobody does. It reports whether
// c was the last to hold it: only then is a t-x-d-d due.
func (r *registry) release(c *Client, uid string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	slot := r.byUID[uid]
	if slot == nil {
		return true
	}
	if slot.holder.Load() != c {
		return false
	}
	delete(r.byUID, uid)
	return true
}

// identify records c's identity (its latest SA's uid and callsign) and
// indexes its callsign; claim indexes uids.
func (r *registry) identify(c *Client, next Identity) {
	r.mu.Lock()
	defer r.mu.Unlock()
	prev := c.Identity()
	if _, ok := r.clients[c.ID]; !ok {
		// Left already; keep the identity for logs only.
		c.ident.Store(&next)
		return
	}
	if prev.Callsign != next.Callsign {
		if prev.Callsign != "" {
			r.byCallsign[prev.Callsign] = without(r.byCallsign[prev.Callsign], c)
			if len(r.byCallsign[prev.Callsign]) == 0 {
				delete(r.byCallsign, prev.Callsign)
			}
		}
		if next.Callsign != "" {
			r.byCallsign[next.Callsign] = append(r.byCallsign[next.Callsign], c)
		}
	}
	c.ident.Store(&next)
}

// current returns the snapshot, rebuilding it first if something changed.
func (r *registry) current() *snapshot {
	if r.dirty.Load() {
		r.mu.Lock()
		if r.dirty.Load() {
			r.snap.Store(r.rebuildLocked())
			r.dirty.Store(false)
		}
		r.mu.Unlock()
	}
	return r.snap.Load()
}

// rebuildLocked makes the snapshot of the clients; r.mu is held.
func (r *registry) rebuildLocked() *snapshot {
	s := &snapshot{all: make([]*Client, 0, len(r.clients))}
	for _, c := range r.clients {
		switch c.role {
		case RoleGhost:
			continue // broadcasts reach its node through a relay
		case RoleRelay:
			for g := range c.membership().out.members() {
				s.relays = grown(s.relays, g)
				s.relays[g] = c
			}
			continue
		}
		s.all = append(s.all, c)
		for g := range c.membership().out.members() {
			s.byOut = grown(s.byOut, g)
			s.byOut[g] = append(s.byOut[g], c)
		}
	}
	return s
}

// all returns the current clients; the slice must not be modified.
func (r *registry) all() []*Client { return r.current().all }

// changed marks the snapshot stale (a membership changed).
func (r *registry) changed() { r.dirty.Store(true) }

func (r *registry) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.clients) - r.remote
}

// appendByCallsign appends the clients using callsign to dst.
func (r *registry) appendByCallsign(dst []*Client, callsign string) []*Client {
	r.mu.Lock()
	dst = append(dst, r.byCallsign[callsign]...)
	r.mu.Unlock()
	return dst
}

// lookupUID returns the client whose uid is uid, or nil.
func (r *registry) lookupUID(uid string) *Client {
	r.mu.Lock()
	slot := r.byUID[uid]
	r.mu.Unlock()
	if slot == nil {
		return nil
	}
	return slot.holder.Load()
}

func without(s []*Client, c *Client) []*Client {
	for i, x := range s {
		if x == c {
			s[i] = s[len(s)-1]
			s[len(s)-1] = nil
			return s[:len(s)-1]
		}
	}
	return s
}
