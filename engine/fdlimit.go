package engine

import (
	"errors"
	"fmt"
	"os"
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

// acceptBacklog is the listen backlog for a server allowed conns streaming
// connections under the descriptor limit (0: none or unknown): somax, or
// less when the descriptors beyond conns cannot hold a full accept queue.
// gnet's acceptor accepts everything queued in one go, before the loops
// refuse what is over conns, and stops the whole engine at EMFILE. So the
// queue gets what conns leaves less an allowance for everything else
// (listeners, the HTTP servers' and the database's sockets, files): 256
// descriptors, or half of what is left when that is less; at least 8.
func acceptBacklog(somax int, limit uint64, conns int) int {
	if limit == 0 || limit == unix.RLIM_INFINITY || uint64(conns) >= limit {
		return somax
	}
	left := int(min(limit-uint64(conns), 1<<30))
	return min(somax, max(8, left-min(left/2, 256)))
}

// descriptorLimit is RLIMIT_NOFILE's soft limit, or 0 if it cannot be read.
func descriptorLimit() uint64 {
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) != nil {
		return 0
	}
	return rl.Cur
}

// oncePer lets one log line through per period, from any goroutine.
type oncePer struct{ last atomic.Int64 }

// Allow reports whether a line may be written at now.
func (o *oncePer) Allow(now time.Time) bool {
	last := o.last.Load()
	n := now.UnixNano()
	return (last == 0 || n-last >= int64(time.Minute)) && o.last.CompareAndSwap(last, n)
}

// shrinkBacklogs lowers every listener's backlog to s.backlog. gnet listens
// with somaxconn and has no option for it; listen(2) again on the same
// socket (through a duplicate descriptor) changes the backlog in place.
func (s *Server) shrinkBacklogs() error {
	for _, ln := range s.listeners {
		fd, err := s.eng.DupListener("tcp", ln.addr)
		if err != nil {
			return fmt.Errorf("%s listener: %w", ln.kind, err)
		}
		err = unix.Listen(fd, s.backlog)
		_ = unix.Close(fd)
		if err != nil {
			return fmt.Errorf("%s listener: %w", ln.kind, os.NewSyscallError("listen", err))
		}
	}
	return nil
}
