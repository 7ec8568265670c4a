package engine

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/rs/zerolog"

	"cotd/engine/metrics"
	"cotd/tlsstate/pki"
)

var (
	errAdminNoCert   = errors.New("engine: admin.client_ca needs a server certificate: set tls.cert and tls.key, or turn on tls.dev_certs")
	errAdminClientCA = errors.New("engine: admin.client_ca holds no PEM certificate")
)

// HandleAdmin sets what the admin listener (admin.addr) serves: the admin
// API (package admin), wired by cmd/cotd. Call it before Run; without it
// the listener answers 404.
func (s *Server) HandleAdmin(h http.Handler) { s.adminAPI = h }

// Readiness reports whether the server takes connections, and if not why
// (the admin API's /readyz). Any goroutine.
func (s *Server) Readiness() (ready bool, reason string) {
	select {
	case <-s.ready:
	default:
		return false, "listeners not up yet"
	}
	if s.draining.Load() {
		return false, "draining: shutting down"
	}
	return true, ""
}

// WriteMetrics writes every metric of the process as Prometheus text (the
// admin API's /metrics): the engine's, its listeners' accept queues, the
// Go runtime's and the process's. Any goroutine.
func (s *Server) WriteMetrics(w io.Writer) error {
	if err := s.writeMetrics(w); err != nil {
		return err
	}
	// Best effort: a listener the kernel says nothing about is left out.
	_ = s.writeListenQueues(w)
	if err := s.writePeerMetrics(w); err != nil {
		return err
	}
	if err := metrics.WriteRuntime(w); err != nil {
		return err
	}
	return metrics.WriteProcess(w)
}

// adminHandler is what Run serves on the admin listener.
func (s *Server) adminHandler() http.Handler {
	if s.adminAPI == nil {
		return http.NotFoundHandler()
	}
	return s.adminAPI
}

// listenAdmin opens the admin listener on admin.addr: plain TCP, or with
// admin.client_ca TLS that requires a client certificate from that CA.
// Every configuration error is returned before the socket opens; every
// error already names the engine and the admin listener.
func (s *Server) listenAdmin() (net.Listener, error) {
	cfg, err := s.adminTLSConfig()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", s.cfg.Admin.Addr)
	if err != nil {
		return nil, fmt.Errorf("engine: admin listener: %w", err)
	}
	if cfg != nil {
		ln = tls.NewListener(ln, cfg)
	}
	return ln, nil
}

// adminTLSConfig is the admin listener's TLS configuration, or nil when
// admin.client_ca is empty. The server presents the streaming listener's
// certificate, following its SIGHUP reloads; with the TLS listener off it
// loads tls.cert and tls.key, or the development certificate.
func (s *Server) adminTLSConfig() (*tls.Config, error) {
	if s.cfg.Admin.ClientCA == "" {
		return nil, nil
	}
	caPEM, err := os.ReadFile(s.cfg.Admin.ClientCA)
	if err != nil {
		return nil, fmt.Errorf("engine: admin.client_ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%w: %s", errAdminClientCA, s.cfg.Admin.ClientCA)
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs:  pool,
	}
	if s.tls != nil {
		files := s.tls
		cfg.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return &files.cur.Load().Certificates[0], nil
		}
		return cfg, nil
	}
	cert, key := s.cfg.TLS.Cert, s.cfg.TLS.Key
	if cert == "" {
		if !s.cfg.TLS.DevCerts || s.cfg.TLS.DevDir == "" {
			return nil, errAdminNoCert
		}
		dev, _, err := pki.EnsureDev(s.cfg.TLS.DevDir, pki.DefaultHosts(), pki.KeyECDSAP256)
		if err != nil {
			return nil, fmt.Errorf("engine: admin: development certificates in %s: %w", s.cfg.TLS.DevDir, err)
		}
		cert, key = dev.ServerCert, dev.ServerKey
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, fmt.Errorf("engine: admin: tls.cert/tls.key: %w", err)
	}
	cfg.Certificates = []tls.Certificate{pair}
	return cfg, nil
}

// adminErrorLog takes net/http's own messages for the admin server (failed
// TLS handshakes, malformed requests) into the server's log at debug level:
// a port scanner must not flood it.
func (s *Server) adminErrorLog() *log.Logger {
	return log.New(httpErrorWriter{s.log.With().Str("component", "admin").Logger()}, "", 0)
}

type httpErrorWriter struct{ l zerolog.Logger }

func (w httpErrorWriter) Write(p []byte) (int, error) {
	w.l.Debug().Str("error", strings.TrimSpace(string(p))).Msg("admin http error")
	return len(p), nil
}
