package engine

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

var (
	errRlimit = errors.New("engine: descriptor limit")
	// ErrStopped: the event engine stopped without being asked (gnet's
	// acceptor gives up on an accept error such as EMFILE). Run returns
	// it, so that cotd exits non-zero and a service manager restarts it.
	ErrStopped = errors.New("engine: the event engine stopped on its own")
)

// RefuseReason says why a connection was closed at accept.
type RefuseReason uint8

// The refusals, counted in cotd_refused_total.
const (
	// RefuseDraining: the server is shutting down.
	RefuseDraining RefuseReason = iota
	// RefuseMaxConnections: limits.max_connections are open.
	RefuseMaxConnections
	numRefuseReasons
)

var refuseNames = [numRefuseReasons]string{"draining", "max_connections"}

func (r RefuseReason) String() string {
	if r < numRefuseReasons {
		return refuseNames[r]
	}
	return "unknown"
}

// fdReserve is what the default max_connections leaves of the descriptor
// limit for everything else (listeners, epoll, the Marti and admin HTTP
// connections, files, the database): a quarter, at least 64.
func fdReserve(limit uint64) uint64 { return max(64, limit/4) }

// maxConnections is limits.max_connections, or when 0 the descriptor limit
// less a reserve: gnet's acceptor stops the whole engine when accept hits
// EMFILE, so the streaming connections must never take the last
// descriptors. from says where the figure came from, for the start-up log.
func maxConnections(configured int) (n int, from string, err error) {
	if configured > 0 {
		return configured, "limits.max_connections", nil
	}
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return 0, "", fmt.Errorf("%w: %w", errRlimit, err)
	}
	if rl.Cur <= 128 {
		return 0, "", fmt.Errorf("%w: RLIMIT_NOFILE is %d; raise it (LimitNOFILE=) or set limits.max_connections", errRlimit, rl.Cur)
	}
	return int(rl.Cur - fdReserve(rl.Cur)), fmt.Sprintf("RLIMIT_NOFILE %d less a reserve of %d", rl.Cur, fdReserve(rl.Cur)), nil
}

// oncePer lets one log line through per period, from any goroutine.
type oncePer struct{ last atomic.Int64 }

// Allow reports whether a line may be written at now.
func (o *oncePer) Allow(now time.Time) bool {
	last := o.last.Load()
	n := now.UnixNano()
	return (last == 0 || n-last >= int64(time.Minute)) && o.last.CompareAndSwap(last, n)
}
