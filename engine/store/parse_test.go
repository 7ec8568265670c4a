package store_test

import (
	"errors"
	"strings"
	"testing"

	"cotd/engine/store"
)

func TestFromEventSA(t *testing.T) {
	doc := fixture(t, "sa.xml")
	s := store.Sender{UID: "ANDROID-5f3c9a1e2b7d4c60", Callsign: "ALPHA", User: "alice", Groups: []string{"Cyan"}}
	e, c, err := store.FromEvent(doc, t0, s)
	if err != nil || c != nil {
		t.Fatalf("FromEvent: %v, chat %v", err, c)
	}
	if e.UID != "ANDROID-5f3c9a1e2b7d4c60" || e.Type != "a-f-G-U-C" || e.How != "m-g" || e.Lat != 47.6204121 ||
		e.Lon != -122.3491337 || e.HAE != 58.913 || e.CE != 4.9 || e.LE != 9999999 ||
		e.Time.Format("15:04:05.000") != "09:26:41.112" || e.Stale.Format("15:04:05.000") != "09:28:41.112" ||
		!e.ServerTime.Equal(t0) || e.SenderUser != "alice" || e.Groups[0] != "Cyan" {
		t.Errorf("record = %+v", e)
	}
	start := strings.Index(string(doc), "<detail>")
	end := strings.Index(string(doc), "</detail>") + len("</detail>")
	if e.Detail != string(doc[start:end]) {
		t.Errorf("detail = %q\nwant %q", e.Detail, doc[start:end])
	}
}

func TestFromEventChat(t *testing.T) {
	_, c, err := store.FromEvent(fixture(t, "geochat.xml"), t0, store.Sender{})
	if err != nil || c == nil {
		t.Fatalf("FromEvent: %v, chat %v", err, c)
	}
	// No connection uid: the chat's own sender (chatgrp uid0) is used.
	if c.SenderUID != "ANDROID-5f3c9a1e2b7d4c60" || c.ChatSenderCallsign != "ALPHA" || c.Room != "BRAVO" ||
		c.Text != "Meet at the north gate & bring the spare radio <PRC-152>" || !c.Directed() {
		t.Errorf("chat = %+v", c)
	}
	// Receipts are chat too, and an All Chat Rooms message is not directed.
	receipt := strings.Replace(string(chatDoc("r", "x", nil)), `type="b-t-f"`, `type="b-t-f-r"`, 1)
	if _, c, err := store.FromEvent([]byte(receipt), t0, store.Sender{}); err != nil || c == nil || c.Directed() {
		t.Errorf("receipt: %v %+v", err, c)
	}
}

// TestDetailBoundaries: text that looks like a <detail> boundary inside a
// comment, CDATA or an attribute value does not move it.
func TestDetailBoundaries(t *testing.T) {
	head := `<?xml version="1.0"?><!-- <detail>fake</detail> --><event version="2.0" uid="u" type="a-f-G" how="m-g" time="2026-03-14T09:00:00Z" start="2026-03-14T09:00:00Z" stale="2026-03-14T09:01:00Z">`
	for name, c := range map[string]struct{ body, detail string }{
		"cdata":     {`<point lat="1" lon="2" hae="0" ce="0" le="0"/><detail><remarks><![CDATA[</detail> <detail>]]></remarks></detail>`, `<detail><remarks><![CDATA[</detail> <detail>]]></remarks></detail>`},
		"attribute": {`<point lat="1" lon="2" hae="0" ce="0" le="0"/><detail><x a="></detail>"/></detail>`, `<detail><x a="></detail>"/></detail>`},
		"empty":     {`<point lat="1" lon="2" hae="0" ce="0" le="0"/><detail/>`, `<detail/>`},
		"none":      {`<point lat="1" lon="2" hae="0" ce="0" le="0"/>`, ``},
		"nested":    {`<point lat="1" lon="2" hae="0" ce="0" le="0"/><detail><detail>inner</detail><details/></detail>`, `<detail><detail>inner</detail><details/></detail>`},
		"detailsx":  {`<details/><point lat="1" lon="2" hae="0" ce="0" le="0"/><detail a='1'></detail>`, `<detail a='1'></detail>`},
	} {
		e, _, err := store.FromEvent([]byte(head+c.body+`</event>`), t0, store.Sender{})
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if e.Detail != c.detail {
			t.Errorf("%s: detail = %q, want %q", name, e.Detail, c.detail)
		}
	}
}

func TestFromEventRefuses(t *testing.T) {
	for name, c := range map[string]struct {
		doc  string
		want error
	}{
		"ping":    {`<event version="2.0" uid="p" type="t-x-c-t" how="m-g"><point lat="0" lon="0"/><detail/></event>`, store.ErrNotArchived},
		"auth":    {`<auth><cot username="a" password="b" uid="c"/></auth>`, store.ErrNotArchived},
		"garbage": {`<event uid="x"`, store.ErrBadEvent},
		"no uid":  {`<event type="a-f-G" how="m-g"><point lat="0" lon="0"/></event>`, store.ErrBadEvent},
		"html":    {`<html></html>`, store.ErrBadEvent},
	} {
		if _, _, err := store.FromEvent([]byte(c.doc), t0, store.Sender{}); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", name, err, c.want)
		}
	}
}

func TestMaskURL(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://cotd:s3cret@db:5432/cotd":            "postgres://cotd:xxxxx@db:5432/cotd",
		"postgres://db/cotd?user=cotd&password=s3cret":   "postgres://db/cotd?password=xxxxx&user=cotd",
		"postgres://cotd@db/cotd":                        "postgres://cotd@db/cotd",
		"postgres://cotd:s3cret@db:99999999999/%zz?x=1 ": "postgres://(unparsable URL)",
	} {
		got := store.MaskURL(in)
		if got != want || strings.Contains(got, "s3cret") {
			t.Errorf("MaskURL(%q) = %q, want %q", in, got, want)
		}
	}
}
