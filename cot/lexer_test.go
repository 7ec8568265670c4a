package cot

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// lexAll lexes src and returns its tokens, written "kind name@depth", and the error.
func lexAll(src []byte, mode Strictness) ([]string, error) {
	var (
		lx  Lexer
		out []string
	)
	lx.Reset(src, mode)
	for {
		t, ok, err := lx.Next()
		if err != nil || !ok {
			return out, err
		}
		out = append(out, fmt.Sprintf("%s %s@%d", t.Kind, t.Name, t.Depth))
	}
}

func TestLexer(t *testing.T) {
	tests := []struct {
		name string
		in   string
		mode Strictness
		want []string // tokens; nil with wantErr
		// wantErr is a substring of the error; "" for none.
		wantErr string
	}{
		{name: "event", mode: Strict,
			in:   `<?xml version="1.0"?>` + "\n" + `<event uid="u"><point lat="1"/><detail><remarks>a &lt; b</remarks></detail></event>`,
			want: []string{"start event@0", "empty point@1", "start detail@1", "start remarks@2", "end remarks@2", "end detail@1", "end event@0"}},
		{name: "skipped markup", mode: Strict,
			in:   `<!-- <a> --><event><![CDATA[<b></c>]]><?pi <d>?><e/></event>`,
			want: []string{"start event@0", "empty e@1", "end event@0"}},
		{name: "nothing read after the root", mode: Strict,
			in:   `<event/><garbage`,
			want: []string{"empty event@0"}},
		{name: "lenient reads on", mode: Lenient,
			in:   `<event/><x>`,
			want: []string{"empty event@0", "start x@0"}},
		{name: "values may hold < and >", mode: Strict,
			in:   `<event a="<b>" b='"'/>`,
			want: []string{"empty event@0"}},
		{name: "close tag with space", mode: Strict,
			in:   `<event></event >`,
			want: []string{"start event@0", "end event@0"}},

		// Where the modes differ.
		{name: "mismatch, lenient", mode: Lenient, in: `<event><a></b></event>`,
			want: []string{"start event@0", "start a@1", "end b@1", "end event@0"}},
		{name: "mismatch, strict", mode: Strict, in: `<event><a></b></event>`, wantErr: "does not match <a>"},
		{name: "text outside the root, lenient", mode: Lenient, in: `x<event/>`, want: []string{"empty event@0"}},
		{name: "text outside the root, strict", mode: Strict, in: `x<event/>`, wantErr: "text outside the root"},
		{name: "text in content", mode: StrictContent, in: `x<a/>y<![CDATA[z]]>`, want: []string{"empty a@0"}},
		{name: "CDATA before the root", mode: Strict, in: `<![CDATA[x]]><event/>`, wantErr: "neither a comment nor CDATA"},
		{name: "attribute syntax, lenient", mode: Lenient, in: `<event a=b c/>`, want: []string{"empty event@0"}},
		{name: "unquoted value, strict", mode: Strict, in: `<event a=b/>`, wantErr: "unquoted attribute value"},
		{name: "no space before attribute", mode: Strict, in: `<event a="1"b="2"/>`, wantErr: "no space before attribute"},
		{name: "stray close, lenient", mode: Lenient, in: `</a>`, want: []string{"end a@-1"}},
		{name: "stray close in content", mode: StrictContent, in: `<a/></detail>`, wantErr: "without start tag"},
		{name: "declaration in content", mode: StrictContent, in: `<?xml version="1.0"?><a/>`, wantErr: "xml declaration inside"},
		{name: "declaration in an element", mode: Strict, in: `<event><?xml version="1.0"?></event>`, wantErr: "xml declaration inside"},
		{name: "PI without target", mode: Strict, in: `<event><? x?></event>`, wantErr: "without target"},
		{name: "PI without target, lenient", mode: Lenient, in: `<event><? x?></event>`, want: []string{"start event@0", "end event@0"}},
		{name: "unclosed, strict", mode: Strict, in: `<event><a>`, wantErr: "<a> is not closed"},
		{name: "unclosed, lenient", mode: Lenient, in: `<event><a>`, want: []string{"start event@0", "start a@1"}},
		{name: "too deep", mode: Strict, in: strings.Repeat("<a>", maxDepth+1), wantErr: "nesting deeper than 64"},

		// Errors common to all modes.
		{name: "unterminated comment", mode: Lenient, in: `<event><!-- x`, wantErr: `unterminated "<!--"`},
		{name: "unterminated CDATA", mode: Strict, in: `<event><![CDATA[ x`, wantErr: `unterminated "<![CDATA["`},
		{name: "unterminated tag", mode: Lenient, in: `<event a="1`, wantErr: "unterminated tag <event"},
		{name: "lone <", mode: Lenient, in: `<event>< </event>`, wantErr: "'<' not followed by a name"},
		{name: "bad close tag", mode: StrictContent, in: `</ a>`, wantErr: "bad close tag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := lexAll([]byte(tt.in), tt.mode)
			if tt.wantErr != "" {
				if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "at offset") {
					t.Fatalf("err = %v, want ErrMalformed with %q and an offset", err, tt.wantErr)
				}
				// Sticky until Reset.
				var lx Lexer
				lx.Reset([]byte(tt.in), tt.mode)
				for {
					if _, ok, e := lx.Next(); e != nil || !ok {
						break
					}
				}
				if _, ok, again := lx.Next(); ok || again == nil || again.Error() != err.Error() {
					t.Errorf("after the error Next = %v, %v", ok, again)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("got %q, %v\nwant %q", got, err, tt.want)
			}
		})
	}
}

// TestLexerFramedSplits feeds documents to the framer whole, byte by byte and in random
// chunks and lexes what it emits: whatever the split, the lexer sees the same document and
// yields the same tokens, in every mode (the lexer's input is always a complete document).
func TestLexerFramedSplits(t *testing.T) {
	inputs := [][]byte{mixStream(t), testdata(t, "auth.xml"),
		[]byte(`<event><detail><remarks><![CDATA[a]]]></remarks><?pi ??><!-- - --></detail></event >`)}
	for _, in := range inputs {
		whole, err := frameAll(0, [][]byte{in})
		if err != nil || len(whole) == 0 {
			t.Fatalf("framing: %v", err)
		}
		for _, mode := range []Strictness{Lenient, Strict} {
			var want [][]string
			for _, doc := range whole {
				toks, err := lexAll([]byte(doc), mode)
				if err != nil {
					t.Fatalf("%s: lexing framed %q: %v", mode, doc, err)
				}
				want = append(want, toks)
			}
			for _, c := range chunkers() {
				docs, err := frameAll(0, c.split(in))
				if err != nil || len(docs) != len(whole) {
					t.Fatalf("%s: %d docs, %v", c.name, len(docs), err)
				}
				for i, doc := range docs {
					if got, err := lexAll([]byte(doc), mode); err != nil || !slices.Equal(got, want[i]) {
						t.Errorf("%s %s doc %d: %q, %v\nwant %q", mode, c.name, i, got, err, want[i])
					}
				}
			}
		}
	}
}

func TestAttrs(t *testing.T) {
	a := Attrs(` uid = 'x"y' type="a-f"  how=""  bad`)
	var got []string
	for {
		name, val, ok := a.Next()
		if !ok {
			break
		}
		got = append(got, string(name)+"="+string(val))
	}
	if want := []string{`uid=x"y`, "type=a-f", "how="}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestValueDecode(t *testing.T) {
	var sb strings.Builder
	for _, tc := range []struct{ in, want string }{
		{"plain", "plain"},
		{"a&amp;b&lt;&gt;&quot;&apos;", `a&b<>"'`},
		{"&#65;&#x42;&#x1F600;", "AB\U0001F600"},
		{"&foo; & &#xZZ; &#0; &#1114112; &#; &", "&foo; & &#xZZ; &#0; &#1114112; &#; &"},
		{"", ""},
	} {
		if got := Value(tc.in).Decode(&sb); got != tc.want {
			t.Errorf("Decode(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if !strings.HasSuffix(sb.String(), "&foo; & &#xZZ; &#0; &#1114112; &#; &") {
		t.Error("Decode does not append to the builder")
	}
}

func TestLexerEnumNames(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{Lenient.String(), "lenient"}, {Strict.String(), "strict"}, {StrictContent.String(), "strict-content"},
		{numStrictness.String(), "Strictness(3)"},
		{TokenStart.String(), "start"}, {TokenEnd.String(), "end"}, {TokenEmpty.String(), "empty"},
		{TokenKind(0).String(), "TokenKind(0)"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

// FuzzLexer checks every mode on arbitrary input (no panic, tokens inside the input and
// shaped as tags, depths as documented), that Lenient reads every framed document, that
// Strict agrees with Lenient wherever Strict accepts, and that framing the input split in two
// changes nothing the lexer sees.
func FuzzLexer(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s, uint16(len(s)/2))
	}
	f.Fuzz(func(t *testing.T, in []byte, cut uint16) {
		for _, mode := range []Strictness{Lenient, Strict, StrictContent} {
			var lx Lexer
			lx.Reset(in, mode)
			for n := 0; ; n++ {
				tok, ok, err := lx.Next()
				if err != nil || !ok {
					break
				}
				if n > len(in) {
					t.Fatalf("%s: more tokens than bytes", mode)
				}
				if tok.Start < 0 || tok.End > len(in) || tok.Start >= tok.End || in[tok.Start] != '<' || in[tok.End-1] != '>' {
					t.Fatalf("%s: token %+v outside or misshaped in %q", mode, tok, in)
				}
				if mode != Lenient && tok.Depth < 0 {
					t.Fatalf("%s: negative depth", mode)
				}
			}
		}
		whole := frameSplit(in)
		at := int(cut) % (len(in) + 1)
		split := frameSplit(in, at)
		if !slices.Equal(split.docs, whole.docs) {
			t.Fatalf("split at %d frames differently", at)
		}
		for _, doc := range whole.docs {
			lenient, err := lexAll([]byte(doc), Lenient)
			if err != nil {
				t.Fatalf("Lenient on framed %q: %v", doc, err)
			}
			if strict, err := lexAll([]byte(doc), Strict); err == nil && !slices.Equal(strict, lenient) {
				t.Fatalf("framed %q: strict %q, lenient %q", doc, strict, lenient)
			}
		}
	})
}
