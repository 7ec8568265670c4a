package bench

import (
	"io"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"cotd/configs"
	"cotd/engine/cluster"
	et "cotd/engine/enginetest"
)

// TestRunSpreadsOverClusterNodes runs the bench against two cotd nodes
// joined by embedded NATS: the clients are spread over both, and every
// delivery owed across the nodes is accounted (no loss, nothing misrouted).
func TestRunSpreadsOverClusterNodes(t *testing.T) {
	var addrs []string
	var nodes []*cluster.Node
	for i, name := range []string{"a", "b"} {
		h := et.Start(t, nil)
		cfg := configs.Cluster{Node: name, Listen: "127.0.0.1:0"}
		if i > 0 {
			cfg.Routes = []string{"nats-route://" + nodes[0].RouteAddr()}
		}
		n, err := cluster.New(cluster.Options{Config: cfg, Directory: h.Srv.Directory(), Link: h.Srv.Link,
			Log: zerolog.New(io.Discard), ScanEvery: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(n.Close)
		nodes = append(nodes, n)
		addrs = append(addrs, h.TCPAddr())
	}
	et.Eventually(t, "the nodes hear each other", func() bool { return len(nodes[0].Peers()) == 1 && len(nodes[1].Peers()) == 1 })

	sc := testScenario(t, func(sc *Scenario) { sc.Target.TCP = addrs[0] + "," + addrs[1] })
	rep := runScenario(t, sc, Options{})
	if got := rep.Clients.PerNode; got[addrs[0]] != 6 || got[addrs[1]] != 6 {
		t.Errorf("clients per node = %v, want 6 on each", got)
	}
	l := rep.Loss
	if l.Owed == 0 || l.Received != l.Owed || l.Lost != 0 || l.Excess != 0 {
		t.Errorf("loss = %+v, want every owed delivery received across the nodes", l)
	}
	if rep.Unexpected.Total != 0 {
		t.Errorf("unexpected = %+v: misrouted across nodes", rep.Unexpected)
	}
	for i, n := range nodes {
		if n.Stats().Received[1].Value() == 0 {
			t.Errorf("node %d received nothing from the other", i)
		}
	}
}
