package bench

import (
	"crypto/tls"
	"net"
	"sync"
	"testing"
	"time"

	"cotd/cot"
)

// fault is a misbehaviour the fake server can be asked for, so that tests see each
// measurement catch it.
type fault uint8

const (
	faultNone     fault = iota
	faultMisroute       // directed chats go to everyone
	faultDrop           // every dropEvery-th delivery is not made
	faultEcho           // every event also goes back to its sender
	faultDup            // every delivery is made twice
)

func (f fault) String() string {
	return [...]string{"none", "misroute", "drop", "echo", "dup"}[f]
}

// fakeServer is a tiny CoT router for tests: one goroutine per connection, pings answered,
// broadcast to every other client, <marti><dest callsign> to the named clients (marti
// stripped), latest SA not replayed. Unlike cotd it is trivially simple, which is the
// point: the harness must measure any server.
type fakeServer struct {
	t         testing.TB
	ln        net.Listener
	fault     fault
	dropEvery int
	// handshakeTimeout closes TLS connections that do not finish their handshake.
	handshakeTimeout time.Duration

	mu         sync.Mutex
	conns      map[*fakeConn]struct{}
	deliveries int
	versions   map[uint16]int // negotiated TLS versions
	cns        map[string]int // client certificate CNs, per handshake
	wg         sync.WaitGroup
}

type fakeConn struct {
	c        net.Conn
	wmu      sync.Mutex
	callsign string // under fakeServer.mu
}

// startFake listens on 127.0.0.1:0 (with TLS when conf is not nil) and serves until the
// test ends.
func startFake(t testing.TB, f fault, conf *tls.Config) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{t: t, ln: ln, fault: f, dropEvery: 10, handshakeTimeout: time.Second,
		conns: make(map[*fakeConn]struct{}), versions: make(map[uint16]int), cns: make(map[string]int)}
	go s.accept(conf)
	t.Cleanup(func() {
		_ = ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			_ = c.c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *fakeServer) addr() string { return s.ln.Addr().String() }

func (s *fakeServer) accept(conf *tls.Config) {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			if conf != nil {
				tc := tls.Server(c, conf)
				_ = tc.SetDeadline(time.Now().Add(s.handshakeTimeout))
				if err := tc.Handshake(); err != nil {
					return
				}
				_ = tc.SetDeadline(time.Time{})
				s.mu.Lock()
				cs := tc.ConnectionState()
				s.versions[cs.Version]++
				if len(cs.PeerCertificates) > 0 {
					s.cns[cs.PeerCertificates[0].Subject.CommonName]++
				}
				s.mu.Unlock()
				c = tc
			}
			s.serve(&fakeConn{c: c})
		}()
	}
}

func (s *fakeServer) serve(fc *fakeConn) {
	s.mu.Lock()
	s.conns[fc] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, fc)
		s.mu.Unlock()
	}()
	f := cot.NewXMLFramer(0)
	buf := make([]byte, 16<<10)
	var h cot.Header
	for {
		n, err := fc.c.Read(buf)
		if n > 0 {
			if f.Feed(buf[:n], func(doc []byte) error {
				if err := cot.ScanHeader(doc, &h); err != nil {
					return err
				}
				s.route(fc, doc, &h)
				return nil
			}) != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (s *fakeServer) route(from *fakeConn, doc []byte, h *cot.Header) {
	if h.Type == cot.TypePing {
		from.write(cot.Pong(time.Now()))
		return
	}
	s.mu.Lock()
	if h.IsSA() {
		from.callsign = h.Callsign
	}
	var to []*fakeConn
	for c := range s.conns {
		switch {
		case c == from:
			if s.fault == faultEcho {
				to = append(to, c)
			}
		case len(h.DestCallsigns) == 0 || s.fault == faultMisroute:
			to = append(to, c)
		default:
			for _, cs := range h.DestCallsigns {
				if cs == c.callsign {
					to = append(to, c)
					break
				}
			}
		}
	}
	var send []*fakeConn
	for _, c := range to {
		s.deliveries++
		if s.fault == faultDrop && s.deliveries%s.dropEvery == 0 {
			continue
		}
		send = append(send, c)
		if s.fault == faultDup {
			send = append(send, c)
		}
	}
	s.mu.Unlock()
	out := cot.StripMarti(doc, h)
	for _, c := range send {
		c.write(out)
	}
}

func (c *fakeConn) write(b []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, _ = c.c.Write(b)
}

func (s *fakeServer) tlsVersions() map[uint16]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[uint16]int, len(s.versions))
	for k, v := range s.versions {
		out[k] = v
	}
	return out
}

func (s *fakeServer) peerCNs() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.cns))
	for k, v := range s.cns {
		out[k] = v
	}
	return out
}
