// Package cot reads and writes Cursor-on-Target (CoT) XML as TAK clients (ATAK, WinTAK, iTAK)
// speak it on a streaming TCP or TLS connection.
//
// A stream carries one top-level document after another with no length prefix (TAK protocol
// "version 0"): <event> documents, optionally preceded by an XML declaration, and once, on
// TLS, an <auth> document. The pieces are:
//
//   - XMLFramer cuts a byte stream into documents. It is resumable, so a network event loop
//     can feed it whatever a read returned, and it never buffers more than its frame cap. It
//     tracks real XML structure (quotes, comments, CDATA) instead of searching for the bytes
//     "</event>" the way clients do, because a chat text may legally contain that string.
//   - Lexer is cotd's one XML tokenizer: it yields the tags of a complete document (or, for
//     TAK protocol v1's xmlDetail, element content) held in memory, with a strictness switch.
//     Lenient is what a router needs; Strict and StrictContent check well-formedness for
//     takproto, whose conversions must trust structure. Attrs and Value read attributes.
//     XMLFramer stays separate: it must take a stream in whatever pieces reads return and
//     bound its buffer before a document is complete, so it is a resumable byte machine that
//     keeps state between calls. Everything after it has the whole document, so the lexer
//     needs no state between calls, its tokens alias the one document instead of a
//     buffer that a resumable lexer would have to keep, and it never re-checks what the
//     framer already counted and bounded. The two share their character classes.
//   - ScanHeader pulls from one document the fields a router needs (uid, type, times, point,
//     contact, team, marti destinations, link, auth credentials) without building a tree;
//     the document bytes themselves are forwarded unchanged. It refuses an event holding
//     "</event" anywhere but in its end tag (ErrEmbeddedEventEnd), which TAK clients would
//     split in two, and Header.CheckTimes refuses times that cannot be meant
//     (ErrImplausibleTime).
//   - StripMarti removes the <marti> routing element, as TAK Server does before delivery.
//   - Pong, DisconnectNotice and FormatTime build the events a server originates.
//
// The package imports only the standard library; the engine builds on it, never the other
// way round.
package cot
