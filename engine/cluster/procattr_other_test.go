//go:build !linux

package cluster_test

import "syscall"

// childAttr: elsewhere the cleanups stop the child.
func childAttr() *syscall.SysProcAttr { return nil }
