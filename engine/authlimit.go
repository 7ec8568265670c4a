package engine

import (
	"net"
	"sync"
	"time"
)

// AuthThrottle says why an <auth> was refused before its password was
// checked, or why a check was skipped.
type AuthThrottle uint8

// The throttles, counted in cotd_auth_throttled_total.
const (
	// ThrottlePendingAddress: the address has auth.max_pending_per_address
	// checks waiting already.
	ThrottlePendingAddress AuthThrottle = iota
	// ThrottlePendingTotal: auth.max_pending checks wait already.
	ThrottlePendingTotal
	// ThrottleBackoffAddress: the address failed recently and waits out
	// its backoff.
	ThrottleBackoffAddress
	// ThrottleBackoffUser: the user had failures recently and the address
	// has failed before: a guesser rotating through addresses it already
	// burned gains nothing, while the real user from a clean address is
	// never held back.
	ThrottleBackoffUser
	// ThrottleCancelled: the connection closed before its check ran; the
	// check was skipped.
	ThrottleCancelled
	numAuthThrottles
)

var authThrottleNames = [numAuthThrottles]string{"pending_address", "pending_total", "backoff_address", "backoff_user", "cancelled"}

func (t AuthThrottle) String() string {
	if t < numAuthThrottles {
		return authThrottleNames[t]
	}
	return "unknown"
}

// authLimiter bounds the password checks waiting and backs off sources of
// failed logins. Its mutex is held for a map update per <auth>, which is
// rare next to routing.
type authLimiter struct {
	mu      sync.Mutex
	pending map[string]int // by address
	total   int
	fails   map[string]*authFails // "a:"+address, "u:"+user
}

type authFails struct {
	n     int
	until time.Time // refused until then
	last  time.Time
}

// maxFailRecords bounds the failure records; past it the expired ones go.
const maxFailRecords = 100000

// failMemory is how long a failure is remembered once its backoff ended.
const failMemory = 10 * time.Minute

func newAuthLimiter() *authLimiter {
	return &authLimiter{pending: make(map[string]int), fails: make(map[string]*authFails)}
}

// hostOf is the address part of host:port.
func hostOf(remote string) string {
	if h, _, err := net.SplitHostPort(remote); err == nil {
		return h
	}
	return remote
}

// begin admits one check for user from addr, or says why not.
func (s *Server) authBegin(addr, user string, now time.Time) (AuthThrottle, bool) {
	l, a := s.authLimit, &s.cfg.Auth
	l.mu.Lock()
	defer l.mu.Unlock()
	fa := l.fails["a:"+addr]
	switch {
	case fa != nil && now.Before(fa.until):
		return ThrottleBackoffAddress, false
	case fa != nil && l.backingOff("u:"+user, now):
		return ThrottleBackoffUser, false
	case l.pending[addr] >= a.MaxPendingPerAddress:
		return ThrottlePendingAddress, false
	case l.total >= a.MaxPending:
		return ThrottlePendingTotal, false
	}
	l.pending[addr]++
	l.total++
	return 0, true
}

func (l *authLimiter) backingOff(key string, now time.Time) bool {
	f := l.fails[key]
	return f != nil && now.Before(f.until)
}

// authEnd ends a check begun by authBegin; failed records a wrong
// password (or unknown user) against the address and the user.
func (s *Server) authEnd(addr, user string, failed bool, now time.Time) {
	l := s.authLimit
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pending[addr]--; l.pending[addr] <= 0 {
		delete(l.pending, addr)
	}
	l.total--
	if !failed {
		return
	}
	if len(l.fails) >= maxFailRecords {
		for k, f := range l.fails {
			if now.Sub(f.last) > failMemory && !now.Before(f.until) {
				delete(l.fails, k)
			}
		}
	}
	base, ceiling := s.cfg.Auth.FailureBackoff.Duration, s.cfg.Auth.MaxFailureBackoff.Duration
	for _, k := range []string{"a:" + addr, "u:" + user} {
		f := l.fails[k]
		if f == nil || now.Sub(f.last) > failMemory {
			f = &authFails{}
			l.fails[k] = f
		}
		f.n++
		f.last = now
		// base, 2×base, 4×base … up to the ceiling.
		d := ceiling
		if f.n <= 30 {
			d = min(base<<(f.n-1), ceiling)
		}
		f.until = now.Add(d)
	}
}
