package cot

import (
	"testing"
)

func BenchmarkXMLFramer(b *testing.B) {
	in := mixStream(b)
	for _, bc := range []struct {
		name  string
		chunk int
	}{
		{"whole", len(in)},
		{"chunk1460", 1460}, // one TCP segment per read at the Ethernet MSS
	} {
		b.Run(bc.name, func(b *testing.B) {
			f := NewXMLFramer(0)
			docs := 0
			emit := func([]byte) error { docs++; return nil }
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				for off := 0; off < len(in); off += bc.chunk {
					if err := f.Feed(in[off:min(off+bc.chunk, len(in))], emit); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(docs)/b.Elapsed().Seconds(), "docs/s")
		})
	}
}

func BenchmarkScanHeader(b *testing.B) {
	for _, name := range mixFiles {
		doc := oneDoc(b, testdata(b, name))
		b.Run(name, func(b *testing.B) {
			var h Header
			b.SetBytes(int64(len(doc)))
			b.ReportAllocs()
			for b.Loop() {
				if err := ScanHeader(doc, &h); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkStripMarti(b *testing.B) {
	doc := oneDoc(b, testdata(b, "geochat.xml"))
	var h Header
	if err := ScanHeader(doc, &h); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		StripMarti(doc, &h)
	}
}
