package main

import (
	"runtime"
	"testing"
)

// serve's GOMAXPROCS: one P more per event loop unless configured, and the
// environment variable is left alone.
func TestSetProcs(t *testing.T) {
	was := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(was) })

	t.Setenv("GOMAXPROCS", "")
	if n, from := setProcs(0); n != was+runtime.NumCPU() || runtime.GOMAXPROCS(0) != n {
		t.Errorf("default: %d (%s), GOMAXPROCS %d; want %d", n, from, runtime.GOMAXPROCS(0), was+runtime.NumCPU())
	}
	if n, from := setProcs(3); n != 3 || runtime.GOMAXPROCS(0) != 3 || from != "server.procs" {
		t.Errorf("configured 3: %d (%s), GOMAXPROCS %d", n, from, runtime.GOMAXPROCS(0))
	}
	runtime.GOMAXPROCS(was)
	t.Setenv("GOMAXPROCS", "1")
	if n, from := setProcs(5); n != was || runtime.GOMAXPROCS(0) != was || from != "GOMAXPROCS environment variable" {
		t.Errorf("with the environment variable: %d (%s), GOMAXPROCS %d; want %d untouched", n, from, runtime.GOMAXPROCS(0), was)
	}
}
