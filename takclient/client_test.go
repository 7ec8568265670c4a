package takclient_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"cotd/configs"
	"cotd/cot"
	et "cotd/engine/enginetest"
	"cotd/takclient"
)

// running is a client started by background.
type running struct {
	out    *et.SyncBuffer
	cancel context.CancelFunc
	done   chan struct{} // closed when the client returned
	err    error         // what it returned, once done is closed
}

// background runs fn until the test ends.
func background(t *testing.T, fn func(context.Context, takclient.Options, *et.SyncBuffer) error, o takclient.Options) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{out: &et.SyncBuffer{}, cancel: cancel, done: make(chan struct{})}
	go func() { r.err = fn(ctx, o, r.out); close(r.done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(et.Wait):
			t.Error("client did not stop")
		}
	})
	return r
}

func listen(ctx context.Context, o takclient.Options, out *et.SyncBuffer) error {
	return takclient.Listen(ctx, o, out)
}

func send(ctx context.Context, o takclient.Options, out *et.SyncBuffer) error {
	return takclient.Send(ctx, o, out)
}

// The README's walkthrough, over a real server: a listener sees the
// sender's position with a fresh time, a listener that joins later gets it
// replayed at once (the next report is an hour away), the v1 offer is
// explained, and when the sender leaves both see the disconnect.
func TestSendAndListenWalkthrough(t *testing.T) {
	h := et.Start(t, nil)
	first := background(t, listen, takclient.Options{Addr: h.TCPAddr()}).out
	h.Joined(t, 1)
	start := time.Now()
	sender := background(t, send, takclient.Options{
		Addr: h.TCPAddr(), UID: "WALK-1", Callsign: "WALKER", Interval: time.Hour,
	})
	et.Eventually(t, "the first listener to print the position", func() bool {
		return strings.Contains(first.String(), "a-f-G-U-C from WALKER (uid WALK-1)")
	})
	// The event's time is when it was sent, not a fixture's.
	if !strings.Contains(first.String(), "sent "+start.Format("15:04")) &&
		!strings.Contains(first.String(), "sent "+time.Now().Format("15:04")) {
		t.Errorf("position not sent with a fresh time:\n%s", first.String())
	}
	late := background(t, listen, takclient.Options{Addr: h.TCPAddr()}).out
	et.Eventually(t, "the late listener to get the position replayed", func() bool {
		return strings.Contains(late.String(), "a-f-G-U-C from WALKER (uid WALK-1)")
	})
	for _, out := range []*et.SyncBuffer{first, late} {
		et.Eventually(t, "the v1 offer explained", func() bool {
			return strings.Contains(out.String(), "offers TAK protocol v1 (t-x-takp-v)")
		})
	}
	sender.cancel()
	<-sender.done
	if sender.err != nil {
		t.Errorf("send: %v", sender.err)
	}
	for _, out := range []*et.SyncBuffer{first, late} {
		et.Eventually(t, "the disconnect", func() bool {
			return strings.Contains(out.String(), cot.TypeDelete+": WALK-1 (a-f-G-U-C) disconnected")
		})
	}
}

// Pings keep an otherwise silent listener connected past the server's idle
// timeout: it is still answered after several idle timeouts have passed.
func TestListenPingsKeepItConnected(t *testing.T) {
	const idle = time.Second
	h := et.Start(t, func(c *configs.Config) { c.Limits.IdleTimeout.Duration = idle })
	l := background(t, listen, takclient.Options{Addr: h.TCPAddr(), PingEvery: idle / 10, Pongs: true})
	out := l.out
	// 30 pongs take three idle timeouts: without the pings the server closes
	// it after one, and no pong follows.
	et.Eventually(t, "30 pongs", func() bool { return strings.Count(out.String(), "pong") >= 30 })
	select {
	case <-l.done:
		t.Fatalf("listen ended: %v", l.err)
	default:
	}
}

// Without pings the same server closes it, and Listen says so: the test
// above can fail.
func TestListenWithoutPingsIsClosed(t *testing.T) {
	h := et.Start(t, func(c *configs.Config) { c.Limits.IdleTimeout.Duration = 200 * time.Millisecond })
	l := background(t, listen, takclient.Options{Addr: h.TCPAddr(), PingEvery: time.Hour})
	select {
	case <-l.done:
		if !errors.Is(l.err, takclient.ErrClosed) {
			t.Errorf("listen ended with %v, want ErrClosed", l.err)
		}
	case <-time.After(et.Wait):
		t.Fatal("the idle listener was not closed")
	}
}

// Send with Count leaves once the server has read its reports.
func TestSendCount(t *testing.T) {
	h := et.Start(t, nil)
	watcher := et.Dial(t, h.TCPAddr())
	h.Joined(t, 1)
	out := &et.SyncBuffer{}
	err := takclient.Send(context.Background(), takclient.Options{Addr: h.TCPAddr(), UID: "C-1", Callsign: "C", Interval: 10 * time.Millisecond, Count: 3}, out)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		watcher.Expect("a position", et.UID("C-1"))
	}
}
