package cluster

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"cotd/configs"
	"cotd/engine/directory"
	"cotd/engine/metrics"
)

// The package's errors.
var (
	ErrConfig = errors.New("cluster: bad configuration")
	ErrStart  = errors.New("cluster: cannot start")
	ErrFrame  = errors.New("cluster: bad frame")
	// ErrCert: cluster.cert cannot do its job: it lacks an extended key
	// usage its role needs (a route certificate needs serverAuth and
	// clientAuth) or cluster.ca does not verify it. Start and CheckFiles
	// return it before any route is tried.
	ErrCert = errors.New("cluster: unusable cluster certificate")
)

// Options configure a Node.
type Options struct {
	// Config is the [cluster] section.
	Config configs.Cluster
	// Directory is the engine's (who is connected to this node).
	Directory directory.Directory
	// Link attaches the node to the engine (engine.Server.Link).
	Link func(directory.Forwarder) directory.Remote
	// Log receives the node's events.
	Log zerolog.Logger
	// ScanEvery is how often local presence is compared with what was
	// announced (logins, uids learned from SAs, group changes); 0 means 1s.
	ScanEvery time.Duration
}

// Stats are a node's counters.
type Stats struct {
	// Published and Received count frames, by kind.
	Published [numFrameKinds]metrics.Counter
	Received  [numFrameKinds]metrics.Counter
	// QueueFull counts messages for other nodes dropped because the
	// outbound queue was full.
	QueueFull metrics.Counter
	// PublishErrors counts frames NATS refused (disconnected, too large).
	PublishErrors metrics.Counter
	// BadFrames counts frames from other nodes that did not decode or
	// were not routable events.
	BadFrames metrics.Counter
	// Busy counts messages from other nodes the engine's queue refused.
	Busy metrics.Counter
	// Duplicates counts copies skipped: a message into several groups this
	// node hears arrives once per group and is routed once.
	Duplicates metrics.Counter
	// InboundDropped counts messages NATS dropped because this node did
	// not keep up (slow consumer).
	InboundDropped metrics.Counter
	// NodesLost counts nodes declared gone after missed heartbeats.
	NodesLost metrics.Counter
	// Disconnects counts losses of the NATS connection.
	Disconnects metrics.Counter
}

// Node is this process's member of a cluster.
type Node struct {
	o         Options
	name      string
	deadAfter time.Duration
	log       zerolog.Logger
	stats     Stats
	started   int64

	ns     *server.Server // nil with nats_url
	token  string         // the embedded server's client token
	nc     *nats.Conn
	remote directory.Remote
	events directory.Subscription

	out chan outItem
	in  chan *nats.Msg
	// reconnected wakes the control loop after a NATS reconnect.
	reconnected chan struct{}
	connected   atomic.Bool

	mu    sync.Mutex
	peers map[string]*peer

	quit     chan struct{}
	wg       sync.WaitGroup
	stopOnce sync.Once

	// Owned by the control loop.
	local   map[uint64]pClient
	heard   map[string]*nats.Subscription
	byToken map[string]string
	gen     uint64
}

// outQueueDefault is the outbound queue's length when the config says 0.
const outQueueDefault = 16384

// inQueue bounds what NATS holds for the control loop; past it NATS drops
// (slow consumer, counted).
const inQueue = 65536

// New checks o; Start connects.
func New(o Options) (*Node, error) {
	c := o.Config
	if c.Node == "" || o.Directory == nil || o.Link == nil {
		return nil, fmt.Errorf("%w: node name, Directory and Link are required", ErrConfig)
	}
	n := &Node{o: o, name: c.Node, log: o.Log.With().Str("node", c.Node).Logger(),
		deadAfter: c.DeadAfter.Duration, started: time.Now().UnixNano(),
		in: make(chan *nats.Msg, inQueue), reconnected: make(chan struct{}, 1),
		peers: make(map[string]*peer), quit: make(chan struct{}),
		local: make(map[uint64]pClient), heard: make(map[string]*nats.Subscription), byToken: make(map[string]string)}
	if n.deadAfter <= 0 {
		n.deadAfter = 15 * time.Second
	}
	q := c.Queue
	if q <= 0 {
		q = outQueueDefault
	}
	n.out = make(chan outItem, q)
	if n.o.ScanEvery <= 0 {
		n.o.ScanEvery = time.Second
	}
	return n, nil
}

// Name is the node's name.
func (n *Node) Name() string { return n.name }

// Stats exposes the counters.
func (n *Node) Stats() *Stats { return &n.stats }

// Start runs the embedded NATS server (unless nats_url), connects, attaches
// to the engine and starts the node's goroutines.
func (n *Node) Start() error {
	// Refused here, with the reason, rather than by every peer's TLS
	// handshake, which only the embedded server's (usually silent) log
	// would tell.
	if err := checkTLS(n.o.Config); err != nil {
		return err
	}
	var err error
	if n.o.Config.NATSURL == "" {
		if n.ns, err = n.embed(); err != nil {
			return err
		}
	}
	if n.nc, err = n.connect(); err != nil {
		n.shutdownServer()
		return err
	}
	n.connected.Store(true)
	for _, subj := range []string{subjNode + n.name, subjPresence + "*", subjHeartbeat + "*", subjSync + n.name, subjAskSA} {
		if _, err := n.nc.ChanSubscribe(subj, n.in); err != nil {
			n.nc.Close()
			n.shutdownServer()
			return fmt.Errorf("%w: subscribe %s: %w", ErrStart, subj, err)
		}
	}
	n.remote = n.o.Link(n)
	n.events = n.o.Directory.Subscribe("cluster", directory.KindsOf(directory.Join, directory.Leave), 4096)
	n.wg.Add(2)
	go n.publishLoop()
	go n.controlLoop()
	n.log.Info().Bool("embedded", n.ns != nil).Str("routes", n.RouteAddr()).Msg("cluster node started")
	return nil
}

// RouteAddr is the embedded server's route address (host:port), or "".
func (n *Node) RouteAddr() string {
	if n.ns == nil {
		return ""
	}
	if a := n.ns.ClusterAddr(); a != nil {
		return a.String()
	}
	return ""
}

// Routes is the number of routes the embedded server has to other nodes.
func (n *Node) Routes() int {
	if n.ns == nil {
		return 0
	}
	return n.ns.NumRoutes()
}

// Close leaves the cluster: the goroutines stop, the connection and the
// embedded server close. Other nodes announce this node's clients gone
// when its heartbeats stop; the engine's own leaves, when it drains
// first, reach them sooner. A nil Node (no cluster) closes nothing.
func (n *Node) Close() {
	if n == nil {
		return
	}
	n.stopOnce.Do(func() {
		close(n.quit)
		if n.events != nil {
			n.events.Close()
		}
		n.wg.Wait()
		if n.nc != nil {
			_ = n.nc.Drain()
			n.nc.Close()
		}
		n.shutdownServer()
	})
}

func (n *Node) shutdownServer() {
	if n.ns != nil {
		n.ns.Shutdown()
		n.ns.WaitForShutdown()
	}
}

// Peers lists the other nodes this one hears, sorted.
func (n *Node) Peers() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]string, 0, len(n.peers))
	for name := range n.peers {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// WriteMetrics writes the node's metrics as Prometheus text.
func (n *Node) WriteMetrics(w io.Writer) error {
	m := metrics.NewWriter(w)
	st := &n.stats
	c := func(x *metrics.Counter) float64 { return float64(x.Value()) }
	for _, fam := range []struct {
		name, help string
		v          *[numFrameKinds]metrics.Counter
	}{
		{"cotd_cluster_published_total", "Frames published to other nodes, by kind.", &st.Published},
		{"cotd_cluster_received_total", "Frames received from other nodes, by kind.", &st.Received},
	} {
		m.Family(fam.name, fam.help, "counter")
		for k := frameGroup; k < numFrameKinds; k++ {
			m.Sample(fam.name, c(&fam.v[k]), "kind", k.String())
		}
	}
	m.Family("cotd_cluster_dropped_total", "Messages between nodes lost, by reason: queue_full (outbound queue), publish_error (NATS refused), slow_consumer (NATS dropped inbound), busy (engine refused inbound), bad_frame.", "counter")
	m.Sample("cotd_cluster_dropped_total", c(&st.QueueFull), "reason", "queue_full")
	m.Sample("cotd_cluster_dropped_total", c(&st.PublishErrors), "reason", "publish_error")
	m.Sample("cotd_cluster_dropped_total", c(&st.InboundDropped), "reason", "slow_consumer")
	m.Sample("cotd_cluster_dropped_total", c(&st.Busy), "reason", "busy")
	m.Sample("cotd_cluster_dropped_total", c(&st.BadFrames), "reason", "bad_frame")
	m.One("cotd_cluster_duplicates_total", "Copies of a message into several groups skipped (routed once).", "counter", c(&st.Duplicates))
	m.One("cotd_cluster_outbound_queued", "Messages waiting for NATS.", "gauge", float64(len(n.out)))
	m.One("cotd_cluster_nodes_lost_total", "Nodes declared gone after missed heartbeats.", "counter", c(&st.NodesLost))
	m.One("cotd_cluster_disconnects_total", "Losses of the NATS connection.", "counter", c(&st.Disconnects))
	connected := 0.0
	if n.connected.Load() {
		connected = 1
	}
	m.One("cotd_cluster_connected", "1 while connected to NATS; 0: routing is local-only.", "gauge", connected)
	n.mu.Lock()
	peers, clients := len(n.peers), 0
	for _, p := range n.peers {
		clients += len(p.clients)
	}
	n.mu.Unlock()
	m.One("cotd_cluster_nodes", "Other nodes heard from.", "gauge", float64(peers))
	m.One("cotd_cluster_remote_clients", "Clients of other nodes known here.", "gauge", float64(clients))
	return m.Flush()
}

// Connected reports whether the node's NATS connection is up; while it is
// not, routing is local-only.
func (n *Node) Connected() bool { return n.connected.Load() }
