package bench

import (
	"context"
	"sync"
	"time"

	"cotd/cot/takproto"
)

// shard is one send scheduler: a goroutine with a min-heap of the next send time of each of
// its connections. Every connection belongs to one shard for its whole life, and only that
// shard writes to it, so writes to one connection never interleave. A connection's entry is
// re-filed after each send; a stale entry (an older generation of the same session) is
// skipped when it comes up. There is no timer per client: each shard holds one.
type shard struct {
	r    *runner
	wake chan struct{}

	mu sync.Mutex
	h  []schedEntry // min-heap on due

	batch []*session          // scratch, shard goroutine only
	buf   []byte              // message scratch, shard goroutine only
	xml   []byte              // v1 conversion scratch, shard goroutine only
	tm    takproto.TakMessage // v1 conversion scratch, shard goroutine only
}

type schedEntry struct {
	due int64 // unix nanoseconds
	s   *session
	gen uint32
}

func newShard(r *runner) *shard {
	return &shard{r: r, wake: make(chan struct{}, 1), buf: make([]byte, 0, 8<<10)}
}

// schedule files s to fire at due, replacing any earlier filing of s.
func (sh *shard) schedule(s *session, due int64) {
	sh.mu.Lock()
	s.gen++
	sh.push(schedEntry{due: due, s: s, gen: s.gen})
	first := sh.h[0].s == s && sh.h[0].gen == s.gen
	sh.mu.Unlock()
	if first {
		select {
		case sh.wake <- struct{}{}:
		default:
		}
	}
}

// run fires due sessions until ctx ends.
func (sh *shard) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now().UnixNano()
		sh.mu.Lock()
		sh.batch = sh.batch[:0]
		for len(sh.h) > 0 && sh.h[0].due <= now {
			e := sh.pop()
			if e.gen == e.s.gen {
				sh.batch = append(sh.batch, e.s)
			}
		}
		sh.mu.Unlock()
		for i, s := range sh.batch {
			if next, ok := sh.fire(s); ok {
				sh.mu.Lock()
				if s.gen == s.genFired {
					// Not re-filed by someone else (a storm) while it fired.
					s.gen++
					sh.push(schedEntry{due: next, s: s, gen: s.gen})
				}
				sh.mu.Unlock()
			}
			sh.batch[i] = nil
		}
		wait := time.Hour
		sh.mu.Lock()
		if len(sh.h) > 0 {
			wait = time.Duration(sh.h[0].due - time.Now().UnixNano())
		}
		sh.mu.Unlock()
		timer.Reset(max(wait, 0))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-sh.wake:
		}
	}
}

func (sh *shard) push(e schedEntry) {
	sh.h = append(sh.h, e)
	for i := len(sh.h) - 1; i > 0; {
		p := (i - 1) / 2
		if sh.h[p].due <= sh.h[i].due {
			break
		}
		sh.h[p], sh.h[i] = sh.h[i], sh.h[p]
		i = p
	}
}

func (sh *shard) pop() schedEntry {
	top := sh.h[0]
	last := len(sh.h) - 1
	sh.h[0] = sh.h[last]
	sh.h[last] = schedEntry{}
	sh.h = sh.h[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < last && sh.h[l].due < sh.h[m].due {
			m = l
		}
		if r < last && sh.h[r].due < sh.h[m].due {
			m = r
		}
		if m == i {
			break
		}
		sh.h[m], sh.h[i] = sh.h[i], sh.h[m]
		i = m
	}
	if e := top; e.gen == e.s.gen {
		e.s.genFired = e.gen
	}
	return top
}
