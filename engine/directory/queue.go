package directory

import (
	"sync"
	"sync/atomic"
)

// Queue is the Subscription the engine hands out: a bounded channel that
// the producer offers to without ever waiting.
type Queue struct {
	name    string
	want    Kinds
	ch      chan Event
	dropped atomic.Uint64

	// mu orders Offer against Close so that nothing is sent on a closed
	// channel; Offer holds it shared, so producers do not contend.
	mu     sync.RWMutex
	closed bool
	onStop func()
}

// NewQueue makes a queue of capacity events for the kinds in want. onClose,
// if not nil, runs once when the consumer closes it (the engine unregisters
// the queue there).
func NewQueue(name string, want Kinds, capacity int, onClose func()) *Queue {
	if capacity < 1 {
		capacity = 1
	}
	return &Queue{name: name, want: want, ch: make(chan Event, capacity), onStop: onClose}
}

// Name is the subscriber's name, for metrics.
func (q *Queue) Name() string { return q.name }

// Wants reports whether the subscriber asked for k; producers check it
// before building an event.
func (q *Queue) Wants(k Kind) bool { return q.want.Has(k) }

// Offer queues ev without waiting. It reports false, and counts the drop,
// when the queue is full; a closed queue takes nothing and counts nothing.
func (q *Queue) Offer(ev Event) bool {
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.closed {
		return false
	}
	select {
	case q.ch <- ev:
		return true
	default:
		q.dropped.Add(1)
		return false
	}
}

// C implements Subscription.
func (q *Queue) C() <-chan Event { return q.ch }

// Dropped implements Subscription.
func (q *Queue) Dropped() uint64 { return q.dropped.Load() }

// Len is the number of events waiting.
func (q *Queue) Len() int { return len(q.ch) }

// Close implements Subscription.
func (q *Queue) Close() {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.closed = true
	close(q.ch)
	q.mu.Unlock()
	if q.onStop != nil {
		q.onStop()
	}
}
