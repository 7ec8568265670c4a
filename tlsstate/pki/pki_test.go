package pki

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// chain is a CA with a server and a client it issued.
type chain struct {
	ca, server, client *Bundle
}

func newChain(t testing.TB, kt KeyType) chain {
	t.Helper()
	ca, err := NewCA("cotd test CA", kt, 0)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ca.IssueServer("", []string{"localhost", "127.0.0.1", "::1"}, kt, 0)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := ca.IssueClient("eud-alpha", kt, 0)
	if err != nil {
		t.Fatal(err)
	}
	return chain{ca, srv, cl}
}

// RSA-2048 key generation is slow enough under -race to share one chain.
var (
	ecOnce, rsaOnce   sync.Once
	ecChain, rsaChain chain
)

func chainFor(t testing.TB, kt KeyType) chain {
	switch kt {
	case KeyRSA2048:
		rsaOnce.Do(func() { rsaChain = newChain(t, kt) })
		return rsaChain
	default:
		ecOnce.Do(func() { ecChain = newChain(t, kt) })
		return ecChain
	}
}

var keyTypes = []KeyType{KeyECDSAP256, KeyRSA2048}

func TestChainVerifies(t *testing.T) {
	for _, kt := range keyTypes {
		t.Run(kt.String(), func(t *testing.T) {
			c := chainFor(t, kt)
			roots := x509.NewCertPool()
			roots.AddCert(c.ca.Cert)

			for _, host := range []string{"localhost", "127.0.0.1", "::1"} {
				if _, err := c.server.Cert.Verify(x509.VerifyOptions{
					DNSName: host, Roots: roots,
					KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
				}); err != nil {
					t.Errorf("server for %s: %v", host, err)
				}
			}
			if _, err := c.server.Cert.Verify(x509.VerifyOptions{DNSName: "elsewhere.example", Roots: roots}); err == nil {
				t.Error("server verified for a host it does not name")
			}
			if _, err := c.client.Cert.Verify(x509.VerifyOptions{
				Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
			}); err != nil {
				t.Errorf("client: %v", err)
			}
			// Each leaf is for one purpose only.
			if _, err := c.client.Cert.Verify(x509.VerifyOptions{
				Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			}); err == nil {
				t.Error("client certificate verified for server auth")
			}

			switch kt {
			case KeyECDSAP256:
				if _, ok := c.client.Key.(*ecdsa.PrivateKey); !ok {
					t.Errorf("key is %T", c.client.Key)
				}
			case KeyRSA2048:
				k, ok := c.client.Key.(*rsa.PrivateKey)
				if !ok || k.N.BitLen() != 2048 {
					t.Errorf("key is %T", c.client.Key)
				}
			}
		})
	}
}

func TestCertificateFields(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ca, err := newCA("root", KeyECDSAP256, 0, now)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ca.issueServer("", []string{"tak.example", "10.0.0.5"}, KeyECDSAP256, 0, now)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := ca.issueClient("alice", KeyECDSAP256, 0, now)
	if err != nil {
		t.Fatal(err)
	}

	if !ca.Cert.IsCA || !ca.Cert.MaxPathLenZero || ca.Cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("CA constraints: IsCA=%v MaxPathLenZero=%v usage=%v", ca.Cert.IsCA, ca.Cert.MaxPathLenZero, ca.Cert.KeyUsage)
	}
	if srv.Cert.IsCA || cl.Cert.IsCA {
		t.Error("leaf is a CA")
	}
	if srv.Cert.Subject.CommonName != "tak.example" || len(srv.Cert.DNSNames) != 1 ||
		srv.Cert.DNSNames[0] != "tak.example" || len(srv.Cert.IPAddresses) != 1 ||
		!srv.Cert.IPAddresses[0].Equal(net.ParseIP("10.0.0.5")) {
		t.Errorf("server names: CN=%q DNS=%v IP=%v", srv.Cert.Subject.CommonName, srv.Cert.DNSNames, srv.Cert.IPAddresses)
	}
	if cl.Cert.Subject.CommonName != "alice" {
		t.Errorf("client CN %q", cl.Cert.Subject.CommonName)
	}
	for _, b := range []*Bundle{ca, srv, cl} {
		if !b.Cert.NotBefore.Before(now) || now.Sub(b.Cert.NotBefore) > 2*time.Hour {
			t.Errorf("%s NotBefore %v, now %v", b.Cert.Subject.CommonName, b.Cert.NotBefore, now)
		}
		if bits := b.Cert.SerialNumber.BitLen(); bits < 64 || bits > 128 || b.Cert.SerialNumber.Sign() <= 0 {
			t.Errorf("%s serial has %d bits", b.Cert.Subject.CommonName, bits)
		}
	}
	if got := cl.Cert.NotAfter.Sub(cl.Cert.NotBefore); got != DefaultLeafValidity {
		t.Errorf("leaf validity period %v, want %v", got, DefaultLeafValidity)
	}
	if got := ca.Cert.NotAfter.Sub(ca.Cert.NotBefore); got != DefaultCAValidity {
		t.Errorf("CA validity period %v, want %v", got, DefaultCAValidity)
	}
	if ca.Cert.SerialNumber.Cmp(srv.Cert.SerialNumber) == 0 || srv.Cert.SerialNumber.Cmp(cl.Cert.SerialNumber) == 0 {
		t.Error("serials repeat")
	}

	// A leaf never outlives its CA.
	short, err := newCA("short", KeyECDSAP256, 48*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := short.issueClient("bob", KeyECDSAP256, 0, now)
	if err != nil {
		t.Fatal(err)
	}
	if !leaf.Cert.NotAfter.Equal(short.Cert.NotAfter) {
		t.Errorf("leaf NotAfter %v, CA NotAfter %v", leaf.Cert.NotAfter, short.Cert.NotAfter)
	}
}

func TestIssueErrors(t *testing.T) {
	c := chainFor(t, KeyECDSAP256)
	tests := []struct {
		name string
		fn   func() error
		want error
	}{
		{"empty CA name", func() error { _, err := NewCA(" ", KeyECDSAP256, 0); return err }, ErrName},
		{"negative validity", func() error { _, err := NewCA("x", KeyECDSAP256, -time.Hour); return err }, ErrValidity},
		{"unknown key type", func() error { _, err := NewCA("x", KeyType(9), 0); return err }, ErrKeyType},
		{"no hosts", func() error { _, err := c.ca.IssueServer("", nil, KeyECDSAP256, 0); return err }, ErrNoHosts},
		{"blank host", func() error { _, err := c.ca.IssueServer("s", []string{" "}, KeyECDSAP256, 0); return err }, ErrNoHosts},
		{"empty user", func() error { _, err := c.ca.IssueClient("", KeyECDSAP256, 0); return err }, ErrName},
		{"empty node", func() error { _, err := c.ca.IssueNode(" ", []string{"n1"}, KeyECDSAP256, 0); return err }, ErrName},
		{"node without hosts", func() error { _, err := c.ca.IssueNode("n1", nil, KeyECDSAP256, 0); return err }, ErrNoHosts},
		{"node as issuer", func() error { _, err := c.server.IssueNode("n1", []string{"n1"}, KeyECDSAP256, 0); return err }, ErrNotCA},
		{"leaf as issuer", func() error { _, err := c.server.IssueClient("x", KeyECDSAP256, 0); return err }, ErrNotCA},
		{"nil issuer", func() error { _, err := (*Bundle)(nil).IssueClient("x", KeyECDSAP256, 0); return err }, ErrNotCA},
		{"CA without key", func() error {
			_, err := (&Bundle{Cert: c.ca.Cert}).IssueClient("x", KeyECDSAP256, 0)
			return err
		}, ErrNotCA},
	}
	for _, tt := range tests {
		if err := tt.fn(); !errors.Is(err, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.want)
		}
	}
}

// A node certificate verifies as a server for each of its hosts and as a
// client, against the CA: one certificate for both ends of a route.
func TestNodeCertificate(t *testing.T) {
	c := chainFor(t, KeyECDSAP256)
	node, err := c.ca.IssueNode("n1", []string{"n1.cluster.example", "10.1.2.3"}, KeyECDSAP256, 0)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(c.ca.Cert)
	for _, host := range []string{"n1.cluster.example", "10.1.2.3"} {
		if _, err := node.Cert.Verify(x509.VerifyOptions{DNSName: host, Roots: roots,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("node as server for %s: %v", host, err)
		}
	}
	if _, err := node.Cert.Verify(x509.VerifyOptions{Roots: roots,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("node as client: %v", err)
	}
	if _, err := node.Cert.Verify(x509.VerifyOptions{DNSName: "n2.cluster.example", Roots: roots}); err == nil {
		t.Error("node verified for a host it does not name")
	}
	if node.Cert.Subject.CommonName != "n1" || node.Cert.IsCA {
		t.Errorf("node CN %q IsCA %v", node.Cert.Subject.CommonName, node.Cert.IsCA)
	}
	// Both ends of a real handshake present it.
	if cn, err := handshake(t, c.ca, node, node, "127.0.0.1"); err == nil {
		t.Errorf("handshake to 127.0.0.1, which the node certificate does not name, succeeded (client CN %q)", cn)
	}
	local, err := c.ca.IssueNode("n2", []string{"127.0.0.1"}, KeyECDSAP256, 0)
	if err != nil {
		t.Fatal(err)
	}
	if cn, err := handshake(t, c.ca, local, local, "127.0.0.1"); err != nil || cn != "n2" {
		t.Errorf("node-to-node handshake: CN %q, %v", cn, err)
	}
}

// TestMutualTLS runs a real handshake over loopback with the issued
// certificates, the way the 8089 stream port is configured.
func TestMutualTLS(t *testing.T) {
	for _, kt := range keyTypes {
		t.Run(kt.String(), func(t *testing.T) {
			c := chainFor(t, kt)
			cn, err := handshake(t, c.ca, c.server, c.client, "127.0.0.1")
			if err != nil {
				t.Fatal(err)
			}
			if cn != "eud-alpha" {
				t.Errorf("server saw client CN %q", cn)
			}
			if _, err := handshake(t, c.ca, c.server, c.client, "localhost"); err != nil {
				t.Errorf("by name: %v", err)
			}
		})
	}
}

func TestForeignClientRejected(t *testing.T) {
	c := chainFor(t, KeyECDSAP256)
	other := newChain(t, KeyECDSAP256)

	roots := x509.NewCertPool()
	roots.AddCert(c.ca.Cert)
	if _, err := other.client.Cert.Verify(x509.VerifyOptions{
		Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err == nil {
		t.Fatal("client of another CA verified")
	}
	if _, err := handshake(t, c.ca, c.server, other.client, "127.0.0.1"); err == nil {
		t.Fatal("handshake with a foreign client certificate succeeded")
	}
}

// handshake serves one TLS connection on 127.0.0.1:0 requiring a client
// certificate from ca, connects with client, and returns the client CN the
// server saw, or the first error of either side.
func handshake(t *testing.T, ca, server, client *Bundle, serverName string) (string, error) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{server.TLSCertificate()},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	type result struct {
		cn  string
		err error
	}
	done := make(chan result, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		tc := conn.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			done <- result{err: err}
			return
		}
		// Confirm to the client: in TLS 1.3 its handshake ends before the
		// server has checked the client certificate.
		_, err = tc.Write([]byte{1})
		done <- result{cn: tc.ConnectionState().PeerCertificates[0].Subject.CommonName, err: err}
	}()

	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", ln.Addr().String(), &tls.Config{
		RootCAs:      pool,
		ServerName:   serverName,
		Certificates: []tls.Certificate{client.TLSCertificate()},
	})
	if err == nil {
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		_, err = io.ReadFull(conn, make([]byte, 1))
		conn.Close()
	}
	r := <-done
	if r.err != nil {
		return "", r.err
	}
	return r.cn, err
}

func TestKeyType(t *testing.T) {
	for _, kt := range keyTypes {
		got, err := ParseKeyType(kt.String())
		if err != nil || got != kt {
			t.Errorf("ParseKeyType(%q) = %v, %v", kt.String(), got, err)
		}
		text, err := kt.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back KeyType
		if err := back.UnmarshalText(text); err != nil || back != kt {
			t.Errorf("text round trip of %v: %v, %v", kt, back, err)
		}
	}
	for in, want := range map[string]KeyType{"": KeyECDSAP256, "RSA": KeyRSA2048, "ecdsa": KeyECDSAP256, "rsa2048": KeyRSA2048} {
		if got, err := ParseKeyType(in); err != nil || got != want {
			t.Errorf("ParseKeyType(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseKeyType("ed25519"); !errors.Is(err, ErrKeyType) {
		t.Errorf("ed25519: %v", err)
	}
	if s := KeyType(7).String(); s != "KeyType(7)" {
		t.Errorf("unknown String() = %q", s)
	}
	if _, err := KeyType(7).MarshalText(); !errors.Is(err, ErrKeyType) {
		t.Errorf("MarshalText of unknown: %v", err)
	}
}

func TestExpiry(t *testing.T) {
	c := chainFor(t, KeyECDSAP256)
	cert := c.client.Cert
	before := cert.NotAfter.Add(-48 * time.Hour)
	tests := []struct {
		now  time.Time
		d    time.Duration
		want bool
	}{
		{before, 24 * time.Hour, false},
		{before, 48 * time.Hour, false}, // valid at the instant NotAfter, as in crypto/x509
		{before, 48*time.Hour + time.Second, true},
		{before, 72 * time.Hour, true},
		{cert.NotAfter.Add(time.Second), 0, true},
		{cert.NotAfter.Add(-time.Second), 0, false},
	}
	for _, tt := range tests {
		if got := ExpiresWithin(cert, tt.d, tt.now); got != tt.want {
			t.Errorf("ExpiresWithin(d=%v, now=NotAfter%+v) = %v", tt.d, tt.now.Sub(cert.NotAfter), got)
		}
	}
	if got := TimeLeft(cert, before); got != 48*time.Hour {
		t.Errorf("TimeLeft = %v", got)
	}
}
