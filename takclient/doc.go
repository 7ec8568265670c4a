// Package takclient is a small TAK client for people trying cotd out: `cotd
// send` reports a position every few seconds with fresh times, `cotd listen`
// prints what the server sends. Both keep the connection alive with TAK's
// ping (t-x-c-t) so that the server's idle timeout does not close them, and
// explain the server's TAK protocol v1 offer instead of answering it: they
// stay on XML, the protocol a person can read.
//
// It speaks plain TCP streaming CoT (port 8087) only; it is a walkthrough
// aid, not a load generator (that is cotbench) or a test harness (that is
// engine/enginetest).
package takclient
