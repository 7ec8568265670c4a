package cot

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// fuzzMaxFrame is small so that the fuzzer reaches the cap with short inputs.
const fuzzMaxFrame = 512

// fuzzSeeds are real captures, the test mix and inputs that reach every framer state.
func fuzzSeeds(tb testing.TB) [][]byte {
	seeds := [][]byte{
		fixture(tb, "connect-stream.bin"),
		fixture(tb, "position.xml"),
		fixture(tb, "ping.xml"),
		mixStream(tb),
		testdata(tb, "auth.xml"),
		[]byte("\xEF\xBB\xBF<?xml version='1.0'?>\n<!-- c -- c --->\n<event a='>' b=\"</event>\"/>"),
		[]byte(`<event><detail><remarks><![CDATA[</event> ]]]></remarks><?pi ??></detail></event >`),
		[]byte(`<event><detail><marti><dest callsign="A" uid="B"/><dest uid="C"/></marti></detail></event>`),
		[]byte("<event><a></b></event>"),
		[]byte("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
		[]byte("GET / HTTP/1.1\r\n\r\n"),
		[]byte("<event>" + string(bytes.Repeat([]byte("x"), fuzzMaxFrame)) + "</event>"),
	}
	for _, f := range mixFiles {
		seeds = append(seeds, testdata(tb, f))
	}
	return seeds
}

type framed struct {
	docs []string
	err  string
}

func frameSplit(in []byte, cuts ...int) framed {
	var chunks [][]byte
	prev := 0
	for _, c := range cuts {
		chunks = append(chunks, in[prev:c])
		prev = c
	}
	chunks = append(chunks, in[prev:])
	docs, err := frameAll(fuzzMaxFrame, chunks)
	return framed{docs, fmt.Sprint(err)}
}

func FuzzXMLFramer(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s, uint16(len(s)/2))
	}
	f.Fuzz(func(t *testing.T, in []byte, cut uint16) {
		whole := frameSplit(in)
		at := int(cut) % (len(in) + 1)
		if split := frameSplit(in, at); !slices.Equal(split.docs, whole.docs) || split.err != whole.err {
			t.Fatalf("split at %d: %q %s\nwhole: %q %s", at, split.docs, split.err, whole.docs, whole.err)
		}
		// Byte by byte costs a Feed per byte; the minimizer reruns the target thousands of
		// times, so keep it to inputs of a few documents.
		if len(in) <= 1024 {
			cuts := make([]int, 0, len(in))
			for i := 1; i < len(in); i++ {
				cuts = append(cuts, i)
			}
			if bw := frameSplit(in, cuts...); !slices.Equal(bw.docs, whole.docs) || bw.err != whole.err {
				t.Fatalf("bytewise: %q %s\nwhole: %q %s", bw.docs, bw.err, whole.docs, whole.err)
			}
		}
		var h Header
		for _, doc := range whole.docs {
			if len(doc) > fuzzMaxFrame || doc[0] != '<' || doc[len(doc)-1] != '>' {
				t.Fatalf("bad document (%d bytes): %q", len(doc), doc)
			}
			// A framed document is self-contained: framed alone it is itself.
			if again := frameSplit([]byte(doc)); !slices.Equal(again.docs, []string{doc}) || again.err != "<nil>" {
				t.Fatalf("re-framing %q gives %q %s", doc, again.docs, again.err)
			}
			err := ScanHeader([]byte(doc), &h)
			if embedded := embedsEventEnd([]byte(doc)); embedded != errors.Is(err, ErrEmbeddedEventEnd) ||
				err != nil && !embedded {
				t.Fatalf("ScanHeader of framed %q: %v (embedded event end: %v)", doc, err, embedded)
			}
			if err == nil {
				checkMarti(t, []byte(doc), &h)
			}
		}
	})
}

func FuzzScanHeader(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		var h Header
		err := ScanHeader(doc, &h)
		if err == nil && h.Kind == DocUnknown {
			t.Fatal("no error and no document kind")
		}
		if h.MartiStart >= 0 && (h.MartiEnd <= h.MartiStart || h.MartiEnd > len(doc)) {
			t.Fatalf("marti range [%d,%d) in %d bytes", h.MartiStart, h.MartiEnd, len(doc))
		}
		framed := frameSplit(doc)
		if len(framed.docs) != 1 || framed.err != "<nil>" || framed.docs[0] != string(bytes.TrimSpace(doc)) {
			return // not exactly one well-formed document: not panicking is all we ask
		}
		if embedded := embedsEventEnd(framed.docs[0]); embedded != errors.Is(err, ErrEmbeddedEventEnd) ||
			err != nil && !embedded {
			t.Fatalf("ScanHeader of a well-formed document: %v (embedded event end: %v)", err, embedded)
		}
		if err == nil {
			checkMarti(t, doc, &h)
		}
	})
}

// embedsEventEnd is the reference for ErrEmbeddedEventEnd, for a document the framer emitted:
// an <event> in which "</event" occurs anywhere but as its final end tag.
func embedsEventEnd[T string | []byte](doc T) bool {
	d := []byte(doc)
	if !bytes.HasPrefix(d, []byte("<event")) || !isSpaceOr(d[len("<event"):], "/>") {
		return false
	}
	n := bytes.Count(d, []byte("</event"))
	last := bytes.LastIndex(d, []byte("</event"))
	ownEnd := last >= 0 && len(bytes.TrimLeft(d[last+len("</event"):], " \t\r\n")) == 1
	return n > 1 || n == 1 && !ownEnd
}

// isSpaceOr reports whether b starts with white space or one of the bytes in set.
func isSpaceOr(b []byte, set string) bool {
	return len(b) > 0 && (isSpace(b[0]) || strings.IndexByte(set, b[0]) >= 0)
}

// checkMarti asserts that the marti range is sane and that StripMarti leaves exactly one
// document.
func checkMarti(t *testing.T, doc []byte, h *Header) {
	t.Helper()
	if h.MartiStart >= 0 {
		m := doc[h.MartiStart:h.MartiEnd]
		if !bytes.HasPrefix(m, []byte("<marti")) || m[len(m)-1] != '>' {
			t.Fatalf("marti range [%d,%d) covers %q", h.MartiStart, h.MartiEnd, m)
		}
	} else if len(h.DestCallsigns)+len(h.DestUIDs) > 0 {
		t.Fatal("dests without a marti element")
	}
	stripped := StripMarti(doc, h)
	trimmed := bytes.TrimSpace(stripped)
	got, err := frameAll(0, [][]byte{stripped})
	if err != nil || len(got) != 1 || got[0] != string(trimmed) {
		t.Fatalf("StripMarti output %q frames as %q, %v", stripped, got, err)
	}
}

// FuzzParseTime checks the hand-written timestamp parser against time.Parse on the inputs
// both are meant to accept.
func FuzzParseTime(f *testing.F) {
	for _, s := range []string{
		"2016-01-13T20:43:37.842Z", "2016-01-13T20:43:37Z", "2016-01-13T22:43:37+02:00",
		"2016-01-13T18:13:37.25-02:30", "2024-02-29T00:00:00Z", "2023-02-29T00:00:00Z",
		"2016-01-13T20:43:37.123456789Z", "2016-01-13T20:43:37,5Z",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := parseTime([]byte(s))
		want, err := time.Parse(time.RFC3339Nano, s)
		// time.Parse is laxer (one-digit hours, ',' as decimal separator), so only its
		// canonical spellings must be accepted.
		if err == nil && s == want.Format(time.RFC3339Nano) && !got.Equal(want) {
			t.Fatalf("parseTime(%q) = %v, time.Parse = %v", s, got, want)
		}
		// parseTime also takes a lowercase 't' and 'z', which time.Parse refuses.
		if !got.IsZero() && !strings.ContainsAny(s, "tz") && (err != nil || !got.Equal(want)) {
			t.Fatalf("parseTime(%q) = %v, time.Parse = %v, %v", s, got, want, err)
		}
	})
}
