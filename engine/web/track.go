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

// readMotion reads the first <track> that is a child of <detail> in an
// <event>. A document without one, or with values that are not numbers,
// reports !OK. It is a small tag lexer rather than encoding/xml, which
// costs ten times as much per position report on the hub's one goroutine;
// like the engine's scanner it skips comments, CDATA, processing
// instructions and quoted attribute values, so a "<track" inside any of
// them is not taken for the element.
func readMotion(doc []byte) motion {
	if !bytes.Contains(doc, []byte("<track")) {
		return motion{}
	}
	var path [2]string // the names of the open elements at depth 0 and 1
	depth := 0
	for i := 0; i < len(doc); {
		lt := bytes.IndexByte(doc[i:], '<')
		if lt < 0 {
			return motion{}
		}
		i += lt
		rest := doc[i:]
		switch {
		case bytes.HasPrefix(rest, []byte("<!--")):
			end := bytes.Index(rest, []byte("-->"))
			if end < 0 {
				return motion{}
			}
			i += end + 3
			continue
		case bytes.HasPrefix(rest, []byte("<![CDATA[")):
			end := bytes.Index(rest, []byte("]]>"))
			if end < 0 {
				return motion{}
			}
			i += end + 3
			continue
		case bytes.HasPrefix(rest, []byte("<?")), bytes.HasPrefix(rest, []byte("<!")):
			end := bytes.IndexByte(rest, '>')
			if end < 0 {
				return motion{}
			}
			i += end + 1
			continue
		}
		tag, n := tagAt(rest)
		if n == 0 {
			return motion{} // unterminated or malformed
		}
		i += n
		if tag.end {
			depth--
			if depth == 1 && tag.name == "detail" || depth < 0 {
				return motion{} // the whole <detail> had no track
			}
			continue
		}
		if depth == 2 && path[0] == "event" && path[1] == "detail" && tag.name == "track" {
			course, okC := number(tag.attr("course"))
			speed, okS := number(tag.attr("speed"))
			return motion{Course: course, Speed: speed, OK: okC && okS}
		}
		if tag.selfClosing {
			continue
		}
		if depth < len(path) {
			path[depth] = tag.name
		}
		depth++
	}
	return motion{}
}

// tag is one start or end tag as tagAt reads it.
type tag struct {
	name             string
	end, selfClosing bool
	attrs            []byte // the raw attribute text
}

// tagAt reads the tag at the start of b ("<name ...>" or "</name>") and
// returns it with its length, or 0 when b holds no complete tag.
func tagAt(b []byte) (tag, int) {
	var t tag
	i := 1
	if i < len(b) && b[i] == '/' {
		t.end = true
		i++
	}
	start := i
	for i < len(b) && !isSpace(b[i]) && b[i] != '>' && b[i] != '/' {
		i++
	}
	if i == start {
		return tag{}, 0
	}
	t.name = string(b[start:i])
	attrStart := i
	var quote byte
	for ; i < len(b); i++ {
		c := b[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '>':
			t.attrs = b[attrStart:i]
			if n := len(t.attrs); n > 0 && t.attrs[n-1] == '/' {
				t.selfClosing = true
				t.attrs = t.attrs[:n-1]
			}
			return t, i + 1
		}
	}
	return tag{}, 0
}

// attr returns the value of the attribute name (not unescaped: the values
// read here are numbers), or "".
func (t tag) attr(name string) string {
	a := t.attrs
	for len(a) > 0 {
		a = bytes.TrimLeft(a, " \t\r\n")
		eq := bytes.IndexByte(a, '=')
		if eq < 0 {
			return ""
		}
		key := string(bytes.TrimSpace(a[:eq]))
		a = bytes.TrimLeft(a[eq+1:], " \t\r\n")
		if len(a) == 0 || a[0] != '"' && a[0] != '\'' {
			return ""
		}
		end := bytes.IndexByte(a[1:], a[0])
		if end < 0 {
			return ""
		}
		if key == name {
			return string(a[1 : 1+end])
		}
		a = a[end+2:]
	}
	return ""
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

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
