package tlsstate

import "errors"

// Sentinel errors. Feed wraps the underlying cause with %w where there is one,
// so callers classify with errors.Is and still log the detail.
var (
	// ErrNotTLS: the first bytes are not a TLS handshake record (plain XML,
	// "GET /", an SSLv2 hello, ...). Returned on the first byte that proves it,
	// before anything is buffered or any goroutine is started.
	ErrNotTLS = errors.New("tlsstate: not a TLS handshake record")

	// ErrBadHello: the bytes start like TLS but do not frame a ClientHello (a
	// non-handshake record mid-hello, an empty record, another handshake
	// message first). crypto/tls would reject these too; failing here saves the
	// goroutine.
	ErrBadHello = errors.New("tlsstate: malformed client hello")

	// ErrHelloTooLarge: the ClientHello would not fit in Options.MaxHello.
	ErrHelloTooLarge = errors.New("tlsstate: client hello too large")

	// ErrInputOverflow: the client sent more than Options.MaxPending bytes
	// that the handshake goroutine has not consumed yet.
	ErrInputOverflow = errors.New("tlsstate: too much unread input during handshake")

	// ErrHandshake wraps the crypto/tls handshake error.
	ErrHandshake = errors.New("tlsstate: handshake failed")

	// ErrProtocol wraps a crypto/tls error on an established connection (bad
	// record MAC, a fatal alert from the peer, ...). A clean close_notify is
	// io.EOF instead.
	ErrProtocol = errors.New("tlsstate: protocol error")

	// ErrNotEstablished: Write before the handshake has completed.
	ErrNotEstablished = errors.New("tlsstate: handshake not complete")

	// ErrClosed: the Conn was closed (by Close or after an error).
	ErrClosed = errors.New("tlsstate: closed")
)
