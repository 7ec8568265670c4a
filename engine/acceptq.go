package engine

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"

	"golang.org/x/sys/unix"

	"cotd/engine/metrics"
)

// The accept queue is where a reconnect burst waits: connections the kernel
// has completed and that no one has accepted yet. When it is full the kernel
// drops SYNs and clients back off for seconds, so its depth and its limit
// are exported per listener.

var errProcNetTCP = errors.New("engine: malformed /proc/net/tcp line")

// procNetTCP are the kernel's TCP socket tables, IPv4 then IPv6, in the
// server's network namespace.
var procNetTCP = []string{"/proc/net/tcp", "/proc/net/tcp6"}

// tcpListen is TCP_LISTEN in the st column.
const tcpListen = 0x0A

// procSocket is one line of /proc/net/tcp or /proc/net/tcp6.
type procSocket struct {
	state uint8
	local netip.AddrPort
	// rxQueue is, for a listening socket, the number of connections waiting
	// in its accept queue. (tx_queue is not the backlog: for a listener the
	// kernel prints 0 there.)
	rxQueue uint32
}

// parseProcNetTCPLine parses a socket line (not the header). The state is
// decoded first and, for a socket that is not listening, is all that is
// returned: on a busy server those are nearly every line, and nothing reads
// their addresses. The kernel prints addresses as 32-bit words in host byte
// order; order says which that is.
func parseProcNetTCPLine(line []byte, order binary.ByteOrder) (procSocket, error) {
	// sl, local_address, rem_address, st, tx_queue:rx_queue, then fields
	// nothing here needs.
	var f [5][]byte
	rest := line
	for i := range f {
		if f[i], rest = nextField(rest); f[i] == nil {
			return procSocket{}, fmt.Errorf("%w: %d fields in %q", errProcNetTCP, i, line)
		}
	}
	st, ok := parseHex32(f[3])
	if !ok || len(f[3]) != 2 {
		return procSocket{}, fmt.Errorf("%w: bad state %q", errProcNetTCP, f[3])
	}
	s := procSocket{state: uint8(st)}
	if s.state != tcpListen {
		return s, nil
	}
	if s.local, ok = parseProcAddr(f[1], order); !ok {
		return procSocket{}, fmt.Errorf("%w: bad local address %q", errProcNetTCP, f[1])
	}
	colon := bytes.IndexByte(f[4], ':')
	if colon < 0 {
		return procSocket{}, fmt.Errorf("%w: bad queues %q", errProcNetTCP, f[4])
	}
	if s.rxQueue, ok = parseHex32(f[4][colon+1:]); !ok {
		return procSocket{}, fmt.Errorf("%w: bad rx_queue %q", errProcNetTCP, f[4])
	}
	return s, nil
}

// nextField splits off the first space-separated field; nil when none is left.
func nextField(b []byte) (field, rest []byte) {
	i := 0
	for i < len(b) && b[i] == ' ' {
		i++
	}
	if i == len(b) {
		return nil, nil
	}
	j := i
	for j < len(b) && b[j] != ' ' {
		j++
	}
	return b[i:j], b[j:]
}

// parseProcAddr decodes "0100007F:1F97" (IPv4) or 32 hex digits and a port
// (IPv6). An IPv4-mapped IPv6 address comes back as IPv4, as the bound
// addresses it is compared with are.
func parseProcAddr(b []byte, order binary.ByteOrder) (netip.AddrPort, bool) {
	colon := bytes.IndexByte(b, ':')
	if colon < 0 || len(b)-colon-1 != 4 {
		return netip.AddrPort{}, false
	}
	port, ok := parseHex32(b[colon+1:])
	if !ok {
		return netip.AddrPort{}, false
	}
	hexIP := b[:colon]
	var raw [16]byte
	switch len(hexIP) {
	case 8, 32:
	default:
		return netip.AddrPort{}, false
	}
	for k := 0; k*8 < len(hexIP); k++ {
		w, ok := parseHex32(hexIP[k*8 : k*8+8])
		if !ok {
			return netip.AddrPort{}, false
		}
		order.PutUint32(raw[k*4:], w)
	}
	var addr netip.Addr
	if len(hexIP) == 8 {
		addr = netip.AddrFrom4([4]byte(raw[:4]))
	} else {
		addr = netip.AddrFrom16(raw).Unmap()
	}
	return netip.AddrPortFrom(addr, uint16(port)), true
}

// parseHex32 decodes up to 8 hex digits.
func parseHex32(b []byte) (uint32, bool) {
	if len(b) == 0 || len(b) > 8 {
		return 0, false
	}
	var v uint32
	for _, c := range b {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		default:
			return 0, false
		}
		v = v<<4 | uint32(d)
	}
	return v, true
}

// scanListenDepths reads one socket table and records in got the accept
// queue depth of every listening socket in want. It stops as soon as got
// holds every address of want: the kernel lists listening sockets before
// connections and writes the table as it is read, so stopping early spares
// it formatting a line per client. cotd binds each address once (no
// SO_REUSEPORT), so one line is the whole queue of a listener.
func scanListenDepths(r io.Reader, order binary.ByteOrder, want []netip.AddrPort, got map[netip.AddrPort]int) error {
	sc := bufio.NewScanner(r)
	header := true
	for sc.Scan() {
		if header {
			header = false
			continue
		}
		s, err := parseProcNetTCPLine(sc.Bytes(), order)
		if err != nil {
			return err
		}
		if s.state != tcpListen || !slices.Contains(want, s.local) {
			continue
		}
		got[s.local] = int(s.rxQueue)
		if len(got) == len(want) {
			return nil
		}
	}
	return sc.Err()
}

// listenDepths reads the accept-queue depth of the listening sockets bound
// to want from the socket tables in files. An address it cannot find is
// missing from the result; a table that cannot be read (no IPv6, not
// Linux) is skipped.
func listenDepths(files []string, want []netip.AddrPort) (map[netip.AddrPort]int, error) {
	got := make(map[netip.AddrPort]int, len(want))
	var errs []error
	for _, name := range files {
		if len(got) == len(want) {
			break
		}
		f, err := os.Open(name)
		if err != nil {
			continue
		}
		err = scanListenDepths(f, binary.NativeEndian, want, got)
		_ = f.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	return got, errors.Join(errs...)
}

// listenBacklog reads the accept-queue limit of the listening socket fd:
// the backlog passed to listen(2), capped by net.core.somaxconn at that
// time. /proc/net/tcp does not carry it; TCP_INFO does, because for a
// listener the kernel reports the queue length in tcpi_unacked and its
// limit in tcpi_sacked.
func listenBacklog(fd int) (int, error) {
	ti, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		return 0, os.NewSyscallError("getsockopt TCP_INFO", err)
	}
	return int(ti.Sacked), nil
}

// listenerBacklog reads the backlog of one of the server's listeners on a
// duplicate of gnet's listening socket. Only after Ready: s.eng is set
// before Ready closes.
func (s *Server) listenerBacklog(ln *listener) (int, error) {
	fd, err := s.eng.DupListener("tcp", ln.addr)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	return listenBacklog(fd)
}

// writeListenQueues writes cotd_listen_queue_depth and cotd_listen_backlog
// for every listener. Before Ready and while draining it writes nothing:
// the listening sockets do not exist yet, or are being closed. A value the
// kernel would not give is left out rather than reported as 0.
func (s *Server) writeListenQueues(w io.Writer) error {
	select {
	case <-s.ready:
	default:
		return nil
	}
	if s.draining.Load() {
		return nil
	}
	want := make([]netip.AddrPort, len(s.listeners))
	for i, ln := range s.listeners {
		ap := ln.bound.AddrPort()
		want[i] = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	depths, _ := listenDepths(procNetTCP, want)

	m := metrics.NewWriter(w)
	m.Family("cotd_listen_queue_depth", "Connections completed by the kernel and waiting to be accepted, by listener.", "gauge")
	for i, ln := range s.listeners {
		if d, ok := depths[want[i]]; ok {
			m.Sample("cotd_listen_queue_depth", float64(d), "listener", ln.kind.String())
		}
	}
	m.Family("cotd_listen_backlog", "Accept-queue limit of each listener (listen backlog, capped by net.core.somaxconn).", "gauge")
	for _, ln := range s.listeners {
		if n, err := s.listenerBacklog(ln); err == nil {
			m.Sample("cotd_listen_backlog", float64(n), "listener", ln.kind.String())
		}
	}
	return m.Flush()
}
