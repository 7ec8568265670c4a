package web

import (
	"bytes"
	"encoding/xml"
	"io"
	"strconv"
	"strings"

	"cotd/cot"
)

// motion is what a position report says about movement, read from
// <detail><track course speed>: the engine's header scanner does not read
// it, and the web console needs it only off the hot path.
type motion struct {
	Course, Speed float64
	OK            bool
}

// readMotion reads the first <track> that is a child of <detail> in an
// <event>. A document without one, or with values that are not numbers,
// reports !OK. It uses cot's lexer rather than encoding/xml, which costs ten
// times as much per position report on the hub's one goroutine; the lexer
// skips comments, CDATA, processing instructions and quoted attribute
// values, so a "<track" inside any of them is not taken for the element.
func readMotion(doc []byte) motion {
	if !bytes.Contains(doc, []byte("<track")) {
		return motion{}
	}
	var lx cot.Lexer
	lx.Reset(doc, cot.Lenient)
	inEvent, inDetail := false, false // the open elements at depth 0 and 1
	for {
		t, ok, err := lx.Next()
		if err != nil || !ok {
			return motion{} // malformed, or the end with no track
		}
		switch {
		case t.Kind == cot.TokenEnd:
			if t.Depth == 1 && string(t.Name) == "detail" || t.Depth < 0 {
				return motion{} // the whole <detail> had no track
			}
		case t.Depth == 2 && inEvent && inDetail && string(t.Name) == "track":
			var course, speed []byte
			for a := t.Attrs; ; {
				name, v, ok := a.Next()
				if !ok {
					break
				}
				switch {
				case string(name) == "course" && course == nil:
					course = v
				case string(name) == "speed" && speed == nil:
					speed = v
				}
			}
			c, okC := number(string(course))
			s, okS := number(string(speed))
			return motion{Course: c, Speed: s, OK: okC && okS}
		case t.Kind == cot.TokenStart && t.Depth == 0:
			inEvent = string(t.Name) == "event"
		case t.Kind == cot.TokenStart && t.Depth == 1:
			inDetail = string(t.Name) == "detail"
		}
	}
}

func number(s string) (float64, bool) {
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	return v, err == nil && v == v && v > -1e9 && v < 1e9
}

// chatLine is a GeoChat as the console shows it.
type chatLine struct {
	From     string `json:"from"`
	FromUID  string `json:"fromUid"`
	Room     string `json:"room"`
	Text     string `json:"text"`
	AtMillis int64  `json:"at"`
}

// readChat reads the sender, room and text of a b-t-f document:
// <__chat senderCallsign chatroom> and the text of <remarks>.
func readChat(doc []byte) (chatLine, error) {
	d := xml.NewDecoder(bytes.NewReader(doc))
	d.Strict = false
	var c chatLine
	found, inRemarks := false, false
	var text strings.Builder
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return c, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			switch t.Name.Local {
			case "__chat":
				found = true
				for _, a := range t.Attr {
					switch a.Name.Local {
					case "senderCallsign":
						c.From = a.Value
					case "chatroom":
						c.Room = a.Value
					}
				}
			case "chatgrp":
				for _, a := range t.Attr {
					if a.Name.Local == "uid0" && c.FromUID == "" {
						c.FromUID = a.Value
					}
				}
			case "remarks":
				inRemarks = true
			}
		case xml.CharData:
			if inRemarks {
				text.Write(t)
			}
		case xml.EndElement:
			if t.Name.Local == "remarks" {
				inRemarks = false
			}
		}
	}
	if !found {
		return c, errNoChat
	}
	c.Text = text.String()
	return c, nil
}
