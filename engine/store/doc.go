// Package store keeps what a TAK administrator expects to survive a restart:
// the history of routed events, GeoChat (with chats kept for recipients who
// are offline), client connects and disconnects, file metadata for the Marti
// API and the certificates enrollment issued.
//
// One interface (Store), two backends: an embedded SQLite file by default
// (modernc.org/sqlite, no cgo, WAL) and PostgreSQL (pgx) when a URL is
// configured. Both carry the same schema, named after TAK Server's where a
// table has a counterpart there (cot_router, cot_router_chat,
// client_endpoint, client_endpoint_event, resource), and both are applied by
// the same numbered migrations at Open (or by Migrate, for `cotd store
// migrate`).
//
// Writes of the high-rate kinds (events, chats, connection events) never
// wait: ArchiveEvent, ArchiveChat and RecordConn put a record on a bounded
// queue and return; a full queue is a counted drop. One writer goroutine
// drains the queue in batches (a transaction on SQLite, COPY inside a
// transaction on PostgreSQL), so a crash loses at most the batch being
// written, and prunes expired rows in small batches between writes so that
// no delete holds a lock for long. Low-rate writes whose caller must know
// the outcome (files, certificates, marking offline chats delivered) are
// synchronous.
//
// Wiring (cmd/cotd and the Directory subscription consumer): Open at start,
// Close after the engine stopped; per routed message Archive(doc, recv,
// Sender); per join RecordConn(StatusConnected), then PendingChats(uid,
// callsign), Publish each chat to that client, MarkDelivered; per leave
// RecordConn(StatusDisconnected). Joins, leaves and messages must reach the
// store in the order the engine saw them: whether a directed chat is kept
// for a recipient depends on that recipient's last status as written.
//
// Parsing CoT into records (FromEvent) uses cot.ScanHeader for the header and
// reads the <detail> element with a small tag walker of its own, because the
// store needs the raw detail bytes and the GeoChat fields, which the router
// does not.
package store
