package main

import (
	"os"
	"runtime"
)

// setProcs sets GOMAXPROCS for serve, before the engine sizes its broker
// shards from it, and returns the figure with where it came from.
//
// gnet runs one event loop per CPU, and a loop sits in a system call
// (epoll_wait, writev) most of its life, holding a P until sysmon takes it
// back 20 µs to 10 ms later. With as many Ps as CPUs, both loops in
// syscalls leave the broker shards and timers waiting for those retakes,
// and sysmon, retaking all the time, never backs off from waking every
// 20 µs. One P more per loop removes both: measured at 101 mTLS clients
// × 1 SA/s (README, Performance), cotd's own p99 delay fell from ≤ 25.6 ms
// to ≤ 3.2–6.4 ms and its CPU per delivery by 10–17 %. Only the CPUs run
// anything at once; the extra Ps are slots, not threads spinning. A set
// GOMAXPROCS no longer follows a changing container CPU limit: server.procs
// or the environment variable is the way to pin it.
func setProcs(configured int) (n int, from string) {
	if os.Getenv("GOMAXPROCS") != "" {
		return runtime.GOMAXPROCS(0), "GOMAXPROCS environment variable"
	}
	if configured > 0 {
		runtime.GOMAXPROCS(configured)
		return configured, "server.procs"
	}
	n = runtime.GOMAXPROCS(0) + runtime.NumCPU()
	runtime.GOMAXPROCS(n)
	return n, "CPUs plus one per event loop"
}
