package engine

import "sync/atomic"

// drainSignal tells a waiting SA replay that the connection's queue went
// back under its soft limit, so that the replay offers its next SA when
// the socket took the last ones instead of polling on a timer.
type drainSignal struct {
	// armed is set by the replay before it waits and cleared by the one
	// signal it gets.
	armed atomic.Bool
	// ch holds at most one signal; a stale one costs the replay one more
	// try, never a lost wake-up.
	ch chan struct{}
}

// Drained implements broker.Outbox; the replay's goroutine calls it after
// a delivery was refused for back-pressure. The flush may have happened
// between that refusal and the arming: notifyDrained checks once more.
func (ss *session) Drained() <-chan struct{} {
	d := ss.out.drain.Load()
	if d == nil {
		d = &drainSignal{ch: make(chan struct{}, 1)}
		if !ss.out.drain.CompareAndSwap(nil, d) {
			d = ss.out.drain.Load()
		}
	}
	d.armed.Store(true)
	ss.notifyDrained(ss.queued())
	return d.ch
}

// notifyDrained signals an armed replay if owed, what the connection owes
// its client (queued()), is under the soft limit. flush and the stall check
// call it after refreshing the unwritten figure, with the figure they read
// under the queue's lock; with no replay waiting it costs one atomic load.
func (ss *session) notifyDrained(owed int64) {
	d := ss.out.drain.Load()
	if d == nil || !d.armed.Load() || owed > int64(ss.srv.cfg.Limits.OutboundSoftBytes) {
		return
	}
	if d.armed.CompareAndSwap(true, false) {
		select {
		case d.ch <- struct{}{}:
		default:
		}
	}
}
