package enroll

import (
	"net/netip"
	"sync"
	"time"
)

// throttle slows password guessing. It keeps failures per source address
// (an IPv6 client is its /64: one host owns all of it) and per user. Once
// a key has more than free failures, each further failure doubles a
// lock-out, from base up to max; a success clears the source.
//
// The user's lock-out applies only to the sources that failed for that
// user: an attacker spread over many addresses is slowed on each of them,
// but the real user, from an address that never failed, is always let
// through to the password check.
type throttle struct {
	free      int
	base, max time.Duration
	now       func() time.Time

	mu      sync.Mutex
	sources map[netip.Prefix]*record
	users   map[string]*userRecord
}

type record struct {
	failures int
	until    time.Time // locked out before this
	last     time.Time
}

type userRecord struct {
	record
	from map[netip.Prefix]bool // sources that failed for this user
}

// maxTracked bounds each map: a flood of distinct keys evicts the oldest
// idle records instead of growing without end.
const maxTracked = 10000

// maxSourcesPerUser bounds how many failing sources a user remembers.
const maxSourcesPerUser = 256

// forgetAfter drops a record that saw no failure for this long after its
// lock-out ended.
const forgetAfter = 30 * time.Minute

func newThrottle(free int, base, maxDelay time.Duration) *throttle {
	return &throttle{free: free, base: base, max: maxDelay, now: time.Now,
		sources: map[netip.Prefix]*record{}, users: map[string]*userRecord{}}
}

// sourceKey is the address a client is throttled by.
func sourceKey(addr netip.Addr) netip.Prefix {
	addr = addr.Unmap()
	bits := 32
	if addr.Is6() {
		bits = 64
	}
	p, _ := addr.Prefix(bits)
	return p
}

// allow reports whether a login from src for user may be checked now, and
// if not, how long until it may.
func (t *throttle) allow(src netip.Addr, user string) (bool, time.Duration) {
	now := t.now()
	key := sourceKey(src)
	t.mu.Lock()
	defer t.mu.Unlock()
	if r := t.sources[key]; r != nil && now.Before(r.until) {
		return false, r.until.Sub(now)
	}
	if u := t.users[user]; u != nil && u.from[key] && now.Before(u.until) {
		return false, u.until.Sub(now)
	}
	return true, 0
}

// fail counts a failed login.
func (t *throttle) fail(src netip.Addr, user string) {
	now := t.now()
	key := sourceKey(src)
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.sources[key]
	if r == nil {
		evict(t.sources, func(r *record) bool { return t.stale(r, now) })
		r = &record{}
		t.sources[key] = r
	}
	t.bump(r, now)
	if user == "" {
		return
	}
	u := t.users[user]
	if u == nil {
		evict(t.users, func(u *userRecord) bool { return t.stale(&u.record, now) })
		u = &userRecord{from: map[netip.Prefix]bool{}}
		t.users[user] = u
	}
	if len(u.from) < maxSourcesPerUser {
		u.from[key] = true
	}
	t.bump(&u.record, now)
}

func (t *throttle) bump(r *record, now time.Time) {
	r.failures++
	r.last = now
	if over := r.failures - t.free; over > 0 {
		d := t.base
		for i := 1; i < over && d < t.max; i++ {
			d *= 2
		}
		r.until = now.Add(min(d, t.max))
	}
}

// succeed clears src and its part in user's record.
func (t *throttle) succeed(src netip.Addr, user string) {
	key := sourceKey(src)
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.sources, key)
	if u := t.users[user]; u != nil {
		delete(u.from, key)
	}
}

func (t *throttle) stale(r *record, now time.Time) bool {
	return now.Sub(r.last) > forgetAfter && now.After(r.until)
}

// evict makes room in m once it holds maxTracked records: the stale ones
// go first and, if it is still full, any.
func evict[K comparable, V any](m map[K]V, stale func(V) bool) {
	if len(m) < maxTracked {
		return
	}
	for k, v := range m {
		if stale(v) {
			delete(m, k)
		}
	}
	for k := range m { // still full: drop any one
		if len(m) < maxTracked {
			break
		}
		delete(m, k)
	}
}
