package bench

import (
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// slotDur is the resolution of the loss accounting: send times are counted per slot.
const slotDur = 100 * time.Millisecond

// Ledger computes loss per recipient from the scenario's routing, without storing a record
// per delivery.
//
// A connection (one session of one client) is owed a message when it could receive it for
// the message's whole send window:
//
//   - it became eligible before the message was sent: its first SA, which tells the server
//     its callsign, was sent at least measure.settle earlier (eligibility starts at the
//     first slot after that);
//   - it stayed connected for measure.window after the send: a message sent in the last
//     window of a connection's life is neither owed nor counted when received (the
//     connection's horizon).
//
// A broadcast (SA, All Chat Rooms chat, marker) is owed to every eligible connection of
// another client in the sender's group (with groups.count, the server's IN/OUT groups
// partition the clients; without, everyone is in one); a directed chat only to the connection of the named callsign, if eligible
// when it was sent. Broadcasts are counted per slot once for the whole run; each connection
// counts, for slots from its eligibility on, what it received, its own broadcasts (not owed
// to itself) and the directed messages owed to it. The last window of those counts is kept
// in a small ring so that, when the connection ends, what falls after its horizon can be
// taken back out. Owed and received are therefore counted over exactly the same slots.
type Ledger struct {
	start  int64             // unix nanos of the run's start; slot 0 begins here
	window int64             // measure.window in slots, rounded up
	settle int64             // measure.settle in nanoseconds
	bcast  [][]atomic.Uint64 // broadcasts sent per group and slot

	mu   sync.Mutex
	done []SessionTally
}

// NewLedger returns a ledger for a run starting at start whose sends end by sendPhase, with
// the clients in groups routing groups (0 or 1: one group).
func NewLedger(start time.Time, sendPhase, window, settle time.Duration, groups int) *Ledger {
	w := int64((window + slotDur - 1) / slotDur)
	n := int64(sendPhase/slotDur) + w + 4
	l := &Ledger{start: start.UnixNano(), window: w, settle: int64(settle)}
	for range max(groups, 1) {
		l.bcast = append(l.bcast, make([]atomic.Uint64, n))
	}
	return l
}

// slot returns the slot of a unix-nanosecond time; -1 before the start.
func (l *Ledger) slot(unixNanos int64) int64 {
	d := unixNanos - l.start
	if d < 0 {
		return -1
	}
	return d / int64(slotDur)
}

// Tally fields, as indexes into the counters of an account.
const (
	tallyRecvBroadcast = iota // broadcasts received
	tallyRecvDirected         // directed messages received at their destination
	tallyOwn                  // own broadcasts sent (not owed to oneself)
	tallyOwedDirected         // directed messages owed
	numTally
)

// account is one connection's share of the ledger.
type account struct {
	// eligible is the first slot this connection is owed; MaxInt64 until its first SA.
	eligible atomic.Int64
	group    int // the routing group of its client

	mu    sync.Mutex
	final bool
	head  int64              // the highest slot recorded in ring
	ring  [][numTally]uint32 // ring[s % len] counts slot s for s in (head-len, head]
	total [numTally]uint64   // everything recorded at slots >= eligible
}

func newAccount(group int) *account {
	a := &account{group: group}
	a.eligible.Store(math.MaxInt64)
	return a
}

// firstSA makes a eligible from the first slot after firstSA+settle. Later calls do nothing.
func (l *Ledger) firstSA(a *account, unixNanos int64) {
	s := l.slot(unixNanos+l.settle) + 1
	a.mu.Lock()
	if a.ring == nil {
		a.ring = make([][numTally]uint32, l.window+1)
		a.head = s - 1
		a.eligible.Store(s)
	}
	a.mu.Unlock()
}

// record counts one event of kind field at slot s for a, if a is owed slot s. It reports
// whether it counted.
func (a *account) record(s int64, field int) bool {
	if s < a.eligible.Load() {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.final {
		// The connection ended before this was counted: s is past its horizon.
		return false
	}
	n := int64(len(a.ring))
	if s > a.head {
		for c := max(a.head+1, s-n+1); c <= s; c++ {
			a.ring[c%n] = [numTally]uint32{}
		}
		a.head = s
	}
	if s > a.head-n {
		a.ring[s%n][field]++
	}
	a.total[field]++
	return true
}

// sent counts a message a's connection sent at unixNanos: broadcasts for everyone, and as
// a's own so that it is not owed to a itself.
func (l *Ledger) sent(a *account, unixNanos int64) {
	s := l.slot(unixNanos)
	bc := l.bcast[a.group]
	if s < 0 || s >= int64(len(bc)) {
		return
	}
	bc[s].Add(1)
	a.record(s, tallyOwn)
}

// owedDirected counts a directed message sent at unixNanos as owed to the destination's
// connection dst (if dst is eligible then).
func (l *Ledger) owedDirected(dst *account, unixNanos int64) {
	if s := l.slot(unixNanos); s >= 0 {
		dst.record(s, tallyOwedDirected)
	}
}

// received counts a delivery to a of a message sent at unixNanos; directed says whether it
// was a directed message (at its destination). It reports whether the delivery was owed.
func (l *Ledger) received(a *account, unixNanos int64, directed bool) bool {
	s := l.slot(unixNanos)
	if s < 0 {
		return false
	}
	if directed {
		return a.record(s, tallyRecvDirected)
	}
	return a.record(s, tallyRecvBroadcast)
}

// close ends a's connection at unixNanos and files its tally for client. What was recorded
// at or after the horizon (window slots before the end) is taken back out.
func (l *Ledger) close(a *account, client int, unixNanos int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.final {
		return
	}
	a.final = true
	if a.ring == nil {
		return // never eligible: owed nothing
	}
	t := SessionTally{Client: client, Group: a.group, Eligible: a.eligible.Load(), Horizon: l.slot(unixNanos) - l.window}
	tot := a.total
	n := int64(len(a.ring))
	for s := max(t.Horizon, a.head-n+1, t.Eligible); s <= a.head; s++ {
		for f := range numTally {
			tot[f] -= uint64(a.ring[s%n][f])
		}
	}
	t.RecvBroadcast, t.RecvDirected = tot[tallyRecvBroadcast], tot[tallyRecvDirected]
	t.Own, t.OwedDirected = tot[tallyOwn], tot[tallyOwedDirected]
	l.mu.Lock()
	l.done = append(l.done, t)
	l.mu.Unlock()
}

// SessionTally is what one connection was owed and received, over the slots
// [Eligible, Horizon).
type SessionTally struct {
	Client, Group               int
	Eligible, Horizon           int64
	RecvBroadcast, RecvDirected uint64
	Own, OwedDirected           uint64
}

// Loss is the loss accounting of a run.
type Loss struct {
	// Owed and Received count deliveries owed and owed deliveries made, over all
	// recipients; Lost = the shortfall summed per recipient; Excess = deliveries beyond
	// what was owed, summed per recipient (duplicates).
	Owed     uint64 `json:"owed"`
	Received uint64 `json:"received"`
	Lost     uint64 `json:"lost"`
	Excess   uint64 `json:"excess"`
	// The same split into broadcast and directed messages; the Received… fields count
	// everything that arrived for owed slots, excess included.
	OwedBroadcast     uint64 `json:"owed_broadcast"`
	ReceivedBroadcast uint64 `json:"received_broadcast"`
	OwedDirected      uint64 `json:"owed_directed"`
	ReceivedDirected  uint64 `json:"received_directed"`
	// LossPct = Lost / Owed in percent (0 when nothing was owed).
	LossPct float64 `json:"loss_pct"`
	// Recipients is the number of clients owed anything; RecipientsWithLoss those that
	// missed at least one delivery; Worst lists up to five with the highest loss.
	Recipients         int             `json:"recipients"`
	RecipientsWithLoss int             `json:"recipients_with_loss"`
	Worst              []RecipientLoss `json:"worst,omitempty"`
}

// RecipientLoss is one client's loss over all its connections.
type RecipientLoss struct {
	Client   int     `json:"client"`
	Owed     uint64  `json:"owed"`
	Received uint64  `json:"received"`
	LossPct  float64 `json:"loss_pct"`
}

// Tally computes the loss over every connection closed so far; call it after all closed.
func (l *Ledger) Tally() Loss {
	prefix := make([][]uint64, len(l.bcast))
	for g, bc := range l.bcast {
		prefix[g] = make([]uint64, len(bc)+1)
		for i := range bc {
			prefix[g][i+1] = prefix[g][i] + bc[i].Load()
		}
	}
	clamp := func(s int64) int64 { return min(max(s, 0), int64(len(l.bcast[0]))) }

	l.mu.Lock()
	done := append([]SessionTally(nil), l.done...)
	l.mu.Unlock()

	per := make(map[int]*RecipientLoss)
	var out Loss
	for _, t := range done {
		if t.Horizon <= t.Eligible {
			continue
		}
		owedB := prefix[t.Group][clamp(t.Horizon)] - prefix[t.Group][clamp(t.Eligible)]
		owedB -= min(t.Own, owedB)
		out.OwedBroadcast += owedB
		out.OwedDirected += t.OwedDirected
		out.ReceivedBroadcast += t.RecvBroadcast
		out.ReceivedDirected += t.RecvDirected
		// Broadcast and directed are balanced separately, so that a duplicate of one kind
		// cannot hide a loss of the other.
		gotB, excessB := clip(t.RecvBroadcast, owedB)
		gotD, excessD := clip(t.RecvDirected, t.OwedDirected)
		owed, got := owedB+t.OwedDirected, gotB+gotD
		out.Excess += excessB + excessD
		out.Owed += owed
		out.Received += got
		out.Lost += owed - got
		r := per[t.Client]
		if r == nil {
			r = &RecipientLoss{Client: t.Client}
			per[t.Client] = r
		}
		r.Owed += owed
		r.Received += got
	}
	if out.Owed > 0 {
		out.LossPct = 100 * float64(out.Lost) / float64(out.Owed)
	}
	var all []RecipientLoss
	for _, r := range per {
		if r.Owed == 0 {
			continue
		}
		out.Recipients++
		if r.Received < r.Owed {
			out.RecipientsWithLoss++
			r.LossPct = 100 * float64(r.Owed-r.Received) / float64(r.Owed)
			all = append(all, *r)
		}
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].LossPct != all[j].LossPct {
			return all[i].LossPct > all[j].LossPct
		}
		return all[i].Client < all[j].Client
	})
	if len(all) > 5 {
		all = all[:5]
	}
	out.Worst = all
	return out
}

// clip splits received into the part that was owed and the excess.
func clip(received, owed uint64) (got, excess uint64) {
	if received > owed {
		return owed, received - owed
	}
	return received, 0
}
