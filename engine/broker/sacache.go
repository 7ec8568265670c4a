package broker

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

const saStripes = 64

// saCache keeps the latest SA of each online client, striped by uid so that
// shards writing different uids and replays reading them rarely meet on a
// lock.
type saCache struct {
	seed    maphash.Seed
	stripes [saStripes]saStripe
	// seq numbers the puts. A joiner replays only entries put at or before
	// the seq it read after joining the registry: later ones were routed
	// after it joined (a shard caches an SA before it broadcasts it), so it
	// gets them live, and replaying them too would deliver them twice.
	seq atomic.Uint64
	// size is the number of entries, kept by put, drop and prune, so that
	// the cap on the whole cache costs no walk.
	size atomic.Int64
}

type saStripe struct {
	mu sync.RWMutex
	m  map[string]saEntry
}

type saEntry struct {
	msg   *Message
	stale time.Time
	owner *Client
	seq   uint64 // set by put
}

func newSACache() *saCache {
	c := &saCache{seed: maphash.MakeSeed()}
	for i := range c.stripes {
		c.stripes[i].m = make(map[string]saEntry)
	}
	return c
}

func (c *saCache) stripe(uid string) *saStripe {
	return &c.stripes[maphash.String(c.seed, uid)%saStripes]
}

// put caches e as uid's SA. A new uid is refused (false) when the cache
// holds max entries already; 0 means no cap.
func (c *saCache) put(uid string, e saEntry, max int) bool {
	e.seq = c.seq.Add(1)
	s := c.stripe(uid)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[uid]; !ok {
		if max > 0 && c.size.Load() >= int64(max) {
			return false
		}
		c.size.Add(1)
	}
	s.m[uid] = e
	return true
}

// drop forgets uid's SA if owner still owns it (a reconnect may have taken
// the uid over already).
func (c *saCache) drop(uid string, owner uint64) {
	s := c.stripe(uid)
	s.mu.Lock()
	if e, ok := s.m[uid]; ok && e.owner.ID == owner {
		delete(s.m, uid)
		c.size.Add(-1)
	}
	s.mu.Unlock()
}

// appendLive appends every SA of stripe i put at or before seq upto, not yet
// stale at now, that reaches to, except to's own. A replay walks the stripes one at a time, so that a
// joiner holds a stripe's worth of pointers while it waits on its socket,
// not the whole cache: in a reconnect storm thousands of replays wait at
// once.
func (c *saCache) appendLive(dst []*Message, i int, upto uint64, now time.Time, to *Client) []*Message {
	s := &c.stripes[i]
	s.mu.RLock()
	for _, e := range s.m {
		if e.replayable(upto, now, to) {
			dst = append(dst, e.msg)
		}
	}
	s.mu.RUnlock()
	return dst
}

// countLive is how many SAs appendLive would give for stripes from i on.
func (c *saCache) countLive(i int, upto uint64, now time.Time, to *Client) int {
	n := 0
	for ; i < saStripes; i++ {
		s := &c.stripes[i]
		s.mu.RLock()
		for _, e := range s.m {
			if e.replayable(upto, now, to) {
				n++
			}
		}
		s.mu.RUnlock()
	}
	return n
}

func (e *saEntry) replayable(upto uint64, now time.Time, to *Client) bool {
	return e.seq <= upto && e.owner != to && (e.stale.IsZero() || e.stale.After(now)) && reaches(e.owner, to)
}

// prune removes entries stale at now and returns how many it removed.
func (c *saCache) prune(now time.Time) int {
	n := 0
	for i := range c.stripes {
		s := &c.stripes[i]
		s.mu.Lock()
		for uid, e := range s.m {
			if !e.stale.IsZero() && !e.stale.After(now) {
				delete(s.m, uid)
				c.size.Add(-1)
				n++
			}
		}
		s.mu.Unlock()
	}
	return n
}

func (c *saCache) len() int { return int(c.size.Load()) }
