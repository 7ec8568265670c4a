package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	utls "github.com/refraction-networking/utls"

	"cotd/tlsstate/pki"
)

// transport is how one client connects. Fixed per client for the whole run.
type transport uint8

const (
	transportTCP  transport = iota // plain streaming TCP
	transportTLS                   // crypto/tls (TLS 1.3 where the server offers it)
	transportUTLS                  // utls HelloAndroid_11_OkHttp: the TLS 1.2 Android path
	numTransports
)

var transportNames = [numTransports]string{"tcp", "crypto/tls", "utls-android11"}

func (t transport) String() string {
	if t < numTransports {
		return transportNames[t]
	}
	return "transport(" + strconv.Itoa(int(t)) + ")"
}

// CheckLoopback refuses any address that is not on this host's loopback: a load run must
// never leave the machine. localhost, 127.0.0.0/8 and ::1 are accepted.
func CheckLoopback(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %v", addr, err)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("%q has a bad port", addr)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%q is not a loopback address: cotbench only targets 127.0.0.0/8, ::1 or localhost", addr)
}

// TLSMaterial is what a TLS client presents and trusts.
type TLSMaterial struct {
	// Cert is the client certificate (TAK servers require mutual TLS).
	Cert tls.Certificate
	// Roots verifies the server's chain; nil skips verification.
	Roots *x509.CertPool
	// Issue makes a client certificate for the user name cn, for per-client certificates;
	// nil when the run has no CA key (a --target run with a given certificate).
	Issue func(cn string) (tls.Certificate, error)
}

// LoadTLSMaterial reads a PEM client certificate and key and, if ca is not "", a PEM CA
// bundle; with caKey, the key of ca's first certificate, it can issue client certificates.
func LoadTLSMaterial(cert, key, ca, caKey string) (*TLSMaterial, error) {
	if cert == "" || key == "" {
		return nil, fmt.Errorf("%w: TLS clients need a client certificate and key (transport.cert/key or --cert/--key)", ErrTarget)
	}
	c, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, fmt.Errorf("%w: client certificate: %w", ErrTarget, err)
	}
	m := &TLSMaterial{Cert: c}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrTarget, err)
		}
		m.Roots = x509.NewCertPool()
		if !m.Roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: %s holds no PEM certificate", ErrTarget, ca)
		}
	}
	if caKey != "" {
		b, err := pki.Load(ca, caKey)
		if err != nil {
			return nil, fmt.Errorf("%w: CA key: %w", ErrTarget, err)
		}
		m.Issue = issuer(b)
	}
	return m, nil
}

// issuer issues ECDSA client certificates for a run from the CA in b.
func issuer(b *pki.Bundle) func(cn string) (tls.Certificate, error) {
	return func(cn string) (tls.Certificate, error) {
		c, err := b.IssueClient(cn, pki.KeyECDSAP256, certValidity)
		if err != nil {
			return tls.Certificate{}, err
		}
		return c.TLSCertificate(), nil
	}
}

// verifyChain checks the server's chain against roots without a host name check: ATAK
// verifies the chain only (commo does no host name check), and servers on loopback are
// often certified for their public name.
func verifyChain(roots *x509.CertPool) func([][]byte, [][]*x509.Certificate) error {
	if roots == nil {
		return nil
	}
	return func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 {
			return errors.New("bench: server sent no certificate")
		}
		certs := make([]*x509.Certificate, len(raw))
		for i, r := range raw {
			c, err := x509.ParseCertificate(r)
			if err != nil {
				return err
			}
			certs[i] = c
		}
		inter := x509.NewCertPool()
		for _, c := range certs[1:] {
			inter.AddCert(c)
		}
		_, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		return err
	}
}

// dialer opens client connections and measures them.
type dialer struct {
	// tcpAddrs and tlsAddrs are the target's addresses: one, or one per node of a
	// cluster (a comma-separated target); client n goes to address n modulo their number.
	tcpAddrs, tlsAddrs []string
	timeout            time.Duration
	tlsConf            *tls.Config
	utlsConf           *utls.Config
	halfHello          []byte
}

func newDialer(tcpAddr, tlsAddr string, timeout time.Duration, m *TLSMaterial) (*dialer, error) {
	d := &dialer{tcpAddrs: splitTargets(tcpAddr), tlsAddrs: splitTargets(tlsAddr), timeout: timeout}
	if m != nil {
		verify := verifyChain(m.Roots)
		// InsecureSkipVerify only turns off the built-in check, which includes a host name;
		// verify does the chain check when a CA is known.
		d.tlsConf = &tls.Config{
			Certificates:          []tls.Certificate{m.Cert},
			InsecureSkipVerify:    true,
			VerifyPeerCertificate: verify,
			MinVersion:            tls.VersionTLS12,
		}
		d.utlsConf = &utls.Config{
			Certificates:          []utls.Certificate{{Certificate: m.Cert.Certificate, PrivateKey: m.Cert.PrivateKey, Leaf: m.Cert.Leaf}},
			InsecureSkipVerify:    true,
			VerifyPeerCertificate: verify,
		}
	}
	hello, err := halfClientHello()
	if err != nil {
		return nil, err
	}
	d.halfHello = hello
	return d, nil
}

// dialResult is one connect attempt.
type dialResult struct {
	raw       net.Conn // the TCP connection
	conn      net.Conn // what the client reads and writes: raw, or TLS over it
	connect   time.Duration
	handshake time.Duration
	version   uint16 // negotiated TLS version; 0 for TCP
	fail      ErrorKind
	err       error
}

// splitTargets splits a comma-separated target into its addresses.
func splitTargets(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// pick is client n's address among addrs, or "" when there is none: clients are spread
// over a cluster's nodes round-robin, each always going to the same node.
func pick(addrs []string, n int) string {
	if len(addrs) == 0 {
		return ""
	}
	return addrs[n%len(addrs)]
}

// addrs are the target's addresses for transport tr.
func (d *dialer) addrs(tr transport) []string {
	if tr == transportTCP {
		return d.tcpAddrs
	}
	return d.tlsAddrs
}

// addr is where client n connects with transport tr.
func (d *dialer) addr(tr transport, n int) string { return pick(d.addrs(tr), n) }

// dial connects client n with transport tr, TCP connect and TLS handshake each bounded by
// the connect timeout. cert, when not nil, is presented instead of the shared certificate.
func (d *dialer) dial(ctx context.Context, tr transport, cert *tls.Certificate, n int) dialResult {
	var res dialResult
	addr := d.addr(tr, n)
	t0 := time.Now()
	nd := net.Dialer{Timeout: d.timeout}
	raw, err := nd.DialContext(ctx, "tcp", addr)
	res.connect = time.Since(t0)
	if err != nil {
		res.fail, res.err = classifyDial(err), err
		return res
	}
	if tr == transportTCP {
		res.raw, res.conn = raw, raw
		return res
	}
	t1 := time.Now()
	_ = raw.SetDeadline(t1.Add(d.timeout))
	var conn net.Conn
	switch tr {
	case transportTLS:
		conf := d.tlsConf
		if cert != nil {
			conf = conf.Clone()
			conf.Certificates = []tls.Certificate{*cert}
		}
		c := tls.Client(raw, conf)
		err = c.HandshakeContext(ctx)
		res.version = c.ConnectionState().Version
		conn = c
	case transportUTLS:
		conf := d.utlsConf.Clone()
		if cert != nil {
			conf.Certificates = []utls.Certificate{{Certificate: cert.Certificate, PrivateKey: cert.PrivateKey, Leaf: cert.Leaf}}
		}
		c := utls.UClient(raw, conf, utls.HelloAndroid_11_OkHttp)
		err = c.HandshakeContext(ctx)
		res.version = c.ConnectionState().Version
		conn = c
	}
	res.handshake = time.Since(t1)
	if err != nil {
		_ = raw.Close()
		res.fail, res.err = classifyHandshake(err), err
		return res
	}
	_ = raw.SetDeadline(time.Time{})
	res.raw, res.conn = raw, conn
	return res
}

// halfClientHello returns the first half of the first TLS record a crypto/tls client
// sends: a real ClientHello, cut so that a server waits for the rest.
func halfClientHello() ([]byte, error) {
	c := &captureConn{}
	_ = tls.Client(c, &tls.Config{ServerName: "cotd.invalid", InsecureSkipVerify: true}).Handshake()
	rec := c.buf.Bytes()
	if len(rec) < 5 || rec[0] != 22 {
		return nil, errors.New("bench: crypto/tls wrote no handshake record")
	}
	n := 5 + (int(rec[3])<<8 | int(rec[4]))
	if n > len(rec) {
		return nil, errors.New("bench: crypto/tls wrote a short ClientHello record")
	}
	return bytes.Clone(rec[:n/2]), nil
}

// captureConn keeps what is written and fails every read, which ends a client handshake
// right after its hello.
type captureConn struct{ buf bytes.Buffer }

func (c *captureConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (c *captureConn) Write(p []byte) (int, error)      { return c.buf.Write(p) }
func (c *captureConn) Close() error                     { return nil }
func (c *captureConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *captureConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *captureConn) SetDeadline(time.Time) error      { return nil }
func (c *captureConn) SetReadDeadline(time.Time) error  { return nil }
func (c *captureConn) SetWriteDeadline(time.Time) error { return nil }
