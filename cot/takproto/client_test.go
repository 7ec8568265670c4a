package takproto

import (
	"testing"

	"cotd/cot"
)

// A client's input: XML until the granting response, v1 frames after it, fed whole and
// byte by byte; every event comes out as XML in order, and V1 is true from the response on.
func TestClientReaderSwitchesAfterTheGrant(t *testing.T) {
	sa := []byte(`<event version="2.0" uid="A" type="a-f-G-U-C" how="m-g" time="2026-05-02T12:00:00Z" start="2026-05-02T12:00:00Z" stale="2026-05-02T12:01:00Z"><point lat="1" lon="2" hae="0" ce="9" le="9"/><detail/></event>`)
	var m TakMessage
	if err := FromXML(sa, &m); err != nil {
		t.Fatal(err)
	}
	stream := append([]byte(nil), sa...)
	stream = AppendOffer(stream, "o", negotiationNow)
	stream = AppendResponse(stream, "o", false, negotiationNow)
	stream = AppendResponse(stream, "o", true, negotiationNow)
	stream = AppendMessageFrame(stream, &m)
	stream = AppendMessageFrame(stream, &TakMessage{}) // a bare TakControl: skipped
	stream = AppendMessageFrame(stream, &m)
	want := []string{"a-f-G-U-C", cot.TypeTakpOffer, cot.TypeTakpResponse, cot.TypeTakpResponse, "a-f-G-U-C", "a-f-G-U-C"}
	for _, step := range []int{len(stream), 1} {
		r := NewClientReader(1<<20, false)
		var got []string
		var v1At []bool
		for i := 0; i < len(stream); i += step {
			err := r.Feed(stream[i:min(i+step, len(stream))], func(doc []byte) error {
				var h cot.Header
				if err := cot.ScanHeader(doc, &h); err != nil {
					t.Fatalf("emitted %q: %v", doc, err)
				}
				got, v1At = append(got, h.Type), append(v1At, r.V1())
				return nil
			})
			if err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("step %d: got %v, want %v", step, got, want)
		}
		for i := range want {
			if got[i] != want[i] || v1At[i] != (i >= 3) {
				t.Errorf("step %d: event %d is %s with V1 %v; want %s with V1 %v", step, i, got[i], v1At[i], want[i], i >= 3)
			}
		}
	}
}
