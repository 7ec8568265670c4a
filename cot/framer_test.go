package cot

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fixtureDir holds bytes captured from real TAK software, kept in the repository
// (testdata/node-tak/README.md says where they came from).
var fixtureDir = filepath.Join("..", "testdata", "node-tak")

func readFile(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func fixture(tb testing.TB, name string) []byte {
	return readFile(tb, filepath.Join(fixtureDir, name))
}

func testdata(tb testing.TB, name string) []byte {
	return readFile(tb, filepath.Join("testdata", name))
}

// mixFiles is the realistic event mix: what one ATAK client sends in a typical minute.
var mixFiles = []string{"sa.xml", "geochat.xml", "drawing.xml", "ping.xml"}

// mixStream concatenates the mix as commo sends it: each event behind its own declaration,
// nothing after "</event>".
func mixStream(tb testing.TB) []byte {
	var b []byte
	for _, name := range mixFiles {
		b = append(b, testdata(tb, name)...)
	}
	return b
}

// chunker splits an input into the pieces handed to successive Feed calls.
type chunker struct {
	name  string
	split func(p []byte) [][]byte
}

func chunkers() []chunker {
	cs := []chunker{
		{"whole", func(p []byte) [][]byte { return [][]byte{p} }},
		{"bytewise", func(p []byte) [][]byte {
			out := make([][]byte, len(p))
			for i := range p {
				out[i] = p[i : i+1]
			}
			return out
		}},
	}
	for _, seed := range []int64{1, 2, 3, 42, 1460} {
		cs = append(cs, chunker{fmt.Sprintf("random-%d", seed), func(p []byte) [][]byte {
			r := rand.New(rand.NewSource(seed))
			var out [][]byte
			for len(p) > 0 {
				n := min(1+r.Intn(64), len(p))
				out = append(out, p[:n])
				p = p[n:]
			}
			return out
		}})
	}
	return cs
}

// frameAll feeds chunks to a fresh framer and returns copies of the emitted documents and
// the first error.
func frameAll(maxFrame int, chunks [][]byte) (docs []string, err error) {
	f := NewXMLFramer(maxFrame)
	emit := func(doc []byte) error {
		docs = append(docs, string(doc))
		return nil
	}
	for _, c := range chunks {
		// Feed must not keep or modify p: hand it a copy that is scribbled over afterwards.
		tmp := bytes.Clone(c)
		err = f.Feed(tmp, emit)
		for i := range tmp {
			tmp[i] = 'X'
		}
		if err != nil {
			return docs, err
		}
	}
	return docs, nil
}

func TestXMLFramer(t *testing.T) {
	posFixture := strings.TrimSpace(string(fixture(t, "position.xml")))
	pingFixture := strings.TrimSpace(string(fixture(t, "ping.xml")))
	const ev = `<event uid="a"><detail/></event>`
	deep := strings.Repeat("<a>", 64) + strings.Repeat("</a>", 64)

	tests := []struct {
		name     string
		in       string
		maxFrame int
		want     []string
		wantErr  error
	}{
		{name: "fixture connect stream", in: string(fixture(t, "connect-stream.bin")),
			want: []string{posFixture, pingFixture}},
		{name: "commo declarations, no newline after events",
			in:   `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>` + "\n" + ev + `<?xml version='1.0' encoding='UTF-8' standalone='yes'?>` + "\n" + ev,
			want: []string{ev, ev}},
		{name: "node-tak newline after events", in: ev + "\n" + ev + "\n", want: []string{ev, ev}},
		{name: "whitespace of all kinds", in: " \t\r\n" + ev + "\r\n\t " + ev, want: []string{ev, ev}},
		{name: "byte order mark", in: "\xEF\xBB\xBF<?xml version=\"1.0\"?>\n" + ev, want: []string{ev}},
		{name: "comments between documents", in: "<!-- hello -- there --->" + ev + "<!---->" + ev, want: []string{ev, ev}},
		{name: "comment inside", in: `<event><!-- </event> --></event>`, want: []string{`<event><!-- </event> --></event>`}},
		{name: "CDATA holding a close tag",
			in:   `<event><detail><remarks><![CDATA[a </event> b ]] ]]]></remarks></detail></event>`,
			want: []string{`<event><detail><remarks><![CDATA[a </event> b ]] ]]]></remarks></detail></event>`}},
		{name: "quoted specials in attributes",
			in:   `<event uid="a>b/c" how='</event>' x = "'" y='"'><detail remarks="/>"/></event>`,
			want: []string{`<event uid="a>b/c" how='</event>' x = "'" y='"'><detail remarks="/>"/></event>`}},
		{name: "processing instruction inside", in: `<event><?pi a?b ??></event>`, want: []string{`<event><?pi a?b ??></event>`}},
		{name: "self-closing event", in: `<event uid="x"/>` + ev + `<event/>`, want: []string{`<event uid="x"/>`, ev, `<event/>`}},
		{name: "close tag with space", in: `<event><a></a ></event >`, want: []string{`<event><a></a ></event >`}},
		{name: "'<' in value", in: `<event uid="a<b"/>`, want: []string{`<event uid="a<b"/>`}},
		{name: "text and entities", in: `<event>a &amp; b > c</event>`, want: []string{`<event>a &amp; b > c</event>`}},
		{name: "auth then event", in: string(testdata(t, "auth.xml")) + ev,
			want: []string{`<auth><cot username="alpha" password="s3cr&amp;t&quot;" uid="ANDROID-5f3c9a1e2b7d4c60"/></auth>`, ev}},
		{name: "nested same names", in: `<event><a><a/><a></a></a></event>`, want: []string{`<event><a><a/><a></a></a></event>`}},
		{name: "64 levels deep", in: "<event>" + deep[3:len(deep)-4] + "</event>",
			want: []string{"<event>" + deep[3:len(deep)-4] + "</event>"}},
		{name: "non-ASCII names", in: "<event><détail/></event>", want: []string{"<event><détail/></event>"}},
		{name: "incomplete document is held", in: ev + `<event><detail>`, want: []string{ev}},
		{name: "exactly at the cap", in: ev, maxFrame: len(ev), want: []string{ev}},

		{name: "TLS ClientHello", in: "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", wantErr: ErrJunk},
		{name: "HTTP request", in: "GET / HTTP/1.1\r\nHost: x\r\n\r\n", wantErr: ErrJunk},
		{name: "junk after a document", in: ev + "hello", want: []string{ev}, wantErr: ErrJunk},
		{name: "NUL between documents", in: ev + "\x00" + ev, want: []string{ev}, wantErr: ErrJunk},
		{name: "other root element", in: "<html><body/></html>", wantErr: ErrJunk},
		{name: "root name with event prefix", in: "<eventual/>", wantErr: ErrJunk},
		{name: "root name prefix of event", in: "<even/>", wantErr: ErrJunk},
		{name: "close tag at top", in: "</event>", wantErr: ErrJunk},
		{name: "space after top-level '<'", in: "< event/>", wantErr: ErrJunk},
		{name: "DOCTYPE", in: "<!DOCTYPE event>" + ev, wantErr: ErrJunk},
		{name: "CDATA at top", in: "<![CDATA[x]]>" + ev, wantErr: ErrJunk},
		{name: "broken comment at top", in: "<!-x-->" + ev, wantErr: ErrJunk},
		{name: "broken byte order mark", in: "\xEF\xBB<event/>", wantErr: ErrJunk},

		{name: "mismatched root close", in: "<event><detail></event>", wantErr: ErrMalformed},
		{name: "mismatched inner close", in: "<event><a></b></event>", wantErr: ErrMalformed},
		{name: "close name too long", in: "<event><a></ab></event>", wantErr: ErrMalformed},
		{name: "close name too short", in: "<event><ab></a></event>", wantErr: ErrMalformed},
		{name: "empty close tag", in: "<event></></event>", wantErr: ErrMalformed},
		{name: "space after inner '<'", in: "<event>< a/></event>", wantErr: ErrMalformed},
		{name: "unquoted value", in: "<event uid=abc/>", wantErr: ErrMalformed},
		{name: "attribute without value", in: "<event uid/>", wantErr: ErrMalformed},
		{name: "attributes without space", in: `<event a="1"b="2"/>`, wantErr: ErrMalformed},
		{name: "unterminated value ends at the next quote", in: `<event uid="a><detail/></event>` + ev,
			wantErr: ErrMalformed},
		{name: "unterminated value runs into the cap", in: `<event uid="a><detail/></event>` + strings.Repeat("<event/>", 10),
			maxFrame: 64, wantErr: ErrFrameTooLarge},
		{name: "slash not closing", in: "<event/ >", wantErr: ErrMalformed},
		{name: "junk in close tag", in: "<event></event x>", wantErr: ErrMalformed},
		{name: "bad CDATA opener", in: "<event><![CDAT[x]]></event>", wantErr: ErrMalformed},
		{name: "bad comment opener", in: "<event><!-x--></event>", wantErr: ErrMalformed},
		{name: "65 levels deep", in: "<event>" + deep + "</event>", wantErr: ErrMalformed},

		{name: "one byte over the cap", in: ev, maxFrame: len(ev) - 1, wantErr: ErrFrameTooLarge},
		{name: "documents before the large one are emitted", in: ev + "<event>" + strings.Repeat("x", 100) + "</event>",
			maxFrame: 64, want: []string{ev}, wantErr: ErrFrameTooLarge},
		{name: "cap precedes a later syntax error", in: "<event>" + strings.Repeat("x", 100) + "</evt>",
			maxFrame: 64, wantErr: ErrFrameTooLarge},
		{name: "top-level comment over the cap", in: "<!--" + strings.Repeat("x", 100) + "-->", maxFrame: 64, wantErr: ErrFrameTooLarge},
		{name: "whitespace is not capped", in: strings.Repeat(" ", 200) + ev, maxFrame: 64, want: []string{ev}},
	}
	for _, tt := range tests {
		for _, ch := range chunkers() {
			t.Run(tt.name+"/"+ch.name, func(t *testing.T) {
				docs, err := frameAll(tt.maxFrame, ch.split([]byte(tt.in)))
				if !slices.Equal(docs, tt.want) {
					t.Errorf("docs:\n got %q\nwant %q", docs, tt.want)
				}
				if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
					t.Errorf("err = %v, want %v", err, tt.wantErr)
				}
			})
		}
		// Whole, bytewise and random feeding must fail identically, offset included.
		var first string
		for i, ch := range chunkers() {
			_, err := frameAll(tt.maxFrame, ch.split([]byte(tt.in)))
			msg := fmt.Sprint(err)
			if i == 0 {
				first = msg
			} else if msg != first {
				t.Errorf("%s/%s: err %q differs from whole-input err %q", tt.name, ch.name, msg, first)
			}
		}
	}
}

func TestXMLFramerFixtureHeaders(t *testing.T) {
	docs, err := frameAll(0, [][]byte{fixture(t, "connect-stream.bin")})
	if err != nil || len(docs) != 2 {
		t.Fatalf("got %d docs, err %v; want 2 docs", len(docs), err)
	}
	var h Header
	if err := ScanHeader([]byte(docs[0]), &h); err != nil {
		t.Fatal(err)
	}
	if h.UID != "NODE-TAK-PROXY" || h.Callsign != "PROXY" || h.Endpoint != "*:-1:stcp" ||
		h.GroupName != "Cyan" || h.GroupRole != "Team Member" || !h.IsSA() || !h.IsPositionReport() {
		t.Errorf("position header = %+v", h)
	}
	if err := ScanHeader([]byte(docs[1]), &h); err != nil {
		t.Fatal(err)
	}
	if h.Type != TypePing || !IsControl(h.Type) || h.IsSA() {
		t.Errorf("ping header = %+v", h)
	}
}

func TestXMLFramerSticky(t *testing.T) {
	f := NewXMLFramer(0)
	emit := func([]byte) error { return nil }
	err := f.Feed([]byte("<event></evnt>"), emit)
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v, want ErrMalformed", err)
	}
	if again := f.Feed([]byte("<event/>"), emit); again != err {
		t.Errorf("second Feed = %v, want the same error %v", again, err)
	}
	f.Reset()
	n := 0
	if err := f.Feed([]byte("<event/>"), func([]byte) error { n++; return nil }); err != nil || n != 1 {
		t.Errorf("after Reset: err %v, %d docs", err, n)
	}
}

func TestXMLFramerEmitError(t *testing.T) {
	stop := errors.New("switch to protobuf")
	in := []byte("<event/>\n<event uid='b'/>\xBF\x05")
	f := NewXMLFramer(0)
	var docs []string
	err := f.Feed(in, func(doc []byte) error {
		docs = append(docs, string(doc))
		if len(docs) == 2 {
			return stop
		}
		return nil
	})
	if err != stop {
		t.Fatalf("err = %v, want the emit error itself", err)
	}
	if rest := in[len(in)-f.Unread():]; string(rest) != "\xBF\x05" {
		t.Errorf("unread = %q", rest)
	}
	// The framer stands between documents: it goes on with XML if asked to.
	if err := f.Feed([]byte("<event/>"), func([]byte) error { return nil }); err != nil {
		t.Errorf("Feed after emit error: %v", err)
	}
	if f.Unread() != 0 {
		t.Errorf("Unread = %d after a clean Feed", f.Unread())
	}
}

func TestXMLFramerBuffered(t *testing.T) {
	f := NewXMLFramer(0)
	emit := func([]byte) error { return nil }
	for _, step := range []struct {
		in   string
		want int
	}{
		{"<?xml version='1.0'?>", 0},
		{"\n<", 1},
		{"?xml?>", 0}, // the '<' opened a declaration, not a document
		{"<!-- x", 0},
		{" -->\n<event><de", 10},
		{"tail/></event>", 0},
	} {
		if err := f.Feed([]byte(step.in), emit); err != nil {
			t.Fatal(err)
		}
		if got := f.Buffered(); got != step.want {
			t.Errorf("after %q: Buffered = %d, want %d", step.in, got, step.want)
		}
	}
}

// endless returns n bytes of a well-formed document that never ends.
func endless(n int) []byte {
	b := make([]byte, 0, n+32)
	b = append(b, `<event uid="x"><detail>`...)
	for len(b) < n {
		b = append(b, `<x a="1">text</x>`...)
	}
	return b[:n]
}

func TestXMLFramerCapBeforeBuffering(t *testing.T) {
	const capBytes = 1 << 20
	in := endless(10 << 20)

	t.Run("chunks", func(t *testing.T) {
		f := NewXMLFramer(capBytes)
		fed := 0
		for off := 0; off < len(in); off += 1460 {
			chunk := in[off:min(off+1460, len(in))]
			err := f.Feed(chunk, func([]byte) error { t.Fatal("emitted"); return nil })
			if f.Buffered() > capBytes || cap(f.buf) > capBytes {
				t.Fatalf("Buffered = %d (cap %d) after %d bytes, over the %d cap", f.Buffered(), cap(f.buf), fed, capBytes)
			}
			fed += len(chunk)
			if err != nil {
				if !errors.Is(err, ErrFrameTooLarge) {
					t.Fatalf("err = %v", err)
				}
				if fed <= capBytes || fed > capBytes+1460 {
					t.Errorf("error after %d bytes, want just past %d", fed, capBytes)
				}
				return
			}
		}
		t.Fatal("no error for a 10 MB document")
	})
	t.Run("one read", func(t *testing.T) {
		f := NewXMLFramer(capBytes)
		err := f.Feed(in, func([]byte) error { return nil })
		if !errors.Is(err, ErrFrameTooLarge) || !strings.Contains(err.Error(), fmt.Sprint("offset ", capBytes)) {
			t.Errorf("err = %v, want ErrFrameTooLarge at offset %d", err, capBytes)
		}
		if f.Buffered() != 0 {
			t.Errorf("Buffered = %d, want nothing kept", f.Buffered())
		}
	})
}

func TestXMLFramerReleasesLargeBuffer(t *testing.T) {
	f := NewXMLFramer(0)
	doc := []byte("<event><detail>" + strings.Repeat(`<x a="1">text</x>`, 200<<10/16) + "</detail></event>")
	emit := func([]byte) error { return nil }
	for off := 0; off < len(doc); off += 4096 {
		if err := f.Feed(doc[off:min(off+4096, len(doc))], emit); err != nil {
			t.Fatal(err)
		}
	}
	if cap(f.buf) > retainBuf {
		t.Errorf("buffer of %d bytes kept after a large document", cap(f.buf))
	}
}

func TestXMLFramerZeroAllocs(t *testing.T) {
	in := mixStream(t)
	f := NewXMLFramer(0)
	n := 0
	emit := func([]byte) error { n++; return nil }
	whole := testing.AllocsPerRun(100, func() {
		if err := f.Feed(in, emit); err != nil {
			t.Fatal(err)
		}
	})
	if whole != 0 {
		t.Errorf("whole-chunk Feed: %v allocs per run, want 0", whole)
	}
	split := testing.AllocsPerRun(100, func() {
		for off := 0; off < len(in); off += 1460 {
			if err := f.Feed(in[off:min(off+1460, len(in))], emit); err != nil {
				t.Fatal(err)
			}
		}
	})
	if split != 0 {
		t.Errorf("1460-byte chunks: %v allocs per run in the steady state, want 0", split)
	}
}

func TestScanStateString(t *testing.T) {
	seen := map[string]bool{}
	for s := stTop; s <= stFailed; s++ {
		name := s.String()
		if name == "" || seen[name] || strings.HasPrefix(name, "scanState(") {
			t.Errorf("state %d has name %q", s, name)
		}
		seen[name] = true
	}
	if got := (stFailed + 1).String(); got != fmt.Sprintf("scanState(%d)", stFailed+1) {
		t.Errorf("unknown state prints %q", got)
	}
}
