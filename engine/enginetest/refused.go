package enginetest

import (
	"net"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// RefusedAddr is a loopback address where every connection is refused
// until the test ends. Its port is held by a socket that is bound and never
// listens: the kernel answers a connect with a reset, and neither another
// listener nor an outgoing connection can be given the port meanwhile. A
// port taken from a listener and closed again, by contrast, can be bound by
// anything on the machine before the test dials it.
func RefusedAddr(t testing.TB) string {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("RefusedAddr: socket: %v", err)
	}
	t.Cleanup(func() { _ = unix.Close(fd) })
	// No SO_REUSEADDR: with it, another socket that sets it too could bind
	// the port while this one is not listening.
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatalf("RefusedAddr: bind: %v", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatalf("RefusedAddr: getsockname: %v", err)
	}
	in4, ok := sa.(*unix.SockaddrInet4)
	if !ok || in4.Port == 0 {
		t.Fatalf("RefusedAddr: bound %v", sa)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(in4.Port))
}
