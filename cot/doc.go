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
//   - ScanHeader pulls from one document the fields a router needs (uid, type, times, point,
//     contact, team, marti destinations, link, auth credentials) without building a tree;
//     the document bytes themselves are forwarded unchanged.
//   - StripMarti removes the <marti> routing element, as TAK Server does before delivery.
//   - Pong, DisconnectNotice and FormatTime build the events a server originates.
//
// The package imports only the standard library; the engine builds on it, never the other
// way round.
package cot
