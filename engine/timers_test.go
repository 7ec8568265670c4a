package engine

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"

	"cotd/configs"
)

const sec = int64(1_000_000_000)

func TestWheelFiresAtOrAfterDeadline(t *testing.T) {
	start := int64(1_000) * sec
	w := newWheel(start)
	a := &timer{slot: -1}
	b := &timer{slot: -1}
	late := &timer{slot: -1}
	w.schedule(a, start+2*sec)
	w.schedule(b, start+10*sec)
	w.schedule(late, start+600*sec) // beyond the 128 s horizon
	fired := map[*timer]int64{}
	fire := func(t *timer, now int64) { fired[t] = now }

	for now := start; now <= start+3*sec; now += sec / 10 {
		w.advance(now, fire)
	}
	if _, ok := fired[a]; !ok {
		t.Fatal("a did not fire by its deadline + one tick")
	}
	if fired[a] < start+2*sec {
		t.Errorf("a fired early at +%dms", (fired[a]-start)/1e6)
	}
	if _, ok := fired[b]; ok {
		t.Error("b fired early")
	}
	w.unlink(b)
	for now := start + 3*sec; now <= start+200*sec; now += sec {
		w.advance(now, fire)
	}
	if _, ok := fired[b]; ok {
		t.Error("an unlinked timer fired")
	}
	// The far timer surfaces at the horizon; its owner re-files it, as
	// session.expire does when the deadline is still ahead.
	if _, ok := fired[late]; !ok {
		t.Error("far timer never surfaced for re-filing")
	}
}

func TestWheelRefileDuringFire(t *testing.T) {
	start := int64(50) * sec
	w := newWheel(start)
	ts := make([]*timer, 100)
	for i := range ts {
		ts[i] = &timer{slot: -1}
		w.schedule(ts[i], start+sec)
	}
	count := 0
	w.advance(start+2*sec, func(t *timer, now int64) {
		count++
		// Unlinking a sibling that is due in the same batch must be safe.
		if count == 1 {
			for _, o := range ts {
				if o != t {
					w.unlink(o)
					break
				}
			}
		}
		w.schedule(t, now+5*sec)
	})
	if count != 99 {
		t.Errorf("fired %d, want 99 (one was unlinked by a sibling)", count)
	}
	count = 0
	w.advance(start+8*sec, func(*timer, int64) { count++ })
	if count != 99 {
		t.Errorf("re-filed timers fired %d, want 99", count)
	}
}

// The wheel asks its loop for a wake-up only for its earliest filed slot:
// a later deadline asks for nothing, an earlier one moves the wake-up
// forward, and an empty wheel asks for none.
func TestWheelArmsOnlyForItsEarliestSlot(t *testing.T) {
	start := int64(4_000) * sec
	w := newWheel(start)
	var asked []int64
	w.arm = func(at int64) { asked = append(asked, at) }
	idle, later, soon := &timer{slot: -1}, &timer{slot: -1}, &timer{slot: -1}

	w.schedule(idle, start+90*sec)
	if len(asked) != 1 || asked[0] < start+90*sec || asked[0] > start+90*sec+tickNanos {
		t.Fatalf("one timer 90 s out: asked for %v, want one wake-up in [+90 s, +90 s + a tick]", rel(asked, start))
	}
	w.schedule(later, start+120*sec)
	if len(asked) != 1 {
		t.Fatalf("a later deadline asked for a wake-up: %v", rel(asked, start))
	}
	w.schedule(soon, start+10*sec)
	if len(asked) != 2 || asked[1] < start+10*sec || asked[1] > start+10*sec+tickNanos {
		t.Fatalf("an earlier deadline: asked for %v, want a second wake-up at +10 s", rel(asked, start))
	}

	// The loop's wake-up at +10 s: soon fires, the next is idle's slot.
	var fired []*timer
	w.advance(asked[1], func(t *timer, _ int64) { fired = append(fired, t) })
	w.rearm()
	if len(fired) != 1 || fired[0] != soon {
		t.Fatalf("fired %d timers at +10 s, want soon alone", len(fired))
	}
	if got := asked[len(asked)-1]; got < start+90*sec || got > start+90*sec+tickNanos {
		t.Fatalf("after +10 s the wheel asked for %v, want idle's slot at +90 s", rel(asked, start))
	}

	w.unlink(idle)
	w.unlink(later)
	n := len(asked)
	w.rearm()
	if len(asked) != n || w.armed != 0 {
		t.Errorf("an empty wheel asked for a wake-up: %v", rel(asked[n:], start))
	}
}

// After an hour empty, a deadline filed on the wheel fires on time, not
// early at a horizon counted from an hour ago: whether the hour passed in
// an advance (a wake-up for a timer since unlinked) or only in the loop's
// clock (touch, with no advance at all).
func TestEmptyWheelFiresOnTimeAfterAnIdleHour(t *testing.T) {
	start := int64(7_000) * sec
	w := newWheel(start)
	now := start + 3600*sec
	w.advance(now, func(*timer, int64) { t.Fatal("an empty wheel fired") })
	if w.base > now || now-w.base >= tickNanos {
		t.Fatalf("after an hour empty the wheel starts %d ms before now", (now-w.base)/1e6)
	}
	fireIn5s(t, w, now)
	now += 3600 * sec
	w.now = now // what touch does at a callback's start
	fireIn5s(t, w, now)
}

// fireIn5s files a timer 5 s after now and checks that it fires within a
// tick (and a step of this test's clock) after that.
func fireIn5s(t *testing.T, w *wheel, now int64) {
	t.Helper()
	tm := &timer{slot: -1}
	w.schedule(tm, now+5*sec)
	const step = sec / 100
	var at int64
	for clock := now; at == 0 && clock <= now+10*sec; clock += step {
		w.advance(clock, func(_ *timer, n int64) { at = n })
	}
	if at < now+5*sec || at > now+5*sec+tickNanos+step {
		t.Errorf("a 5 s deadline fired at %+d ms, want within a tick after 5000", (at-now)/1e6)
	}
}

func rel(ts []int64, start int64) []time.Duration {
	out := make([]time.Duration, len(ts))
	for i, at := range ts {
		out[i] = time.Duration(at - start)
	}
	return out
}

// A loop with one quiet connection (it pings every 15 s; a ping only moves
// its idle deadline) wakes for its wheel when that deadline's slot comes
// due, about once per idle timeout, not every tick; once the connection is
// gone the loop does not wake at all. The bubble's clock runs only when
// every goroutine waits, so the count of wake-ups is exact.
func TestQuietLoopWakesOnlyForDeadlines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := configs.Default()
		cfg.TCP.Addr, cfg.TLS.Addr, cfg.Admin.Addr = "127.0.0.1:0", "", ""
		idle := cfg.Limits.IdleTimeout.Duration
		s, err := New(cfg, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		el := &fakeLoop{asked: make(chan struct{}, 1)}
		lp := newLoop(el, time.Now().UnixNano())
		lp.startWheel()
		defer lp.stopWheel()
		lp.touch()
		ss := newSession(s, &fakeWire{room: 1 << 20}, s.listeners[0], lp, 1, "192.0.2.1:40000")
		lp.wheel.schedule(&ss.tm, ss.nextDeadline())

		// Six pings, 15 s apart, as OnTraffic records them: no wake-up.
		for range 6 {
			time.Sleep(15 * time.Second)
			synctest.Wait()
			if n := el.waiting(); n != 0 {
				t.Fatalf("the loop was asked to advance its wheel %d times before any deadline", n)
			}
			lp.touch()
			ss.lastRead = lp.wheel.now
		}
		// 90 s from the open: the slot comes due, the deadline has moved,
		// the timer is filed again.
		time.Sleep(time.Duration(tickNanos))
		synctest.Wait()
		if n := el.run(t); n != 1 {
			t.Fatalf("at the first deadline's slot the loop ran %d wheel tasks, want 1", n)
		}
		if r := CloseReason(ss.reason.Load()); r != reasonUnset {
			t.Fatalf("a pinging connection was closed: %v", r)
		}
		// No more pings: the next wake-up is the idle timeout after the
		// last one, and it closes the connection.
		time.Sleep(idle)
		synctest.Wait()
		if n := el.run(t); n != 1 {
			t.Fatalf("until the idle timeout the loop ran %d wheel tasks, want 1", n)
		}
		if r := CloseReason(ss.reason.Load()); r != ReasonIdle {
			t.Fatalf("close reason %v, want %v", r, ReasonIdle)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if n := el.waiting(); n != 0 {
			t.Errorf("with no connection the loop was asked to advance its wheel %d times in an hour", n)
		}
	})
}
