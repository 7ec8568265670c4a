package enginetest

import (
	"fmt"
	"strings"
	"time"

	"cotd/cot"
)

// SA is a self position report as ATAK sends it (with the commo-style XML
// declaration in front).
func SA(uid, callsign, typ string) string {
	now := time.Now().UTC()
	return fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8" standalone="yes"?>`+"\n"+
		`<event version="2.0" uid="%s" type="%s" how="m-g" time="%s" start="%s" stale="%s">`+
		`<point lat="35.1" lon="-97.2" hae="300" ce="9.9" le="9999999"/>`+
		`<detail><contact callsign="%s" endpoint="*:-1:stcp"/><__group name="Cyan" role="Team Member"/>`+
		`<takv device="test" platform="ATAK-CIV" os="34" version="5.2"/><track course="12" speed="0"/></detail></event>`,
		uid, typ, ts(now), ts(now), ts(now.Add(2*time.Minute)), callsign)
}

// Marker is a user-placed point (not an SA: no contact endpoint).
func Marker(uid string) string {
	now := time.Now().UTC()
	return fmt.Sprintf(`<event version="2.0" uid="%s" type="a-h-G" how="h-g-i-g-o" time="%s" start="%s" stale="%s">`+
		`<point lat="1" lon="2" hae="0" ce="9999999" le="9999999"/><detail><remarks>a marker</remarks></detail></event>`,
		uid, ts(now), ts(now), ts(now.Add(time.Hour)))
}

// Chat is a GeoChat message; to lists destination callsigns (marti dest) and
// toUIDs destination uids. With neither it goes to All Chat Rooms.
func Chat(uid, text string, to, toUIDs []string) string {
	now := time.Now().UTC()
	var marti strings.Builder
	if len(to)+len(toUIDs) > 0 {
		marti.WriteString("<marti>")
		for _, cs := range to {
			fmt.Fprintf(&marti, `<dest callsign="%s"/>`, cs)
		}
		for _, u := range toUIDs {
			fmt.Fprintf(&marti, `<dest uid="%s"/>`, u)
		}
		marti.WriteString("</marti>")
	}
	return fmt.Sprintf(`<event version="2.0" uid="%s" type="b-t-f" how="h-g-i-g-o" time="%s" start="%s" stale="%s">`+
		`<point lat="0" lon="0" hae="0" ce="9999999" le="9999999"/><detail>`+
		`<__chat chatroom="All Chat Rooms" id="All Chat Rooms" senderCallsign="X"><chatgrp uid0="x" id="All Chat Rooms"/></__chat>`+
		`%s<remarks><![CDATA[%s]]></remarks></detail></event>`,
		uid, ts(now), ts(now), ts(now.Add(24*time.Hour)), marti.String(), text)
}

// Ping is ATAK's keep-alive.
func Ping(deviceUID string) string {
	now := time.Now().UTC()
	return fmt.Sprintf(`<?xml version="1.0"?>`+"\n"+`<event version="2.0" uid="%s-ping" type="t-x-c-t" how="m-g" time="%s" start="%s" stale="%s">`+
		`<point lat="0" lon="0" hae="0" ce="9999999" le="9999999"/><detail/></event>`,
		deviceUID, ts(now), ts(now), ts(now.Add(10*time.Second)))
}

func ts(t time.Time) string { return cot.FormatTime(t) }
