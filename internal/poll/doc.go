// Package poll is the project's one helper for tests that wait on a fact no
// channel reports (a counter reached a value, a goroutine exited). Every
// test package uses it, directly or through engine/enginetest's Eventually,
// so that the polling interval and the failure message are the same
// everywhere. It imports only the standard library, so packages that
// enginetest depends on (tlsstate, engine/broker) can use it in their own
// tests.
package poll
