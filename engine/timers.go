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
//
// The wheel does not tick: its loop sets one timer for the earliest slot
// that holds a timer (arm), so an idle server with quiet connections wakes
// when a deadline comes due, not four times a second, and a loop with no
// connection does not wake at all.
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
	// arm asks for advance at or after at (unix nanos); nil when the
	// caller advances the wheel itself (unit tests). armed is the time
	// last asked for, 0 when none is outstanding: schedule asks again only
	// for an earlier slot.
	arm   func(at int64)
	armed int64
}

func newWheel(now int64) *wheel {
	return &wheel{base: now - now%tickNanos, now: now}
}

// schedule files t to fire at or after at (unix nanos).
func (w *wheel) schedule(t *timer, at int64) {
	w.unlink(t)
	if w.filed.Load() == 0 && w.now-w.base >= tickNanos {
		// An empty wheel is not advanced: bring its start up to the clock
		// so that the horizon counts from now. Every slot is empty, so
		// none is skipped.
		w.base = w.now - w.now%tickNanos
	}
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
	if w.arm != nil {
		// Slot cur+off comes due when advance steps past it.
		if due := w.base + (off+1)*tickNanos; w.armed == 0 || due < w.armed {
			w.armed = due
			w.arm(due)
		}
	}
}

// nextDue is when the earliest slot holding a timer comes due (unix nanos),
// 0 when the wheel is empty.
func (w *wheel) nextDue() int64 {
	if w.filed.Load() == 0 {
		return 0
	}
	for off := range wheelSlots {
		if w.slots[(w.cur+off)%wheelSlots] != nil {
			return w.base + int64(off+1)*tickNanos
		}
	}
	return 0
}

// rearm asks for the advance after one: at the earliest filed slot, or
// not at all when the wheel is empty.
func (w *wheel) rearm() {
	w.armed = w.nextDue()
	if w.armed != 0 && w.arm != nil {
		w.arm(w.armed)
	}
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
	if w.filed.Load() == 0 {
		// Nothing to fire: skip the empty slots in one step (an idle
		// loop's wheel may not have moved for hours).
		if w.base+tickNanos <= now {
			w.base = now - now%tickNanos
		}
		return
	}
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
