package cluster_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cotd/configs"
	et "cotd/engine/enginetest"
	"cotd/tlsstate/pki"
)

// routeCert writes a node certificate for 127.0.0.1 from ca, good for both
// ends of a route (serverAuth and clientAuth), and returns its files.
func routeCert(t *testing.T, ca *pki.Bundle, dir, name string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	write(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	write(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}))
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
