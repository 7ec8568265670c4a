package cluster

import (
	"encoding/binary"
	"fmt"
	"strings"

	"cotd/engine/directory"
)

// frameKind says what a message frame carries.
type frameKind uint8

// The frame kinds.
const (
	// frameGroup: a broadcast, on cotd.g.<group>.
	frameGroup frameKind = iota + 1
	// frameDirect: a message for one client, on cotd.n.<node>.
	frameDirect
	// frameReplay: a client's latest SA for a node that just started to
	// hear its groups, on cotd.n.<node>.
	frameReplay
	numFrameKinds
)

var frameNames = [numFrameKinds]string{"", "group", "direct", "replay"}

func (k frameKind) String() string {
	if k > 0 && k < numFrameKinds {
		return frameNames[k]
	}
	return "unknown"
}

// frameVersion leads every frame; a node refuses frames of another.
const frameVersion = 1

// frame is one message crossing nodes: who sent it, with the groups it was
// sent with, and the event as the origin routed it (<marti> applied).
type frame struct {
	kind  frameKind
	from  directory.Origin
	toUID string
	xml   []byte
}

// appendFrame encodes f after dst.
func appendFrame(dst []byte, f *frame) []byte {
	dst = append(dst, frameVersion, byte(f.kind))
	var flags byte
	if f.from.Server {
		flags |= 1
	}
	dst = append(dst, flags)
	dst = binary.AppendUvarint(dst, f.from.ConnID)
	dst = appendString(dst, f.from.Node)
	dst = appendString(dst, f.from.Identity)
	dst = appendStrings(dst, f.from.In)
	dst = appendStrings(dst, f.from.Out)
	dst = appendString(dst, f.toUID)
	return append(dst, f.xml...)
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendStrings(dst []byte, ss []string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(ss)))
	for _, s := range ss {
		dst = appendString(dst, s)
	}
	return dst
}

// maxGroups bounds the group lists a frame may carry.
const maxGroups = 4096

// decodeFrame parses b; f.xml aliases b.
func decodeFrame(b []byte, f *frame) error {
	if len(b) < 3 {
		return fmt.Errorf("%w: %d bytes", ErrFrame, len(b))
	}
	if b[0] != frameVersion {
		return fmt.Errorf("%w: version %d, want %d", ErrFrame, b[0], frameVersion)
	}
	f.kind = frameKind(b[1])
	if f.kind == 0 || f.kind >= numFrameKinds {
		return fmt.Errorf("%w: kind %d", ErrFrame, b[1])
	}
	f.from = directory.Origin{Server: b[2]&1 != 0}
	d := decoder{b: b[3:]}
	f.from.ConnID = d.uvarint()
	f.from.Node = d.string()
	f.from.Identity = d.string()
	f.from.In = d.strings()
	f.from.Out = d.strings()
	f.toUID = d.string()
	if d.err != nil {
		return d.err
	}
	f.xml = d.b
	return nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = fmt.Errorf("%w: bad varint", ErrFrame)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.err = fmt.Errorf("%w: string of %d bytes past the end", ErrFrame, n)
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) strings() []string {
	n := d.uvarint()
	if d.err != nil || n == 0 {
		return nil
	}
	if n > maxGroups {
		d.err = fmt.Errorf("%w: %d groups", ErrFrame, n)
		return nil
	}
	out := make([]string, 0, n)
	for range n {
		out = append(out, d.string())
	}
	return out
}

// token makes a name one NATS subject token: letters, digits, '-' and '_'
// stay, every other byte becomes %XX (so "." and "*" cannot split or
// widen a subject, and two names never share a token).
func token(name string) string {
	if name == "" {
		return "%"
	}
	clean := true
	for i := range len(name) {
		if !plain(name[i]) {
			clean = false
			break
		}
	}
	if clean {
		return name
	}
	var sb strings.Builder
	const hex = "0123456789ABCDEF"
	for i := range len(name) {
		if c := name[i]; plain(c) {
			sb.WriteByte(c)
		} else {
			sb.WriteByte('%')
			sb.WriteByte(hex[c>>4])
			sb.WriteByte(hex[c&15])
		}
	}
	return sb.String()
}

func plain(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// The subjects (doc.go).
const (
	prefix        = "cotd."
	subjGroup     = prefix + "g."
	subjNode      = prefix + "n."
	subjPresence  = prefix + "p."
	subjHeartbeat = prefix + "hb."
	subjSync      = prefix + "sync."
	subjAskSA     = prefix + "q.sa"
)
