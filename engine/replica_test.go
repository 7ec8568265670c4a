package engine_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cotd/configs"
	et "cotd/engine/enginetest"
	"cotd/tlsstate/pki"
)

const replicaScript = "../../shared/replica/buggy_eud_handler.py"

// stalledLoad opens stalled connections that send nothing, then dials
// honest mTLS clients at once, each allowed budget to connect and finish its
// handshake. It returns how many honest clients got through.
func stalledLoad(t *testing.T, addr string, cfg *tls.Config, stalled, honest int, budget time.Duration) int {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	for range stalled {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.DialTimeout("tcp", addr, budget)
			if err != nil {
				return // a server with no room left does not even take these
			}
			mu.Lock()
			t.Cleanup(func() { _ = conn.Close() })
			mu.Unlock()
		}()
	}
	wg.Wait()
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

// The failing design and cotd under the same load: the replica of the
// accept loop that loses every client (listen(0), TLS handshake inside
// accept() on one thread) drops honest clients behind a handful of stalled
// ones; cotd loses none.
func TestReplicaLosesClientsCotdDoesNot(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed: the replica cannot run")
	}
	if _, err := os.Stat(replicaScript); err != nil {
		t.Skipf("replica script not found: %v", err)
	}
	const stalled, honest = 20, 60
	const budget = 4 * time.Second
	p := et.NewPKI(t, pki.KeyECDSAP256)
	client := p.ClientWith(p.ClientCert(t, "eud", 24*time.Hour))

	// The replica wants server.pem, server.key and ca.pem in one folder.
	dir := t.TempDir()
	for from, to := range map[string]string{p.CertPath: "server.pem", p.KeyPath: "server.key", p.CAPath: "ca.pem"} {
		copyFile(t, from, filepath.Join(dir, to))
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, python, replicaScript, strconv.Itoa(port), dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "listening") {
		t.Fatalf("replica did not start: %q %v", line, err)
	}
	replicaOK := stalledLoad(t, "127.0.0.1:"+strconv.Itoa(port), client, stalled, honest, budget)

	h := et.StartTLS(t, p, func(c *configs.Config) { c.Log.Level = "warn" })
	cotdOK := stalledLoad(t, h.TLSAddr(), client, stalled, honest, budget)

	t.Logf("honest clients connected within %v beside %d stalled ones: replica %d/%d, cotd %d/%d",
		budget, stalled, replicaOK, honest, cotdOK, honest)
	if replicaOK >= honest {
		t.Errorf("the replica lost no client: the load does not reproduce the failure")
	}
	if cotdOK != honest {
		t.Errorf("cotd lost %d of %d honest clients", honest-cotdOK, honest)
	}
}
