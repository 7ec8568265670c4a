package netlimit_test

import (
	"errors"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"cotd/internal/netlimit"
)

// wait is generous: the CI box is two loaded cores.
const wait = 10 * time.Second

func TestRefusesOverLimitAndFreesSlotOnClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var refused atomic.Uint64
	lim := netlimit.New(ln, 1, func() { refused.Add(1) })
	accepted := make(chan net.Conn, 4)
	acceptErr := make(chan error, 1)
	go func() {
		for {
			c, err := lim.Accept()
			if err != nil {
				acceptErr <- err
				return
			}
			accepted <- c
		}
	}()
	next := func() net.Conn {
		t.Helper()
		select {
		case c := <-accepted:
			return c
		case <-time.After(wait):
			t.Fatal("no connection accepted")
			return nil
		}
	}
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}

	dial()
	first := next()

	// The only slot is taken: the second connection is closed at accept.
	over := dial()
	_ = over.SetReadDeadline(time.Now().Add(wait))
	if _, err := over.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !isReset(err) {
		t.Fatalf("connection over the limit: read %v, want EOF or reset", err)
	}
	if got := refused.Load(); got != 1 {
		t.Fatalf("refused = %d, want 1", got)
	}

	// Closing twice gives the slot back once (a second release would block
	// forever on the empty channel).
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	_ = first.Close()

	dial()
	third := next()
	defer third.Close()
	if got := refused.Load(); got != 1 {
		t.Fatalf("refused = %d after the slot was freed, want 1", got)
	}

	_ = ln.Close()
	select {
	case err := <-acceptErr:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(wait):
		t.Fatal("Accept did not return after the listener closed")
	}
}

// isReset: a close with unread data in the kernel's buffer may reach the
// client as a reset rather than EOF; both mean the server closed it.
func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }
