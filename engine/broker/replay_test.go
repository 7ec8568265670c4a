package broker

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"cotd/internal/poll"
)

// gateBox refuses every delivery as back-pressure until opened, as a socket
// that is not draining would, and then takes and counts them. Like a
// session, it signals on Drained when the test says its queue drained.
type gateBox struct {
	open     atomic.Bool
	tries    atomic.Int64
	got      atomic.Int64
	drained  chan struct{}
	replayed chan struct{}
}

func newGateBox() *gateBox {
	return &gateBox{drained: make(chan struct{}, 1), replayed: make(chan struct{})}
}

// Open lets deliveries through and signals the waiting replay.
func (g *gateBox) Open() {
	g.open.Store(true)
	g.drained <- struct{}{}
}

func (g *gateBox) Drained() <-chan struct{} { return g.drained }
func (g *gateBox) Replayed()                { close(g.replayed) }

func (g *gateBox) Deliver(*Message) Verdict {
	g.tries.Add(1)
	if !g.open.Load() {
		return DroppedBackpressure
	}
	g.got.Add(1)
	return Queued
}

func cacheSA(b *Broker, id uint64, uid string) {
	owner := NewClient(id, &countBox{}, nil)
	doc := fmt.Sprintf(`<event version="2.0" uid="%s" type="a-f-G-U-C" how="m-g"/>`, uid)
	b.sa.put(uid, saEntry{msg: NewMessage([]byte(doc), "a-f-G-U-C", true, 0, nil), owner: owner}, 0)
}

// An SA cached after a client joined reached it live (a shard caches an SA
// before broadcasting it); the replay, which walks the cache a stripe at a
// time and may take long on a slow socket, must not send it again.
func TestReplaySkipsWhatArrivedAfterTheJoin(t *testing.T) {
	b := New(Options{Shards: 1, Replay: true})
	// A uid in the first stripe the replay walks, so that every later SA
	// lands in a stripe it has not read yet when it stalls on the first.
	first := ""
	for i := 0; first == ""; i++ {
		if uid := fmt.Sprintf("EARLY-%d", i); b.sa.stripe(uid) == &b.sa.stripes[0] {
			first = uid
		}
	}
	cacheSA(b, 1, first)
	box := newGateBox()
	b.Join(NewClient(2, box, nil))
	poll.Until(t, "the replay to stall on its first SA", 20*time.Second, func() bool { return box.tries.Load() > 0 })
	for i := range 200 {
		cacheSA(b, uint64(10+i), fmt.Sprintf("LATE-%d", i))
	}
	box.Open()
	select {
	case <-box.replayed:
	case <-time.After(20 * time.Second):
		t.Fatal("the replay did not finish")
	}
	if n := box.got.Load(); n != 1 {
		t.Errorf("the joiner was replayed %d SAs, want only the 1 cached before it joined", n)
	}
	if n := b.stats.Replayed.Value(); n != 1 {
		t.Errorf("replayed counter %d, want 1", n)
	}
}

// A replay waiting on a slow socket holds one stripe of the cache, not all
// of it: in a reconnect storm thousands of replays wait at once.
func TestReplayHoldsLittleWhileWaiting(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a large cache")
	}
	const cached, joiners = 10000, 200
	b := New(Options{Shards: 1, Replay: true})
	for i := range cached {
		cacheSA(b, uint64(i+1), fmt.Sprintf("SA-%d", i))
	}
	boxes := make([]*gateBox, joiners)
	for i := range boxes {
		boxes[i] = newGateBox()
	}
	before := liveHeap()
	for i, box := range boxes {
		b.Join(NewClient(uint64(cached+1+i), box, nil))
	}
	for _, box := range boxes {
		poll.Until(t, "every replay to stall", 20*time.Second, func() bool { return box.tries.Load() > 0 })
	}
	per := float64(liveHeap()-before) / joiners
	t.Logf("%.0f B held per waiting replay of %d cached SAs (goroutine stack included)", per, cached)
	// The whole cache as pointers would be 80 KB a joiner.
	if per > 16<<10 {
		t.Errorf("%.0f B per waiting replay, want at most 16 KiB", per)
	}
	for _, box := range boxes {
		box.Open()
	}
	poll.Until(t, "every replay to finish", 20*time.Second, func() bool { return b.stats.Replayed.Value() == joiners*cached })
}

func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc) + int64(ms.StackInuse)
}

// A refused replay waits for the connection's drained signal: each signal
// is one more try, and nothing else makes one (no polling).
func TestReplayWaitsForTheDrainedSignal(t *testing.T) {
	b := New(Options{Shards: 1, Replay: true})
	b.Start()
	defer b.Stop()
	cacheSA(b, 1, "SA-1")
	box := newGateBox()
	b.Join(NewClient(2, box, nil))
	poll.Until(t, "the first refusal", 20*time.Second, func() bool { return box.tries.Load() == 1 })
	for want := int64(2); want <= 4; want++ {
		box.drained <- struct{}{} // drained, but refused again: over the limit once more
		poll.Until(t, fmt.Sprintf("try %d", want), 20*time.Second, func() bool { return box.tries.Load() == want })
	}
	box.Open()
	<-box.replayed
	if tries, got := box.tries.Load(), box.got.Load(); tries != 5 || got != 1 {
		t.Errorf("%d tries, %d delivered; want 5 tries (one per signal) and 1 delivered", tries, got)
	}
	if !b.Idle() {
		t.Error("the replay is still counted as running after Replayed")
	}
}

// A client that leaves while its replay waits ends the replay at once,
// without a drained signal and long before the replay's patience runs out.
func TestReplayEndsWhenTheJoinerLeaves(t *testing.T) {
	b := New(Options{Shards: 1, Replay: true})
	b.Start()
	defer b.Stop()
	cacheSA(b, 1, "SA-1")
	box := newGateBox()
	c := NewClient(2, box, nil)
	b.Join(c)
	poll.Until(t, "the first refusal", 20*time.Second, func() bool { return box.tries.Load() == 1 })
	b.Leave(c)
	poll.Until(t, "the replay to end", 20*time.Second, b.Idle)
	if n := b.stats.Drops[DropRecipientClosed].Value(); n != 1 {
		t.Errorf("recipient_closed drops %d, want the 1 SA owed", n)
	}
	select {
	case <-box.replayed:
		t.Error("Replayed called for a client that left")
	default:
	}
}
