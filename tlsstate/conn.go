package tlsstate

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
)

// Defaults for the zero Options fields.
const (
	// DefaultMaxHello fits every real ClientHello, including post-quantum key
	// shares (an X25519MLKEM768 share is about 1.2 KiB) and padded browser
	// hellos, with a wide margin.
	DefaultMaxHello = 16 << 10
	// DefaultMaxPending covers the largest flight a client sends (its
	// certificate chain) several times over.
	DefaultMaxPending = 64 << 10
)

// Plaintext read sizing for Feed's dst: grow when less than readMinSpace is
// free, by readGrow. tls.Conn.Read copies out of a record it has already
// decrypted, so a small dst only means more calls, never lost data.
const (
	readMinSpace = 512
	readGrow     = 4 << 10
)

// Hooks connect a Conn to the engine that owns the socket.
type Hooks struct {
	// Out receives ciphertext in wire order: handshake flights, application
	// records, alerts. It is called from the loop (alerts and key updates
	// while Feed reads), from the handshake goroutine, or from a goroutine in
	// Write, but never concurrently. p is only valid during the call: copy it
	// into the connection's single ordered outbound queue. When called off the
	// loop, Out must itself get the loop to flush (e.g. with gnet's Wake or
	// AsyncWrite). A Write already in progress when Close runs may still call
	// Out once afterwards; drop such bytes. Required.
	Out func(p []byte)
	// Wake asks the loop to call Feed(nil, ...) soon. It is called once, from
	// the handshake goroutine, when the handshake ends (successfully or not)
	// and the Conn has not been closed. Optional.
	Wake func()
}

// Options tune a Conn. The zero value is ready to use.
type Options struct {
	// MaxHello caps the bytes, record headers included, that may be buffered
	// before a complete ClientHello is seen. Zero means DefaultMaxHello (16 KiB).
	MaxHello int
	// MaxPending caps the ciphertext fed during the handshake that the
	// handshake goroutine has not yet consumed; a client that floods while
	// the server computes gets ErrInputOverflow. Zero means DefaultMaxPending
	// (64 KiB).
	MaxPending int
	// LocalAddr and RemoteAddr are what the internal net.Conn reports, so
	// that tls.Config callbacks (GetConfigForClient, VerifyConnection via
	// ClientHelloInfo.Conn) can log the peer. Nil reports a placeholder.
	LocalAddr, RemoteAddr net.Addr
}

// Conn is the TLS state of one server-side connection, driven by the event
// loop that owns its socket. See the package documentation for the model.
type Conn struct {
	cfg        *tls.Config
	hooks      Hooks
	maxHello   int
	maxPending int
	local      net.Addr
	remote     net.Addr

	// mu guards everything below against Close, Write and the accessors,
	// which may run on other goroutines, and against the handshake
	// goroutine's report. It is never held across handshake I/O.
	mu     sync.Mutex
	phase  Phase
	err    error      // sticky: the first error Feed returned, or ErrClosed
	hello  []byte     // AwaitHello: records buffered until the hello is complete
	info   *HelloInfo // set when the hello is complete; dropped by Close
	ad     *adapter
	tc     *tls.Conn
	hsDone bool  // the handshake goroutine has returned
	hsErr  error // ... with this result
	// ended is CloseThen's callback, left for the handshake goroutine when
	// Close came while it ran.
	ended  func(error)
	peerCN string
	// done is set once the handshake succeeded and stays set after Close:
	// one Feed can establish, return plaintext and then hit close_notify.
	done bool
}

// Server returns a Conn in AwaitHello that will run the server side of the
// handshake with cfg. cfg must be non-nil and is not modified; sharing one
// across connections is what makes session tickets resumable. hooks.Out
// must be non-nil.
func Server(cfg *tls.Config, opts Options, hooks Hooks) *Conn {
	if hooks.Out == nil {
		panic("tlsstate: Hooks.Out is nil")
	}
	c := &Conn{
		cfg:        cfg,
		hooks:      hooks,
		maxHello:   opts.MaxHello,
		maxPending: opts.MaxPending,
		local:      opts.LocalAddr,
		remote:     opts.RemoteAddr,
	}
	if c.maxHello <= 0 {
		c.maxHello = DefaultMaxHello
	}
	if c.maxPending <= 0 {
		c.maxPending = DefaultMaxPending
	}
	return c
}

// Feed runs on the loop only and never blocks. p is ciphertext just read from
// the socket (nil after a Wake); Feed does not keep it past the call. Any
// decrypted plaintext is appended to dst, which is returned. The first error
// is sticky: every later call returns it, and the Conn is then Closed.
//
//   - AwaitHello: buffers p until one complete ClientHello (which may span
//     records) and then starts the handshake goroutine. ErrNotTLS,
//     ErrBadHello or ErrHelloTooLarge as soon as the bytes prove it.
//   - Handshaking: hands p to the handshake goroutine. After the goroutine
//     has finished (Hooks.Wake), moves to Established, or returns the
//     handshake error wrapped in ErrHandshake.
//   - Established: decrypts every complete record; partial records stay
//     buffered inside tls.Conn. io.EOF after the peer's close_notify; other
//     record-layer failures wrap ErrProtocol.
func (c *Conn) Feed(p []byte, dst []byte) ([]byte, error) {
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return dst, err
	}
	switch c.phase {
	case AwaitHello:
		err := c.feedHelloLocked(p)
		c.mu.Unlock()
		return dst, err
	case Handshaking:
		if !c.hsDone {
			ad := c.ad
			c.mu.Unlock()
			if len(p) > 0 {
				if err := ad.feed(p, c.maxPending); err != nil {
					return dst, c.fail(err)
				}
			}
			return dst, nil
		}
		if err := c.establishLocked(); err != nil {
			c.mu.Unlock()
			return dst, err
		}
	}
	// Established. Read even when p is empty right after establishing: the
	// handshake goroutine may have left application data that arrived
	// behind the client's Finished, in the adapter or inside tls.Conn.
	tc, ad := c.tc, c.ad
	c.mu.Unlock()
	return c.read(tc, ad, p, dst)
}

// feedHelloLocked collects the ClientHello. It scans p in place when nothing
// is buffered yet, so a plaintext client costs no allocation.
func (c *Conn) feedHelloLocked(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	take := min(len(p), c.maxHello-len(c.hello))
	buf := p[:take]
	if len(c.hello) > 0 {
		c.hello = append(c.hello, buf...)
		buf = c.hello
	}
	msg, records, err := scanHello(buf, c.maxHello)
	if err != nil {
		return c.failLocked(err)
	}
	if msg == nil {
		if len(buf) >= c.maxHello {
			return c.failLocked(ErrHelloTooLarge)
		}
		if len(c.hello) == 0 {
			c.hello = slices.Clone(p)
		}
		return nil
	}
	// Parse before buffering: msg may alias p, and parseHello copies what it keeps.
	info := parseHello(msg, records)
	input := c.hello
	if len(input) == 0 {
		input = slices.Clone(p)
	} else {
		input = append(input, p[take:]...)
	}
	c.hello = nil // now owned by the adapter, which drops it once read
	c.ad = newAdapter(input, c.hooks.Out, c.local, c.remote)
	c.tc = tls.Server(c.ad, c.cfg)
	c.info = info
	c.phase = Handshaking
	go c.runHandshake(c.tc)
	return nil
}

// runHandshake is the handshake goroutine: it lives from the complete
// ClientHello until the handshake ends or Close unblocks its Read. It holds
// no lock across I/O, so a stalled client delays nobody else.
func (c *Conn) runHandshake(tc *tls.Conn) {
	err := tc.Handshake()
	c.mu.Lock()
	c.hsDone = true
	if c.phase != Closed {
		c.hsErr = err
	}
	wake := c.phase == Handshaking
	ended := c.ended
	c.mu.Unlock()
	if wake && c.hooks.Wake != nil {
		c.hooks.Wake()
	}
	if ended != nil {
		ended(handshakeFailure(err))
		c.mu.Lock()
		c.ended, c.info = nil, nil
		c.mu.Unlock()
	}
}

// handshakeFailure is what CloseThen reports for a handshake that ended
// with err: nil when it succeeded or was cut short by Close.
func handshakeFailure(err error) error {
	if err == nil || errors.Is(err, ErrClosed) {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrHandshake, err)
}

// establishLocked applies the finished handshake goroutine's result.
func (c *Conn) establishLocked() error {
	if c.hsErr != nil {
		return c.failLocked(fmt.Errorf("%w: %w", ErrHandshake, c.hsErr))
	}
	c.peerCN = peerCN(c.tc.ConnectionState())
	c.done = true
	// tls.Conn.Handshake has returned, so no Read is waiting: from now on
	// only the loop reads, and it must not block.
	c.ad.setNonBlocking()
	c.phase = Established
	return nil
}

// read decrypts every complete record. It lends p to the adapter instead of
// copying it: the loop calls tls.Conn.Read until the adapter reports
// would-block, which happens only once all of p has been moved into
// tls.Conn's own record buffer, so p is not referenced after return.
func (c *Conn) read(tc *tls.Conn, ad *adapter, p []byte, dst []byte) ([]byte, error) {
	if err := ad.lend(p); err != nil {
		return dst, c.fail(err)
	}
	defer ad.unlend()
	for {
		if cap(dst)-len(dst) < readMinSpace {
			dst = slices.Grow(dst, readGrow)
		}
		// Use n before err: tls.Conn.Read may return data together with
		// the error of the record behind it (a close_notify, or would-block
		// on a partial alert it looked ahead at).
		n, err := tc.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		switch {
		case err == nil:
		case err == errWouldBlock:
			return dst, nil
		case err == io.EOF:
			return dst, c.fail(io.EOF)
		case errors.Is(err, ErrClosed):
			return dst, c.fail(ErrClosed)
		default:
			return dst, c.fail(fmt.Errorf("%w: %w", ErrProtocol, err))
		}
	}
}

// Write encrypts p into application records, handed to Hooks.Out before
// Write returns. Safe from any goroutine, concurrently with Feed and other
// Writes, once Established; ErrNotEstablished before, ErrClosed after.
func (c *Conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	ph, tc := c.phase, c.tc
	c.mu.Unlock()
	switch ph {
	case Established:
	case Closed:
		return 0, ErrClosed
	default:
		return 0, ErrNotEstablished
	}
	n, err := tc.Write(p)
	switch {
	case err == nil:
		return n, nil
	case errors.Is(err, ErrClosed):
		return n, ErrClosed
	default:
		return n, fmt.Errorf("%w: %w", ErrProtocol, err)
	}
}

// Close moves to Closed from any phase and any goroutine. It is idempotent
// and never blocks on I/O: a handshake goroutine waiting for input returns
// at once, one in the middle of a signature returns when that ends (its
// writes then fail). It does not send close_notify; the engine closes the
// socket. Everything is released except the peer CN string.
func (c *Conn) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = ErrClosed
	}
	c.releaseLocked()
	c.info = nil
}

// CloseThen closes like Close, then calls ended once with how the handshake
// went: its failure wrapped in ErrHandshake, or nil (it succeeded, never
// started, or was cut short by this Close). When the handshake goroutine is
// still running, ended runs on it as soon as it returns, which Close makes
// prompt; otherwise at once, on the caller's goroutine. Hello() stays
// answerable until ended has run. The engine uses it when a client hangs up
// mid-handshake: one whose certificate was just refused has seen the alert
// and may hang up before the goroutine that sent it has even returned, and
// it must be counted as refused, not as gone.
func (c *Conn) CloseThen(ended func(error)) {
	c.mu.Lock()
	running := c.phase == Handshaking && !c.hsDone
	var err error
	if c.hsDone {
		err = handshakeFailure(c.hsErr)
	}
	if c.err == nil {
		c.err = ErrClosed
	}
	c.releaseLocked()
	if running {
		c.ended = ended
	} else {
		c.info = nil
	}
	c.mu.Unlock()
	if !running {
		ended(err)
	}
}

func (c *Conn) fail(err error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.failLocked(err)
}

// failLocked records the sticky error and releases the I/O state. Hello()
// and PeerCN() stay answerable so the engine can log who failed.
func (c *Conn) failLocked(err error) error {
	if c.err != nil {
		return c.err
	}
	c.err = err
	c.releaseLocked()
	return err
}

func (c *Conn) releaseLocked() {
	c.phase = Closed
	if c.ad != nil {
		c.ad.close()
	}
	c.ad, c.tc, c.hello, c.hsErr = nil, nil, nil, nil
}

// HandshakeComplete reports whether the handshake succeeded, even when the
// Conn has closed since: a single Feed may establish, return the client's
// first data and then meet its close_notify, so Phase alone would say
// Closed for a client whose data must still be handled. Any goroutine.
func (c *Conn) HandshakeComplete() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.done
}

// Phase reports the current phase. Any goroutine.
func (c *Conn) Phase() Phase {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.phase
}

// Hello reports what the client offered; nil until a complete ClientHello
// was seen, and again after Close. Kept across a failed handshake so it can
// be logged with the failure. Any goroutine; read-only.
func (c *Conn) Hello() *HelloInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.info
}

// ReleaseHello drops the ClientHello summary once it has been logged: an
// established connection lives for hours, and ten thousand of them would
// keep ten thousand copies of what their clients offered. Any goroutine.
func (c *Conn) ReleaseHello() {
	c.mu.Lock()
	c.info = nil
	c.mu.Unlock()
}

// ConnectionState returns crypto/tls's view of the connection while
// Established, the zero value otherwise (before, it would wait for the
// handshake goroutine's lock; after, the tls.Conn is gone).
func (c *Conn) ConnectionState() tls.ConnectionState {
	c.mu.Lock()
	ph, tc := c.phase, c.tc
	c.mu.Unlock()
	if ph != Established || tc == nil {
		return tls.ConnectionState{}
	}
	return tc.ConnectionState()
}

// PeerCN is the subject common name of the client certificate that
// verification accepted (the leaf of the first verified chain), "" if none
// was verified. Set on entering Established; survives Close.
func (c *Conn) PeerCN() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.peerCN
}

func peerCN(cs tls.ConnectionState) string {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return ""
	}
	// Clone so the name does not pin the certificate's parse buffers.
	return strings.Clone(cs.VerifiedChains[0][0].Subject.CommonName)
}
