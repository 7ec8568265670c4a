package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	et "cotd/engine/enginetest"
	"cotd/tlsstate/pki"
)

// clusterTOML is a node's configuration: plain TCP for clients on a
// kernel-chosen port, nothing else listening but the route port, and a
// [cluster] section whose TLS files are cert, key and ca.
func clusterTOML(name, route, cert, key, ca string) string {
	routes := ""
	if route != "" {
		routes = fmt.Sprintf("routes = [%q]\n", "nats-route://"+route)
	}
	return fmt.Sprintf(`[tcp]
addr = "127.0.0.1:0"
[tls]
addr = ""
[admin]
addr = "127.0.0.1:0"
[enroll]
addr = ""
[marti]
https_addr = ""
http_addr = ""
[store]
enabled = false
[cluster]
node = %q
listen = "127.0.0.1:0"
%scert = %q
key = %q
ca = %q
user = "cotd"
password = "route secret"
`, name, routes, cert, key, ca)
}

// tcpListener is the address of the "tcp" listener in a "cotd ready" line.
func tcpListener(t *testing.T, ready map[string]any) string {
	t.Helper()
	ls, _ := ready["listeners"].([]any)
	for _, l := range ls {
		if m, _ := l.(map[string]any); m["listener"] == "tcp" {
			addr, _ := m["addr"].(string)
			return addr
		}
	}
	t.Fatalf("ready line without a tcp listener: %v", ready)
	return ""
}

// A TLS cluster set up with cotd's own tool, as the README's Cluster
// section says: `cotd certs ca`, one `cotd certs node` per machine, each
// node's [cluster] cert/key/ca pointing at its files. Two `cotd serve`
// processes form routes over mutual TLS and a marker sent to one reaches a
// client of the other.
func TestServeClusterWithNodeCertificates(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two cotd serve processes")
	}
	dir := t.TempDir()
	pkiDir := filepath.Join(dir, "cluster-pki")
	for _, args := range [][]string{
		{"ca", "--dir", pkiDir, "--cn", "cotd cluster CA"},
		{"node", "--dir", pkiDir, "--name", "n0", "--host", "127.0.0.1,localhost"},
		{"node", "--dir", pkiDir, "--name", "n1", "--host", "127.0.0.1,localhost"},
	} {
		if code, _, stderr := runCerts(t, args...); code != 0 {
			t.Fatalf("certs %v: %d %s", args, code, stderr)
		}
	}
	caFile := filepath.Join(pkiDir, "ca.pem")
	conf := func(name, route string) string {
		cert, key := pki.Paths(filepath.Join(pkiDir, "nodes"), name)
		p := writeFile(t, dir, name+".toml", clusterTOML(name, route, cert, key, caFile))
		if code, stdout, stderr := runMain(t, "config", "check", p); code != 0 {
			t.Fatalf("config check %s: %d %s %s", name, code, stdout, stderr)
		}
		return p
	}

	n0 := startServe(t, conf("n0", ""))
	route, _ := n0.await(t, "cluster node started")["routes"].(string)
	if route == "" {
		t.Fatal("n0 logged no route address")
	}
	tcp0 := tcpListener(t, n0.await(t, "cotd ready"))
	n1 := startServe(t, conf("n1", route))
	tcp1 := tcpListener(t, n1.await(t, "cotd ready"))
	// Each hears the other's heartbeat: the TLS route is up.
	for n, want := range map[*child]string{n0: "n1", n1: "n0"} {
		if peer, _ := n.await(t, "cluster node joined")["peer"].(string); peer != want {
			t.Fatalf("joined peer %q, want %q", peer, want)
		}
	}

	a := et.Dial(t, tcp0)
	a.Send(et.SA("alpha", "ALPHA", "a-f-G-U-C"))
	b := et.Dial(t, tcp1)
	b.Send(et.SA("bravo", "BRAVO", "a-f-G-U-C"))
	// Each SA crossing the route is the barrier that each node knows the
	// other's client.
	b.Expect("alpha's SA from n0", et.UID("alpha"))
	a.Expect("bravo's SA from n1", et.UID("bravo"))
	a.Send(et.Marker("across-1"))
	b.Expect("a marker sent to n0, on n1", et.UID("across-1"))
	b.Send(et.Marker("across-2"))
	a.Expect("a marker sent to n1, on n0", et.UID("across-2"))
}

// A certificate from `cotd certs server` (serverAuth only) in
// cluster.cert: `cotd config check` names the problem and the command that
// makes the right certificate, and `cotd serve` refuses to start with the
// same reason, instead of starting with routes that never form.
func TestServeRefusesServerCertificateForRoutes(t *testing.T) {
	dir := t.TempDir()
	pkiDir := filepath.Join(dir, "cluster-pki")
	for _, args := range [][]string{
		{"ca", "--dir", pkiDir},
		{"server", "--dir", pkiDir, "--host", "127.0.0.1"},
	} {
		if code, _, stderr := runCerts(t, args...); code != 0 {
			t.Fatalf("certs %v: %d %s", args, code, stderr)
		}
	}
	cert, key := pki.Paths(pkiDir, pki.ServerName)
	p := writeFile(t, dir, "n0.toml", clusterTOML("n0", "", cert, key, filepath.Join(pkiDir, "ca.pem")))
	want := []string{"cluster.cert " + cert, "serverAuth", "lacking clientAuth", "cotd certs node"}

	code, stdout, stderr := runMain(t, "config", "check", p)
	if code != 1 || strings.Contains(stdout, "ok") || !strings.Contains(stderr, "1 problem(s)") {
		t.Errorf("config check: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	for _, w := range want {
		if !strings.Contains(stderr, w) {
			t.Errorf("config check does not say %q:\n%s", w, stderr)
		}
	}

	if testing.Short() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), et.Wait)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "serve", "--config", p)
	cmd.Env = append(os.Environ(), mainEnv+"=1")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("serve with a server certificate for routes: %v (want exit 1)\n%s", err, out)
	}
	for _, w := range append(want, "cannot start") {
		if !strings.Contains(string(out), w) {
			t.Errorf("serve's log does not say %q:\n%s", w, out)
		}
	}
}

// nodeUsages reports whether cert is good for both ends of a route.
func nodeUsages(cert *x509.Certificate) bool {
	return slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageServerAuth) &&
		slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
}
