package flock_test

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"cotd/internal/flock"
)

func TestLockExcludesUntilUnlocked(t *testing.T) {
	name := filepath.Join(t.TempDir(), "f.lock")
	unlock, err := flock.Lock(name, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// The same process, another open file: flock excludes it.
	if _, err := flock.Lock(name, 20*time.Millisecond); !errors.Is(err, flock.ErrTimeout) {
		t.Fatalf("second Lock while held: %v, want ErrTimeout", err)
	}
	unlock()
	unlock2, err := flock.Lock(name, 10*time.Second)
	if err != nil {
		t.Fatalf("Lock after unlock: %v", err)
	}
	unlock2()
}

func TestLockReportsAnUnopenableFile(t *testing.T) {
	name := filepath.Join(t.TempDir(), "missing-dir", "f.lock")
	if _, err := flock.Lock(name, time.Second); err == nil || errors.Is(err, flock.ErrTimeout) {
		t.Fatalf("Lock in a missing directory: %v, want an open error", err)
	}
}
