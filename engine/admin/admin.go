package admin

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"cotd/engine/directory"
)

// Options are what the API is built on besides the Directory.
type Options struct {
	// Directory lists and disconnects clients.
	Directory directory.Directory
	// Metrics writes the Prometheus text exposition of /metrics.
	Metrics func(io.Writer) error
	// Ready reports whether the server takes connections, and if not why;
	// nil means always ready.
	Ready func() (ready bool, why string)
	// Pprof serves /debug/pprof/ (admin.pprof).
	Pprof bool
	// Authorize checks HTTP basic credentials for everything but the
	// probes; nil means no authentication (admin.basic_user empty). It
	// must take the same time whatever is wrong (see auth.BasicChecker).
	Authorize func(user, password string) bool
	// Log receives the audit lines of administrators' actions.
	Log zerolog.Logger
	// Console, when set, is served at "/" behind the same auth as the API
	// (the web console, engine/web); the API's own paths keep their JSON
	// errors. nil means "/" is a 404 like any unknown path.
	Console http.Handler
	// Hosts are host names (besides IP addresses and localhost) that
	// state-changing requests may be addressed to (admin.allowed_hosts).
	Hosts []string
}

// ClientInfo describes one connection. The field names are the API's (the
// README documents them); cotd clients decodes them.
type ClientInfo struct {
	ID       uint64 `json:"id"`
	UID      string `json:"uid,omitempty"`
	Callsign string `json:"callsign,omitempty"`
	// CN is the client certificate's common name (TLS only).
	CN string `json:"cn,omitempty"`
	// Identity is the user the connection is known as: CN or <auth> user.
	Identity    string    `json:"identity,omitempty"`
	Remote      string    `json:"remote"`
	Listener    string    `json:"listener"`
	Protocol    string    `json:"protocol"` // "xml" or "takproto/1"
	State       string    `json:"state"`    // "handshaking" or "established"
	Since       time.Time `json:"connected_since"`
	LastSeen    time.Time `json:"last_seen,omitzero"`
	BytesIn     uint64    `json:"bytes_in"`
	QueuedBytes int64     `json:"queued_bytes"`
	// Groups is every group the client is in, either way; GroupsIn and
	// GroupsOut split them (publishes into, receives from).
	Groups    []string `json:"groups,omitempty"`
	GroupsIn  []string `json:"groups_in,omitempty"`
	GroupsOut []string `json:"groups_out,omitempty"`
	// Node is the cluster node the client is connected to; absent for
	// this one (and on a single node).
	Node string `json:"node,omitempty"`
}

// InfoOf converts a Directory snapshot.
func InfoOf(c directory.Client) ClientInfo {
	ci := ClientInfo{ID: c.ConnID, UID: c.UID, Callsign: c.Callsign, Identity: c.Identity, Remote: c.Remote,
		Listener: c.Listener, Protocol: c.Protocol, State: c.State, Since: c.Since, LastSeen: c.LastSeen,
		BytesIn: c.BytesIn, QueuedBytes: c.QueuedBytes, GroupsIn: c.In, GroupsOut: c.Out, Node: c.Node}
	if c.Listener == "tls" {
		ci.CN = c.Identity
	}
	ci.Groups = append(slices.Clone(c.In), c.Out...)
	slices.Sort(ci.Groups)
	ci.Groups = slices.Compact(ci.Groups)
	return ci
}

func infos(cs []directory.Client) []ClientInfo {
	out := make([]ClientInfo, 0, len(cs)) // "[]", not "null"
	for _, c := range cs {
		out = append(out, InfoOf(c))
	}
	return out
}

// Error is the body of every API error.
type Error struct {
	Error string `json:"error"`
}

// DisconnectResult is the body of a successful disconnect by uid.
type DisconnectResult struct {
	UID          string `json:"uid"`
	Disconnected int    `json:"disconnected"` // connections closed
}

// ConnDisconnectResult is the body of a successful disconnect by id.
type ConnDisconnectResult struct {
	ID           uint64 `json:"id"`
	Disconnected int    `json:"disconnected"`
}

type api struct {
	o Options
	g *guard
}

// New returns the admin API's handler:
//
//	GET  /healthz                          200 "ok" while the process serves
//	GET  /readyz                           200 once every listener accepts; 503 and why otherwise
//	GET  /metrics                          Prometheus text
//	GET  /api/clients                      JSON array of ClientInfo, oldest first
//	GET  /api/clients/{uid}                JSON array of that device's connections; 404 if none
//	POST /api/clients/{uid}/disconnect     close them with reason "admin"; 404 if none
//	GET  /api/connections                  JSON array of every connection by id, oldest first
//	GET  /api/connections/{id}             one connection; 404 if closed
//	POST /api/connections/{id}/disconnect  close it with reason "admin"
//	     /debug/pprof/…                    only with Options.Pprof
//	     /…                                Options.Console, when set
//
// With Options.Authorize set, everything but the two probes needs basic
// auth: they say nothing about clients, and load balancers and service
// managers probe without credentials. A {uid} with a "/" in it is sent
// percent-encoded ("%2F"). A POST needs Content-Type: application/json or
// an X-Cotd-Request header, an Origin (if any) equal to the Host, and a
// Host that is an IP address, localhost or one of Options.Hosts: a web
// page on another site cannot make one. Verified credentials are cached
// for a minute, checks run one at a time, and a source with more than 32
// recent failures gets 429 without a check. Every error, 404 and 405 included, is a JSON
// Error.
func New(o Options) http.Handler {
	a := &api{o: o, g: newGuard(o.Hosts)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", a.serveMetrics)
	mux.HandleFunc("GET /api/clients", a.serveClients)
	mux.HandleFunc("GET /api/clients/{uid}", a.serveClient)
	mux.HandleFunc("POST /api/clients/{uid}/disconnect", a.serveDisconnect)
	// By connection id, for connections with no uid yet (a TLS handshake
	// that hangs, a client that never sent an SA).
	mux.HandleFunc("GET /api/connections", a.serveClients)
	mux.HandleFunc("GET /api/connections/{id}", a.serveConnection)
	mux.HandleFunc("POST /api/connections/{id}/disconnect", a.serveDisconnectConnection)
	if o.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	// State-changing requests must not come from another site: with no
	// auth (the default, on loopback) any web page could otherwise POST a
	// disconnect.
	var protected http.Handler = a.g.sameSite(mux, jsonErrors(mux))
	if o.Console != nil {
		protected = withConsole(mux, protected, a.g.hostGuard(o.Console))
	}
	if o.Authorize != nil {
		protected = a.g.basicAuth(o.Authorize, protected)
	}
	root := http.NewServeMux()
	root.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, "ok")
	})
	root.HandleFunc("GET /readyz", a.serveReadyz)
	root.Handle("/", protected)
	return root
}

// jsonErrors answers requests the mux has no route for (404, 405) with a
// JSON Error instead of net/http's plain text, keeping its status and
// headers (Allow on a 405).
func jsonErrors(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(&errorWriter{ResponseWriter: w, path: r.URL.Path, method: r.Method}, r)
	})
}

// withConsole sends what the API has no route for to the console, except
// under the API's own prefixes: a mistyped /api/… path or a wrong method
// still gets the API's JSON 404 or 405, not the console's page.
func withConsole(mux *http.ServeMux, api, console http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern != "" || apiPath(r.URL.Path) {
			api.ServeHTTP(w, r)
			return
		}
		console.ServeHTTP(w, r)
	})
}

// apiPath reports whether p is in the API's part of the URL space.
func apiPath(p string) bool {
	return p == "/api" || strings.HasPrefix(p, "/api/") || p == "/metrics" ||
		p == "/debug/pprof" || strings.HasPrefix(p, "/debug/pprof/")
}

// errorWriter turns a 404 or 405 written by the mux into a JSON body.
type errorWriter struct {
	http.ResponseWriter
	path, method string
	replaced     bool
}

func (e *errorWriter) WriteHeader(code int) {
	var msg string
	switch code {
	case http.StatusNotFound:
		msg = fmt.Sprintf("no such endpoint: %s", e.path)
	case http.StatusMethodNotAllowed:
		msg = fmt.Sprintf("method %s not allowed on %s (allowed: %s)", e.method, e.path, e.Header().Get("Allow"))
	default:
		e.ResponseWriter.WriteHeader(code)
		return
	}
	e.replaced = true
	writeJSON(e.ResponseWriter, code, Error{Error: msg})
}

func (e *errorWriter) Write(p []byte) (int, error) {
	if e.replaced {
		return len(p), nil // net/http's plain-text body, replaced
	}
	return e.ResponseWriter.Write(p)
}

func (a *api) serveMetrics(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	if a.o.Metrics != nil {
		_ = a.o.Metrics(w)
	}
	a.g.writeMetrics(w)
}

func (a *api) serveReadyz(w http.ResponseWriter, _ *http.Request) {
	if a.o.Ready != nil {
		if ok, why := a.o.Ready(); !ok {
			writeText(w, http.StatusServiceUnavailable, "not ready: "+why)
			return
		}
	}
	writeText(w, http.StatusOK, "ready")
}

func (a *api) serveClients(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, infos(a.o.Directory.Clients()))
}

func (a *api) serveClient(w http.ResponseWriter, r *http.Request) {
	uid := r.PathValue("uid")
	cs := a.o.Directory.Client(uid)
	if len(cs) == 0 {
		writeJSON(w, http.StatusNotFound, Error{Error: fmt.Sprintf("no connected client has uid %q", uid)})
		return
	}
	writeJSON(w, http.StatusOK, infos(cs))
}

func (a *api) serveDisconnect(w http.ResponseWriter, r *http.Request) {
	uid := r.PathValue("uid")
	n := a.o.Directory.Disconnect(directory.Selector{UID: uid}, directory.ReasonAdmin)
	if n == 0 {
		writeJSON(w, http.StatusNotFound, Error{Error: fmt.Sprintf("no connected client has uid %q", uid)})
		return
	}
	// The audit record: who asked, for whom. The engine logs each connection.
	a.audit(r).Str("uid", uid).Int("connections", n).Msg("admin disconnect")
	writeJSON(w, http.StatusOK, DisconnectResult{UID: uid, Disconnected: n})
}

// connID parses the {id} of a /api/connections path; on failure it has
// written the error response.
func connID(w http.ResponseWriter, r *http.Request) (uint64, bool) {
	raw := r.PathValue("id")
	id, err := strconv.ParseUint(raw, 10, 64)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, Error{Error: fmt.Sprintf("connection id %q is not a number", raw)})
		return 0, false
	}
	return id, true
}

func (a *api) serveConnection(w http.ResponseWriter, r *http.Request) {
	id, ok := connID(w, r)
	if !ok {
		return
	}
	c, ok := a.o.Directory.Connection(id)
	if !ok {
		writeJSON(w, http.StatusNotFound, Error{Error: fmt.Sprintf("no open connection has id %d", id)})
		return
	}
	writeJSON(w, http.StatusOK, InfoOf(c))
}

func (a *api) serveDisconnectConnection(w http.ResponseWriter, r *http.Request) {
	id, ok := connID(w, r)
	if !ok {
		return
	}
	if a.o.Directory.Disconnect(directory.Selector{ConnID: id}, directory.ReasonAdmin) == 0 {
		writeJSON(w, http.StatusNotFound, Error{Error: fmt.Sprintf("no open connection has id %d", id)})
		return
	}
	a.audit(r).Uint64("conn", id).Msg("admin disconnect")
	writeJSON(w, http.StatusOK, ConnDisconnectResult{ID: id, Disconnected: 1})
}

// audit starts the log line that records an administrator's action: who
// asked, by address and, with client certificates, by name.
func (a *api) audit(r *http.Request) *zerolog.Event {
	ev := a.o.Log.Info().Str("admin_remote", r.RemoteAddr)
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		ev = ev.Str("admin_cn", r.TLS.PeerCertificates[0].Subject.CommonName)
	}
	if u, _, ok := r.BasicAuth(); ok {
		ev = ev.Str("admin_user", u)
	}
	return ev
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
