// Package engine is cotd's reactor: gnet event loops own the listening
// sockets and every connection, frame CoT documents as bytes arrive, answer
// control messages on the spot and hand everything else to the broker.
//
// The event loop's rule: nothing in OnOpen, OnTraffic or OnClose waits,
// sleeps, takes a contended lock or does per-recipient work. Writes from any
// goroutine go through one ordered outbound queue per connection that only
// the loop drains; deadlines live on one coarse timing wheel per loop; every
// close goes through one choke point with a typed, counted reason.
//
// The rest of the process (the admin API, Marti, the store, the web
// console, the cluster link) sees the engine through Server.Directory
// alone (package directory); the gnet callbacks live on an unexported type
// (reactor) and are not part of the API.
package engine
