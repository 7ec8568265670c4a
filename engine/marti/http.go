package marti

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"cotd/engine/auth"
)

// caller is who made a request: the user the client certificate names (or
// anonymous on plain HTTP) and that user's groups.
type caller struct {
	// Name is the certificate CN; "" on plain HTTP.
	Name string
	// In are the groups the caller publishes into; Out the groups it
	// receives from.
	In, Out []string
	// Hears is Out narrowed to the user's active channels: what it may
	// read, as routing would let it hear.
	Hears []string
}

// sees reports whether the caller may read what was published into groups:
// the routing rule, a group in common with what the caller hears.
func (c *caller) sees(groups []string) bool {
	for _, g := range groups {
		if slices.Contains(c.Hears, g) {
			return true
		}
	}
	return false
}

type ctxKey struct{}

func callerOf(r *http.Request) *caller {
	c, _ := r.Context().Value(ctxKey{}).(*caller)
	return c
}

// identify maps the request to a caller, or says why it may not proceed.
func (s *Server) identify(r *http.Request) (*caller, error) {
	if r.TLS == nil {
		g := s.full.TCP.Groups
		if len(g) == 0 {
			g = []string{auth.Anon}
		}
		return &caller{In: g, Out: g}, nil
	}
	if len(r.TLS.PeerCertificates) == 0 {
		// The handshake requires a certificate; this cannot happen, but
		// a request with no identity must never read anything.
		return nil, fmt.Errorf("%w: no client certificate", ErrForbidden)
	}
	name := r.TLS.PeerCertificates[0].Subject.CommonName
	if d := s.users.Load(); d != nil {
		u, ok := d.Lookup(name)
		switch {
		case ok && u.Disabled:
			return nil, fmt.Errorf("%w: user %q disabled", ErrForbidden, name)
		case ok:
			return &caller{Name: name, In: u.In(), Out: u.Out()}, nil
		case s.full.Auth.RequireKnownUser:
			return nil, fmt.Errorf("%w: unknown user %q", ErrForbidden, name)
		}
	}
	g := s.full.TLS.Groups
	if len(g) == 0 {
		g = []string{auth.Anon}
	}
	return &caller{Name: name, In: g, Out: g}, nil
}

// Handler is the whole API, for the listeners and for tests.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	h := func(pattern string, r route, fn func(http.ResponseWriter, *http.Request)) {
		mux.Handle(pattern, s.wrap(r, fn))
	}
	h("GET /Marti/api/version", routeVersion, s.serveVersion)
	h("GET /Marti/api/version/config", routeVersionConfig, s.serveVersionConfig)
	h("GET /Marti/api/clientEndPoints", routeClientEndPoints, s.serveClientEndPoints)
	h("GET /Marti/api/groups/all", routeGroupsAll, s.serveGroupsAll)
	h("PUT /Marti/api/groups/active", routeGroupsActive, s.serveGroupsActive)
	h("PUT /Marti/api/groups/activebits", routeGroupsActiveBits, s.serveGroupsActiveBits)
	h("GET /Marti/api/groups/groupCacheEnabled", routeGroupCacheEnabled, s.serveGroupCacheEnabled)
	h("GET /Marti/api/device/profile/connection", routeProfileConnection, s.serveProfileConnection)
	h("GET /Marti/api/device/profile/tool/{tool}", routeProfileConnection, s.serveProfileTool)
	h("GET /Marti/api/contacts/all", routeContactsAll, s.serveContactsAll)
	h("GET /Marti/api/cot/xml/{uid}", routeCotXML, s.serveCotXML)
	h("GET /Marti/api/cot/xml/{uid}/all", routeCotXMLAll, s.serveCotXMLAll)
	h("GET /Marti/api/cot/sa", routeCotSA, s.serveCotSA)
	h("GET /Marti/sync/missionquery", routeMissionQuery, s.serveMissionQuery)
	h("POST /Marti/sync/missionupload", routeMissionUpload, s.serveMissionUpload)
	h("POST /Marti/sync/upload", routeSyncUpload, s.serveSyncUpload)
	h("GET /Marti/sync/content", routeContent, s.serveContent) // HEAD too: the mux maps HEAD to GET
	h("GET /Marti/sync/search", routeSearch, s.serveSearch)
	h("PUT /Marti/api/sync/metadata/{hash}/tool", routeMetadataTool, s.serveMetadataTool)
	h("GET /Marti/ExportMissionKML", routeExportKML, s.serveExportKML)
	h("POST /Marti/ExportMissionKML", routeExportKML, s.serveExportKML)
	h("GET /Marti/api/missions", routeMissions, s.serveMissions)
	h("GET /Marti/api/missions/{name}", routeMissions, s.serveMission)
	h("PUT /Marti/api/missions/{name}", routeMissions, s.serveMissionCreate)
	h("POST /Marti/api/missions/{name}", routeMissions, s.serveMissionCreate)
	h("DELETE /Marti/api/missions/{name}", routeMissions, s.serveMissionDelete)
	h("PUT /Marti/api/missions/{name}/subscription", routeMissionSubscription, s.serveMissionSubscribe)
	h("DELETE /Marti/api/missions/{name}/subscription", routeMissionSubscription, s.serveMissionUnsubscribe)
	h("GET /Marti/api/missions/{name}/subscriptions", routeMissionSubscription, s.serveMissionSubscriptions)
	h("GET /Marti/api/missions/{name}/changes", routeMissions, s.serveMissionChanges)
	h("GET /Marti/api/missions/{name}/cot", routeMissions, s.serveMissionCot)
	h("PUT /Marti/api/missions/{name}/contents", routeMissionContents, s.serveMissionAddContents)
	h("DELETE /Marti/api/missions/{name}/contents", routeMissionContents, s.serveMissionRemoveContents)
	mux.Handle("/", s.wrap(routeUnknown, func(w http.ResponseWriter, r *http.Request) {
		httpError(w, http.StatusNotFound, "no such endpoint")
	}))
	return mux
}

// wrap identifies the caller, puts progress deadlines on the body and the
// response, and counts the outcome.
func (s *Server) wrap(rt route, fn func(http.ResponseWriter, *http.Request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, rc: http.NewResponseController(w), timeout: s.cfg.BodyTimeout.Duration}
		defer func() {
			// Back to no deadline for the next request on this keep-alive
			// connection; net/http sets its own read deadlines there.
			_ = sw.rc.SetWriteDeadline(time.Time{})
			s.stats.count(rt, sw.code())
		}()
		c, err := s.identify(r)
		if err != nil {
			s.reqLog(r, nil).Warn().Err(err).Str("route", rt.String()).Msg("request refused")
			httpError(sw, http.StatusForbidden, err.Error())
			return
		}
		c.Hears = s.channels.activeOut(c)
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = &progressBody{ReadCloser: r.Body, rc: sw.rc, timeout: s.cfg.BodyTimeout.Duration}
		}
		fn(sw, r.WithContext(context.WithValue(r.Context(), ctxKey{}, c)))
	})
}

// reqLog is a logger for one request, with the caller's identity.
func (s *Server) reqLog(r *http.Request, c *caller) *zerolog.Logger {
	l := s.log.With().Str("remote", r.RemoteAddr).Str("path", r.URL.Path)
	if c == nil {
		c = callerOf(r)
	}
	if c != nil {
		l = l.Str("user", c.Name)
	}
	lg := l.Logger()
	return &lg
}

// statusWriter records the status and gives each Write a fresh deadline,
// so a client that stops reading frees the handler after timeout.
type statusWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	status  int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.timeout))
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// progressBody gives each Read of a request body a fresh deadline: an
// uploader that stalls for timeout is cut off, one that keeps sending is not.
type progressBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	timeout time.Duration
}

func (b *progressBody) Read(p []byte) (int, error) {
	_ = b.rc.SetReadDeadline(time.Now().Add(b.timeout))
	n, err := b.ReadCloser.Read(p)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		err = fmt.Errorf("%w: no body bytes for %v: %w", ErrBadRequest, b.timeout, errSlowBody)
	}
	return n, err
}

// param reads a query parameter by name, ignoring case: ATAK 4.8 sent
// clientUID, old iTAK CreatorUid.
func param(q url.Values, name string) string {
	if v, ok := q[name]; ok && len(v) > 0 {
		return v[0]
	}
	for k, v := range q {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// params reads every value of a repeatable parameter, ignoring case.
func params(q url.Values, name string) []string {
	var out []string
	for k, v := range q {
		if strings.EqualFold(k, name) {
			out = append(out, v...)
		}
	}
	return out
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, msg)
}
