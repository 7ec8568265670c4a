package web

import (
	"bytes"
	"encoding/xml"
	"os"
	"testing"
)

// referenceMotion is readMotion written with encoding/xml: slow, but
// obviously right on well-formed documents.
func referenceMotion(doc []byte) (motion, bool) {
	d := xml.NewDecoder(bytes.NewReader(doc))
	var path []string
	var found *motion
	for {
		tok, err := d.Token()
		if err != nil {
			if found != nil {
				return *found, true
			}
			return motion{}, err.Error() == "EOF"
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if found == nil && len(path) == 2 && path[0] == "event" && path[1] == "detail" && t.Name.Local == "track" && t.Name.Space == "" {
				var raw [2]string
				for _, a := range t.Attr {
					switch a.Name.Local {
					case "course":
						raw[0] = a.Value
					case "speed":
						raw[1] = a.Value
					}
				}
				c, okC := number(raw[0])
				s, okS := number(raw[1])
				found = &motion{Course: c, Speed: s, OK: okC && okS}
			}
			path = append(path, t.Name.Local)
		case xml.EndElement:
			path = path[:len(path)-1]
		}
	}
}

// On every well-formed document the lexer agrees with encoding/xml.
func FuzzReadMotion(f *testing.F) {
	sa, _ := os.ReadFile("testdata/sa.xml")
	chat, _ := os.ReadFile("testdata/geochat.xml")
	f.Add(sa)
	f.Add(chat)
	f.Add([]byte(`<event><detail><remarks><![CDATA[<track course="1" speed="2"/>]]></remarks><track course="3" speed="4"/></detail></event>`))
	f.Add([]byte(`<event><detail><x><track course="9" speed="9"/></x><!-- <track course="1" speed="1"/> --><track course='3' speed='2.5'></track></detail></event>`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		want, wellFormed := referenceMotion(doc)
		if !wellFormed || bytes.Contains(doc, []byte("&")) || bytes.Contains(doc, []byte("<!DOCTYPE")) {
			readMotion(doc) // must not panic; entities and DTDs are not worth agreeing on
			return
		}
		if want.OK && !bytes.Contains(doc, []byte(`<track`)) {
			return // a namespaced or oddly spaced tag the reference accepts
		}
		if got := readMotion(doc); got != want {
			t.Fatalf("readMotion %+v, encoding/xml %+v\n%s", got, want, doc)
		}
	})
}
