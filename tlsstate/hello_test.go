package tlsstate

import (
	"bytes"
	"crypto/md5"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"

	utls "github.com/refraction-networking/utls"

	"cotd/internal/poll"
)

// refragment re-frames the handshake payload of hello (one or more records)
// into records of at most size payload bytes.
func refragment(t testing.TB, hello []byte, size int) []byte {
	t.Helper()
	msg, _, err := scanHello(hello, 1<<20)
	if err != nil || msg == nil {
		t.Fatalf("not a complete hello: %v", err)
	}
	var out []byte
	for len(msg) > 0 {
		n := min(size, len(msg))
		out = append(out, recordTypeHandshake, 3, 1, byte(n>>8), byte(n))
		out = append(out, msg[:n]...)
		msg = msg[n:]
	}
	return out
}

func record(typ byte, payload []byte) []byte {
	return append([]byte{typ, 3, 1, byte(len(payload) >> 8), byte(len(payload))}, payload...)
}

// helloOutcome is what feeding an input produced, comparable across the ways
// of cutting it.
type helloOutcome struct {
	err   error // sentinel, or nil
	phase Phase
	ja3   string
	feeds int // Feed calls until the outcome was decided
}

func (o helloOutcome) String() string {
	return o.phase.String() + " " + errString(o.err) + " " + o.ja3
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

var helloSentinels = []error{ErrNotTLS, ErrBadHello, ErrHelloTooLarge}

// feedHello feeds in to a fresh Conn cut as chunks says, stopping at the
// first error, and closes the Conn (ending any handshake goroutine).
func feedHello(in []byte, opts Options, chunks func(int) int) helloOutcome {
	d := newDirect(opts)
	defer d.Close()
	var o helloOutcome
	for len(in) > 0 {
		n := min(len(in), chunks(len(in)))
		_, err := d.Feed(in[:n], nil)
		in = in[n:]
		o.feeds++
		if err != nil {
			for _, s := range helloSentinels {
				if errors.Is(err, s) {
					o.err = s
				}
			}
			if o.err == nil {
				o.err = err
			}
			break
		}
		if d.Phase() != AwaitHello {
			break
		}
	}
	o.phase = d.Phase()
	if h := d.Hello(); h != nil {
		o.ja3 = h.JA3
	}
	return o
}

func TestFeedHelloTable(t *testing.T) {
	tls13 := goClientHello(t, clientConfig(nil, tls.VersionTLS13))
	tls12 := goClientHello(t, clientConfig(nil, tls.VersionTLS12))
	notHello := record(recordTypeHandshake, []byte{2, 0, 0, 1, 0}) // a ServerHello type
	huge := record(recordTypeHandshake, []byte{1, 0, 0xff, 0xff})  // announces 64 KiB
	mixed := append(bytes.Clone(refragment(t, tls13, 100)[:105]), record(0x17, []byte("data"))...)

	tests := []struct {
		name  string
		in    []byte
		opts  Options
		err   error
		phase Phase
		// decidedBy: the input length after which the outcome must be known
		// when fed byte by byte; 0 means the whole input.
		decidedBy int
	}{
		{name: "tls13 hello", in: tls13, phase: Handshaking},
		{name: "tls12 hello", in: tls12, phase: Handshaking},
		{name: "tls13 hello in 100-byte records", in: refragment(t, tls13, 100), phase: Handshaking},
		{name: "tls12 hello in 7-byte records", in: refragment(t, tls12, 7), phase: Handshaking},
		{name: "hello in 1-byte records over budget", in: refragment(t, tls13, 1), opts: Options{MaxHello: 4096}, err: ErrHelloTooLarge, phase: Closed, decidedBy: 4096},
		{name: "xml declaration", in: []byte(`<?xml version="1.0" encoding="UTF-8"?><event version="2.0" uid="x" type="a-f-G"/>`), err: ErrNotTLS, phase: Closed, decidedBy: 1},
		{name: "bare event", in: []byte(`<event version="2.0" uid="x" type="t-x-c-t"/>`), err: ErrNotTLS, phase: Closed, decidedBy: 1},
		{name: "http", in: []byte("GET / HTTP/1.1\r\nHost: cotd\r\n\r\n"), err: ErrNotTLS, phase: Closed, decidedBy: 1},
		{name: "sslv2 hello", in: []byte{0x80, 0x2e, 0x01, 0x00, 0x02}, err: ErrNotTLS, phase: Closed, decidedBy: 1},
		{name: "alert record first", in: record(0x15, []byte{2, 40}), err: ErrNotTLS, phase: Closed, decidedBy: 1},
		{name: "record version 2.0", in: []byte{0x16, 0x02, 0x00, 0x00, 0x04, 1, 0, 0, 0}, err: ErrNotTLS, phase: Closed, decidedBy: 2},
		{name: "empty record", in: record(recordTypeHandshake, nil), err: ErrBadHello, phase: Closed, decidedBy: 5},
		{name: "not a client hello", in: notHello, err: ErrBadHello, phase: Closed, decidedBy: 6},
		{name: "application data mid-hello", in: mixed, err: ErrBadHello, phase: Closed, decidedBy: 106},
		{name: "announced length over budget", in: huge, err: ErrHelloTooLarge, phase: Closed, decidedBy: 9},
		{name: "announced length over small budget", in: tls13, opts: Options{MaxHello: 256}, err: ErrHelloTooLarge, phase: Closed, decidedBy: 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			whole := feedHello(tt.in, tt.opts, func(n int) int { return n })
			if whole.err != tt.err || whole.phase != tt.phase {
				t.Fatalf("whole: got %v, want %v %v", whole, tt.phase, errString(tt.err))
			}
			if tt.phase == Handshaking && !strings.HasPrefix(whole.ja3, "771,") {
				t.Errorf("JA3 = %q", whole.ja3)
			}
			bytewise := feedHello(tt.in, tt.opts, func(int) int { return 1 })
			if bytewise.err != whole.err || bytewise.phase != whole.phase || bytewise.ja3 != whole.ja3 {
				t.Errorf("byte by byte: got %v, whole gave %v", bytewise, whole)
			}
			want := tt.decidedBy
			if want == 0 {
				want = len(tt.in)
			}
			if bytewise.feeds != want {
				t.Errorf("byte by byte: decided after %d bytes, want %d", bytewise.feeds, want)
			}
			for seed := range uint64(8) {
				rng := rand.New(rand.NewPCG(seed, 1))
				r := feedHello(tt.in, tt.opts, func(n int) int { return 1 + rng.IntN(min(n, 300)) })
				if r.err != whole.err || r.phase != whole.phase || r.ja3 != whole.ja3 {
					t.Errorf("random chunks seed %d: got %v, whole gave %v", seed, r, whole)
				}
			}
		})
	}
	poll.Until(t, "handshake goroutines to end", failsafe, func() bool { return handshakeGoroutines() == 0 })
}

// TestPlaintextRejectedAtOnce checks the engine's "plaintext on TLS port"
// path: the first Feed fails, nothing is written back, no goroutine, no
// hello, and the error is sticky.
func TestPlaintextRejectedAtOnce(t *testing.T) {
	before := handshakeGoroutines()
	for _, in := range []string{
		`<?xml version="1.0" standalone="yes"?><event version="2.0" uid="ANDROID-1" type="a-f-G-U-C" how="m-g"><point lat="1" lon="2" hae="0" ce="9" le="9"/></event>`,
		"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
	} {
		d := newDirect(Options{})
		_, err := d.Feed([]byte(in), nil)
		if !errors.Is(err, ErrNotTLS) {
			t.Fatalf("%.10q: err = %v, want ErrNotTLS", in, err)
		}
		if d.Phase() != Closed || d.Hello() != nil || len(d.Out()) != 0 {
			t.Errorf("%.10q: phase %v, hello %v, out %d bytes", in, d.Phase(), d.Hello(), len(d.Out()))
		}
		if _, err := d.Feed([]byte{0x16, 3, 1}, nil); !errors.Is(err, ErrNotTLS) {
			t.Errorf("error not sticky: %v", err)
		}
		if got := handshakeGoroutines(); got != before {
			t.Errorf("handshake goroutines: %d, want %d", got, before)
		}
		d.Close()
		if _, err := d.Feed(nil, nil); !errors.Is(err, ErrNotTLS) {
			t.Errorf("after Close: %v, want the first error", err)
		}
	}
}

// TestPlaintextOverTCP sends a CoT event to the TLS port end to end: the
// server answers nothing and closes.
func TestPlaintextOverTCP(t *testing.T) {
	client, server := tcpPair(t)
	l := startLoop(t, server, serverConfig("ecdsa", tls.VersionTLS13), loopOpts{})
	if _, err := client.Write([]byte(`<?xml version="1.0"?><event version="2.0" uid="u" type="t-x-c-t"/>`)); err != nil {
		t.Fatal(err)
	}
	if err := l.waitFailed(t); !errors.Is(err, ErrNotTLS) {
		t.Fatalf("err = %v, want ErrNotTLS", err)
	}
	buf := make([]byte, 64)
	if n, err := client.Read(buf); n != 0 || err == nil {
		t.Errorf("client read %d bytes, err %v; want nothing and a close", n, err)
	}
	if l.OutCalls() != 0 {
		t.Errorf("Out called %d times", l.OutCalls())
	}
}

func TestHelloTooLargeALPN(t *testing.T) {
	// About 20 KiB of ALPN makes a real hello that spans two records.
	cfg := clientConfig(nil, tls.VersionTLS13)
	for i := range 100 {
		cfg.NextProtos = append(cfg.NextProtos, strings.Repeat("p", 190)+strconv.Itoa(i))
	}
	hello := goClientHello(t, cfg)
	if _, records, _ := scanHello(hello, 1<<20); records < 2 {
		t.Fatalf("hello in %d records, want a multi-record hello", records)
	}
	d := newDirect(Options{})
	defer d.Close()
	_, err := d.Feed(hello, nil)
	if !errors.Is(err, ErrHelloTooLarge) {
		t.Fatalf("err = %v, want ErrHelloTooLarge", err)
	}
	if d.Phase() != Closed || handshakeGoroutines() != 0 {
		t.Errorf("phase %v, %d handshake goroutines", d.Phase(), handshakeGoroutines())
	}
	// With a larger budget the same hello is accepted.
	d2 := newDirect(Options{MaxHello: 64 << 10})
	defer d2.Close()
	if _, err := d2.Feed(hello, nil); err != nil || d2.Phase() != Handshaking {
		t.Fatalf("MaxHello 64 KiB: %v, phase %v", err, d2.Phase())
	}
	if h := d2.Hello(); len(h.ALPN) != 100 || h.Records < 2 {
		t.Errorf("ALPN %d entries, %d records", len(h.ALPN), h.Records)
	}
}

func TestHelloInfo(t *testing.T) {
	cfg := clientConfig(nil, tls.VersionTLS13)
	cfg.MinVersion = tls.VersionTLS12
	cfg.NextProtos = []string{"tak", "h2"}
	d := newDirect(Options{})
	defer d.Close()
	if _, err := d.Feed(goClientHello(t, cfg), nil); err != nil {
		t.Fatal(err)
	}
	h := d.Hello()
	if h == nil {
		t.Fatal("no HelloInfo")
	}
	if !slices.Contains(h.Versions, tls.VersionTLS13) || !slices.Contains(h.Versions, tls.VersionTLS12) {
		t.Errorf("Versions = %x", h.Versions)
	}
	if h.MaxVersion() != tls.VersionTLS13 || h.LegacyVersion != tls.VersionTLS12 {
		t.Errorf("MaxVersion %x, LegacyVersion %x", h.MaxVersion(), h.LegacyVersion)
	}
	if h.ServerName != testServerName || !slices.Equal(h.ALPN, []string{"tak", "h2"}) {
		t.Errorf("ServerName %q, ALPN %q", h.ServerName, h.ALPN)
	}
	if !slices.Contains(h.CipherSuites, tls.TLS_AES_128_GCM_SHA256) {
		t.Errorf("CipherSuites = %x", h.CipherSuites)
	}
	checkJA3(t, h)
	fields := strings.Split(h.JA3, ",")
	// server_name (0), ALPN (16) and supported_versions (43) are offered.
	exts := strings.Split(fields[2], "-")
	for _, want := range []string{"0", "16", "43"} {
		if !slices.Contains(exts, want) {
			t.Errorf("JA3 extensions %q lack %s", fields[2], want)
		}
	}
}

// checkJA3 verifies the shape of the fingerprint and that the hash matches.
func checkJA3(t *testing.T, h *HelloInfo) {
	t.Helper()
	fields := strings.Split(h.JA3, ",")
	if len(fields) != 5 {
		t.Fatalf("JA3 %q has %d fields", h.JA3, len(fields))
	}
	if fields[0] != strconv.Itoa(int(h.LegacyVersion)) {
		t.Errorf("JA3 version %q, legacy version %d", fields[0], h.LegacyVersion)
	}
	for _, f := range fields[1:4] {
		for _, v := range strings.Split(f, "-") {
			if v == "" {
				continue
			}
			n, err := strconv.ParseUint(v, 10, 16)
			if err != nil || isGREASE(uint16(n)) {
				t.Errorf("JA3 value %q: %v (GREASE %v)", v, err, isGREASE(uint16(n)))
			}
		}
	}
	sum := md5.Sum([]byte(h.JA3))
	if h.JA3Hash != hex.EncodeToString(sum[:]) {
		t.Errorf("JA3Hash %s does not match JA3", h.JA3Hash)
	}
}

// TestHelloInfoGREASE uses utls's Chrome parrot, whose hello carries GREASE
// cipher suites, extensions, groups and versions.
func TestHelloInfoGREASE(t *testing.T) {
	hello := captureHello(t, func(c net.Conn) error {
		return utls.UClient(c, &utls.Config{ServerName: testServerName}, utls.HelloChrome_Auto).Handshake()
	})
	msg, _, _ := scanHello(hello, 1<<20)
	raw := utls.UnmarshalClientHello(msg)
	if raw == nil || !slices.ContainsFunc(raw.CipherSuites, isGREASE) {
		t.Fatal("the Chrome parrot's hello should contain GREASE suites")
	}
	h := parseHello(msg, 1)
	checkJA3(t, h)
	if slices.ContainsFunc(h.Versions, isGREASE) || slices.ContainsFunc(h.CipherSuites, isGREASE) {
		t.Errorf("GREASE left in Versions %x or CipherSuites %x", h.Versions, h.CipherSuites)
	}
	if !slices.Contains(h.Versions, tls.VersionTLS13) {
		t.Errorf("Versions = %x", h.Versions)
	}
}

func TestIsGREASE(t *testing.T) {
	for v := range 1 << 16 {
		want := v>>8 == v&0xff && v&0x0f == 0x0a
		if isGREASE(uint16(v)) != want {
			t.Fatalf("isGREASE(%#04x) = %v", v, !want)
		}
	}
}

// FuzzFeedHello checks that no input panics the hello collector and that
// splitting an input in two never changes the outcome.
func FuzzFeedHello(f *testing.F) {
	f.Add(goClientHello(f, clientConfig(nil, tls.VersionTLS13)), 7)
	f.Add(goClientHello(f, clientConfig(nil, tls.VersionTLS12)), 200)
	f.Add(refragment(f, goClientHello(f, clientConfig(nil, tls.VersionTLS13)), 50), 53)
	f.Add([]byte(`<?xml version="1.0"?><event/>`), 1)
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"), 3)
	f.Add([]byte{0x16, 3, 1, 0, 4, 1, 0, 0, 0}, 5)
	f.Fuzz(func(t *testing.T, in []byte, cut int) {
		opts := Options{MaxHello: 4096}
		whole := feedHello(in, opts, func(n int) int { return n })
		if len(in) == 0 {
			return
		}
		cut = 1 + (cut%len(in)+len(in))%len(in)
		first := true
		split := feedHello(in, opts, func(n int) int {
			if first {
				first = false
				return cut
			}
			return n
		})
		if split.err != whole.err || split.phase != whole.phase || split.ja3 != whole.ja3 {
			t.Fatalf("split at %d: %v, whole: %v", cut, split, whole)
		}
	})
}
