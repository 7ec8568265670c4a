// Package directory is the narrow interface between the streaming engine
// (the hot path: event loops, sessions, broker shards) and everything else
// in the process: the admin API, the Marti HTTP API, the store feed, the web
// console and the cluster link (ARCHITECTURE.md §10).
//
// The engine implements Directory; the peers hold one and import nothing
// else of the engine. Events reach peers through bounded queues that drop
// and count when full, so a slow peer can never slow an event loop or a
// shard. The package imports only cot and the standard library, so anything
// may depend on it.
package directory
