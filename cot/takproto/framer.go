package takproto

import (
	"fmt"
	"slices"

	"cotd/cot"
	"google.golang.org/protobuf/encoding/protowire"
)

// Magic is the byte that starts every TAK protocol v1 frame.
const Magic = 0xBF

// maxVarintLen is the longest varint that can hold a uint64.
const maxVarintLen = 10

const (
	// allocAtOnce is the largest split payload whose buffer is allocated whole as soon as
	// its length is known. Real events are below it (commo drops frames over 64 KiB); a
	// larger claimed length gets a buffer that grows with the bytes actually received, so
	// that a peer cannot make the server reserve maxFrame bytes by sending a length alone.
	allocAtOnce = 64 << 10
	// retainBuf is the largest split buffer kept for reuse after its frame is emitted.
	retainBuf = 64 << 10
)

// frameState is where the Framer is within the stream.
//
// stMagic -> stLength on the magic byte; stLength -> stLength while the varint continues,
// -> stPayload when it ends with a non-zero length, -> stMagic when it ends with length
// zero (the empty payload is emitted at once); stPayload -> stMagic once the payload is
// complete and emitted. Any state -> stFailed on a framing error; stFailed is left only by
// Reset.
type frameState uint8

const (
	stMagic frameState = iota
	stLength
	stPayload
	stFailed
)

func (s frameState) String() string {
	switch s {
	case stMagic:
		return "magic"
	case stLength:
		return "length"
	case stPayload:
		return "payload"
	case stFailed:
		return "failed"
	}
	return fmt.Sprintf("frameState(%d)", uint8(s))
}

// Framer splits a TAK protocol v1 stream (0xBF, unsigned varint length, payload; frames
// back to back) into payloads. It is resumable: Feed may be called with any split of the
// stream and all state lives in the struct. It is not safe for concurrent use; one Framer
// belongs to one connection.
type Framer struct {
	state    frameState
	maxFrame int
	length   uint64 // the length varint decoded so far, then the payload length
	lenBytes int    // bytes of the length varint seen
	buf      []byte // the part of a split payload received in earlier Feeds
	offset   int64  // stream bytes consumed by earlier Feeds, for error messages
	unread   int
	err      error
}

// NewFramer returns a Framer that rejects any payload longer than maxFrame bytes
// (cot.DefaultMaxFrame if maxFrame <= 0).
func NewFramer(maxFrame int) *Framer {
	if maxFrame <= 0 {
		maxFrame = cot.DefaultMaxFrame
	}
	return &Framer{maxFrame: maxFrame}
}

// Buffered returns the number of payload bytes held for an incomplete frame.
func (f *Framer) Buffered() int { return len(f.buf) }

// Unread returns how many bytes at the end of the last Feed's input were not scanned because
// emit returned an error; the Framer stands at the frame boundary before them.
func (f *Framer) Unread() int { return f.unread }

// Reset returns the Framer to its initial state, clearing a sticky error. It keeps the
// buffer's capacity for reuse.
func (f *Framer) Reset() {
	*f = Framer{maxFrame: f.maxFrame, buf: f.buf[:0]}
}

// Feed scans p and calls emit once per complete frame, in order, with its payload. A payload
// that lies wholly within p is passed as a sub-slice of p; one split across Feeds is
// assembled in the Framer's buffer. Either way it is valid only during the call.
//
// If emit returns an error, Feed stops and returns that error unchanged; the Framer is then
// at a frame boundary and Unread tells how much of p is left. Framing errors (ErrBadMagic,
// ErrBadVarint, cot.ErrFrameTooLarge, wrapped with the stream offset) are sticky: every later
// Feed returns the same error until Reset.
//
// A length over maxFrame is reported as soon as the varint read so far exceeds it, before
// any payload byte is buffered.
func (f *Framer) Feed(p []byte, emit func(payload []byte) error) error {
	f.unread = 0
	if f.err != nil {
		return f.err
	}
	// start is the index in p where the current payload's bytes begin; only meaningful in
	// stPayload.
	start := 0
	i := 0
	for i < len(p) {
		switch f.state {
		case stMagic:
			if p[i] != Magic {
				return f.fail(ErrBadMagic, i, fmt.Sprintf("0x%02x", p[i]))
			}
			f.state, f.length, f.lenBytes = stLength, 0, 0
			i++
		case stLength:
			c := p[i]
			if f.lenBytes == maxVarintLen-1 && c > 1 {
				// The tenth byte may only hold bit 63, and must end the varint.
				return f.fail(ErrBadVarint, i, "length varint overflows 64 bits")
			}
			f.length |= uint64(c&0x7f) << (7 * f.lenBytes)
			f.lenBytes++
			i++
			// Bits only ever get added, so the check is valid before the varint ends.
			if f.length > uint64(f.maxFrame) {
				return f.fail(cot.ErrFrameTooLarge, i-1, fmt.Sprintf("length over %d bytes", f.maxFrame))
			}
			if c < 0x80 {
				if f.length == 0 {
					f.state = stMagic
					if err := f.emitAt(p, i, emit, p[i:i]); err != nil {
						return err
					}
					continue
				}
				f.state, start = stPayload, i
			}
		case stPayload:
			rest := int(f.length) - len(f.buf)
			if len(p)-i < rest {
				// The payload goes on in a later Feed; the block after the loop keeps it.
				i = len(p)
				continue
			}
			i += rest
			payload := p[start:i]
			if len(f.buf) > 0 {
				f.keep(payload)
				payload = f.buf
			}
			f.state = stMagic
			err := f.emitAt(p, i, emit, payload)
			if len(f.buf) > 0 {
				f.release()
			}
			if err != nil {
				return err
			}
		default:
			return f.fail(ErrMalformed, i, "framer in state "+f.state.String())
		}
	}

	// The split-buffer block: a payload still incomplete at the end of p is kept. Its
	// length was checked against maxFrame when the varint ended, so the buffer never grows
	// beyond maxFrame.
	if f.state == stPayload {
		f.keep(p[start:])
	}
	f.offset += int64(len(p))
	return nil
}

// emitAt emits one payload; i is the index in p just past the frame.
func (f *Framer) emitAt(p []byte, i int, emit func([]byte) error, payload []byte) error {
	err := emit(payload)
	if err != nil {
		f.unread = len(p) - i
		f.offset += int64(i)
	}
	return err
}

// keep appends b, part of the current payload, to the split buffer.
func (f *Framer) keep(b []byte) {
	need := len(f.buf) + len(b)
	if need > cap(f.buf) {
		total := int(f.length)
		newCap := total
		if total > allocAtOnce {
			newCap = min(max(2*cap(f.buf), need, allocAtOnce), total)
		}
		nb := make([]byte, len(f.buf), newCap)
		copy(nb, f.buf)
		f.buf = nb
	}
	f.buf = append(f.buf, b...)
}

// release empties the split buffer after its payload was emitted, dropping it when large.
func (f *Framer) release() {
	if cap(f.buf) > retainBuf {
		f.buf = nil
	} else {
		f.buf = f.buf[:0]
	}
}

// fail records a sticky framing error at index i of the current input.
func (f *Framer) fail(kind error, i int, detail string) error {
	f.err = fmt.Errorf("%w: %s at stream offset %d", kind, detail, f.offset+int64(i))
	f.state = stFailed
	return f.err
}

// AppendFrame appends one streaming frame holding payload to dst: exactly the magic byte,
// the length varint and the payload, nothing after it.
func AppendFrame(dst, payload []byte) []byte {
	dst = append(dst, Magic)
	dst = protowire.AppendVarint(dst, uint64(len(payload)))
	return append(dst, payload...)
}

// AppendMessageFrame appends m as one streaming frame to dst, encoding it in place (no
// intermediate payload buffer). It allocates only when dst lacks the capacity, and then once.
func AppendMessageFrame(dst []byte, m *TakMessage) []byte {
	n := m.Size()
	dst = slices.Grow(dst, 1+protowire.SizeVarint(uint64(n))+n)
	dst = append(dst, Magic)
	dst = protowire.AppendVarint(dst, uint64(n))
	return m.appendTo(dst)
}
