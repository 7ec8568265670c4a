package takproto

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"

	"cotd/cot"
)

// frameResult is what a Framer made of a stream: the payloads, the final error, and what
// it still buffers.
type frameResult struct {
	payloads []string
	err      error
	buffered int
}

func (r frameResult) String() string {
	return fmt.Sprintf("%q err=%v buffered=%d", r.payloads, r.err, r.buffered)
}

func (r frameResult) equal(o frameResult) bool {
	return slices.Equal(r.payloads, o.payloads) && fmt.Sprint(r.err) == fmt.Sprint(o.err) &&
		r.buffered == o.buffered
}

// frameChunks feeds chunks to a fresh Framer and collects what it emits. Payloads are
// copied, since they are valid only during emit.
func frameChunks(maxFrame int, chunks [][]byte) frameResult {
	f := NewFramer(maxFrame)
	var r frameResult
	emit := func(p []byte) error {
		if len(p) > maxFrame {
			return fmt.Errorf("payload of %d bytes over the cap", len(p))
		}
		r.payloads = append(r.payloads, string(p))
		return nil
	}
	for _, c := range chunks {
		if r.err = f.Feed(c, emit); r.err != nil {
			break
		}
	}
	r.buffered = f.Buffered()
	return r
}

// splits returns in cut into chunks at the given offsets.
func splits(in []byte, cuts ...int) [][]byte {
	var chunks [][]byte
	prev := 0
	for _, c := range cuts {
		chunks = append(chunks, in[prev:c])
		prev = c
	}
	return append(chunks, in[prev:])
}

func bytewise(in []byte) [][]byte {
	chunks := make([][]byte, len(in))
	for i := range in {
		chunks[i] = in[i : i+1]
	}
	return chunks
}

func randomChunks(r *rand.Rand, in []byte) [][]byte {
	var chunks [][]byte
	for len(in) > 0 {
		n := min(len(in), 1+r.IntN(16))
		chunks = append(chunks, in[:n])
		in = in[n:]
	}
	return chunks
}

// frameAllWays frames in whole, byte by byte and in random chunks, and fails unless all
// agree; it returns the result.
func frameAllWays(t *testing.T, maxFrame int, in []byte) frameResult {
	t.Helper()
	whole := frameChunks(maxFrame, [][]byte{in})
	if bw := frameChunks(maxFrame, bytewise(in)); !bw.equal(whole) {
		t.Fatalf("byte by byte: %v\nwhole: %v", bw, whole)
	}
	r := rand.New(rand.NewPCG(uint64(len(in)), 7))
	for range 20 {
		if rc := frameChunks(maxFrame, randomChunks(r, in)); !rc.equal(whole) {
			t.Fatalf("random chunks: %v\nwhole: %v", rc, whole)
		}
	}
	return whole
}

func frame(payload string) string { return string(AppendFrame(nil, []byte(payload))) }

func TestFramerTable(t *testing.T) {
	long := strings.Repeat("p", 300)
	for _, tc := range []struct {
		name     string
		in       string
		maxFrame int
		want     []string
		err      error
		buffered int
	}{
		{name: "one frame", in: "\xbf\x03abc", want: []string{"abc"}},
		{name: "back to back", in: frame("a") + frame("bc") + frame(long), want: []string{"a", "bc", long}},
		{name: "empty payload", in: "\xbf\x00" + frame("x"), want: []string{"", "x"}},
		{name: "non-canonical length", in: "\xbf\x83\x00abc", want: []string{"abc"}},
		{name: "exactly the cap", in: frame("12345"), maxFrame: 5, want: []string{"12345"}},
		{name: "over the cap", in: frame("ok") + frame("123456"), maxFrame: 5, want: []string{"ok"},
			err: cot.ErrFrameTooLarge},
		{name: "bad magic first", in: "\x01\x03abc", err: ErrBadMagic},
		{name: "bad magic after a frame", in: frame("abc") + "<event/>", want: []string{"abc"}, err: ErrBadMagic},
		{name: "goatak stray zero", in: frame("abc") + "\x00" + frame("d"), want: []string{"abc"}, err: ErrBadMagic},
		{name: "mesh header is not a stream frame", in: "\xbf\x01\xbf" + "abc", want: []string{"\xbf"}, err: ErrBadMagic},
		{name: "varint overflow", in: "\xbf" + strings.Repeat("\x80", 9) + "\x02", err: ErrBadVarint},
		{name: "varint too long", in: "\xbf" + strings.Repeat("\x80", 10) + "\x00", err: ErrBadVarint},
		{name: "truncated payload", in: frame("abc") + "\xbf\x05ab", want: []string{"abc"}, buffered: 2},
		{name: "truncated length", in: frame("abc") + "\xbf\x80", want: []string{"abc"}},
		{name: "magic only", in: "\xbf"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			maxFrame := tc.maxFrame
			if maxFrame == 0 {
				maxFrame = 1 << 20
			}
			got := frameAllWays(t, maxFrame, []byte(tc.in))
			if !slices.Equal(got.payloads, tc.want) || got.buffered != tc.buffered {
				t.Errorf("got %v, want %q buffered=%d", got, tc.want, tc.buffered)
			}
			if !errors.Is(got.err, tc.err) || (tc.err == nil) != (got.err == nil) {
				t.Errorf("err = %v, want %v", got.err, tc.err)
			}
		})
	}
}

func TestFramerErrorText(t *testing.T) {
	f := NewFramer(0)
	err := f.Feed([]byte(frame("abc")+"x"), func([]byte) error { return nil })
	if err == nil || err.Error() != "takproto: bad magic byte: 0x78 at stream offset 5" {
		t.Errorf("err = %v", err)
	}
	if again := f.Feed([]byte(frame("ok")), func([]byte) error { t.Error("emitted after a failure"); return nil }); again != err {
		t.Errorf("error not sticky: %v", again)
	}
	f.Reset()
	var got []string
	if err := f.Feed([]byte(frame("ok")), func(p []byte) error { got = append(got, string(p)); return nil }); err != nil || len(got) != 1 {
		t.Errorf("after Reset: %q %v", got, err)
	}
}

// TestFramerOversizeBeforeAllocation: a length claiming 1 GiB under a 1 MiB cap fails on
// the varint, before any payload byte, and nothing near either size is allocated.
func TestFramerOversizeBeforeAllocation(t *testing.T) {
	header := AppendFrame(nil, nil)[:1]
	header = append(header, 0x80, 0x80, 0x80, 0x80, 0x04) // 1 << 30
	stream := append(header, bytes.Repeat([]byte{'x'}, 4096)...)
	for _, tc := range []struct {
		name   string
		chunks [][]byte
	}{
		{"whole", [][]byte{stream}},
		{"header alone", [][]byte{header}},
		{"bytewise", bytewise(stream)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := NewFramer(1 << 20)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			var err error
			for _, c := range tc.chunks {
				if err = f.Feed(c, func([]byte) error { t.Error("emitted"); return nil }); err != nil {
					break
				}
			}
			runtime.ReadMemStats(&after)
			if !errors.Is(err, cot.ErrFrameTooLarge) {
				t.Fatalf("err = %v, want cot.ErrFrameTooLarge", err)
			}
			if f.Buffered() != 0 || cap(f.buf) != 0 {
				t.Errorf("buffered %d, buffer capacity %d", f.Buffered(), cap(f.buf))
			}
			// Well under allocAtOnce; a little slack for the runtime and the test framework.
			if n := after.TotalAlloc - before.TotalAlloc; n > 16<<10 {
				t.Errorf("allocated %d bytes before rejecting", n)
			}
		})
	}
	// Only the error message allocates: a handful of small objects.
	if raceEnabled {
		return
	}
	f := NewFramer(1 << 20)
	if n := testing.AllocsPerRun(100, func() {
		f.Reset()
		_ = f.Feed(header, func([]byte) error { return nil })
	}); n > 6 {
		t.Errorf("%v allocations to reject an oversize length", n)
	}
}

func TestFramerZeroCopyAndAllocs(t *testing.T) {
	stream := []byte(frame("first") + frame("second"))
	f := NewFramer(0)
	err := f.Feed(stream, func(p []byte) error {
		if &p[0] != &stream[bytes.Index(stream, p)] {
			t.Errorf("payload %q is a copy, want a sub-slice of the input", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if raceEnabled {
		return
	}
	emit := func([]byte) error { return nil }
	if n := testing.AllocsPerRun(100, func() { _ = f.Feed(stream, emit) }); n != 0 {
		t.Errorf("whole frames: %v allocations, want 0", n)
	}
	// A split payload is assembled in one buffer, allocated once and then reused.
	half := len(stream) / 2
	if n := testing.AllocsPerRun(100, func() {
		_ = f.Feed(stream[:half], emit)
		_ = f.Feed(stream[half:], emit)
	}); n != 0 {
		t.Errorf("split frames with a warm buffer: %v allocations, want 0", n)
	}
}

// TestFramerLargeSplitGrowsWithInput: a split payload over allocAtOnce does not get its
// whole claimed length reserved up front.
func TestFramerLargeSplitGrowsWithInput(t *testing.T) {
	const size = 1 << 20
	payload := bytes.Repeat([]byte{'y'}, size)
	stream := AppendFrame(nil, payload)
	f := NewFramer(size)
	var got []byte
	emit := func(p []byte) error { got = append(got[:0], p...); return nil }
	if err := f.Feed(stream[:1000], emit); err != nil {
		t.Fatal(err)
	}
	if c := cap(f.buf); c >= size/2 {
		t.Errorf("after 1000 bytes the buffer has capacity %d", c)
	}
	for off := 1000; off < len(stream); off += 1460 {
		if err := f.Feed(stream[off:min(off+1460, len(stream))], emit); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("payload of %d bytes differs", len(got))
	}
	if f.Buffered() != 0 || cap(f.buf) != 0 {
		t.Errorf("large buffer retained: %d/%d", f.Buffered(), cap(f.buf))
	}
}

func TestFramerEmitErrorStops(t *testing.T) {
	stream := []byte(frame("a") + frame("bb") + frame("c"))
	stop := errors.New("switch")
	f := NewFramer(0)
	var got []string
	err := f.Feed(stream, func(p []byte) error {
		got = append(got, string(p))
		if string(p) == "bb" {
			return stop
		}
		return nil
	})
	if err != stop || f.Unread() != len(frame("c")) {
		t.Fatalf("err = %v, unread = %d", err, f.Unread())
	}
	rest := stream[len(stream)-f.Unread():]
	if err := f.Feed(rest, func(p []byte) error { got = append(got, string(p)); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"a", "bb", "c"}) {
		t.Errorf("got %q", got)
	}
}

func TestAppendFrame(t *testing.T) {
	for _, tc := range []struct {
		n    int
		head string
	}{
		{0, "\xbf\x00"},
		{1, "\xbf\x01"},
		{127, "\xbf\x7f"},
		{128, "\xbf\x80\x01"},
		{300, "\xbf\xac\x02"},
		{1 << 16, "\xbf\x80\x80\x04"},
	} {
		payload := bytes.Repeat([]byte{'q'}, tc.n)
		got := AppendFrame([]byte("pre"), payload)
		if want := "pre" + tc.head + string(payload); string(got) != want {
			t.Errorf("AppendFrame(%d bytes) = %q..., want %q... (no trailing byte)", tc.n, got[:min(len(got), 8)], want[:min(len(want), 8)])
		}
	}
	m := fixtureMsg(t, "sa")
	if got, want := AppendMessageFrame([]byte("pre"), m), AppendFrame([]byte("pre"), m.AppendMarshal(nil)); !bytes.Equal(got, want) {
		t.Errorf("AppendMessageFrame differs from AppendFrame(AppendMarshal)")
	}
}

func TestFrameStateString(t *testing.T) {
	for s, want := range map[frameState]string{stMagic: "magic", stLength: "length", stPayload: "payload",
		stFailed: "failed", 9: "frameState(9)"} {
		if s.String() != want {
			t.Errorf("%d: %q", s, s.String())
		}
	}
}
