package cluster_test

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

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

// natsListening is how nats-server announces its client port on stderr;
// given port -1 it is the only place the chosen port shows.
const natsListening = "Listening for client connections on "

// runNATS starts an external nats-server on a port the kernel picks when
// it binds (-p -1), returns the address it bound, read from its log, and
// stops it when the test ends; stop stops it earlier.
func runNATS(t *testing.T, bin string) (addr string, stop func()) {
	t.Helper()
	cmd := exec.Command(bin, "-a", "127.0.0.1", "-p", "-1")
	cmd.SysProcAttr = childAttr()
	out, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	bound := make(chan string, 1)
	var head []string // what it said before the port, for a failure
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		sent := false
		for sc.Scan() {
			if sent {
				continue
			}
			if _, a, ok := strings.Cut(sc.Text(), natsListening); ok {
				bound <- strings.TrimSpace(a)
				sent = true
				continue
			}
			mu.Lock()
			head = append(head, sc.Text())
			mu.Unlock()
		}
		// Drained to the end, so that the server never blocks on a full pipe.
		_ = cmd.Wait()
	}()
	stop = func() {
		_ = cmd.Process.Kill()
		<-done
	}
	t.Cleanup(stop)
	select {
	case addr = <-bound:
	case <-done:
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("nats-server exited before it listened:\n%s", strings.Join(head, "\n"))
	case <-time.After(et.Wait):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("nats-server did not say where it listens:\n%s", strings.Join(head, "\n"))
	}
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "0" {
		t.Fatalf("nats-server listens on %q", addr)
	}
	return addr, stop
}

// TestExternalNATS runs two nodes on an existing NATS server (nats_url):
// broadcast and directed messages cross; when the server goes away each
// node routes locally, and when it is back the nodes meet again.
func TestExternalNATS(t *testing.T) {
	bin := natsServer(t)
	addr, stop := runNATS(t, bin)
	// The nodes keep the URL they were given, and the server is started
	// again below: on its old port it could find that port taken while it
	// was down (any socket on the machine may get it). So the nodes reach
	// it through a proxy, bound for the whole test, and the new server
	// listens wherever the kernel puts it.
	front := newProxy(t, addr)
	url := "nats://" + front.addr()
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

	addr, _ = runNATS(t, bin)
	front.retarget(addr)
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
			addr, _ := runNATS(t, bin)
			externalURL = "nats://" + addr
			test(t)
		})
	}
}
