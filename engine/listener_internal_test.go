package engine

import (
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// Two listeners on port 0 get distinct strings that still ask the kernel
// for a port, and both bind: nothing is chosen ahead of the bind.
func TestDistinctAddrsKeepPortZero(t *testing.T) {
	lns := []*listener{{addr: "127.0.0.1:0"}, {addr: "127.0.0.1:0"}, {addr: "127.0.0.1:0"}}
	if err := distinctAddrs(lns); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, ln := range lns {
		if seen[ln.addr] {
			t.Fatalf("%q given twice", ln.addr)
		}
		seen[ln.addr] = true
		l, err := net.Listen("tcp", ln.addr)
		if err != nil {
			t.Fatalf("%q: %v", ln.addr, err)
		}
		if l.Addr().(*net.TCPAddr).Port == 0 {
			t.Fatalf("%q bound no port", ln.addr)
		}
		_ = l.Close()
	}
	if err := distinctAddrs([]*listener{{addr: "127.0.0.1:8087"}, {addr: "127.0.0.1:8087"}}); err == nil {
		t.Fatal("two listeners on one fixed port accepted")
	}
}

// The backlog stays at somaxconn unless the descriptors beyond the
// connection cap, less an allowance for everything else, could not hold a
// full accept queue; then it is what they can hold, and never under 8.
func TestAcceptBacklog(t *testing.T) {
	for _, c := range []struct {
		somax int
		limit uint64
		conns int
		want  int
	}{
		{4096, 1 << 20, 786432, 4096}, // Go raises the soft limit to the hard one
		{4096, 0, 100, 4096},          // limit unreadable
		{4096, unix.RLIM_INFINITY, 100, 4096},
		{4096, 20000, 15000, 4096}, // 5,000 left: room for the queue and 256 more
		{4096, 4096, 3072, 768},    // 1,024 left, less 256
		{4096, 200, 136, 32},
		{4096, 200, 196, 8},
		{4096, 200, 300, 4096}, // max_connections over the limit: config check's matter
		{128, 200, 0, 100},
	} {
		if got := acceptBacklog(c.somax, c.limit, c.conns); got != c.want {
			t.Errorf("acceptBacklog(%d, %d, %d) = %d, want %d", c.somax, c.limit, c.conns, got, c.want)
		}
	}
}
