package engine

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"cotd/internal/poll"
)

// Lines as an x86 (little-endian) kernel prints them.
const (
	procTCPHeader  = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode"
	procTCP6Header = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode"
	lineV4Loopback = "   0: 0100007F:CAD9 00000000:0000 0A 00000000:00000003 00:00000000 00000000     0        0 197281 4 00000000f9690ba5 100 0 0 10 0                    "
	lineV4Any      = "   1: 00000000:1F97 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 12345 1 0000000000000000 100 0 0 10 0"
	lineV4Estab    = "   2: 0100007F:1F97 0100007F:D2A4 01 00000000:00000000 00:00000000 00000000  1000        0 12346 1 0000000000000000 20 4 30 10 -1"
	lineV6Any      = "   0: 00000000000000000000000000000000:1F99 00000000000000000000000000000000:0000 0A 00000000:00000011 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0"
	lineV6Loopback = "   1: 00000000000000000000000001000000:1F99 00000000000000000000000000000000:0000 0A 00000000:00000001 00:00000000 00000000     0        0 4243 1 0000000000000000 100 0 0 10 0"
	lineV6Mapped   = "   2: 0000000000000000FFFF00000100007F:1F98 00000000000000000000000000000000:0000 0A 00000000:0000FFFF 00:00000000 00000000     0        0 4244 1 0000000000000000 100 0 0 10 0"
	lineV6Doc      = "   3: B80D0120000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4245 1 0000000000000000 100 0 0 10 0"
)

func TestParseProcNetTCPLine(t *testing.T) {
	ap := netip.MustParseAddrPort
	tests := []struct {
		name  string
		line  string
		order binary.ByteOrder
		want  procSocket
		err   bool
	}{
		{"v4 loopback listener", lineV4Loopback, binary.LittleEndian, procSocket{state: tcpListen, local: ap("127.0.0.1:51929"), rxQueue: 3}, false},
		{"v4 wildcard listener", lineV4Any, binary.LittleEndian, procSocket{state: tcpListen, local: ap("0.0.0.0:8087")}, false},
		{"v4 on a big-endian host", "   0: 7F000001:1F97 00000000:0000 0A 00000000:00000002 00", binary.BigEndian, procSocket{state: tcpListen, local: ap("127.0.0.1:8087"), rxQueue: 2}, false},
		{"established: only the state", lineV4Estab, binary.LittleEndian, procSocket{state: 0x01}, false},
		{"v6 wildcard listener", lineV6Any, binary.LittleEndian, procSocket{state: tcpListen, local: ap("[::]:8089"), rxQueue: 17}, false},
		{"v6 loopback listener", lineV6Loopback, binary.LittleEndian, procSocket{state: tcpListen, local: ap("[::1]:8089"), rxQueue: 1}, false},
		{"v4-mapped v6 comes back as v4", lineV6Mapped, binary.LittleEndian, procSocket{state: tcpListen, local: ap("127.0.0.1:8088"), rxQueue: 65535}, false},
		{"v6 global address", lineV6Doc, binary.LittleEndian, procSocket{state: tcpListen, local: ap("[2001:db8::1]:80")}, false},
		{"lowercase hex", "0: 0100007f:1f97 00000000:0000 0a 00000000:0000000a", binary.LittleEndian, procSocket{state: tcpListen, local: ap("127.0.0.1:8087"), rxQueue: 10}, false},

		{"empty", "", binary.LittleEndian, procSocket{}, true},
		{"too few fields", "   0: 0100007F:1F97 00000000:0000 0A", binary.LittleEndian, procSocket{}, true},
		{"bad state", "   0: 0100007F:1F97 00000000:0000 ZZ 00000000:00000000", binary.LittleEndian, procSocket{}, true},
		{"long state", "   0: 0100007F:1F97 00000000:0000 00A 00000000:00000000", binary.LittleEndian, procSocket{}, true},
		{"address without port", "   0: 0100007F 00000000:0000 0A 00000000:00000000", binary.LittleEndian, procSocket{}, true},
		{"short address", "   0: 00007F:1F97 00000000:0000 0A 00000000:00000000", binary.LittleEndian, procSocket{}, true},
		{"short port", "   0: 0100007F:F97 00000000:0000 0A 00000000:00000000", binary.LittleEndian, procSocket{}, true},
		{"bad hex address", "   0: 0100G07F:1F97 00000000:0000 0A 00000000:00000000", binary.LittleEndian, procSocket{}, true},
		{"bad hex in a v6 word", "   0: 000000000000000000000000010000X0:1F99 0:0 0A 00000000:00000000", binary.LittleEndian, procSocket{}, true},
		{"queues without colon", "   0: 0100007F:1F97 00000000:0000 0A 0000000000000000", binary.LittleEndian, procSocket{}, true},
		{"rx_queue too long", "   0: 0100007F:1F97 00000000:0000 0A 00000000:000000001", binary.LittleEndian, procSocket{}, true},
		{"empty rx_queue", "   0: 0100007F:1F97 00000000:0000 0A 00000000:", binary.LittleEndian, procSocket{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseProcNetTCPLine([]byte(tt.line), tt.order)
			if tt.err {
				if !errors.Is(err, errProcNetTCP) {
					t.Fatalf("err = %v, want errProcNetTCP", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestScanListenDepths(t *testing.T) {
	ap := netip.MustParseAddrPort
	table := strings.Join([]string{procTCPHeader, lineV4Loopback, lineV4Any, lineV4Estab}, "\n") + "\n"

	t.Run("finds every wanted listener", func(t *testing.T) {
		want := []netip.AddrPort{ap("127.0.0.1:51929"), ap("0.0.0.0:8087")}
		got := map[netip.AddrPort]int{}
		if err := scanListenDepths(strings.NewReader(table), binary.LittleEndian, want, got); err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[want[0]] != 3 || got[want[1]] != 0 {
			t.Errorf("got %v", got)
		}
	})
	t.Run("a connection on the listener's port is not the listener", func(t *testing.T) {
		// lineV4Estab is 127.0.0.1:8087 (a client of the 0.0.0.0 listener).
		want := []netip.AddrPort{ap("127.0.0.1:8087")}
		got := map[netip.AddrPort]int{}
		if err := scanListenDepths(strings.NewReader(table), binary.LittleEndian, want, got); err != nil {
			t.Fatal(err)
		}
		if len(got) != 0 {
			t.Errorf("got %v, want nothing", got)
		}
	})
	t.Run("stops once all are found", func(t *testing.T) {
		// The garbage after the listener would be an error if it were read.
		r := strings.NewReader(procTCPHeader + "\n" + lineV4Loopback + "\nnot a socket line\n")
		got := map[netip.AddrPort]int{}
		if err := scanListenDepths(r, binary.LittleEndian, []netip.AddrPort{ap("127.0.0.1:51929")}, got); err != nil {
			t.Fatalf("read past the last wanted listener: %v", err)
		}
	})
	t.Run("reports a malformed line", func(t *testing.T) {
		r := strings.NewReader(procTCPHeader + "\n" + lineV4Loopback + "\nnot a socket line\n")
		got := map[netip.AddrPort]int{}
		err := scanListenDepths(r, binary.LittleEndian, []netip.AddrPort{ap("10.0.0.1:1")}, got)
		if !errors.Is(err, errProcNetTCP) {
			t.Fatalf("err = %v, want errProcNetTCP", err)
		}
	})
	t.Run("continues into the next table", func(t *testing.T) {
		want := []netip.AddrPort{ap("127.0.0.1:51929"), ap("[::1]:8089"), ap("127.0.0.1:8088")}
		got := map[netip.AddrPort]int{}
		if err := scanListenDepths(strings.NewReader(table), binary.LittleEndian, want, got); err != nil {
			t.Fatal(err)
		}
		v6 := strings.Join([]string{procTCP6Header, lineV6Any, lineV6Loopback, lineV6Mapped, lineV6Doc}, "\n")
		if err := scanListenDepths(strings.NewReader(v6), binary.LittleEndian, want, got); err != nil {
			t.Fatal(err)
		}
		if got[want[0]] != 3 || got[want[1]] != 1 || got[want[2]] != 65535 || len(got) != 3 {
			t.Errorf("got %v", got)
		}
	})
}

// dialN opens n connections to addr that the test closes at its end.
func dialN(t *testing.T, network, addr string, n int) {
	t.Helper()
	for range n {
		c, err := net.DialTimeout(network, addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
	}
}

// depthOf reads one listener's depth from the real /proc tables.
func depthOf(t *testing.T, addr net.Addr) (int, bool) {
	t.Helper()
	ap := addr.(*net.TCPAddr).AddrPort()
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	got, err := listenDepths(procNetTCP, []netip.AddrPort{ap})
	if err != nil {
		t.Fatal(err)
	}
	d, ok := got[ap]
	return d, ok
}

func backlogOf(t *testing.T, ln net.Listener) int {
	t.Helper()
	rc, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var berr error
	if err := rc.Control(func(fd uintptr) { n, berr = listenBacklog(int(fd)) }); err != nil {
		t.Fatal(err)
	}
	if berr != nil {
		t.Fatal(berr)
	}
	return n
}

func TestListenQueueOfARealSocket(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if d, ok := depthOf(t, ln.Addr()); !ok || d != 0 {
		t.Fatalf("fresh listener: depth %d, found %v; want 0, true", d, ok)
	}
	dialN(t, "tcp", ln.Addr().String(), 3)
	poll.Until(t, "3 connections in the accept queue", 10*time.Second, func() bool { d, _ := depthOf(t, ln.Addr()); return d == 3 })

	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if d, _ := depthOf(t, ln.Addr()); d != 2 {
		t.Errorf("after one accept: depth %d, want 2", d)
	}
	// Go listens with net.core.somaxconn, which is also the kernel's cap.
	if got, want := backlogOf(t, ln), somaxconn(); got != want {
		t.Errorf("backlog %d, want somaxconn %d", got, want)
	}
}

func TestListenBacklogIsWhatListenAskedFor(t *testing.T) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 7); err != nil {
		t.Fatal(err)
	}
	if n, err := listenBacklog(fd); err != nil || n != 7 {
		t.Fatalf("backlog %d, %v; want 7", n, err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := sockaddrToTCP(sa)
	dialN(t, "tcp", addr.String(), 2)
	poll.Until(t, "2 connections in the accept queue", 10*time.Second, func() bool { d, _ := depthOf(t, addr); return d == 2 })
	if _, err := listenBacklog(-1); !errors.Is(err, syscall.EBADF) {
		t.Errorf("bad fd: err = %v, want EBADF", err)
	}
}

func TestListenQueueOfARealIPv6Socket(t *testing.T) {
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer ln.Close()
	dialN(t, "tcp6", ln.Addr().String(), 2)
	poll.Until(t, "2 connections in the IPv6 accept queue", 10*time.Second, func() bool { d, _ := depthOf(t, ln.Addr()); return d == 2 })
}
