// Package logsink is the server's log writer that never blocks its caller:
// log lines go through a lock-free ring (zerolog's diode) to a goroutine
// that writes them out, and when the output cannot keep up (journald under
// pressure, a full pipe) lines are dropped and counted instead of stalling
// the event loops and broker shards that log.
package logsink
