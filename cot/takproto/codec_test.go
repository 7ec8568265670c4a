package takproto

import (
	"encoding/hex"
	"errors"
	"math"
	"strings"
	"testing"
)

func unhex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// codecCases pair messages with their encodings, computed by hand from the wire format.
var codecCases = []struct {
	name string
	msg  TakMessage
	wire string
}{
	{"empty", TakMessage{}, ""},
	{"control", TakMessage{TakControl: &TakControl{MinProtoVersion: 1, MaxProtoVersion: 1}}, "0a04 0801 1001"},
	{"empty control", TakMessage{TakControl: &TakControl{}}, "0a00"},
	{"times", TakMessage{SubmissionTime: 1, CreationTime: 300}, "1801 20ac02"},
	{"event strings", TakMessage{CotEvent: &CotEvent{Type: "a", Uid: "u", How: "h-e"}},
		"120b 0a0161 2a0175 4a03682d65"},
	{"event times", TakMessage{CotEvent: &CotEvent{SendTime: 1, StartTime: 2, StaleTime: 1 << 63}},
		"120f 3001 3802 40808080808080808080 01"},
	{"event point", TakMessage{CotEvent: &CotEvent{Lat: 1, Le: -2}},
		"1212 51000000000000f03f 71 00000000000000c0"},
	{"negative zero is written", TakMessage{CotEvent: &CotEvent{Hae: math.Copysign(0, -1)}},
		"1209 610000000000000080"},
	{"two-byte tags", TakMessage{CotEvent: &CotEvent{Caveat: "c", ReleaseableTo: "r"}},
		"1208 820101 63 8a0101 72"},
	{"empty detail", TakMessage{CotEvent: &CotEvent{Detail: &Detail{}}}, "1202 7a00"},
	{"detail", TakMessage{CotEvent: &CotEvent{Detail: &Detail{
		XmlDetail:         "<x/>",
		Contact:           &Contact{Endpoint: "e", Callsign: "c"},
		Group:             &Group{Name: "n", Role: "r"},
		PrecisionLocation: &PrecisionLocation{Geopointsrc: "g", Altsrc: "a"},
		Status:            &Status{Battery: 300},
		Takv:              &Takv{Device: "d", Platform: "p", Os: "o", Version: "v"},
		Track:             &Track{Speed: 1, Course: 2},
	}}},
		"1247 7a45 0a043c782f3e 1206 0a0165 120163 1a06 0a016e 120172 2206 0a0167 120161 2a03 08ac02" +
			" 320c 0a0164 120170 1a016f 220176 3a12 09000000000000f03f 110000000000000040"},
}

func TestCodecTable(t *testing.T) {
	for _, tc := range codecCases {
		t.Run(tc.name, func(t *testing.T) {
			want := unhex(t, tc.wire)
			got := tc.msg.AppendMarshal(nil)
			if string(got) != string(want) {
				t.Errorf("AppendMarshal = % x\nwant            % x", got, want)
			}
			if n := tc.msg.Size(); n != len(want) {
				t.Errorf("Size = %d, want %d", n, len(want))
			}
			var m TakMessage
			if err := m.Unmarshal(want); err != nil {
				t.Fatal(err)
			}
			if !equalMsg(&m, &tc.msg) {
				t.Errorf("Unmarshal = %s\nwant        %s", dump(&m), dump(&tc.msg))
			}
		})
	}
}

func TestAppendMarshalAppends(t *testing.T) {
	m := codecCases[1].msg
	got := m.AppendMarshal([]byte("prefix"))
	if want := "prefix" + string(unhex(t, codecCases[1].wire)); string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
	var nilMsg *TakMessage
	if got := nilMsg.AppendMarshal([]byte("x")); string(got) != "x" || nilMsg.Size() != 0 {
		t.Errorf("nil message: %q", got)
	}
}

func TestUnmarshalProto3Semantics(t *testing.T) {
	for _, tc := range []struct {
		name string
		wire string
		want TakMessage
	}{
		{"unknown fields of every wire type are skipped",
			// 5: varint, 6: fixed64, 7: bytes, 8: fixed32, 9: group holding a varint.
			"2801 3100000000000000ff 3a03616263 450000803f 4b 0801 4c 2003",
			TakMessage{CreationTime: 3}},
		{"known field with another wire type is unknown",
			// submissionTime as fixed64, cotEvent as varint, lat as varint, type as varint.
			"190100000000000000 1001 1204 5001 0801", TakMessage{CotEvent: &CotEvent{}}},
		{"last scalar wins", "1801 1802", TakMessage{SubmissionTime: 2}},
		{"repeated sub-message merges",
			"1203 0a0161 1203 2a0175 1206 7a04 2a020808 1207 7a05 1203 120163",
			TakMessage{CotEvent: &CotEvent{Type: "a", Uid: "u", Detail: &Detail{
				Status: &Status{Battery: 8}, Contact: &Contact{Callsign: "c"}}}}},
		{"uint32 keeps the low 32 bits", "0a06 08ffffffff1f", TakMessage{TakControl: &TakControl{MinProtoVersion: math.MaxUint32}}},
		{"non-canonical varint", "18 8180808000", TakMessage{SubmissionTime: 1}},
		{"empty strings", "1204 0a00 2a00", TakMessage{CotEvent: &CotEvent{}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m TakMessage
			if err := m.Unmarshal(unhex(t, tc.wire)); err != nil {
				t.Fatal(err)
			}
			if !equalMsg(&m, &tc.want) {
				t.Errorf("got  %s\nwant %s", dump(&m), dump(&tc.want))
			}
		})
	}
}

func TestUnmarshalRejects(t *testing.T) {
	for _, tc := range []struct{ name, wire string }{
		{"truncated tag", "80"},
		{"truncated varint", "18 80"},
		{"truncated fixed64", "12 09 51 0000000000f03f"},
		{"truncated length", "12"},
		{"length past the end", "12 05 0a0161"},
		{"sub-message length past its parent", "12 03 7a 05 0a"},
		{"field number 0", "00 01"},
		{"field number too large", "8080808010 01"},
		{"reserved wire type 6", "0e"},
		{"reserved wire type 7", "0f"},
		{"end group without start", "0c"},
		{"group without end", "4b 0801"},
		{"group end mismatch", "4b 0801 54"},
		{"string not UTF-8", "12 03 0a01ff"},
		{"xmlDetail not UTF-8", "12 06 7a04 0a02c328"},
		{"varint over 10 bytes", "18 ffffffffffffffffffff01"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := TakMessage{SubmissionTime: 7}
			err := m.Unmarshal(unhex(t, tc.wire))
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
			if !strings.HasPrefix(err.Error(), "takproto: malformed message: ") {
				t.Errorf("error text %q", err)
			}
			if !equalMsg(&m, &TakMessage{}) {
				t.Errorf("message not reset: %s", dump(&m))
			}
		})
	}
}

func TestUnmarshalResetsAndDoesNotAlias(t *testing.T) {
	m := *fixtureMsg(t, "sa")
	payload := m.AppendMarshal(nil)
	var got TakMessage
	got.SubmissionTime = 99
	got.TakControl = &TakControl{MinProtoVersion: 1}
	if err := got.Unmarshal(payload); err != nil {
		t.Fatal(err)
	}
	if !equalMsg(&got, &m) {
		t.Fatalf("got  %s\nwant %s", dump(&got), dump(&m))
	}
	// Strings must not alias the payload: the framer's buffer is reused for the next frame.
	for i := range payload {
		payload[i] = 'X'
	}
	if !equalMsg(&got, &m) {
		t.Errorf("decoded message changed with its input buffer: %s", dump(&got))
	}
}

func TestCodecAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	for _, name := range []string{"sa", "chat", "ping"} {
		m := fixtureMsg(t, name)
		buf := make([]byte, 0, 4096)
		if n := testing.AllocsPerRun(100, func() { m.AppendMarshal(buf[:0]) }); n != 0 {
			t.Errorf("%s: AppendMarshal allocates %v times with capacity", name, n)
		}
		if n := testing.AllocsPerRun(100, func() { AppendMessageFrame(buf[:0], m) }); n != 0 {
			t.Errorf("%s: AppendMessageFrame allocates %v times with capacity", name, n)
		}
		if n := testing.AllocsPerRun(100, func() { m.AppendMarshal(nil) }); n != 1 {
			t.Errorf("%s: AppendMarshal(nil) allocates %v times, want 1", name, n)
		}
		payload := m.AppendMarshal(nil)
		var got TakMessage
		if n := testing.AllocsPerRun(100, func() { _ = got.Unmarshal(payload) }); n > 2 {
			t.Errorf("%s: Unmarshal allocates %v times, want at most 2", name, n)
		}
	}
}
