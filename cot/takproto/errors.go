package takproto

import "errors"

// Sentinel errors, tested with errors.Is. They are wrapped with the offset or the field at
// fault. A frame over the cap is reported as cot.ErrFrameTooLarge, wrapped, so that the
// engine closes a connection for an oversize frame the same way in both protocols.
var (
	// ErrBadMagic: a v1 frame does not start with 0xBF. The Framer does not resynchronise
	// (commo skips to the next 0xBF; TAK Server fails the stream): bytes that are not a
	// frame mean the two ends disagree on the protocol, and guessing hides that.
	ErrBadMagic = errors.New("takproto: bad magic byte")
	// ErrBadVarint: a frame length is not a valid varint of at most 10 bytes for a uint64.
	ErrBadVarint = errors.New("takproto: bad length varint")
	// ErrMalformed: a payload that is not a valid TakMessage (truncated or invalid wire
	// data, a string that is not UTF-8), or a message that cannot be written as CoT XML.
	ErrMalformed = errors.New("takproto: malformed message")
)
