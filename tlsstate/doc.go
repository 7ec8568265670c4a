// Package tlsstate runs the server side of TLS for one connection owned by
// an event loop, without ever blocking that loop, on top of crypto/tls
// rather than a fork of it.
//
// # Model
//
// The loop owns the socket. It passes each read's ciphertext to Conn.Feed and
// gets plaintext back; all ciphertext the connection must send (handshake
// flights, application records, alerts) comes out through Hooks.Out, in wire
// order, into the engine's single outbound queue. A Conn moves through the
// Phase values AwaitHello, Handshaking, Established and Closed.
//
// AwaitHello runs on the loop: it buffers records until one complete
// ClientHello and rejects anything else at the first byte that proves it
// (ErrNotTLS for plaintext, ErrHelloTooLarge past Options.MaxHello), so
// junk on the TLS port costs neither a goroutine nor a buffer. The hello is
// parsed with utls for the log: offered versions, suites, SNI, ALPN and a
// JA3 fingerprint (HelloInfo).
//
// Handshaking runs crypto/tls's tls.Server in a goroutine over an internal
// net.Conn whose Read waits for bytes the loop feeds and whose Write calls
// Hooks.Out. A goroutine, because crypto/tls's handshake error is sticky: an
// interrupted handshake cannot be resumed later on the loop. It also keeps
// RSA signatures (about 1 ms each) off the loop. The goroutine exists only
// from the complete ClientHello to the end of the handshake or Close, and
// holds no lock across I/O, so stalled clients starve nobody. Hooks.Wake
// tells the loop it has ended; the next Feed moves to Established.
//
// Established runs on the loop: Feed lends the ciphertext to the internal
// net.Conn and calls tls.Conn.Read until the net.Conn reports would-block.
// Write may be called from any goroutine.
//
// # Why a would-block error is safe after the handshake
//
// In Go 1.26 crypto/tls, (*Conn).readRecordOrCCS (conn.go) reads through
// readFromUntil, which appends whatever the net.Conn returned to c.rawInput
// via bytes.Buffer.ReadFrom before returning the error; the partial record
// stays there for the next call. The error is made sticky only if
//
//	if e, ok := err.(net.Error); !ok || !e.Temporary() {
//		c.in.setErrorLocked(err)
//	}
//
// (once for the header read, once for the body read), and setErrorLocked is
// what stores c.in.err and wraps net.Errors as permanentError. The adapter's
// would-block value implements net.Error with Temporary() true, so it is
// returned to the caller unchanged and unrecorded, and the next Read resumes
// from c.rawInput. A handshake message fragmented across records (e.g. a
// KeyUpdate) resumes too: readHandshakeBytes keeps partial bytes in c.hand.
// (*Conn).Read calls Handshake first, which returns at once when
// isHandshakeComplete is set. TestWouldBlockResumes pins this behaviour, so
// a future Go release that changes it fails the tests instead of losing
// data. During the handshake nothing depends on it: there the adapter
// blocks.
//
// # Memory
//
// After the handshake the Conn holds no input or hello buffer of its own. A
// tls.Conn keeps, for its lifetime, the capacity of its record buffer
// (c.rawInput: about the largest record received plus 512 bytes, up to
// double after growth), of its handshake buffer (c.hand: roughly the
// client's largest handshake record), the parsed client certificate chain
// and the cipher states. Its encrypt buffer comes from a sync.Pool in
// writeRecordLocked and is not retained. The HelloInfo (a few hundred bytes, mostly the JA3
// string) is kept until Close.
package tlsstate
