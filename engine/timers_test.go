package engine

import "testing"

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
