package engine

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strconv"
	"strings"

	"github.com/rs/zerolog"

	"cotd/engine/auth"
	"cotd/tlsstate/pki"
)

var (
	errAdminNoCert   = errors.New("engine: admin.client_ca needs a server certificate: set tls.cert and tls.key, or turn on tls.dev_certs")
	errAdminClientCA = errors.New("engine: admin.client_ca holds no PEM certificate")
)

// adminHandler serves the admin listener:
//
//	GET  /healthz                         200 "ok" while the process serves
//	GET  /readyz                          200 once every listener accepts; 503 and why otherwise
//	GET  /metrics                         Prometheus text
//	GET  /api/clients                     JSON array of ClientInfo, oldest first
//	GET  /api/clients/{uid}               JSON array of that device's connections; 404 if none
//	POST /api/clients/{uid}/disconnect    close them with reason "admin"; 404 if none
//	     /debug/pprof/…                   only with admin.pprof
//
// With admin.basic_user set, everything but the two probes needs basic
// auth: they say nothing about clients, and load balancers and service
// managers probe without credentials. A {uid} with a "/" in it is sent
// percent-encoded ("%2F").
func (s *Server) adminHandler() http.Handler {
	api := http.NewServeMux()
	api.HandleFunc("GET /metrics", s.serveMetrics)
	api.HandleFunc("GET /api/clients", s.serveClients)
	api.HandleFunc("GET /api/clients/{uid}", s.serveClient)
	api.HandleFunc("POST /api/clients/{uid}/disconnect", s.serveDisconnect)
	// By connection id, for connections with no uid yet (a TLS handshake
	// that hangs, a client that never sent an SA).
	api.HandleFunc("GET /api/connections/{id}", s.serveConnection)
	api.HandleFunc("POST /api/connections/{id}/disconnect", s.serveDisconnectConnection)
	if s.cfg.Admin.Pprof {
		api.HandleFunc("/debug/pprof/", pprof.Index)
		api.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		api.HandleFunc("/debug/pprof/profile", pprof.Profile)
		api.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		api.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	var protected http.Handler = api
	if s.cfg.Admin.BasicUser != "" {
		protected = basicAuth(s.cfg.Admin.BasicUser, s.cfg.Admin.BasicPasswordHash, api)
	}
	root := http.NewServeMux()
	root.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, "ok")
	})
	root.HandleFunc("GET /readyz", s.serveReadyz)
	root.Handle("/", protected)
	return root
}

// basicAuth lets through requests that carry user and a password matching
// the bcrypt hash. The user name is compared in constant time on digests
// (so its length does not leak either), and the password is checked
// whatever the name was, so a wrong name takes as long as a wrong password.
// auth.CheckPassword also refuses a password longer than the 72 bytes
// bcrypt reads.
func basicAuth(user, hash string, next http.Handler) http.Handler {
	wantUser := sha256.Sum256([]byte(user))
	account := &auth.User{Name: user, PasswordHash: hash}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if ok {
			gotUser := sha256.Sum256([]byte(u))
			userOK := subtle.ConstantTimeCompare(gotUser[:], wantUser[:]) == 1
			passOK := auth.CheckPassword(account, p) == nil
			if userOK && passOK {
				next.ServeHTTP(w, r)
				return
			}
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="cotd admin", charset="UTF-8"`)
		writeJSON(w, http.StatusUnauthorized, apiError{Error: "unauthorized"})
	})
}

func (s *Server) serveMetrics(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	if err := s.writeMetrics(w); err != nil {
		return
	}
	if err := s.writeListenQueues(w); err != nil {
		return
	}
	_ = s.writePeerMetrics(w)
}

// readiness reports whether the server takes connections, and if not why.
func (s *Server) readiness() (ready bool, reason string) {
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

func (s *Server) serveReadyz(w http.ResponseWriter, _ *http.Request) {
	if ok, why := s.readiness(); !ok {
		writeText(w, http.StatusServiceUnavailable, "not ready: "+why)
		return
	}
	writeText(w, http.StatusOK, "ready")
}

func (s *Server) serveClients(w http.ResponseWriter, _ *http.Request) {
	cs := s.Clients()
	if cs == nil {
		cs = []ClientInfo{} // "[]", not "null"
	}
	writeJSON(w, http.StatusOK, cs)
}

func (s *Server) serveClient(w http.ResponseWriter, r *http.Request) {
	uid := r.PathValue("uid")
	cs := s.ClientsByUID(uid)
	if len(cs) == 0 {
		writeJSON(w, http.StatusNotFound, apiError{Error: fmt.Sprintf("no connected client has uid %q", uid)})
		return
	}
	writeJSON(w, http.StatusOK, cs)
}

// disconnectResult is the body of a successful disconnect.
type disconnectResult struct {
	UID          string `json:"uid"`
	Disconnected int    `json:"disconnected"` // connections closed
}

func (s *Server) serveDisconnect(w http.ResponseWriter, r *http.Request) {
	uid := r.PathValue("uid")
	n := s.Disconnect(uid)
	if n == 0 {
		writeJSON(w, http.StatusNotFound, apiError{Error: fmt.Sprintf("no connected client has uid %q", uid)})
		return
	}
	// The audit record: who asked, for whom. Disconnect logs each connection.
	s.audit(r).Str("uid", uid).Int("connections", n).Msg("admin disconnect")
	writeJSON(w, http.StatusOK, disconnectResult{UID: uid, Disconnected: n})
}

// connID parses the {id} of a /api/connections path; on failure it has
// written the error response.
func connID(w http.ResponseWriter, r *http.Request) (uint64, bool) {
	raw := r.PathValue("id")
	id, err := strconv.ParseUint(raw, 10, 64)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{Error: fmt.Sprintf("connection id %q is not a number", raw)})
		return 0, false
	}
	return id, true
}

func (s *Server) serveConnection(w http.ResponseWriter, r *http.Request) {
	id, ok := connID(w, r)
	if !ok {
		return
	}
	ci, ok := s.Connection(id)
	if !ok {
		writeJSON(w, http.StatusNotFound, apiError{Error: fmt.Sprintf("no open connection has id %d", id)})
		return
	}
	writeJSON(w, http.StatusOK, ci)
}

func (s *Server) serveDisconnectConnection(w http.ResponseWriter, r *http.Request) {
	id, ok := connID(w, r)
	if !ok {
		return
	}
	if !s.DisconnectConnection(id) {
		writeJSON(w, http.StatusNotFound, apiError{Error: fmt.Sprintf("no open connection has id %d", id)})
		return
	}
	s.audit(r).Uint64("conn", id).Msg("admin disconnect")
	writeJSON(w, http.StatusOK, struct {
		ID           uint64 `json:"id"`
		Disconnected int    `json:"disconnected"`
	}{id, 1})
}

// audit starts the log line that records an administrator's action: who
// asked, by address and, with client certificates, by name.
func (s *Server) audit(r *http.Request) *zerolog.Event {
	ev := s.log.Info().Str("admin_remote", r.RemoteAddr)
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		ev = ev.Str("admin_cn", r.TLS.PeerCertificates[0].Subject.CommonName)
	}
	return ev
}

// apiError is the body of every admin API error.
type apiError struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeText(w http.ResponseWriter, status int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(msg + "\n"))
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
