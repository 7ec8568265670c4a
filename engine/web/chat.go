package web

import (
	"time"

	"cotd/cot"
)

// AllChatRooms is ATAK's name for the chat room every contact is in.
const AllChatRooms = "All Chat Rooms"

// chatStale is how long a GeoChat stays valid; ATAK writes a day.
const chatStale = 24 * time.Hour

// chatFrom is the console as a chat sender.
type chatFrom struct {
	UID, Callsign string
}

// chatTo is one contact a chat is addressed to; the zero value is All Chat
// Rooms.
type chatTo struct {
	UID, Callsign string
}

// geoChat builds a b-t-f event the way ATAK writes one (see
// cot/testdata/geochat.xml): the event uid names sender, room and message;
// <__chat> carries room and sender callsign, <chatgrp> the two parties,
// <remarks> the text. A chat to one contact carries <marti><dest
// callsign>, so the server delivers it to that contact only; a chat to All
// Chat Rooms carries no <marti> and reaches everyone the sender's groups
// reach.
func geoChat(from chatFrom, to chatTo, text, msgID string, now time.Time) []byte {
	room, roomID := AllChatRooms, AllChatRooms
	if to.Callsign != "" {
		room, roomID = to.Callsign, to.UID
		if roomID == "" {
			roomID = to.Callsign
		}
	}
	b := make([]byte, 0, 900+len(text))
	b = append(b, `<event version="2.0" uid="GeoChat.`...)
	b = cot.AppendEscaped(b, from.UID+"."+roomID+"."+msgID)
	b = append(b, `" type="`...)
	b = append(b, cot.TypeChat...)
	b = append(b, `" how="`...)
	b = append(b, cot.HowServer...)
	b = append(b, `" time="`...)
	b = now.UTC().AppendFormat(b, cot.TimeLayout)
	b = append(b, `" start="`...)
	b = now.UTC().AppendFormat(b, cot.TimeLayout)
	b = append(b, `" stale="`...)
	b = now.Add(chatStale).UTC().AppendFormat(b, cot.TimeLayout)
	b = append(b, `"><point lat="0" lon="0" hae="9999999" ce="9999999" le="9999999"/><detail>`...)
	b = append(b, `<__chat parent="RootContactGroup" groupOwner="false" messageId="`...)
	b = cot.AppendEscaped(b, msgID)
	b = append(b, `" chatroom="`...)
	b = cot.AppendEscaped(b, room)
	b = append(b, `" id="`...)
	b = cot.AppendEscaped(b, roomID)
	b = append(b, `" senderCallsign="`...)
	b = cot.AppendEscaped(b, from.Callsign)
	b = append(b, `"><chatgrp uid0="`...)
	b = cot.AppendEscaped(b, from.UID)
	b = append(b, `" uid1="`...)
	b = cot.AppendEscaped(b, roomID)
	b = append(b, `" id="`...)
	b = cot.AppendEscaped(b, roomID)
	b = append(b, `"/></__chat><link uid="`...)
	b = cot.AppendEscaped(b, from.UID)
	b = append(b, `" type="a-f-G-U-C" relation="p-p"/><remarks source="BAO.F.ATAK.`...)
	b = cot.AppendEscaped(b, from.UID)
	b = append(b, `" to="`...)
	b = cot.AppendEscaped(b, roomID)
	b = append(b, `" time="`...)
	b = now.UTC().AppendFormat(b, cot.TimeLayout)
	b = append(b, `">`...)
	b = cot.AppendEscaped(b, text) // quotes escaped too: legal in text, and one escaper
	b = append(b, `</remarks>`...)
	if to.Callsign != "" {
		b = append(b, `<marti><dest callsign="`...)
		b = cot.AppendEscaped(b, to.Callsign)
		b = append(b, `"/></marti>`...)
	}
	return append(b, `</detail></event>`...)
}
