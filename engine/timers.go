package engine

import "sync/atomic"

// tickNanos is the wheel's resolution. Deadlines are seconds long (handshake
// 10 s, idle 90 s), so a quarter second of lateness is harmless and keeps
// the tick cheap.
const tickNanos = int64(250_000_000)

// wheelSlots * tickNanos is the horizon (128 s). A later deadline parks in
// the last slot and is re-filed when that slot comes due.
const wheelSlots = 512

const dueSlot = wheelSlots

// timer is a connection's place on its loop's wheel: one per connection,
// holding its next deadline. Moving a deadline later is a field write on the
// owner; the wheel notices when the old slot comes due and re-files it.
type timer struct {
	prev, next *timer
	slot       int // -1 when not filed
	owner      *session
}

// wheel is a hashed timing wheel owned by one event loop: it is only touched
// on that loop, so it needs no lock.
type wheel struct {
	// slots[dueSlot] holds the timers being fired by advance, so that a
	// fire callback may unlink any other timer safely.
	slots [wheelSlots + 1]*timer
	cur   int
	base  int64 // start of slot cur, unix nanos
	now   int64 // time of the last advance: the loop's coarse clock
	// filed counts timers on the wheel; atomic so that a census from
	// another goroutine (tests, metrics) can read it.
	filed atomic.Int64
}

func newWheel(now int64) *wheel {
	return &wheel{base: now - now%tickNanos, now: now}
}

// schedule files t to fire at or after at (unix nanos).
func (w *wheel) schedule(t *timer, at int64) {
	w.unlink(t)
	off := (at - w.base) / tickNanos
	if off < 0 {
		off = 0
	}
	if off >= wheelSlots {
		off = wheelSlots - 1
	}
	i := (w.cur + int(off)) % wheelSlots
	w.filed.Add(1)
	t.slot = i
	t.prev = nil
	t.next = w.slots[i]
	if t.next != nil {
		t.next.prev = t
	}
	w.slots[i] = t
}

// unlink takes t off the wheel; a no-op when it is not filed.
func (w *wheel) unlink(t *timer) {
	if t.slot < 0 {
		return
	}
	if t.prev != nil {
		t.prev.next = t.next
	} else {
		w.slots[t.slot] = t.next
	}
	if t.next != nil {
		t.next.prev = t.prev
	}
	t.prev, t.next, t.slot = nil, nil, -1
	w.filed.Add(-1)
}

// advance fires every slot whose time has fully passed at now, calling fire
// for each timer in them. fire may schedule the timer again.
func (w *wheel) advance(now int64, fire func(t *timer, now int64)) {
	w.now = now
	for w.base+tickNanos <= now {
		head := w.slots[w.cur]
		w.slots[w.cur] = nil
		for t := head; t != nil; t = t.next {
			t.slot = dueSlot
		}
		w.slots[dueSlot] = head
		// Step first: a timer re-filed by fire lands after this slot.
		w.cur = (w.cur + 1) % wheelSlots
		w.base += tickNanos
		for w.slots[dueSlot] != nil {
			t := w.slots[dueSlot]
			w.unlink(t)
			fire(t, now)
		}
	}
}
