package engine

import (
	"context"
	"sync"
	"time"

	"github.com/panjf2000/gnet/v2"

	"cotd/cot"
	"cotd/cot/takproto"
	"cotd/engine/metrics"
)

// loop is cotd's state for one gnet event loop: its timing wheel and the
// sessions with output waiting to be flushed.
//
// Deliveries mark a session dirty here and ask the loop for one flush pass,
// instead of waking each connection: a broadcast to 500 clients on two loops
// costs two wake-ups, not 500, and the pass writes every dirty session in
// one go.
//
// Passes are coalesced: a loop that made a pass less than
// output.coalesce_delay ago makes the next one when that delay is up, so
// that each client's messages of that interval go out in one writev (and,
// on TLS, in full records) instead of one system call each. A loop that
// has been quiet for the delay passes at once: a lone message waits for
// nothing. A client with output.coalesce_bytes queued hurries the pass.
type loop struct {
	el    executor
	wheel *wheel

	mu    sync.Mutex
	dirty []*session // under mu: sessions to flush at the next pass
	// pending: a pass is due, by the timer or by a task already asked
	// for. Under mu.
	pending bool
	// asked: a pass task was handed to the event loop and has not run yet.
	// Under mu.
	asked bool
	// lastPass is when the last pass started, unix nanos. Under mu.
	lastPass int64
	// timer starts a delayed pass; armed only while pending and not asked.
	timer *time.Timer
	// now is the clock passes are timed by (unix nanos); tests set it.
	now func() int64

	spare  []*session          // loop-owned: the previous dirty list, for reuse
	iov    [][]byte            // loop-owned scratch for writev batches
	plain  []byte              // loop-owned scratch for decrypted input
	tm     takproto.TakMessage // loop-owned scratch for v1 input
	hdr    cot.Header          // loop-owned scratch: the header of the document in hand
	xml    []byte              // loop-owned scratch for v1 input as XML
	seal   []byte              // loop-owned scratch: a TLS flush's plaintext, sealed at once
	sealed []byte              // loop-owned scratch: the records that seal made
	delay  *metrics.Tally      // loop-owned: a flush's read-to-write delays, committed per flush
	run    gnet.RunnableFunc

	// wake advances the wheel when its earliest filed slot comes due; nil
	// until startWheel (unit tests advance the wheel themselves). With it,
	// the loop's callbacks read the clock on entry (touch), since no tick
	// keeps the wheel's clock fresh.
	wake    *time.Timer
	advance gnet.RunnableFunc
}

// executor is what a loop uses of gnet's event loop: running a task on
// it. gnet.EventLoop satisfies it; the unit tests run the tasks themselves.
type executor interface {
	Execute(ctx context.Context, r gnet.Runnable) error
}

func newLoop(el executor, now int64) *loop {
	lp := &loop{el: el, wheel: newWheel(now), now: func() int64 { return time.Now().UnixNano() }}
	lp.run = func(context.Context) error {
		lp.flushDirty()
		return nil
	}
	lp.timer = time.AfterFunc(time.Hour, lp.fire)
	lp.timer.Stop()
	return lp
}

// startWheel makes the wheel drive itself from one timer, set for its
// earliest filed slot: a loop whose connections have nothing due sleeps
// until a deadline, one with no connection does not wake at all.
func (lp *loop) startWheel() {
	w := lp.wheel
	lp.advance = func(context.Context) error {
		// Re-filed timers ask for no wake-up of their own: one is set for
		// the earliest slot once they are all filed.
		arm := w.arm
		w.arm = nil
		w.advance(time.Now().UnixNano(), fireTimer)
		w.arm = arm
		w.rearm()
		return nil
	}
	lp.wake = time.AfterFunc(time.Hour, func() {
		// An error: the engine is stopping and the wheel is no longer
		// needed.
		_ = lp.el.Execute(context.Background(), lp.advance)
	})
	lp.wake.Stop()
	w.arm = func(at int64) { lp.wake.Reset(time.Duration(at - time.Now().UnixNano())) }
	w.now = time.Now().UnixNano()
	w.rearm()
}

// stopWheel stops the wheel's timer; the engine has stopped. Any
// goroutine.
func (lp *loop) stopWheel() {
	if lp.wake != nil {
		lp.wake.Stop()
	}
}

// touch brings the wheel's clock up to date at the start of a callback on
// the loop: deadlines and budgets are figured from it, and a wheel that
// does not tick does not move it. Loop only.
func (lp *loop) touch() {
	if lp.wake != nil {
		lp.wheel.now = time.Now().UnixNano()
	}
}

// markDirty queues ss for the next pass; any goroutine. The caller
// guarantees ss is queued at most once until it is flushed. hurry asks for
// the pass at once, whatever the coalescing delay.
func (lp *loop) markDirty(ss *session, hurry bool) {
	delay := int64(ss.srv.cfg.Output.CoalesceDelay.Duration)
	lp.mu.Lock()
	lp.dirty = append(lp.dirty, ss)
	ask, wait := lp.planLocked(hurry, delay)
	lp.mu.Unlock()
	lp.start(ask, wait)
}

// hurry asks for a pass at once for a session already marked dirty.
func (lp *loop) hurry() {
	lp.mu.Lock()
	ask, _ := lp.planLocked(true, 0)
	lp.mu.Unlock()
	lp.start(ask, 0)
}

// planLocked decides when the next pass runs: ask means hand the loop a
// task now; a positive wait means arm the timer. Neither: one is already
// on its way.
func (lp *loop) planLocked(hurry bool, delay int64) (ask bool, wait time.Duration) {
	if lp.asked {
		return false, 0 // a task is on its way; it flushes everything dirty
	}
	if hurry || delay <= 0 {
		lp.pending, lp.asked = true, true
		return true, 0
	}
	if lp.pending {
		return false, 0 // the timer is armed
	}
	lp.pending = true
	if w := lp.lastPass + delay - lp.now(); w > 0 {
		return false, time.Duration(w)
	}
	lp.asked = true
	return true, 0
}

func (lp *loop) start(ask bool, wait time.Duration) {
	switch {
	case ask:
		lp.execute()
	case wait > 0:
		lp.timer.Reset(wait)
	}
}

// fire is the timer's: it asks for the pass unless one already ran or is
// on its way (a pass hurried by a full queue leaves the timer to go off
// for nothing).
func (lp *loop) fire() {
	lp.mu.Lock()
	if !lp.pending || lp.asked {
		lp.mu.Unlock()
		return
	}
	lp.asked = true
	lp.mu.Unlock()
	lp.execute()
}

func (lp *loop) execute() {
	if err := lp.el.Execute(context.Background(), lp.run); err != nil {
		// The engine is stopping; the final close flushes nothing more.
		lp.mu.Lock()
		lp.pending, lp.asked = false, false
		lp.mu.Unlock()
	}
}

// delayTally is the loop's tally of the read-to-write delay histogram h,
// made on first use. Loop only.
func (lp *loop) delayTally(h *metrics.Histogram) *metrics.Tally {
	if lp.delay == nil {
		lp.delay = h.Tally()
	}
	return lp.delay
}

// flushDirty is a pass; it runs on the loop.
func (lp *loop) flushDirty() {
	lp.touch()
	lp.mu.Lock()
	list := lp.dirty
	lp.dirty, lp.pending, lp.asked = lp.spare, false, false
	lp.lastPass = lp.now()
	lp.mu.Unlock()
	// One clock reading for the pass's delay figures: a pass takes
	// microseconds, the histogram's finest bucket is coarser.
	now := time.Now().UnixNano()
	for _, ss := range list {
		ss.flushAt(now)
	}
	clear(list)
	lp.spare = list[:0]
}
