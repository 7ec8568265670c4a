package takproto

import (
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"

	"cotd/cot"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/dynamicpb"
)

// fuzzMaxFrame is small so that the fuzzer reaches the cap with short inputs.
const fuzzMaxFrame = 512

// v1Seeds are real frames: each fixture converted, the codec table, and broken variants.
func v1Seeds(tb testing.TB) [][]byte {
	var seeds [][]byte
	var stream []byte
	for _, f := range xmlFixtures {
		frame := AppendMessageFrame(nil, fixtureMsg(tb, f.name))
		seeds = append(seeds, frame, frame[:len(frame)/2])
		stream = append(stream, frame...)
	}
	for _, tc := range codecCases {
		seeds = append(seeds, AppendFrame(nil, unhex(tb, tc.wire)))
	}
	return append(seeds, stream,
		[]byte("\xbf\x01\xbf\x00"),
		[]byte("\xbf\x80\x80\x80\x80\x04"),
		[]byte("\xbf\x80\x80\x80\x80\x80\x80\x80\x80\x80\x02"),
		[]byte("<event/>"))
}

func FuzzFramer(f *testing.F) {
	for _, s := range v1Seeds(f) {
		f.Add(s, uint16(len(s)/2))
	}
	f.Fuzz(func(t *testing.T, in []byte, cut uint16) {
		whole := frameChunks(fuzzMaxFrame, [][]byte{in})
		at := int(cut) % (len(in) + 1)
		if split := frameChunks(fuzzMaxFrame, splits(in, at)); !split.equal(whole) {
			t.Fatalf("split at %d: %v\nwhole: %v", at, split, whole)
		}
		if len(in) <= 1024 {
			if bw := frameChunks(fuzzMaxFrame, bytewise(in)); !bw.equal(whole) {
				t.Fatalf("bytewise: %v\nwhole: %v", bw, whole)
			}
		}
		if whole.err != nil && !errors.Is(whole.err, ErrBadMagic) && !errors.Is(whole.err, ErrBadVarint) &&
			!errors.Is(whole.err, cot.ErrFrameTooLarge) {
			t.Fatalf("unexpected error %v", whole.err)
		}
		// Re-framing the payloads gives back the consumed part of the input.
		var again []byte
		for _, p := range whole.payloads {
			again = AppendFrame(again, []byte(p))
		}
		if res := frameChunks(fuzzMaxFrame, [][]byte{again}); !res.equal(frameResult{payloads: whole.payloads}) {
			t.Fatalf("re-framed payloads: %v", res)
		}
	})
}

func FuzzUnmarshal(f *testing.F) {
	for _, s := range v1Seeds(f) {
		if len(s) > 2 {
			f.Add(s[2:]) // a payload, roughly
		}
	}
	for _, tc := range codecCases {
		f.Add(unhex(f, tc.wire))
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 20 {
		f.Add(randomMessage(r).AppendMarshal(nil))
	}
	md := takMessageDescriptor(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		var m TakMessage
		err := m.Unmarshal(in)
		// The reference implementation accepts exactly what we accept.
		dm := dynamicpb.NewMessage(md)
		refErr := proto.Unmarshal(in, dm)
		if (err == nil) != (refErr == nil) {
			t.Fatalf("we say %v, the reference says %v", err, refErr)
		}
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		var ref TakMessage
		fromDynamic(t, dm, reflect.ValueOf(&ref))
		if !equalMsg(&m, &ref) {
			t.Fatalf("we decode\n%s\nthe reference\n%s", dump(&m), dump(&ref))
		}
		out := m.AppendMarshal(nil)
		var back TakMessage
		if err := back.Unmarshal(out); err != nil {
			t.Fatalf("re-decoding our encoding: %v", err)
		}
		if !equalMsg(&back, &m) {
			t.Fatalf("Unmarshal(AppendMarshal(m)) =\n%s\nm =\n%s", dump(&back), dump(&m))
		}
		if again := back.AppendMarshal(nil); string(again) != string(out) {
			t.Fatalf("encoding not stable:\n% x\n% x", out, again)
		}
		// Whatever decodes converts to XML or is refused cleanly.
		if x, err := AppendXML(nil, &m); err == nil {
			var h cot.Header
			if err := cot.ScanHeader(x, &h); err != nil {
				t.Fatalf("AppendXML output does not scan: %v\n%s", err, x)
			}
		} else if !errors.Is(err, ErrMalformed) {
			t.Fatalf("AppendXML error %v does not wrap ErrMalformed", err)
		}
	})
}

func FuzzFromXML(f *testing.F) {
	for _, fx := range xmlFixtures {
		f.Add(readFile(f, fx.path))
	}
	f.Add(AppendOffer(nil, "u", negotiationNow))
	f.Add([]byte(`<auth><cot username="a" password="b" uid="c"/></auth>`))
	f.Add(detailEvent(`<contact callsign="A&amp;B"/><contact callsign="C"/><status battery="9"/> <!-- x --><track speed="1" course="2"></track>`))
	f.Add(detailEvent(`<remarks><![CDATA[ <a> ]]></remarks><takv device="d" platform="p" os="o" version="v"/>`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		var m TakMessage
		if err := FromXML(doc, &m); err != nil {
			if !errors.Is(err, cot.ErrMalformed) && !errors.Is(err, cot.ErrNotEvent) {
				t.Fatalf("error %v wraps neither cot.ErrMalformed nor cot.ErrNotEvent", err)
			}
			return
		}
		out, err := AppendXML(nil, &m)
		if err != nil {
			t.Fatalf("AppendXML refuses what FromXML made: %v\n%s", err, dump(&m))
		}
		var h cot.Header
		if err := cot.ScanHeader(out, &h); err != nil {
			t.Fatalf("cot.ScanHeader(AppendXML output): %v\n%s", err, out)
		}
		if h.UID != m.CotEvent.Uid || h.Type != m.CotEvent.Type {
			t.Fatalf("header uid %q type %q, message %q %q", h.UID, h.Type, m.CotEvent.Uid, m.CotEvent.Type)
		}
		var again TakMessage
		if err := FromXML(out, &again); err != nil {
			t.Fatalf("FromXML(AppendXML output): %v\n%s", err, out)
		}
		if !equalMsg(&again, &m) {
			t.Fatalf("second conversion differs:\n%s\n%s\nfrom\n%s", dump(&again), dump(&m), out)
		}
		// And the message survives the wire.
		var back TakMessage
		if err := back.Unmarshal(m.AppendMarshal(nil)); err != nil || !equalMsg(&back, &m) {
			t.Fatalf("v1 round trip: %v", err)
		}
	})
}

// FuzzNegotiation: the request and response parsers take whatever a peer
// sends without failing, and what they accept survives being written again
// by the matching builder.
func FuzzNegotiation(f *testing.F) {
	f.Add(AppendRequest(nil, "u&1", 1, negotiationNow))
	f.Add(AppendResponse(nil, "u", true, negotiationNow))
	f.Add(AppendResponse(nil, "u", false, negotiationNow))
	f.Add(AppendOffer(nil, "u", negotiationNow))
	f.Fuzz(func(t *testing.T, doc []byte) {
		if uid, v, ok := ParseRequest(doc); ok {
			uid2, v2, ok2 := ParseRequest(AppendRequest(nil, uid, v, negotiationNow))
			if !ok2 || uid2 != uid || v2 != v {
				t.Fatalf("request %q v%d came back as %q v%d (%v)", uid, v, uid2, v2, ok2)
			}
		}
		if uid, granted, ok := ParseResponse(doc); ok {
			uid2, granted2, ok2 := ParseResponse(AppendResponse(nil, uid, granted, negotiationNow))
			if !ok2 || uid2 != uid || granted2 != granted {
				t.Fatalf("response %q %v came back as %q %v (%v)", uid, granted, uid2, granted2, ok2)
			}
		}
	})
}
