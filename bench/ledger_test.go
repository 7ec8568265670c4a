package bench

import (
	"testing"
	"time"
)

// The ledger takes times as parameters; these tests play a timeline without sleeping.
// Slots are 100 ms; the window is 1 s (10 slots) and the settle time 200 ms.
func newTestLedger() (*Ledger, func(ms int64) int64) {
	start := time.Unix(1_700_000_000, 0)
	l := NewLedger(start, 10*time.Second, time.Second, 200*time.Millisecond, 0)
	at := func(ms int64) int64 { return start.UnixNano() + ms*int64(time.Millisecond) }
	return l, at
}

func TestLedgerBroadcastOwedOnlyInsideTheWindow(t *testing.T) {
	l, at := newTestLedger()
	a, b := newAccount(0), newAccount(0)
	// a's first SA at 0 ms: eligible from slot 3 (0.2 s settle ends in slot 2).
	l.sent(a, at(0))
	l.firstSA(a, at(0))
	l.firstSA(b, at(50))
	// b broadcasts every 100 ms from 0 to 4.9 s: 50 messages.
	for ms := int64(0); ms < 5000; ms += 100 {
		l.sent(b, at(ms+10))
	}
	// a receives all of them, including those sent before it was eligible.
	for ms := int64(0); ms < 5000; ms += 100 {
		l.received(a, at(ms+10), false)
	}
	// a leaves at 4.95 s: its horizon is slot 49-10 = 39, so it is owed slots 3..38.
	l.close(a, 0, at(4950))
	// b stays to 10 s and receives nothing from a (a sent only its first SA, not owed).
	l.close(b, 1, at(10_000))
	got := l.Tally()
	if got.Owed != 36 || got.Received != 36 || got.Lost != 0 || got.Excess != 0 || got.Recipients != 1 {
		t.Errorf("tally %+v, want 36 owed and received by one recipient", got)
	}
}

func TestLedgerCountsLossPerRecipient(t *testing.T) {
	l, at := newTestLedger()
	accts := []*account{newAccount(0), newAccount(0), newAccount(0)}
	for i, a := range accts {
		l.firstSA(a, at(int64(i)))
	}
	// Each sends one broadcast per 100 ms from 1 s to 2 s (10 each): each is owed 20.
	for ms := int64(1000); ms < 2000; ms += 100 {
		for i, a := range accts {
			l.sent(a, at(ms))
			for j, r := range accts {
				// Recipient 2 misses everything from sender 0; nobody gets their own.
				if j != i && !(j == 2 && i == 0) {
					l.received(r, at(ms), false)
				}
			}
		}
	}
	for i, a := range accts {
		l.close(a, i, at(5000))
	}
	got := l.Tally()
	if got.Owed != 60 || got.Received != 50 || got.Lost != 10 || got.RecipientsWithLoss != 1 {
		t.Fatalf("tally %+v", got)
	}
	if len(got.Worst) != 1 || got.Worst[0].Client != 2 || got.Worst[0].LossPct != 50 {
		t.Errorf("worst %+v, want client 2 at 50%%", got.Worst)
	}
	if got.LossPct < 16.6 || got.LossPct > 16.7 {
		t.Errorf("loss %.3f%%, want 16.67%%", got.LossPct)
	}
}

func TestLedgerDirectedAndExcess(t *testing.T) {
	l, at := newTestLedger()
	dst := newAccount(0)
	// Owed before eligibility: not counted.
	l.owedDirected(dst, at(100))
	l.firstSA(dst, at(0))
	l.owedDirected(dst, at(100)) // slot 1 < eligible 3: not owed
	l.received(dst, at(100), true)
	for _, ms := range []int64{500, 600, 700} {
		l.owedDirected(dst, at(ms))
	}
	l.received(dst, at(500), true)
	l.received(dst, at(600), true)
	// A duplicate broadcast nobody sent: excess, not received.
	l.received(dst, at(800), false)
	l.close(dst, 7, at(3000))
	got := l.Tally()
	if got.OwedDirected != 3 || got.ReceivedDirected != 2 || got.Lost != 1 || got.Excess != 1 || got.Received != 2 {
		t.Errorf("tally %+v", got)
	}
}

// What is recorded after a connection's horizon is taken back out of both sides, even
// when it arrived long after (ring wrap-around).
func TestLedgerHorizonRing(t *testing.T) {
	l, at := newTestLedger()
	a, b := newAccount(0), newAccount(0)
	l.firstSA(a, at(0))
	l.firstSA(b, at(0))
	for ms := int64(0); ms < 8000; ms += 50 {
		l.sent(b, at(ms))
		l.received(a, at(ms), false)
	}
	l.close(a, 0, at(8000)) // horizon slot 70: owed slots 3..69, 2 per slot
	got := l.Tally()
	if got.Owed != 134 || got.Received != 134 || got.Lost != 0 {
		t.Errorf("tally %+v, want 134 owed and received", got)
	}
	// Counting after close changes nothing.
	l.received(a, at(7990), false)
	if again := l.Tally(); again.Received != 134 {
		t.Errorf("received after close counted: %+v", again)
	}
}

func TestLedgerNeverEligibleOwesNothing(t *testing.T) {
	l, at := newTestLedger()
	a, b := newAccount(0), newAccount(0)
	l.firstSA(b, at(0))
	l.sent(b, at(500))
	l.received(a, at(500), false)
	l.close(a, 0, at(5000))
	l.close(b, 1, at(5000))
	if got := l.Tally(); got.Owed != 0 || got.Received != 0 || got.Recipients != 0 {
		t.Errorf("tally %+v", got)
	}
}

// With routing groups a broadcast is owed only to the sender's group.
func TestLedgerOwesBroadcastsWithinTheGroup(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	l := NewLedger(start, 10*time.Second, time.Second, 200*time.Millisecond, 2)
	at := func(ms int64) int64 { return start.UnixNano() + ms*int64(time.Millisecond) }
	accts := []*account{newAccount(0), newAccount(0), newAccount(1), newAccount(1)}
	for _, a := range accts {
		l.firstSA(a, at(0))
	}
	// From 1 s to 2 s each sends 10 broadcasts; only its group partner hears them.
	for ms := int64(1000); ms < 2000; ms += 100 {
		for i, a := range accts {
			l.sent(a, at(ms))
			l.received(accts[i^1], at(ms), false)
		}
	}
	for i, a := range accts {
		l.close(a, i, at(10_000))
	}
	got := l.Tally()
	if got.Owed != 40 || got.Received != 40 || got.Lost != 0 || got.Recipients != 4 {
		t.Errorf("tally %+v, want 10 owed to and received by each of 4", got)
	}
}
