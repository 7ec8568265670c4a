package broker

import (
	"iter"
	"slices"
	"sync"
)

// Anon is TAK Server's group for users with no group: everyone in it
// publishes to and receives from everyone else in it.
const Anon = "__ANON__"

// bits is a set of group indices.
type bits []uint64

func (b bits) has(i int) bool { return i/64 < len(b) && b[i/64]&(1<<(i%64)) != 0 }

func (b *bits) set(i int) {
	*b = grown(*b, i/64)
	(*b)[i/64] |= 1 << (i % 64)
}

// members yields the group indices in the set, in increasing order.
func (b bits) members() iter.Seq[int] {
	return func(yield func(int) bool) {
		for i := range len(b) * 64 {
			if b.has(i) && !yield(i) {
				return
			}
		}
	}
}

// grown returns s, lengthened with zero values if needed so that s[i] is
// in range.
func grown[T any](s []T, i int) []T {
	if n := i + 1 - len(s); n > 0 {
		s = append(s, make([]T, n)...)
	}
	return s
}

// intersects reports whether the sets share a group: the whole
// reachability test between a sender and a recipient.
func (b bits) intersects(o bits) bool {
	for i := range min(len(b), len(o)) {
		if b[i]&o[i] != 0 {
			return true
		}
	}
	return false
}

// Membership is a client's groups: IN, the groups it publishes into, and
// OUT, the groups it receives from. A message from S reaches R when some
// group has S in IN and R in OUT. Immutable once made.
type Membership struct {
	In, Out []string // sorted names
	in, out bits
	inIdx   []int // indices of In, for walking the per-group recipient lists
}

// groupTable gives each group name a stable index. It only grows: a
// deployment has tens or hundreds of groups, not millions.
type groupTable struct {
	mu    sync.Mutex
	index map[string]int
}

func (t *groupTable) indexOf(name string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.index == nil {
		t.index = make(map[string]int)
	}
	i, ok := t.index[name]
	if !ok {
		i = len(t.index)
		t.index[name] = i
	}
	return i
}

// Groups returns the name of every group the broker has seen, sorted: the
// reach of a server announcement (a message into all of them reaches every
// client that hears any group).
func (b *Broker) Groups() []string {
	b.groups.mu.Lock()
	names := make([]string, 0, len(b.groups.index))
	for g := range b.groups.index {
		names = append(names, g)
	}
	b.groups.mu.Unlock()
	slices.Sort(names)
	return names
}

// Membership builds a membership from group names. An empty list is no
// group in that direction (a user with IN groups only hears nothing); the
// caller names Anon explicitly for clients without groups.
func (b *Broker) Membership(in, out []string) *Membership {
	norm := func(names []string) []string {
		s := slices.Clone(names)
		slices.Sort(s)
		return slices.Compact(s)
	}
	m := &Membership{In: norm(in), Out: norm(out)}
	for _, g := range m.In {
		i := b.groups.indexOf(g)
		m.in.set(i)
		m.inIdx = append(m.inIdx, i)
	}
	for _, g := range m.Out {
		m.out.set(b.groups.indexOf(g))
	}
	return m
}

// reaches reports whether a message from s may be delivered to r.
func reaches(s, r *Client) bool {
	return s.membership().in.intersects(r.membership().out)
}
