package engine_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cotd/configs"
	et "cotd/engine/enginetest"
	"cotd/tlsstate/pki"
)

// startReplica builds testdata/replica (the failing design's accept loop, in
// Go) and runs it on a kernel-chosen loopback port; it returns its address.
// The replica waits up to handshakeTimeout for each client's handshake on its
// one accept goroutine, behind a listen(0) backlog.
func startReplica(t *testing.T, p *et.PKI, handshakeTimeout time.Duration) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "replica")
	build := exec.Command("go", "build", "-o", bin, "./testdata/replica")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./testdata/replica: %v\n%s", err, out)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-cert", p.CertPath, "-key", p.KeyPath, "-ca", p.CAPath,
		"-handshake-timeout", handshakeTimeout.String())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if err != nil || !ok {
		t.Fatalf("replica did not start: %q %v", line, err)
	}
	return addr
}

// stalledLoad opens stalled connections that complete the TCP handshake and
// then send nothing (each dial may wait up to budget for the server to take
// it), and, while they are pending, dials honest mTLS clients at once, each
// allowed budget to connect and finish its handshake. It returns how many
// honest clients got through.
func stalledLoad(t *testing.T, addr string, cfg *tls.Config, stalled, honest int, budget time.Duration) int {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	// The first stalled connection is in before anyone else dials: the load
	// starts with a silent client in front, whatever the scheduler does.
	first, err := net.DialTimeout("tcp", addr, budget)
	if err != nil {
		t.Fatalf("the first stalled client could not connect: %v", err)
	}
	conns = append(conns, first)
	for range stalled - 1 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.DialTimeout("tcp", addr, budget)
			if err != nil {
				return // a server with no room left does not even take these
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
		}()
	}
	var ok atomic.Int64
	for range honest {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := &net.Dialer{Timeout: budget}
			conn, err := tls.DialWithDialer(d, "tcp", addr, cfg)
			if err != nil {
				return
			}
			ok.Add(1)
			_ = conn.Close()
		}()
	}
	wg.Wait()
	return int(ok.Load())
}

// The failing design and cotd under the same load: the replica of the accept
// loop that loses every client (listen(0), TLS handshake inside accept() on
// one goroutine) lets few honest clients through behind stalled ones; cotd
// takes them all.
//
// The result does not depend on the machine's speed: the replica gives each
// client replicaHold to finish its handshake, no shorter than the honest
// clients' budget, so the stalled client it accepts first holds its accept
// loop for all of the time the honest ones wait, and only the one or two
// connections its backlog of 0 admits can follow. A slower machine only
// lowers its count. cotd's budget is generous: 60 handshakes on a loaded
// two-core box take well under a second.
func TestReplicaLosesClientsCotdDoesNot(t *testing.T) {
	const stalled, honest = 20, 60
	const budget = 15 * time.Second
	const replicaHold = 2 * budget
	p := et.NewPKI(t, pki.KeyECDSAP256)
	client := p.ClientWith(p.ClientCert(t, "eud", 24*time.Hour))

	replicaOK := stalledLoad(t, startReplica(t, p, replicaHold), client, stalled, honest, budget)

	h := et.StartTLS(t, p, func(c *configs.Config) { c.Log.Level = "warn" })
	cotdOK := stalledLoad(t, h.TLSAddr(), client, stalled, honest, budget)

	t.Logf("honest clients connected within %v beside %d stalled ones: replica %d/%d, cotd %d/%d",
		budget, stalled, replicaOK, honest, cotdOK, honest)
	if replicaOK > honest/2 {
		t.Errorf("the replica connected %d of %d honest clients: the load does not reproduce the failure", replicaOK, honest)
	}
	if cotdOK != honest {
		t.Errorf("cotd lost %d of %d honest clients", honest-cotdOK, honest)
	}
}
