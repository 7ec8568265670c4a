package engine

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// ListenerKind names a listener in logs, metrics and the API.
type ListenerKind uint8

// The listeners cotd serves.
const (
	ListenerTCP ListenerKind = iota
	ListenerTLS
	numListenerKinds
)

func (k ListenerKind) String() string {
	switch k {
	case ListenerTCP:
		return "tcp"
	case ListenerTLS:
		return "tls"
	}
	return "unknown"
}

type listener struct {
	kind ListenerKind
	// addr is the configured host:port; the gnet address is "tcp://"+addr.
	addr string
	// bound is the address the kernel gave, known once the engine booted.
	bound *net.TCPAddr
}

// distinctAddrs gives each listener an address string of its own. gnet
// finds a listener by its configured string, so two listeners both on
// "127.0.0.1:0" (tests ask the kernel for ports) could not be told apart.
// Each such listener but the first gets port 0 spelled with more zeros
// ("127.0.0.1:00"): the same request to the kernel, a different string.
// Choosing a free port here and binding it moments later would race with
// every other socket on the machine (a parallel test's outgoing connection
// took one such port on CI). Other duplicates cannot reach here: config
// validation refuses two listeners on one port.
func distinctAddrs(lns []*listener) error {
	seen := map[string]bool{}
	for _, ln := range lns {
		for seen[ln.addr] {
			host, port, err := net.SplitHostPort(ln.addr)
			if err != nil {
				return err
			}
			if strings.Trim(port, "0") != "" {
				return fmt.Errorf("two listeners on %s", ln.addr)
			}
			ln.addr = net.JoinHostPort(host, port+"0")
		}
		seen[ln.addr] = true
	}
	return nil
}

// resolveBound asks the kernel which port each listener got: the
// configuration may say port 0, and tests rely on that.
func resolveBound(eng gnet.Engine, lns []*listener) error {
	for _, ln := range lns {
		fd, err := eng.DupListener("tcp", ln.addr)
		if err != nil {
			return err
		}
		sa, err := unix.Getsockname(fd)
		_ = unix.Close(fd)
		if err != nil {
			return os.NewSyscallError("getsockname", err)
		}
		ln.bound = sockaddrToTCP(sa)
	}
	return nil
}

func sockaddrToTCP(sa unix.Sockaddr) *net.TCPAddr {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]).To16(), Port: a.Port}
	case *unix.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}
	}
	return &net.TCPAddr{}
}

// localPort reads the local port of an accepted socket. gnet reports the
// listener's configured address, which says port 0 when the kernel chose.
func localPort(fd int) int {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return -1
	}
	return sockaddrToTCP(sa).Port
}

// somaxconn is the accept backlog gnet gives every listener.
func somaxconn() int {
	b, err := os.ReadFile("/proc/sys/net/core/somaxconn")
	if err != nil {
		return unix.SOMAXCONN
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return unix.SOMAXCONN
	}
	return n
}

// listenError says which listener could not open. gnet reports a port in use
// as a bare "bind: address already in use"; each listener's address is tried
// again to find the one that is taken, and the error names it, its
// configuration key and the port.
func listenError(err error, lns []*listener) error {
	if errors.Is(err, unix.EADDRINUSE) {
		for _, ln := range lns {
			l, lerr := net.Listen("tcp", ln.addr)
			if lerr == nil {
				_ = l.Close()
				continue
			}
			if errors.Is(lerr, unix.EADDRINUSE) {
				_, port, _ := net.SplitHostPort(ln.addr)
				return fmt.Errorf("engine: %s listener (%s.addr = %q): port %s is already in use by another process: %w",
					ln.kind, ln.kind, ln.addr, port, err)
			}
		}
	}
	return fmt.Errorf("engine: %w", err)
}
