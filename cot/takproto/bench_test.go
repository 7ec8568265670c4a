package takproto

import (
	"testing"

	"cotd/cot"
)

// benchEvents are the events benchmarked: a self SA, the most common message by far, and a
// GeoChat, which is mostly xmlDetail.
var benchEvents = []string{"sa", "chat"}

// BenchmarkDecode is the per-event cost of reading an event: what the router pays for XML
// (cot.ScanHeader) against v1 (Unmarshal), and the conversion into v1 (FromXML).
func BenchmarkDecode(b *testing.B) {
	for _, name := range benchEvents {
		doc := fixtureDoc(b, name)
		payload := fixtureMsg(b, name).AppendMarshal(nil)
		b.Run(name+"/xml-scanheader", func(b *testing.B) {
			var h cot.Header
			b.SetBytes(int64(len(doc)))
			b.ReportAllocs()
			for b.Loop() {
				if err := cot.ScanHeader(doc, &h); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/v1-unmarshal", func(b *testing.B) {
			var m TakMessage
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			for b.Loop() {
				if err := m.Unmarshal(payload); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/fromxml", func(b *testing.B) {
			var m TakMessage
			b.SetBytes(int64(len(doc)))
			b.ReportAllocs()
			for b.Loop() {
				if err := FromXML(doc, &m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEncode is the per-event cost of writing an event into a reused buffer.
func BenchmarkEncode(b *testing.B) {
	for _, name := range benchEvents {
		m := fixtureMsg(b, name)
		buf := make([]byte, 0, 4096)
		b.Run(name+"/v1-appendmarshal", func(b *testing.B) {
			b.SetBytes(int64(m.Size()))
			b.ReportAllocs()
			for b.Loop() {
				buf = m.AppendMarshal(buf[:0])
			}
		})
		b.Run(name+"/v1-appendmessageframe", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				buf = AppendMessageFrame(buf[:0], m)
			}
		})
		b.Run(name+"/appendxml", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if buf, err = AppendXML(buf[:0], m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRelay is what the engine pays once per routed event for the recipients of the
// other protocol: XML in -> one v1 frame (FromXML, AppendMessageFrame into a fresh slice
// that all v1 recipients then share), and v1 in -> XML (Unmarshal, AppendXML). It reports
// the bytes one event takes on the wire in each protocol.
func BenchmarkRelay(b *testing.B) {
	for _, name := range benchEvents {
		doc := fixtureDoc(b, name)
		frame := AppendMessageFrame(nil, fixtureMsg(b, name))
		b.Run(name+"/xml-to-v1frame", func(b *testing.B) {
			var m TakMessage
			b.ReportAllocs()
			for b.Loop() {
				if err := FromXML(doc, &m); err != nil {
					b.Fatal(err)
				}
				frame = AppendMessageFrame(nil, &m)
			}
			b.ReportMetric(float64(len(doc)), "xml-B/event")
			b.ReportMetric(float64(len(frame)), "v1-B/event")
		})
		b.Run(name+"/v1frame-to-xml", func(b *testing.B) {
			f := NewFramer(0)
			var m TakMessage
			var out []byte
			emit := func(p []byte) error {
				if err := m.Unmarshal(p); err != nil {
					return err
				}
				var err error
				out, err = AppendXML(nil, &m)
				return err
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := f.Feed(frame, emit); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(frame)), "v1-B/event")
			b.ReportMetric(float64(len(out)), "xml-B/event")
		})
	}
}

func BenchmarkFramer(b *testing.B) {
	var stream []byte
	for _, f := range xmlFixtures {
		stream = AppendMessageFrame(stream, fixtureMsg(b, f.name))
	}
	for _, bc := range []struct {
		name  string
		chunk int
	}{
		{"whole", len(stream)},
		{"chunk1460", 1460},
		{"chunk100", 100},
	} {
		b.Run(bc.name, func(b *testing.B) {
			f := NewFramer(0)
			frames := 0
			emit := func([]byte) error { frames++; return nil }
			b.SetBytes(int64(len(stream)))
			b.ReportAllocs()
			for b.Loop() {
				for off := 0; off < len(stream); off += bc.chunk {
					if err := f.Feed(stream[off:min(off+bc.chunk, len(stream))], emit); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(frames)/b.Elapsed().Seconds(), "frames/s")
		})
	}
}
