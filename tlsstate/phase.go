package tlsstate

import "strconv"

// Phase is where a Conn is in its life.
//
// Legal transitions, only forward:
//
//	AwaitHello  -> Handshaking  a complete ClientHello is buffered; the handshake goroutine starts
//	Handshaking -> Established  Feed observes the goroutine's successful end (after Hooks.Wake)
//	any         -> Closed       Close, or the first error Feed returns
//
// Closed is final.
type Phase uint8

const (
	// AwaitHello: on the loop, buffering the first ClientHello. No goroutine.
	AwaitHello Phase = iota
	// Handshaking: crypto/tls runs the handshake in its own goroutine, fed by the loop.
	Handshaking
	// Established: application data; Feed decrypts on the loop, Write encrypts anywhere.
	Established
	// Closed: nothing retained, no goroutine (one that was mid-computation exits on its own).
	Closed
)

// String returns a lower-case name suitable for log fields and metric labels.
func (p Phase) String() string {
	switch p {
	case AwaitHello:
		return "await_hello"
	case Handshaking:
		return "handshaking"
	case Established:
		return "established"
	case Closed:
		return "closed"
	}
	return "phase(" + strconv.Itoa(int(p)) + ")"
}
