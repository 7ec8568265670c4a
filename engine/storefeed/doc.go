// Package storefeed connects the engine to the store: it subscribes to the
// Directory and turns what happens on the stream into store records, and
// hands chats kept for offline recipients to them when they come back.
//
// It is a peer of the hot path (ARCHITECTURE.md §10): it sees the engine
// only through directory.Directory, its events arrive through a bounded
// subscription queue (a full queue is a drop the Directory counts under the
// subscriber "store"), and everything it does to the store queues or runs off
// the routing path, so a slow or blocked database never slows routing.
//
// One consumer goroutine handles the events in the order the engine saw
// them, which the store relies on: whether a directed chat is kept for a
// recipient depends on that recipient's last status as written before it.
//
//   - SA, Routed: Archive with the connection's identity and groups. The
//     chats the feed itself re-publishes for offline recipients are not
//     archived again (they already are, once).
//   - A connection's first SA (Join on plain TCP and TLS happens before the
//     client said who it is): RecordConn(Connected) with its uid, callsign,
//     user, team, groups, address and listener, then offline delivery.
//   - Leave: RecordConn(Disconnected) with the engine's close reason.
//
// Offline delivery runs on its own goroutine per client: Sync (so every
// chat routed before the client came back is written and, if it was
// offline, kept), PendingChats by uid and callsign, Publish each through the
// Directory directed to the client's uid, then MarkDelivered. A chat is
// marked delivered only when it was handed to the engine while the client
// was still connected; otherwise it waits for the next connect, so delivery
// is at least once and, short of a disconnect in the middle, exactly once.
//
// The b-t-f-s question: the engine bounces a directed chat that reached
// nobody as b-t-f-s (not delivered), as TAK Server does. When the store
// keeps it for a known but offline recipient that would be a lie, so the
// feed registers a directory.ChatKeeper hook: it answers from an in-memory
// copy of every client endpoint's last status (loaded at start, updated as
// the feed records connects and disconnects) with the store's own rule (a
// named recipient that is known, offline, not the sender and shares a group
// with the chat). Recipients nobody knows still get the b-t-f-s.
package storefeed
