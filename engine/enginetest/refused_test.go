package enginetest_test

import (
	"errors"
	"net"
	"syscall"
	"testing"

	et "cotd/engine/enginetest"
)

// A connection to RefusedAddr is refused, again and again, and nothing
// else can listen on its port while the test runs.
func TestRefusedAddrRefuses(t *testing.T) {
	addr := et.RefusedAddr(t)
	for range 3 {
		c, err := net.DialTimeout("tcp", addr, et.Wait)
		if err == nil {
			c.Close()
			t.Fatalf("a connection to %s was accepted", addr)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("dial %s: %v, want connection refused", addr, err)
		}
	}
	if ln, err := net.Listen("tcp", addr); err == nil {
		ln.Close()
		t.Fatalf("another socket could listen on %s", addr)
	}
}
