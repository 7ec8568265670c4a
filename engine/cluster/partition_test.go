package cluster_test

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"cotd/configs"
	et "cotd/engine/enginetest"
)

// TestPartitionAndHeal cuts the only route between two nodes (a proxy
// carries it) and mends it: each side announces the other's clients gone,
// keeps routing locally, and both find each other again by themselves.
func TestPartitionAndHeal(t *testing.T) {
	n0 := startNode(t, "n0", nil, configs.Cluster{Listen: "127.0.0.1:0"})
	route := newProxy(t, n0.n.RouteAddr())
	n1 := startNode(t, "n1", nil, configs.Cluster{Listen: "127.0.0.1:0", Routes: []string{"nats-route://" + route.addr()}})
	waitMesh(t, []*node{n0, n1})
	a := dial(t, n0, "alpha")
	b := dial(t, n1, "bravo")
	b2 := dial(t, n1, "bravo2")
	b.Expect("alpha's SA", et.UID("alpha"))
	a.Expect("bravo's SA", et.UID("bravo"))

	route.block()
	b.Expect("alpha's t-x-d-d in the partition", deleted("alpha"))
	a.Expect("bravo's t-x-d-d in the partition", deleted("bravo"))
	forgets(t, n1, "alpha")
	// n1 still routes its own clients.
	b.Send(et.Marker("inside"))
	b2.Expect("a local message in the partition", et.UID("inside"))

	route.unblock()
	waitMesh(t, []*node{n0, n1})
	knows(t, n1, "alpha", "n0")
	knows(t, n0, "bravo", "n1")
	a.Send(et.Marker("healed"))
	b.Expect("a message across the healed route", et.UID("healed"))
	b2.Expect("a message across the healed route", et.UID("healed"))
	b.Send(et.SA("bravo", "BRAVO", "a-f-G-U-C"))
	a.Expect("bravo's SA after the heal", et.UID("bravo"))
}

// natsServer finds the nats-server binary .ci/run installs.
func natsServer(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nats-server"); err == nil {
		return p
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		home, _ := os.UserHomeDir()
		gopath = filepath.Join(home, "go")
	}
	if p := filepath.Join(gopath, "bin", "nats-server"); fileExists(p) {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("nats-server is not installed: .ci/run installs it (go install github.com/nats-io/nats-server/v2@v2.15.3)")
	}
	t.Skip("nats-server not installed (go install github.com/nats-io/nats-server/v2@v2.15.3)")
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// freePort is a port the kernel just handed out and took back.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// runNATS starts an external nats-server on port and stops it when the
// test ends; stop stops it earlier.
func runNATS(t *testing.T, bin string, port int) (stop func()) {
	t.Helper()
	cmd := exec.Command(bin, "-a", "127.0.0.1", "-p", strconv.Itoa(port))
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stop = func() {
		_ = cmd.Process.Kill()
		<-done
	}
	t.Cleanup(stop)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	et.Eventually(t, "nats-server accepts on "+addr, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return stop
}

// TestExternalNATS runs two nodes on an existing NATS server (nats_url):
// broadcast and directed messages cross; when the server goes away each
// node routes locally, and when it is back the nodes meet again.
func TestExternalNATS(t *testing.T) {
	bin := natsServer(t)
	port := freePort(t)
	stop := runNATS(t, bin, port)
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	n0 := startNode(t, "n0", nil, configs.Cluster{NATSURL: url})
	n1 := startNode(t, "n1", nil, configs.Cluster{NATSURL: url})
	waitMesh(t, []*node{n0, n1})
	a := dial(t, n0, "alpha")
	a2 := dial(t, n0, "alpha2")
	b := dial(t, n1, "bravo")
	b.Expect("alpha's SA", et.UID("alpha"))
	a.Expect("bravo's SA", et.UID("bravo"))
	knows(t, n1, "alpha", "n0")
	b.Send(et.Chat("to-alpha", "hi", []string{"ALPHA"}, nil))
	a.Expect("a chat by callsign through nats_url", et.UID("to-alpha"))

	stop()
	et.Eventually(t, "n0 sees NATS gone", func() bool { return !n0.n.Connected() })
	a.Send(et.Marker("local"))
	a2.Expect("local routing without NATS", et.UID("local"))

	runNATS(t, bin, port)
	et.Eventually(t, "n0 and n1 reconnected", func() bool { return n0.n.Connected() && n1.n.Connected() })
	knows(t, n1, "alpha", "n0")
	a.Send(et.Marker("back"))
	b.Expect("a message after NATS came back", et.UID("back"))

	// The embedded-route tests again, each on an external server of its own.
	defer func() { externalURL = "" }()
	for name, test := range map[string]func(*testing.T){
		"Broadcast": TestBroadcastAcrossNodes, "Directed": TestDirectedAcrossNodes, "Groups": TestGroupsAcrossNodes,
		"Replay": TestReplayToLateJoinerOnAnotherNode, "Leave": TestLeaveAcrossNodes, "NodeDeath": TestNodeDeath,
		"Admin": TestAdminListsTheCluster,
	} {
		t.Run(name, func(t *testing.T) {
			port := freePort(t)
			runNATS(t, bin, port)
			externalURL = "nats://127.0.0.1:" + strconv.Itoa(port)
			test(t)
		})
	}
}
