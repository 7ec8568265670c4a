package tlsstate

import (
	"crypto/md5"
	"encoding/hex"
	"strconv"

	utls "github.com/refraction-networking/utls"
)

// Wire constants of the record and handshake layers (RFC 8446 5.1, 4).
const (
	recordHeaderLen     = 5
	recordTypeHandshake = 0x16
	handshakeHeaderLen  = 4
	typeClientHello     = 1
)

// HelloInfo is what the client offered in its ClientHello. It holds copies,
// not views into the hello buffer, so that buffer can be released. Read-only.
type HelloInfo struct {
	// Size is the ClientHello handshake message in bytes (4-byte header included).
	Size int
	// Records is how many TLS records carried it (1 for nearly every client).
	Records int
	// LegacyVersion is the hello's client_version field (0x0303 for TLS 1.2 and 1.3).
	LegacyVersion uint16
	// Versions are the offered versions: the supported_versions extension
	// without GREASE values, or LegacyVersion alone when the extension is
	// absent (a TLS 1.2-only client).
	Versions []uint16
	// CipherSuites as offered, GREASE values removed.
	CipherSuites []uint16
	// ServerName is the SNI host name, "" if none.
	ServerName string
	// ALPN lists the offered application protocols.
	ALPN []string
	// JA3 is the JA3 fingerprint string: version, ciphers, extensions,
	// groups, point formats, each as decimal values joined by "-", GREASE
	// values left out. "" when the hello did not parse.
	JA3 string
	// JA3Hash is the lower-case hex MD5 of JA3, the form fingerprint lists use.
	JA3Hash string
}

// MaxVersion is the highest offered version (compare with the negotiated
// one to spot downgrades, or pass to tls.VersionName for logs).
func (h *HelloInfo) MaxVersion() uint16 {
	var m uint16
	for _, v := range h.Versions {
		m = max(m, v)
	}
	return m
}

// scanHello looks for one complete ClientHello at the start of buf, which
// holds raw records. It rescans from the start on every call: that costs one
// step per record header, not per byte, and keeps no state between calls.
//
// It returns the handshake message (aliasing buf when it lies in one record,
// a fresh copy when it spans records), or nil and no error when more bytes
// are needed. limit is the wire budget: a hello whose header announces more
// than fits is rejected before its body arrives.
func scanHello(buf []byte, limit int) (msg []byte, records int, err error) {
	var (
		hdr  [handshakeHeaderLen]byte
		have int // handshake-layer bytes seen so far
		need = -1
		off  int
	)
	for {
		rest := buf[off:]
		if len(rest) == 0 {
			return nil, records, nil
		}
		// Check byte by byte so that plaintext is refused on its first byte.
		if rest[0] != recordTypeHandshake {
			return nil, records, firstOr(off, ErrNotTLS, ErrBadHello)
		}
		if len(rest) < 2 {
			return nil, records, nil
		}
		if rest[1] != 3 {
			return nil, records, firstOr(off, ErrNotTLS, ErrBadHello)
		}
		if len(rest) < recordHeaderLen {
			return nil, records, nil
		}
		n := int(rest[3])<<8 | int(rest[4])
		if n == 0 {
			// RFC 8446 5.1: zero-length handshake fragments are forbidden.
			return nil, records, ErrBadHello
		}
		records++
		payload := rest[recordHeaderLen:min(len(rest), recordHeaderLen+n)]
		for i := 0; i < len(payload) && have+i < handshakeHeaderLen; i++ {
			hdr[have+i] = payload[i]
			if have+i == 0 && hdr[0] != typeClientHello {
				return nil, records, ErrBadHello
			}
		}
		if need < 0 && have+len(payload) >= handshakeHeaderLen {
			need = handshakeHeaderLen + (int(hdr[1])<<16 | int(hdr[2])<<8 | int(hdr[3]))
			if recordHeaderLen+need > limit {
				return nil, records, ErrHelloTooLarge
			}
		}
		have += len(payload)
		if need >= 0 && have >= need {
			if records == 1 {
				return buf[recordHeaderLen : recordHeaderLen+need], 1, nil
			}
			return joinHello(buf, need), records, nil
		}
		if len(payload) < n {
			return nil, records, nil
		}
		off += recordHeaderLen + n
	}
}

func firstOr(off int, first, later error) error {
	if off == 0 {
		return first
	}
	return later
}

// joinHello concatenates the payloads of the records that carry a hello of
// need bytes. scanHello has already validated the framing.
func joinHello(buf []byte, need int) []byte {
	msg := make([]byte, 0, need)
	for off := 0; len(msg) < need; {
		n := int(buf[off+3])<<8 | int(buf[off+4])
		p := buf[off+recordHeaderLen : min(len(buf), off+recordHeaderLen+n)]
		msg = append(msg, p[:min(len(p), need-len(msg))]...)
		off += recordHeaderLen + n
	}
	return msg
}

// parseHello fills a HelloInfo from a complete ClientHello message. The
// fields come from utls's parser; the extension order, which utls does not
// expose, comes from a walk of the extensions block. A hello utls rejects
// still gets a HelloInfo (size only): crypto/tls is the judge of validity,
// and the fingerprint is for logs.
func parseHello(msg []byte, records int) *HelloInfo {
	h := &HelloInfo{Size: len(msg), Records: records}
	ch := utls.UnmarshalClientHello(msg)
	if ch == nil {
		return h
	}
	h.LegacyVersion = ch.Vers
	h.CipherSuites = withoutGREASE(ch.CipherSuites)
	h.ServerName = ch.ServerName
	if len(ch.AlpnProtocols) > 0 {
		h.ALPN = append([]string(nil), ch.AlpnProtocols...)
	}
	if vs := withoutGREASE(ch.SupportedVersions); len(vs) > 0 {
		h.Versions = vs
	} else {
		h.Versions = []uint16{ch.Vers}
	}

	curves := make([]uint16, 0, len(ch.SupportedCurves))
	for _, c := range ch.SupportedCurves {
		if !isGREASE(uint16(c)) {
			curves = append(curves, uint16(c))
		}
	}
	points := make([]uint16, len(ch.SupportedPoints))
	for i, p := range ch.SupportedPoints {
		points[i] = uint16(p)
	}

	ja3 := make([]byte, 0, 256)
	ja3 = strconv.AppendUint(ja3, uint64(ch.Vers), 10)
	for _, list := range [][]uint16{h.CipherSuites, extensionTypes(msg), curves, points} {
		ja3 = append(ja3, ',')
		ja3 = appendDashed(ja3, list)
	}
	sum := md5.Sum(ja3)
	h.JA3 = string(ja3)
	h.JA3Hash = hex.EncodeToString(sum[:])
	return h
}

func appendDashed(b []byte, list []uint16) []byte {
	for i, v := range list {
		if i > 0 {
			b = append(b, '-')
		}
		b = strconv.AppendUint(b, uint64(v), 10)
	}
	return b
}

// extensionTypes returns the extension types of a ClientHello in wire
// order, GREASE removed. utls has accepted the message already, so a
// framing error here only cuts the list short.
func extensionTypes(msg []byte) []uint16 {
	s := msg
	skip := func(n int) bool {
		if len(s) < n {
			return false
		}
		s = s[n:]
		return true
	}
	u8 := func() (int, bool) {
		if len(s) < 1 {
			return 0, false
		}
		return int(s[0]), true
	}
	u16 := func() (int, bool) {
		if len(s) < 2 {
			return 0, false
		}
		return int(s[0])<<8 | int(s[1]), true
	}
	// header, client_version, random
	if !skip(handshakeHeaderLen + 2 + 32) {
		return nil
	}
	if n, ok := u8(); !ok || !skip(1+n) { // session_id
		return nil
	}
	if n, ok := u16(); !ok || !skip(2+n) { // cipher_suites
		return nil
	}
	if n, ok := u8(); !ok || !skip(1+n) { // compression_methods
		return nil
	}
	total, ok := u16()
	if !ok || !skip(2) || len(s) < total {
		return nil
	}
	s = s[:total]
	var types []uint16
	for len(s) >= 4 {
		typ := uint16(s[0])<<8 | uint16(s[1])
		n := int(s[2])<<8 | int(s[3])
		if !skip(4 + n) {
			break
		}
		if !isGREASE(typ) {
			types = append(types, typ)
		}
	}
	return types
}

// isGREASE reports the RFC 8701 reserved values 0x0a0a, 0x1a1a, ... 0xfafa,
// which clients sprinkle in at random and fingerprints must ignore.
func isGREASE(v uint16) bool {
	return v&0x0f0f == 0x0a0a && v>>8 == v&0xff
}

func withoutGREASE(in []uint16) []uint16 {
	out := make([]uint16, 0, len(in))
	for _, v := range in {
		if !isGREASE(v) {
			out = append(out, v)
		}
	}
	return out
}
