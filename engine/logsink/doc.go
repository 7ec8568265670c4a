// Package logsink is the server's log writer that never blocks its caller:
// log lines go through a bounded queue to a goroutine that writes them out,
// and when the output cannot keep up (journald under pressure, a full pipe)
// lines are dropped and counted instead of stalling the event loops and
// broker shards that log.
//
// The writer goroutine sleeps until a line arrives: an idle server's log
// costs no wake-ups (a polling writer woke 100 times a second for nothing).
package logsink
