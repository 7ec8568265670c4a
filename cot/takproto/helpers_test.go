package takproto

import (
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"cotd/cot"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ from the encoder output")

// nodeTakPosition is a capture from third-party software, kept in the repository's
// testdata/node-tak (its README says where it came from).
const nodeTakPosition = "../../testdata/node-tak/position.xml"

// xmlFixtures are the events every conversion test runs on, by short name.
var xmlFixtures = []struct{ name, path string }{
	{"sa", "testdata/sa.xml"},
	{"chat", "testdata/chat.xml"},
	{"marker", "testdata/marker.xml"},
	{"ping", "testdata/ping.xml"},
	{"nodetak", nodeTakPosition},
}

func readFile(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// oneDoc returns the single document in b as cot.XMLFramer emits it, which is what the
// engine hands to FromXML.
func oneDoc(tb testing.TB, b []byte) []byte {
	tb.Helper()
	var docs [][]byte
	err := cot.NewXMLFramer(0).Feed(b, func(doc []byte) error {
		docs = append(docs, append([]byte(nil), doc...))
		return nil
	})
	if err != nil || len(docs) != 1 {
		tb.Fatalf("framing fixture: %d documents, %v", len(docs), err)
	}
	return docs[0]
}

func fixtureDoc(tb testing.TB, name string) []byte {
	tb.Helper()
	for _, f := range xmlFixtures {
		if f.name == name {
			return oneDoc(tb, readFile(tb, f.path))
		}
	}
	tb.Fatalf("no fixture %q", name)
	return nil
}

func fixtureMsg(tb testing.TB, name string) *TakMessage {
	tb.Helper()
	var m TakMessage
	if err := FromXML(fixtureDoc(tb, name), &m); err != nil {
		tb.Fatalf("FromXML(%s): %v", name, err)
	}
	return &m
}

// golden compares got with testdata/name, or rewrites the file under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from the golden file:\ngot  %q\nwant %q", name, got, want)
	}
}

// equalMsg is reflect.DeepEqual with floats compared by their bits, so that NaN equals the
// same NaN and -0 differs from 0, as on the wire.
func equalMsg(a, b *TakMessage) bool {
	return deepEqualBits(reflect.ValueOf(a), reflect.ValueOf(b))
}

func deepEqualBits(a, b reflect.Value) bool {
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return deepEqualBits(a.Elem(), b.Elem())
	case reflect.Struct:
		for i := range a.NumField() {
			if !deepEqualBits(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Float64:
		return math.Float64bits(a.Float()) == math.Float64bits(b.Float())
	case reflect.String:
		return a.String() == b.String()
	case reflect.Uint64, reflect.Uint32:
		return a.Uint() == b.Uint()
	}
	panic(fmt.Sprintf("deepEqualBits: unexpected kind %s", a.Kind()))
}

// dump renders m for failure messages.
func dump(m *TakMessage) string {
	if m == nil {
		return "<nil>"
	}
	s := fmt.Sprintf("{SubmissionTime:%d CreationTime:%d", m.SubmissionTime, m.CreationTime)
	if c := m.TakControl; c != nil {
		s += fmt.Sprintf(" TakControl:%+v", *c)
	}
	if e := m.CotEvent; e != nil {
		ev := *e
		ev.Detail = nil
		s += fmt.Sprintf(" CotEvent:%+v", ev)
		if d := e.Detail; d != nil {
			s += fmt.Sprintf(" Detail{XmlDetail:%q", d.XmlDetail)
			for _, p := range []any{d.Contact, d.Group, d.PrecisionLocation, d.Status, d.Takv, d.Track} {
				if !reflect.ValueOf(p).IsNil() {
					s += fmt.Sprintf(" %T%+v", p, reflect.ValueOf(p).Elem().Interface())
				}
			}
			s += "}"
		}
	}
	return s + "}"
}
