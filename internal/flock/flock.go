package flock

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// ErrTimeout: another holder kept the lock for longer than the timeout.
var ErrTimeout = errors.New("flock: lock held by another process")

// Lock takes an exclusive flock on name (created 0600 and left in place),
// polling so that it can give up after timeout with ErrTimeout. flock
// locks belong to the open file, so two goroutines of one process exclude
// each other too, and the kernel drops the lock when the process dies: a
// crash never leaves a stale lock. unlock releases it.
func Lock(name string, timeout time.Duration) (unlock func(), err error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	wait := time.Millisecond
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		switch {
		case err == nil:
			return func() { _ = f.Close() }, nil // closing releases the lock
		case errors.Is(err, unix.EINTR):
			continue
		case !errors.Is(err, unix.EWOULDBLOCK):
			_ = f.Close()
			return nil, fmt.Errorf("flock %s: %w", name, err)
		case time.Now().After(deadline):
			_ = f.Close()
			return nil, fmt.Errorf("%w: %s held for more than %v", ErrTimeout, name, timeout)
		}
		// Polling, not a blocking flock: a blocked flock cannot time out.
		time.Sleep(wait)
		wait = min(2*wait, 50*time.Millisecond)
	}
}
