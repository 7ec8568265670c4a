package cluster_test

import "syscall"

// childAttr makes a child nats-server die with the test binary, even when
// a timeout kills the binary before its cleanups run.
func childAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }
