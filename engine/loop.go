package engine

import (
	"context"
	"sync"

	"github.com/panjf2000/gnet/v2"

	"cotd/cot"
	"cotd/cot/takproto"
)

// loop is cotd's state for one gnet event loop: its timing wheel and the
// sessions with output waiting to be flushed.
//
// Deliveries mark a session dirty here and ask the loop for one flush task,
// instead of waking each connection: a broadcast to 500 clients on two loops
// costs two wake-ups, not 500, and the task writes every dirty session in
// one pass.
type loop struct {
	el    executor
	wheel *wheel

	mu        sync.Mutex
	dirty     []*session
	scheduled bool

	spare []*session          // loop-owned: the previous dirty list, for reuse
	iov   [][]byte            // loop-owned scratch for writev batches
	plain []byte              // loop-owned scratch for decrypted input
	tm    takproto.TakMessage // loop-owned scratch for v1 input
	hdr   cot.Header          // loop-owned scratch: the header of the document in hand
	xml   []byte              // loop-owned scratch for v1 input as XML
	run   gnet.RunnableFunc
}

// executor is what a loop uses of gnet's event loop: running a task on
// it. gnet.EventLoop satisfies it; the unit tests run the tasks themselves.
type executor interface {
	Execute(ctx context.Context, r gnet.Runnable) error
}

func newLoop(el executor, now int64) *loop {
	lp := &loop{el: el, wheel: newWheel(now)}
	lp.run = func(context.Context) error {
		lp.flushDirty()
		return nil
	}
	return lp
}

// markDirty queues ss for the next flush task; any goroutine. The caller
// guarantees ss is queued at most once until it is flushed.
func (lp *loop) markDirty(ss *session) {
	lp.mu.Lock()
	lp.dirty = append(lp.dirty, ss)
	schedule := !lp.scheduled
	lp.scheduled = true
	lp.mu.Unlock()
	if schedule {
		if err := lp.el.Execute(context.Background(), lp.run); err != nil {
			// The engine is stopping; the final close flushes nothing more.
			lp.mu.Lock()
			lp.scheduled = false
			lp.mu.Unlock()
		}
	}
}

// flushDirty runs on the loop.
func (lp *loop) flushDirty() {
	lp.mu.Lock()
	list := lp.dirty
	lp.dirty, lp.scheduled = lp.spare, false
	lp.mu.Unlock()
	for _, ss := range list {
		ss.flush()
	}
	clear(list)
	lp.spare = list[:0]
}
