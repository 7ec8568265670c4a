package engine

import (
	"net"
	"testing"
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
