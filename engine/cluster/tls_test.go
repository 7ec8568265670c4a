package cluster_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"cotd/configs"
	"cotd/engine/cluster"
	et "cotd/engine/enginetest"
	"cotd/tlsstate/pki"
)

// routeCert writes a node certificate for 127.0.0.1 from ca, as `cotd
// certs node` makes it (serverAuth and clientAuth), and returns its files.
func routeCert(t *testing.T, ca *pki.Bundle, dir, name string) (certFile, keyFile string) {
	t.Helper()
	b, err := ca.IssueNode(name, []string{"127.0.0.1"}, pki.KeyECDSAP256, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err = pki.Save(dir, name, b)
	if err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Routes over mutual TLS with the cluster's CA and a password: the nodes
// meet and route; a peer that completes TLS with a cluster certificate but
// gives the wrong password is refused.
func TestRoutesOverTLSWithAuth(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.NewCA("cotd cluster CA", pki.KeyECDSAP256, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	write(t, caFile, ca.CertPEM)
	cfg := func(name string, routes ...string) configs.Cluster {
		cert, key := routeCert(t, ca, dir, name)
		return configs.Cluster{Listen: "127.0.0.1:0", Routes: routes, Cert: cert, Key: key, CA: caFile,
			User: "cotd", Password: "s3cret"}
	}
	n0 := startNode(t, "n0", nil, cfg("n0"))
	n1 := startNode(t, "n1", nil, cfg("n1", "nats-route://"+n0.n.RouteAddr()))
	waitMesh(t, []*node{n0, n1})
	a := dial(t, n0, "alpha")
	b := dial(t, n1, "bravo")
	b.Expect("alpha's SA over a TLS route", et.UID("alpha"))
	a.Expect("bravo's SA over a TLS route", et.UID("bravo"))

	// An intruder with a cluster certificate and the wrong password.
	cert, key := routeCert(t, ca, dir, "intruder")
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	// Without a cluster certificate, no route at all.
	if c, err := tls.DialWithDialer(&net.Dialer{Timeout: et.Wait}, "tcp", n0.n.RouteAddr(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}); err == nil {
		_ = c.SetDeadline(time.Now().Add(et.Wait))
		if _, err := bufio.NewReader(c).ReadString('\n'); err == nil {
			t.Error("a route without a client certificate got past TLS")
		}
		c.Close()
	}
	// Routes speak TLS first, then the NATS route protocol.
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: et.Wait}, "tcp", n0.n.RouteAddr(),
		&tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("TLS with a cluster certificate: %v", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(et.Wait))
	rd := bufio.NewReader(c)
	if info, err := rd.ReadString('\n'); err != nil || !strings.HasPrefix(info, "INFO ") {
		t.Fatalf("route INFO = %q (%v)", info, err)
	}
	if _, err := c.Write([]byte(`CONNECT {"user":"cotd","pass":"wrong","tls_required":true,"name":"intruder"}` + "\r\nPING\r\n")); err != nil {
		t.Fatal(err)
	}
	reply, _ := rd.ReadString('\n')
	if !strings.Contains(reply, "Authorization Violation") {
		t.Errorf("route with the wrong password answered %q, want an authorization violation", reply)
	}
}

// clusterCA writes a CA for a cluster into dir and returns it and its file.
func clusterCA(t *testing.T, dir string) (*pki.Bundle, string) {
	t.Helper()
	ca, err := pki.NewCA("cotd cluster CA", pki.KeyECDSAP256, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	write(t, caFile, ca.CertPEM)
	return ca, caFile
}

// Two nodes whose routes use node certificates (serverAuth and clientAuth)
// form a cluster over TLS: a marker sent to one node reaches a client of
// the other, exactly once.
func TestRoutesWithNodeCertificates(t *testing.T) {
	dir := t.TempDir()
	ca, caFile := clusterCA(t, dir)
	cfg := func(name string, routes ...string) configs.Cluster {
		cert, key := routeCert(t, ca, dir, name)
		return configs.Cluster{Listen: "127.0.0.1:0", Routes: routes, Cert: cert, Key: key, CA: caFile}
	}
	n0 := startNode(t, "n0", nil, cfg("n0"))
	n1 := startNode(t, "n1", nil, cfg("n1", "nats-route://"+n0.n.RouteAddr()))
	waitMesh(t, []*node{n0, n1})
	if n0.n.Routes() == 0 || n1.n.Routes() == 0 {
		t.Fatalf("routes: n0 %d, n1 %d", n0.n.Routes(), n1.n.Routes())
	}
	a := dial(t, n0, "alpha")
	b := dial(t, n1, "bravo")
	knows(t, n0, "bravo", "n1")
	a.Send(et.Marker("over-tls-1"))
	b.Expect("a marker from n0 over the TLS route", et.UID("over-tls-1"))
	// Barrier: a later marker arrived, so the first came once.
	a.Send(et.Marker("over-tls-2"))
	b.Expect("the second marker", et.UID("over-tls-2"))
	if k := count(b, et.UID("over-tls-1")); k != 1 {
		t.Errorf("bravo got the first marker %d times, want once", k)
	}
}

// A server certificate (serverAuth only, as `cotd certs server` makes it)
// is refused as a route certificate when the node starts, naming the
// missing usage, and by CheckFiles for `cotd config check`; so is a node
// certificate from another CA. A node certificate passes both.
func TestServerCertificateRefusedForRoutes(t *testing.T) {
	dir := t.TempDir()
	ca, caFile := clusterCA(t, dir)
	srv, err := ca.IssueServer("n0", []string{"127.0.0.1"}, pki.KeyECDSAP256, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	srvCert, srvKey, err := pki.Save(dir, "server", srv)
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.NewCA("another CA", pki.KeyECDSAP256, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	foreignCert, foreignKey := routeCert(t, other, dir, "foreign")
	goodCert, goodKey := routeCert(t, ca, dir, "good")

	h := et.Start(t, nil)
	for _, tc := range []struct {
		name, cert, key string
		want            []string // in the error; nil: accepted
	}{
		{"server certificate", srvCert, srvKey, []string{srvCert, "serverAuth", "lacking clientAuth", "cotd certs node"}},
		{"another CA's node certificate", foreignCert, foreignKey, []string{foreignCert, "does not verify against cluster.ca", "unknown authority"}},
		{"node certificate", goodCert, goodKey, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := configs.Cluster{Node: "n0", Listen: "127.0.0.1:0", Cert: tc.cert, Key: tc.key, CA: caFile}
			problems := cluster.CheckFiles(&c)
			n, err := cluster.New(cluster.Options{Config: c, Directory: h.Srv.Directory(), Link: h.Srv.Link, Log: zerolog.Nop()})
			if err != nil {
				t.Fatal(err)
			}
			startErr := n.Start()
			if startErr == nil {
				n.Close()
			}
			if tc.want == nil {
				if startErr != nil || len(problems) != 0 {
					t.Fatalf("node certificate refused: start %v, check %v", startErr, problems)
				}
				return
			}
			if !errors.Is(startErr, cluster.ErrCert) {
				t.Fatalf("Start = %v, want ErrCert", startErr)
			}
			if len(problems) != 1 || !errors.Is(problems[0], cluster.ErrCert) {
				t.Fatalf("CheckFiles = %v, want one ErrCert", problems)
			}
			for _, w := range tc.want {
				if !strings.Contains(startErr.Error(), w) || !strings.Contains(problems[0].Error(), w) {
					t.Errorf("error lacks %q:\nstart: %v\ncheck: %v", w, startErr, problems[0])
				}
			}
		})
	}

	// With nats_url the certificate is only a client's: clientAuth is
	// what it needs, and a server certificate lacks it.
	c := configs.Cluster{Node: "n0", NATSURL: "nats://127.0.0.1:1", Cert: srvCert, Key: srvKey}
	if p := cluster.CheckFiles(&c); len(p) != 1 || !errors.Is(p[0], cluster.ErrCert) || !strings.Contains(p[0].Error(), "nats_url") {
		t.Errorf("nats_url with a server certificate: %v", p)
	}
	c.Cert, c.Key = goodCert, goodKey
	if p := cluster.CheckFiles(&c); len(p) != 0 {
		t.Errorf("nats_url with a node certificate: %v", p)
	}
}

// Why the check: the accepting end of a route refuses a peer presenting a
// serverAuth-only certificate, even one from the cluster's CA, in the TLS
// handshake, so two nodes so configured would never meet.
func TestRoutePortRefusesServerOnlyCertificate(t *testing.T) {
	dir := t.TempDir()
	ca, caFile := clusterCA(t, dir)
	cert, key := routeCert(t, ca, dir, "n0")
	n0 := startNode(t, "n0", nil, configs.Cluster{Listen: "127.0.0.1:0", Cert: cert, Key: key, CA: caFile})
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	try := func(leaf *pki.Bundle) error {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: et.Wait}, "tcp", n0.n.RouteAddr(),
			&tls.Config{Certificates: []tls.Certificate{leaf.TLSCertificate()}, RootCAs: pool, ServerName: "127.0.0.1"})
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(et.Wait))
		// TLS 1.3: the client's handshake ends before the server has
		// checked its certificate; the first read is the barrier that
		// shows the server's verdict (its INFO line, or an alert).
		info, err := bufio.NewReader(c).ReadString('\n')
		if err == nil && !strings.HasPrefix(info, "INFO ") {
			return fmt.Errorf("route port said %q", info)
		}
		return err
	}
	node, err := ca.IssueNode("peer", []string{"127.0.0.1"}, pki.KeyECDSAP256, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := try(node); err != nil {
		t.Fatalf("a node certificate was refused: %v", err)
	}
	srv, err := ca.IssueServer("peer", []string{"127.0.0.1"}, pki.KeyECDSAP256, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := try(srv); err == nil {
		t.Fatal("a serverAuth-only certificate completed a route handshake")
	} else if !strings.Contains(err.Error(), "tls: bad certificate") {
		t.Errorf("refusal = %v, want the TLS alert bad_certificate", err)
	}
}
