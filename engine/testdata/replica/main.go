// Command replica reproduces the accept loop of the failing design that cotd
// exists to replace, for engine/replica_test.go to compare cotd with. It is the
// design described in OpenTAKServer 1.7.10's bug report on its eud_handler
// ("port 8089 stops accepting clients"), written here in Go:
//
//   - the listening socket's backlog is 0 (listen(0)): the kernel queues at most
//     one completed connection, and drops further SYNs while it is full;
//   - the TLS handshake runs inside the accept loop, on its one goroutine, with a
//     per-connection timeout: while one client is silent, nobody else is accepted;
//   - accepted clients get a goroutine that relays what they send to the others.
//
// It binds loopback only and prints "listening ADDR" once it accepts.
//
//	replica -cert server.pem -key server.key -ca ca.pem [-addr 127.0.0.1:0] [-handshake-timeout 1s]
package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "loopback address to listen on")
	certFile := flag.String("cert", "", "server certificate (PEM)")
	keyFile := flag.String("key", "", "server key (PEM)")
	caFile := flag.String("ca", "", "CA that client certificates must chain to (PEM)")
	timeout := flag.Duration("handshake-timeout", time.Second, "how long the accept loop waits for one client's handshake")
	flag.Parse()
	if err := run(*addr, *certFile, *keyFile, *caFile, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "replica:", err)
		os.Exit(1)
	}
}

func run(addr, certFile, keyFile, caFile string, timeout time.Duration) error {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return err
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return errors.New("no certificate in " + caFile)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}

	ln, err := listenZero(addr)
	if err != nil {
		return err
	}
	fmt.Println("listening", ln.Addr())

	var mu sync.Mutex
	clients := map[*tls.Conn]bool{}
	for {
		raw, err := ln.Accept()
		if err != nil {
			continue
		}
		// The design's flaw: the handshake is done here, on the accept loop.
		conn := tls.Server(raw, cfg)
		_ = conn.SetDeadline(time.Now().Add(timeout))
		if err := conn.Handshake(); err != nil {
			_ = conn.Close()
			continue
		}
		_ = conn.SetDeadline(time.Time{})
		mu.Lock()
		clients[conn] = true
		mu.Unlock()
		go relay(conn, &mu, clients)
	}
}

// relay forwards what conn sends to every other client until it leaves.
func relay(conn *tls.Conn, mu *sync.Mutex, clients map[*tls.Conn]bool) {
	defer func() {
		mu.Lock()
		delete(clients, conn)
		mu.Unlock()
		_ = conn.Close()
	}()
	buf := make([]byte, 64<<10)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return
		}
		mu.Lock()
		peers := make([]*tls.Conn, 0, len(clients))
		for c := range clients {
			if c != conn {
				peers = append(peers, c)
			}
		}
		mu.Unlock()
		for _, p := range peers {
			_, _ = p.Write(buf[:n])
		}
	}
}

// listenZero opens a TCP listener with a backlog of 0, which the standard
// library cannot do (net.Listen always asks for somaxconn).
func listenZero(addr string) (net.Listener, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, err
	}
	if !ap.Addr().IsLoopback() || !ap.Addr().Is4() {
		return nil, errors.New("the replica binds IPv4 loopback only")
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "replica-listener")
	defer f.Close() // net.FileListener dups the descriptor
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		return nil, err
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}); err != nil {
		return nil, err
	}
	if err := syscall.Listen(fd, 0); err != nil {
		return nil, err
	}
	return net.FileListener(f)
}
