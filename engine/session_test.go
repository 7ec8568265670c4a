package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/rs/zerolog"

	"cotd/configs"
	"cotd/engine/broker"
)

// These tests drive a session's outbound side and deadlines through a fake
// connection and a fake event loop: what the socket takes, what stays
// unwritten and when the loop runs are all in the test's hands, so the
// decisions (queue, drop, flush, close) are checked exactly, without the
// timing of real sockets.

// fakeWire stands in for gnet.Conn. It behaves as gnet's does: a write goes
// to the socket as far as the socket has room, the rest to the connection's
// buffer, and once that buffer holds anything, later writes queue behind it.
type fakeWire struct {
	mu      sync.Mutex
	room    int    // what the socket still takes
	sock    []byte // what the socket took, in order
	pending []byte // the connection's unwritten buffer
	writevs int
	closes  int
	err     error // returned by the next Writev
}

func (w *fakeWire) Writev(bufs [][]byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return 0, w.err
	}
	w.writevs++
	n := 0
	for _, b := range bufs {
		n += len(b)
		if len(w.pending) == 0 {
			take := min(w.room, len(b))
			w.sock = append(w.sock, b[:take]...)
			w.room -= take
			b = b[take:]
		}
		w.pending = append(w.pending, b...)
	}
	return n, nil
}

func (w *fakeWire) OutboundBuffered() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.pending)
}

func (w *fakeWire) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closes++
	return nil
}

func (w *fakeWire) Wake(gnet.AsyncCallback) error { return nil }

// read is the client reading n bytes: the socket makes room and the
// connection writes its buffer into it, as gnet does on a writable event,
// without telling the session.
func (w *fakeWire) read(n int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	take := min(n, len(w.pending))
	w.sock = append(w.sock, w.pending[:take]...)
	w.pending = w.pending[take:]
	w.room += n - take
}

func (w *fakeWire) socket() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.sock)
}

// fakeLoop stands in for gnet's event loop: it keeps the tasks it is given
// (from the test's goroutine, or a coalescing timer's) until the test runs
// them.
type fakeLoop struct {
	mu    sync.Mutex
	tasks []gnet.Runnable
	asked chan struct{} // a token per task handed over
}

func (f *fakeLoop) Execute(_ context.Context, r gnet.Runnable) error {
	f.mu.Lock()
	f.tasks = append(f.tasks, r)
	f.mu.Unlock()
	select {
	case f.asked <- struct{}{}:
	default:
	}
	return nil
}

// waiting is how many tasks wait to run.
func (f *fakeLoop) waiting() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.tasks)
}

// run runs the tasks waiting, as the loop would, and says how many.
func (f *fakeLoop) run(t testing.TB) int {
	t.Helper()
	f.mu.Lock()
	tasks := f.tasks
	f.tasks = nil
	f.mu.Unlock()
	for _, r := range tasks {
		if err := r.Run(context.Background()); err != nil {
			t.Fatalf("loop task: %v", err)
		}
	}
	return len(tasks)
}

type fixture struct {
	ss   *session
	w    *fakeWire
	el   *fakeLoop
	logs *bytes.Buffer
	t0   int64 // the wheel's clock at open
}

const (
	testSoft = 1000
	testHard = 4000
)

// newFixture makes a plain-TCP session on a fake connection whose socket
// takes room bytes, with a soft limit of 1000 bytes, a hard one of 4000
// and a write timeout of 2 s.
func newFixture(t *testing.T, room int) *fixture {
	t.Helper()
	cfg := configs.Default()
	cfg.TCP.Addr = "127.0.0.1:0"
	cfg.TLS.Addr = ""
	cfg.Admin.Addr = ""
	cfg.Limits.OutboundSoftBytes = testSoft
	cfg.Limits.OutboundHardBytes = testHard
	cfg.Limits.WriteTimeout = configs.Duration{Duration: 2 * time.Second}
	// Every pass at once: these tests are about what a flush decides.
	// The coalescing tests set their own delay.
	cfg.Output.CoalesceDelay = configs.Duration{}
	logs := &bytes.Buffer{}
	s, err := New(cfg, zerolog.New(logs))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	f := &fixture{w: &fakeWire{room: room}, el: &fakeLoop{asked: make(chan struct{}, 1)}, logs: logs, t0: 1000 * tickNanos}
	lp := newLoop(f.el, f.t0)
	f.ss = newSession(s, f.w, s.listeners[0], lp, 1, "192.0.2.1:40000")
	lp.wheel.schedule(&f.ss.tm, f.ss.nextDeadline())
	return f
}

// deliver hands the session a message as a broker shard does.
func (f *fixture) deliver(body string, position bool) broker.Verdict {
	return f.ss.Deliver(broker.NewMessage([]byte(body), "", position, 0, nil))
}

// at advances the loop's wheel to t0+d, firing what is due.
func (f *fixture) at(d time.Duration) {
	f.ss.lp.wheel.advance(f.t0+int64(d), fireTimer)
}

func (f *fixture) reason() CloseReason { return CloseReason(f.ss.reason.Load()) }

func chunk(tag byte, n int) string { return strings.Repeat(string(tag), n) }

func TestSessionQueuesInOrderAndFlushesWithOneTask(t *testing.T) {
	f := newFixture(t, 1<<20)
	want := ""
	for i := range 5 {
		m := fmt.Sprintf("<m%d/>", i)
		want += m
		if v := f.deliver(m, false); v != broker.Queued {
			t.Fatalf("deliver %d: %v", i, v)
		}
	}
	if f.w.writevs != 0 {
		t.Fatal("a shard wrote to the connection: only the loop may")
	}
	if n := f.el.waiting(); n != 1 {
		t.Fatalf("5 deliveries asked the loop for %d flushes, want 1", n)
	}
	if got := f.ss.queued(); got != int64(len(want)) {
		t.Errorf("queued before flush = %d, want %d", got, len(want))
	}
	f.el.run(t)
	if got := f.w.socket(); got != want {
		t.Errorf("socket got %q, want %q", got, want)
	}
	if f.w.writevs != 1 {
		t.Errorf("%d writevs for 5 messages, want 1", f.w.writevs)
	}
	if q := f.ss.queued(); q != 0 {
		t.Errorf("queued after flush = %d, want 0", q)
	}
	if f.ss.out.sent != uint64(len(want)) || f.ss.srv.stats.BytesOut.Value() != uint64(len(want)) {
		t.Errorf("sent %d, bytes out %d, want %d", f.ss.out.sent, f.ss.srv.stats.BytesOut.Value(), len(want))
	}
	// Flushed: the next delivery asks for a flush again.
	f.deliver("<again/>", false)
	if n := f.el.run(t); n != 1 || !strings.HasSuffix(f.w.socket(), "<again/>") {
		t.Errorf("after a flush, a delivery ran %d flushes and the socket ends %q", n, f.w.socket())
	}
}

func TestSessionFlushSplitsAtTheIovLimit(t *testing.T) {
	f := newFixture(t, 1<<20)
	f.ss.srv.cfg.Limits.OutboundHardBytes = 1 << 20
	var want strings.Builder
	for i := range 2*iovMax + 5 {
		m := fmt.Sprintf("%d,", i)
		want.WriteString(m)
		f.deliver(m, false)
	}
	f.el.run(t)
	if f.w.writevs != 3 {
		t.Errorf("%d items took %d writevs, want 3", 2*iovMax+5, f.w.writevs)
	}
	if f.w.socket() != want.String() {
		t.Error("items were reordered or lost across writev batches")
	}
}

// A position report to a client over its soft limit is dropped; anything
// else is queued. The backlog is judged with what the connection holds
// unwritten, which the loop refreshes on its tick.
func TestSessionSoftLimitDropsPositionReportsOnly(t *testing.T) {
	f := newFixture(t, 0) // the socket is full: everything stays unwritten
	f.deliver(chunk('a', testSoft+1), false)
	f.el.run(t)
	if v := f.deliver("<sa/>", true); v != broker.DroppedBackpressure {
		t.Errorf("position report over the soft limit: %v, want DroppedBackpressure", v)
	}
	if v := f.deliver("<chat/>", false); v != broker.Queued {
		t.Errorf("chat over the soft limit: %v, want Queued", v)
	}
	f.el.run(t)
	// The client reads its backlog; the session learns it at the next tick.
	f.w.read(1 << 20)
	f.at(time.Second)
	if q := f.ss.queued(); q != 0 {
		t.Fatalf("queued after the client drained and a tick = %d, want 0", q)
	}
	if v := f.deliver("<sa/>", true); v != broker.Queued {
		t.Errorf("position report after the backlog drained: %v, want Queued", v)
	}
}

// A queue that alone would go over the hard limit is known exactly on the
// shard: the client is closed at once and the message dropped.
func TestSessionHardLimitOnTheQueueClosesAtOnce(t *testing.T) {
	f := newFixture(t, 1<<20)
	for i := range 3 {
		if v := f.deliver(chunk('q', 1000), false); v != broker.Queued {
			t.Fatalf("deliver %d (under the limit): %v", i, v)
		}
	}
	if v := f.deliver(chunk('x', 1001), false); v != broker.DroppedSlowConsumer {
		t.Fatalf("a message taking the queue to 4001 bytes: %v, want DroppedSlowConsumer", v)
	}
	if f.reason() != ReasonSlowConsumerBytes || f.w.closes != 1 {
		t.Fatalf("reason %v, closes %d; want slow_consumer_bytes, 1", f.reason(), f.w.closes)
	}
	if v := f.deliver(chunk('y', 1001), false); v != broker.DroppedSlowConsumer || f.w.closes != 1 {
		t.Errorf("a second message over the limit: %v, closes %d; want dropped, closed once", v, f.w.closes)
	}
	if !strings.Contains(f.logs.String(), "outbound hard limit reached") || !strings.Contains(f.logs.String(), `"conn":1`) {
		t.Errorf("the close was not logged with the connection:\n%s", f.logs)
	}
}

// The stale-backlog window: the session last saw 3,900 bytes unwritten;
// the client has since read them all, which gnet does not report. A
// 500-byte chat is within the hard limit by the real figure, so it is
// queued and written, and the client stays. Deciding on the figure from
// the last look (3,900 + 500 > 4,000) closed it.
func TestSessionHardLimitUsesTheRealUnwrittenBytes(t *testing.T) {
	f := newFixture(t, 0)
	f.deliver(chunk('a', 3900), false)
	f.el.run(t)
	if q := f.ss.queued(); q != 3900 {
		t.Fatalf("queued after flush = %d, want 3900 (all unwritten)", q)
	}
	f.w.read(1 << 20)
	if v := f.deliver(chunk('c', 500), false); v != broker.Queued {
		t.Fatalf("chat to a client that drained its backlog: %v, want Queued", v)
	}
	f.el.run(t)
	if r := f.reason(); r != reasonUnset || f.w.closes != 0 {
		t.Fatalf("client closed as %v: the hard limit was judged by a stale figure", r)
	}
	if !strings.HasSuffix(f.w.socket(), chunk('c', 500)) {
		t.Error("the chat was not written")
	}
	if q := f.ss.queued(); q != 0 {
		t.Errorf("queued = %d, want 0", q)
	}
}

// The same chat to a client that really still owes 3,900 bytes closes it at
// the flush; the chat is counted as dropped for the hard limit, and what it
// was owed as unsent when the connection closes.
func TestSessionHardLimitDecidedAtFlush(t *testing.T) {
	f := newFixture(t, 0)
	f.deliver(chunk('a', 3900), false)
	f.el.run(t)
	if v := f.deliver(chunk('b', 50), false); v != broker.Queued {
		t.Fatalf("50 bytes, still within the limit: %v", v)
	}
	if v := f.deliver(chunk('c', 500), false); v != broker.Queued {
		t.Fatalf("on the shard the queue alone is within the limit, so the flush decides; got %v", v)
	}
	writes := f.w.writevs
	f.el.run(t)
	if f.reason() != ReasonSlowConsumerBytes || f.w.closes != 1 {
		t.Fatalf("reason %v, closes %d; want slow_consumer_bytes, 1", f.reason(), f.w.closes)
	}
	if f.w.writevs != writes {
		t.Error("the flush wrote to a client it closed for being over the hard limit")
	}
	drops := &f.ss.srv.broker.Stats().Drops
	if n := drops[broker.DropSlowConsumer].Value(); n != 1 {
		t.Errorf("slow-consumer drops = %d, want 1: the message that crossed the limit", n)
	}
	// Another flush while the close is under way decides and counts nothing more.
	f.deliver(chunk('d', 10), false)
	f.ss.flush()
	if n := drops[broker.DropSlowConsumer].Value(); n != 1 || f.w.closes != 1 {
		t.Errorf("second flush: drops %d, closes %d; want 1, 1", n, f.w.closes)
	}
	if unsent := f.ss.closeOutbound(); unsent != 3900+50+500+10 {
		t.Errorf("unsent at close = %d, want %d", unsent, 3900+50+500+10)
	}
	if v := f.deliver("<late/>", false); v != broker.DroppedClosed {
		t.Errorf("delivery after close: %v, want DroppedClosed", v)
	}
}

// Output that stays unwritten with no progress for write_timeout closes the
// client as stalled; progress restarts the clock.
func TestSessionStalledOutputClosesAfterWriteTimeout(t *testing.T) {
	f := newFixture(t, 0)
	f.deliver(chunk('a', 2000), false)
	f.el.run(t)
	f.at(1500 * time.Millisecond)
	f.w.read(500) // progress
	f.at(2500 * time.Millisecond)
	if f.reason() != reasonUnset {
		t.Fatalf("closed as %v at 2.5 s though bytes moved at 1.5 s", f.reason())
	}
	f.at(4000 * time.Millisecond)
	if f.reason() != reasonUnset {
		t.Fatalf("closed as %v 1.5 s after the last progress", f.reason())
	}
	f.at(5000 * time.Millisecond)
	if f.reason() != ReasonSlowConsumerStalled || f.w.closes != 1 {
		t.Fatalf("reason %v, closes %d after 2.5 s without progress; want slow_consumer_stalled, 1", f.reason(), f.w.closes)
	}
	if !strings.Contains(f.logs.String(), "no write progress") {
		t.Error("the stall was not logged")
	}
}

// A client that drains its output is not watched for stalls any more.
func TestSessionDrainedOutputIsNotAStall(t *testing.T) {
	f := newFixture(t, 0)
	f.deliver(chunk('a', 2000), false)
	f.el.run(t)
	if f.ss.stallAt == 0 {
		t.Fatal("unwritten output is not being watched")
	}
	f.w.read(1 << 20)
	f.at(time.Second)
	if f.ss.stallAt != 0 {
		t.Error("still watching for a stall after the output drained")
	}
	f.at(30 * time.Second)
	if f.reason() != reasonUnset {
		t.Errorf("closed as %v", f.reason())
	}
}

func TestSessionDeadlines(t *testing.T) {
	t.Run("idle", func(t *testing.T) {
		f := newFixture(t, 1<<20)
		idle := f.ss.srv.cfg.Limits.IdleTimeout.Duration
		f.at(idle - time.Second)
		if f.reason() != reasonUnset {
			t.Fatalf("closed as %v before the idle timeout", f.reason())
		}
		f.at(idle + time.Second)
		if f.reason() != ReasonIdle {
			t.Errorf("reason %v, want idle", f.reason())
		}
	})
	t.Run("handshake", func(t *testing.T) {
		f := newFixture(t, 1<<20)
		f.ss.hsDeadline = f.t0 + int64(3*time.Second)
		f.ss.lp.wheel.schedule(&f.ss.tm, f.ss.nextDeadline())
		f.at(4 * time.Second)
		if f.reason() != ReasonHandshakeTimeout {
			t.Errorf("reason %v, want handshake_timeout", f.reason())
		}
	})
	t.Run("auth", func(t *testing.T) {
		f := newFixture(t, 1<<20)
		f.ss.authDeadline = f.t0 + int64(3*time.Second)
		f.ss.lp.wheel.schedule(&f.ss.tm, f.ss.nextDeadline())
		f.at(4 * time.Second)
		if f.reason() != ReasonAuthFailed {
			t.Errorf("reason %v, want auth_failed", f.reason())
		}
	})
}

// The TLS hook copies ciphertext (the TLS layer reuses its buffer) and asks
// for one flush however many records arrive.
func TestSessionTLSOutCopiesAndAsksOnce(t *testing.T) {
	f := newFixture(t, 1<<20)
	rec := []byte("record-1")
	f.ss.tlsOut(rec)
	copy(rec, "XXXXXXXX")
	f.ss.tlsOut([]byte("record-2"))
	if n := f.el.waiting(); n != 1 {
		t.Fatalf("two records asked for %d flushes, want 1", n)
	}
	f.el.run(t)
	if got := f.w.socket(); got != "record-1record-2" {
		t.Errorf("socket got %q", got)
	}
}

// A failed write means gnet closed the connection: nothing is counted as
// sent.
func TestSessionFlushStopsOnWriteError(t *testing.T) {
	f := newFixture(t, 1<<20)
	f.w.err = errors.New("broken pipe")
	f.deliver("<m/>", false)
	f.el.run(t)
	if f.ss.out.sent != 0 || f.ss.srv.stats.BytesOut.Value() != 0 {
		t.Errorf("sent %d, bytes out %d after a failed write", f.ss.out.sent, f.ss.srv.stats.BytesOut.Value())
	}
}
