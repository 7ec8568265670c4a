// Package marti serves the Marti HTTP API of TAK Server on 8443 (mutual TLS)
// and optionally 8080 (plain HTTP): what ATAK, WinTAK and iTAK call when they
// connect (version, contacts, channels), file and data-package sharing
// (missionquery, missionupload, sync/upload, content, search, metadata), and
// track history (ExportMissionKML).
//
// It is a peer of the streaming engine, not part of it (ARCHITECTURE.md
// §10): it sees the engine only through directory.Directory, reads who is
// connected from it, publishes its control events (t-x-g-c) through it, and
// keeps its own history from a bounded subscription. Nothing here runs on an
// event loop or a broker shard, and a hostile HTTP client costs only its own
// goroutine: every state has a deadline (headers, each body read, each
// response write, idle keep-alive) and every request's memory is bounded
// (bodies are streamed, never buffered whole).
//
// Identity is the stream's: the client certificate's CN is the user name,
// looked up in the users file (engine/auth) for its groups; a CN with no
// entry gets tls.groups (or is refused with auth.require_known_user).
// Anything a caller reads is filtered by the routing rule: the caller sees
// what was published into a group it receives from.
//
// Files are content-addressed: uploads are hashed (SHA-256) while they
// stream to a temporary file that is renamed to its hash, so a file on disk
// is always complete and its name is its checksum. Until engine/store lands,
// file metadata lives beside each file as a JSON sidecar (FileIndex) and
// connection and event history in a bounded in-memory History; both are
// interfaces so the store can take over.
package marti
