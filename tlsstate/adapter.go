package tlsstate

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// adapter is the net.Conn that tls.Conn sits on. It never touches a socket:
// its input is ciphertext the loop hands over in Feed, its output goes to
// Hooks.Out.
//
// It has two read modes. While the handshake goroutine owns tls.Conn, Read
// blocks until the loop feeds bytes or Close is called, because a handshake
// error inside crypto/tls is final and cannot be retried. Once established,
// only the loop reads, and Read must never block: on an empty buffer it
// returns errWouldBlock, a net.Error with Temporary() true, which
// tls.Conn.readRecordOrCCS leaves out of its sticky c.in.err (see doc.go).
type adapter struct {
	out           func([]byte)
	local, remote net.Addr

	// outMu keeps the promise that Out is never called concurrently without
	// relying on crypto/tls's internal locking alone.
	outMu  sync.Mutex
	closed atomic.Bool

	mu       sync.Mutex
	buf      []byte // unread ciphertext is buf[off:]
	off      int
	borrowed bool          // buf is the caller's slice from Feed, valid only during Feed
	nonBlock bool          // established: Read returns errWouldBlock instead of waiting
	ready    chan struct{} // cap 1: a token means "buf grew or closed"; closed on close
}

// errWouldBlock is what Read returns in non-blocking mode when it has
// nothing. Its dynamic type must implement net.Error directly: crypto/tls
// checks with a type assertion, not errors.As.
var errWouldBlock net.Error = wouldBlock{}

type wouldBlock struct{}

func (wouldBlock) Error() string   { return "tlsstate: would block" }
func (wouldBlock) Timeout() bool   { return true }
func (wouldBlock) Temporary() bool { return true }

func newAdapter(initial []byte, out func([]byte), local, remote net.Addr) *adapter {
	return &adapter{
		out:    out,
		local:  local,
		remote: remote,
		buf:    initial,
		ready:  make(chan struct{}, 1),
	}
}

// feed copies p for the handshake goroutine and wakes it. The copy is needed
// because the goroutine reads after Feed has returned, when the engine's read
// buffer has been reused.
func (a *adapter) feed(p []byte, limit int) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed.Load() {
		return ErrClosed
	}
	if len(a.buf)-a.off+len(p) > limit {
		return ErrInputOverflow
	}
	if a.off > 0 && a.off == len(a.buf) {
		a.buf, a.off = a.buf[:0], 0
	}
	a.buf = append(a.buf, p...)
	select {
	case a.ready <- struct{}{}:
	default:
	}
	return nil
}

// lend makes p the input for the loop's own tls.Conn.Read calls without a
// copy. The caller must call unlend before Feed returns. If bytes remain
// from the handshake, p is appended behind them instead.
func (a *adapter) lend(p []byte) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed.Load() {
		return ErrClosed
	}
	if a.off == len(a.buf) {
		a.buf, a.off, a.borrowed = p, 0, true
		return nil
	}
	a.buf = append(a.buf, p...)
	return nil
}

// unlend forgets the lent slice and, when everything was consumed (the
// normal case after a would-block), the handshake leftovers too, so an idle
// established connection holds no input buffer here.
func (a *adapter) unlend() {
	a.mu.Lock()
	if a.borrowed || a.off == len(a.buf) {
		a.buf, a.off, a.borrowed = nil, 0, false
	}
	a.mu.Unlock()
}

// setNonBlocking switches to the established mode. Called by the loop after
// the handshake goroutine has returned, so no Read is waiting.
func (a *adapter) setNonBlocking() {
	a.mu.Lock()
	a.nonBlock = true
	a.mu.Unlock()
}

// close unblocks a waiting Read and makes every later Read and Write fail
// with ErrClosed. Idempotent.
func (a *adapter) close() {
	a.mu.Lock()
	if !a.closed.Load() {
		a.closed.Store(true)
		a.buf, a.off, a.borrowed = nil, 0, false
		close(a.ready)
	}
	a.mu.Unlock()
}

func (a *adapter) Read(b []byte) (int, error) {
	a.mu.Lock()
	for {
		if a.closed.Load() {
			a.mu.Unlock()
			return 0, ErrClosed
		}
		if a.off < len(a.buf) {
			n := copy(b, a.buf[a.off:])
			a.off += n
			if a.off == len(a.buf) && !a.borrowed {
				// Keep the capacity for the next flight of this handshake.
				a.buf, a.off = a.buf[:0], 0
			}
			a.mu.Unlock()
			return n, nil
		}
		if a.nonBlock {
			a.mu.Unlock()
			return 0, errWouldBlock
		}
		a.mu.Unlock()
		<-a.ready
		a.mu.Lock()
	}
}

func (a *adapter) Write(b []byte) (int, error) {
	a.outMu.Lock()
	defer a.outMu.Unlock()
	if a.closed.Load() {
		return 0, ErrClosed
	}
	a.out(b)
	return len(b), nil
}

// Close is only reached through tls.Conn.Close, which tlsstate never calls
// (it would send close_notify); present for net.Conn.
func (a *adapter) Close() error {
	a.close()
	return nil
}

func (a *adapter) LocalAddr() net.Addr {
	if a.local == nil {
		return noAddr{}
	}
	return a.local
}

func (a *adapter) RemoteAddr() net.Addr {
	if a.remote == nil {
		return noAddr{}
	}
	return a.remote
}

// Deadlines belong to the engine's timing wheel, which calls Conn.Close.
func (a *adapter) SetDeadline(time.Time) error      { return nil }
func (a *adapter) SetReadDeadline(time.Time) error  { return nil }
func (a *adapter) SetWriteDeadline(time.Time) error { return nil }

// noAddr keeps user callbacks (GetConfigForClient reading
// ClientHelloInfo.Conn.RemoteAddr()) from meeting a nil interface.
type noAddr struct{}

func (noAddr) Network() string { return "tlsstate" }
func (noAddr) String() string  { return "unknown" }
