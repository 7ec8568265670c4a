package bench

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
)

// ServeBaseline is the yardstick for handshake rate: the plainest mutual-TLS
// server crypto/tls allows. Each connection gets a goroutine that completes
// the handshake and then reads and discards until the client leaves. A burst
// run against it and against cotd on the same box gives the ratio of cotd's
// handshake rate to crypto/tls's own. It returns when ctx ends.
func ServeBaseline(ctx context.Context, ln net.Listener, cfg *tls.Config, ok *atomic.Int64) error {
	go func() {
		<-ctx.Done()
		_ = ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		go func() {
			defer c.Close()
			tc := tls.Server(c, cfg)
			if err := tc.HandshakeContext(ctx); err != nil {
				return
			}
			ok.Add(1)
			_, _ = io.Copy(io.Discard, tc)
		}()
	}
}

// BaselineConfig is the server side of a mutual-TLS handshake with the
// given PEM files, as cotd configures it.
func BaselineConfig(certFile, keyFile, caFile string) (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("bench: baseline certificate: %w", err)
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("bench: baseline CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("bench: baseline CA: no certificate in %s", caFile)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{pair},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	}, nil
}
