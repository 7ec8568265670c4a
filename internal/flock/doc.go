// Package flock is the advisory file lock that serialises the `cotd`
// commands and the running server when they rewrite a shared file (the
// users file, the enrollment state file). Each of those packages had its
// own copy of the polling loop; the one implementation lives here, a leaf
// on the standard library and golang.org/x/sys/unix, so that the engine's
// peers can share it without importing each other.
package flock
