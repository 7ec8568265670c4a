package cluster_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"cotd/configs"
	"cotd/cot"
	"cotd/engine/cluster"
	"cotd/engine/directory"
	et "cotd/engine/enginetest"
)

// deadAfter is short so that a lost node is noticed quickly, and long
// enough that a loaded CI box does not lose a live one.
const deadAfter = 3 * time.Second

// node is one cotd node: an engine and its cluster member.
type node struct {
	h   *et.Harness
	n   *cluster.Node
	dir directory.Directory
}

// startNode runs an engine whose TCP clients are in groups (nil: __ANON__)
// and joins it to a cluster with cfg (Node and DeadAfter filled in).
func startNode(t testing.TB, name string, groups []string, cfg configs.Cluster) *node {
	t.Helper()
	h := et.Start(t, func(c *configs.Config) { c.TCP.Groups = groups })
	cfg.Node = name
	if cfg.DeadAfter.Duration == 0 {
		cfg.DeadAfter.Duration = deadAfter
	}
	var w io.Writer = io.Discard
	if os.Getenv("COTD_TEST_LOG") != "" {
		w = os.Stderr
	}
	n, err := cluster.New(cluster.Options{Config: cfg, Directory: h.Srv.Directory(), Link: h.Srv.Link,
		Log: zerolog.New(w).With().Timestamp().Logger(), ScanEvery: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return &node{h: h, n: n, dir: n.Directory()}
}

// externalURL, when set, makes startCluster use that NATS server
// (nats_url) instead of embedded routes: TestExternalNATS runs the
// cluster tests again that way. Tests run one at a time.
var externalURL string

// startCluster runs len(groups) nodes n0, n1, … on embedded NATS, each
// routing to n0 (or on externalURL), and waits until each hears every
// other.
func startCluster(t *testing.T, groups ...[]string) []*node {
	t.Helper()
	var nodes []*node
	for i, g := range groups {
		cfg := configs.Cluster{Listen: "127.0.0.1:0"}
		if i > 0 {
			cfg.Routes = []string{"nats-route://" + nodes[0].n.RouteAddr()}
		}
		if externalURL != "" {
			cfg = configs.Cluster{NATSURL: externalURL}
		}
		nodes = append(nodes, startNode(t, fmt.Sprintf("n%d", i), g, cfg))
	}
	waitMesh(t, nodes)
	return nodes
}

// waitMesh waits until every node hears every other.
func waitMesh(t *testing.T, nodes []*node) {
	t.Helper()
	et.Eventually(t, "every node hears every other", func() bool {
		for _, n := range nodes {
			if len(n.n.Peers()) != len(nodes)-1 {
				return false
			}
		}
		return true
	})
}

// knows waits until n's cluster-wide directory lists uid on node owner.
func knows(t *testing.T, n *node, uid, owner string) {
	t.Helper()
	et.Eventually(t, fmt.Sprintf("%s knows %s on %s", n.n.Name(), uid, owner), func() bool {
		for _, c := range n.dir.Client(uid) {
			if c.Node == owner {
				return true
			}
		}
		return false
	})
}

// forgets waits until n's directory no longer lists uid anywhere else.
func forgets(t *testing.T, n *node, uid string) {
	t.Helper()
	et.Eventually(t, fmt.Sprintf("%s forgets %s", n.n.Name(), uid), func() bool {
		for _, c := range n.dir.Client(uid) {
			if c.Node != "" {
				return false
			}
		}
		return true
	})
}

// dial connects a client to n, has it send its SA as uid, and waits until
// n's engine has it joined.
func dial(t *testing.T, n *node, uid string) *et.Client {
	t.Helper()
	c := et.Dial(t, n.h.TCPAddr())
	c.Send(et.SA(uid, strings.ToUpper(uid), "a-f-G-U-C"))
	et.Eventually(t, uid+" identified on "+n.n.Name(), func() bool { return len(n.h.Srv.Directory().Client(uid)) == 1 })
	return c
}

// count is how many events matching m c has received.
func count(c *et.Client, m func(*cot.Header) bool) int {
	k := 0
	for _, ev := range c.Events() {
		if m(&ev.H) {
			k++
		}
	}
	return k
}

// deleted matches the t-x-d-d for uid.
func deleted(uid string) func(*cot.Header) bool {
	return func(h *cot.Header) bool { return h.Type == cot.TypeDelete && h.LinkUID == uid }
}

// announce publishes a marker from n's server into groups (nil: all).
func announce(t *testing.T, n *node, uid string, groups []string) {
	t.Helper()
	if err := n.h.Srv.Directory().Publish(context.Background(), directory.Sender{Identity: "test", Out: groups}, []byte(et.Marker(uid))); err != nil {
		t.Fatal(err)
	}
}

// proxy forwards TCP connections to target until blocked: then it closes
// them all and refuses new ones, like a network partition.
type proxy struct {
	ln      net.Listener
	target  string
	mu      sync.Mutex
	blocked bool
	conns   []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); p.block() })
	go p.serve()
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.blocked {
			p.mu.Unlock()
			c.Close()
			continue
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(u, c); u.Close() }()
		go func() { _, _ = io.Copy(c, u); c.Close() }()
	}
}

func (p *proxy) block() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blocked = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// retarget sends the connections made from now on to target.
func (p *proxy) retarget(target string) {
	p.mu.Lock()
	p.target = target
	p.mu.Unlock()
}

func (p *proxy) unblock() {
	p.mu.Lock()
	p.blocked = false
	p.mu.Unlock()
}

// startNodeTB starts node i of a benchmark's cluster, routing to nodes[0].
func startNodeTB(tb testing.TB, i int, nodes []*node) *node {
	cfg := configs.Cluster{Listen: "127.0.0.1:0"}
	if i > 0 {
		cfg.Routes = []string{"nats-route://" + nodes[0].n.RouteAddr()}
	}
	return startNode(tb, fmt.Sprintf("n%d", i), nil, cfg)
}
