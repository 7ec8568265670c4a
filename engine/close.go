package engine

// CloseReason says why a connection ended. The first reason set wins; later
// attempts to close keep it.
type CloseReason uint32

// The close reasons, each counted in cotd_closes_total.
const (
	reasonUnset CloseReason = iota
	// ReasonPeerClosed: the client closed (EOF).
	ReasonPeerClosed
	// ReasonIOError: a read or write failed (reset, broken pipe).
	ReasonIOError
	// ReasonIdle: nothing received for limits.idle_timeout.
	ReasonIdle
	// ReasonHandshakeTimeout: TLS handshake not finished in time.
	ReasonHandshakeTimeout
	// ReasonSlowConsumerBytes: what the client was owed (queued plus
	// unwritten) went over limits.outbound_hard_bytes.
	ReasonSlowConsumerBytes
	// ReasonSlowConsumerStalled: output waited unwritten with no progress
	// for limits.write_timeout.
	ReasonSlowConsumerStalled
	// ReasonBadFrame: junk or malformed XML on the stream.
	ReasonBadFrame
	// ReasonFrameTooLarge: a document over limits.max_frame_bytes.
	ReasonFrameTooLarge
	// ReasonTLSError: the TLS handshake or a record failed.
	ReasonTLSError
	// ReasonNotTLS: plaintext sent to the TLS port.
	ReasonNotTLS
	// ReasonShutdown: the server is stopping.
	ReasonShutdown
	// ReasonAdmin: an administrator disconnected the client.
	ReasonAdmin
	// ReasonAuthFailed: a wrong <auth> password, or a user unknown
	// (with auth.require_known_user) or disabled.
	ReasonAuthFailed
	// ReasonRevoked: a peer of the engine (through Directory) closed the
	// client because its certificate was revoked.
	ReasonRevoked
	// ReasonDisabled: a peer of the engine closed the client because its
	// user was disabled.
	ReasonDisabled
	// ReasonReplaced: a newer connection took the client's uid over (the
	// same user reconnecting, or this one silent past sa.takeover_quiet).
	ReasonReplaced
	// ReasonRateLimited: the client kept sending over its inbound budget
	// (limits.inbound_*) until more than a burst waited unread.
	ReasonRateLimited
	// ReasonPartialFrames: the server-wide budget for bytes held in
	// partial frames (limits.max_partial_bytes) was exceeded and this
	// connection held the most.
	ReasonPartialFrames
	numCloseReasons
)

var closeReasonNames = [numCloseReasons]string{
	"unset", "peer_closed", "io_error", "idle", "handshake_timeout", "slow_consumer_bytes",
	"slow_consumer_stalled", "bad_frame", "frame_too_large", "tls_error", "not_tls", "shutdown", "admin", "auth_failed",
	"revoked", "disabled", "replaced", "rate_limited", "partial_frames",
}

func (r CloseReason) String() string {
	if r < numCloseReasons {
		return closeReasonNames[r]
	}
	return "unknown"
}

// FrameKind classifies inbound documents for counting.
type FrameKind uint8

// The frame kinds, counted in cotd_frames_in_total.
const (
	KindSA FrameKind = iota
	KindChat
	KindPing
	KindControl
	KindAuth
	KindOther
	numFrameKinds
)

var frameKindNames = [numFrameKinds]string{"sa", "chat", "ping", "control", "auth", "other"}

func (k FrameKind) String() string {
	if k < numFrameKinds {
		return frameKindNames[k]
	}
	return "unknown"
}
