package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"cotd/cot"
	"cotd/engine/enginetest"
	"cotd/tlsstate/pki"
)

// mainEnv makes the test binary run cotd's main instead of the tests, so
// that a test can start `cotd serve` as a child process.
const mainEnv = "COTD_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(mainEnv) == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// child is a running `cotd serve` whose JSON log lines are kept.
type child struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	cond  *sync.Cond
	lines []map[string]any
	done  bool
}

func startServe(t *testing.T, cfgPath string) *child {
	t.Helper()
	c := &child{cmd: exec.Command(os.Args[0], "serve", "--config", cfgPath)}
	c.cond = sync.NewCond(&c.mu)
	c.cmd.Env = append(os.Environ(), mainEnv+"=1")
	stderr, err := c.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				c.mu.Lock()
				c.lines = append(c.lines, m)
				c.cond.Broadcast()
				c.mu.Unlock()
			}
		}
		c.mu.Lock()
		c.done = true
		c.cond.Broadcast()
		c.mu.Unlock()
	}()
	t.Cleanup(func() {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		_ = c.cmd.Wait()
	})
	return c
}

// await returns the first log line with message msg.
func (c *child) await(t *testing.T, msg string) map[string]any {
	t.Helper()
	timer := time.AfterFunc(enginetest.Wait, func() { c.mu.Lock(); c.done = true; c.cond.Broadcast(); c.mu.Unlock() })
	defer timer.Stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		for _, l := range c.lines {
			if l["message"] == msg {
				return l
			}
		}
		if c.done {
			t.Fatalf("no %q log line; got %d lines", msg, len(c.lines))
		}
		c.cond.Wait()
	}
}

// `cotd serve` with development certificates and a users file serves
// enrollment beside the streams: a user enrolls, streams with the
// certificate, `cotd certs revoke` (another process) revokes it, and the
// server drops the connection and refuses the certificate.
func TestServeEnrollsStreamsAndRevokes(t *testing.T) {
	dir := t.TempDir()
	users := filepath.Join(dir, "users.toml")
	if code, _, stderr := runUsers(t, "alice-pw\n", "add", "--file", users, "--name", "alice", "--password-stdin"); code != 0 {
		t.Fatal(stderr)
	}
	devDir := filepath.Join(dir, "certs")
	cfgPath := filepath.Join(dir, "cotd.toml")
	cfg := fmt.Sprintf("[tcp]\naddr = \"127.0.0.1:0\"\n[tls]\naddr = \"127.0.0.1:0\"\ndev_dir = %q\n[admin]\naddr = \"127.0.0.1:0\"\n"+
		"[auth]\nusers_file = %q\n[enroll]\naddr = \"127.0.0.1:0\"\ncrl_check = \"50ms\"\n[store]\npath = %q\n"+
		"[marti]\nhttps_addr = \"\"\n",
		devDir, users, filepath.Join(dir, "cotd.db"))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startServe(t, cfgPath)
	enrollAddr, _ := srv.await(t, "enrollment listening (HTTPS, HTTP Basic)")["addr"].(string)
	var tlsAddr string
	ready := srv.await(t, "cotd ready")
	adminAddr, _ := ready["admin"].(string)
	for _, l := range ready["listeners"].([]any) {
		if m := l.(map[string]any); m["listener"] == "tls" {
			tlsAddr, _ = m["addr"].(string)
		}
	}
	if enrollAddr == "" || tlsAddr == "" {
		t.Fatalf("enroll %q, tls %q", enrollAddr, tlsAddr)
	}
	pool, err := pki.LoadCertPool(filepath.Join(devDir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}

	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "alice"}}, key)
	req, _ := http.NewRequest("POST", "https://"+enrollAddr+"/Marti/api/tls/signClient/v2?clientUid=SERVE-1",
		strings.NewReader(base64.StdEncoding.EncodeToString(csr)))
	req.SetBasicAuth("alice", "alice-pw")
	hc := &http.Client{Timeout: enginetest.Wait, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("signClient/v2: %d %s", resp.StatusCode, body)
	}
	var answer map[string]string
	if err := json.Unmarshal(body, &answer); err != nil {
		t.Fatal(err)
	}
	der, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(answer["signedCert"], "\n", ""))
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	streamCfg := &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}}}
	conn := enginetest.DialTLS(t, tlsAddr, streamCfg)
	conn.Send(enginetest.Ping("SERVE-1"))
	conn.Expect("the pong on the enrolled certificate", enginetest.Type(cot.TypePong))

	// The admin listener's /metrics carries enrollment's counters.
	mresp, err := http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	if !strings.Contains(string(metrics), "cotd_enroll_issued_total 1") {
		t.Errorf("/metrics lacks cotd_enroll_issued_total 1")
	}

	code, stdout, stderr := runCerts(t, "revoke", "--config", cfgPath, "alice")
	if code != 0 || !strings.Contains(stdout, leaf.SerialNumber.String()) {
		t.Fatalf("revoke: %d %q %q", code, stdout, stderr)
	}
	if _, err := os.Stat(filepath.Join(devDir, "crl.pem")); err != nil {
		t.Fatalf("the development CRL: %v", err)
	}
	conn.Closed()
	applied := srv.await(t, "CRL applied")
	if n, _ := applied["connections_closed"].(float64); n != 1 {
		t.Errorf("CRL applied: %v", applied)
	}
	again, err := enginetest.TryDialTLS(tlsAddr, streamCfg)
	if err == nil {
		_ = again.SetReadDeadline(time.Now().Add(enginetest.Wait))
		_, err = again.Read(make([]byte, 1))
		again.Close()
	}
	if err == nil || strings.Contains(err.Error(), "timeout") {
		t.Fatalf("revoked certificate after the CRL: %v, want a refused handshake", err)
	}
}
