package web

import (
	"bytes"
	"encoding/xml"
	"io"
	"strconv"
	"strings"
)

// motion is what a position report says about movement, read from
// <detail><track course speed>: the engine's header scanner does not read
// it, and the web console needs it only off the hot path.
type motion struct {
	Course, Speed float64
	OK            bool
}

// readMotion reads the first <track> inside <detail>. A document without
// one, or with values that are not numbers, reports !OK.
func readMotion(doc []byte) motion {
	if !bytes.Contains(doc, []byte("<track")) {
		return motion{}
	}
	d := xml.NewDecoder(bytes.NewReader(doc))
	d.Strict = false
	depth := 0
	var path [3]string
	for {
		tok, err := d.RawToken()
		if err != nil {
			return motion{}
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth < len(path) {
				path[depth] = t.Name.Local
			}
			depth++
			if depth == 3 && path[0] == "event" && path[1] == "detail" && t.Name.Local == "track" {
				var m motion
				var okC, okS bool
				for _, a := range t.Attr {
					switch a.Name.Local {
					case "course":
						m.Course, okC = number(a.Value)
					case "speed":
						m.Speed, okS = number(a.Value)
					}
				}
				m.OK = okC && okS
				return m
			}
		case xml.EndElement:
			depth--
			if depth == 1 && t.Name.Local == "detail" {
				return motion{} // the whole <detail> had no track
			}
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
