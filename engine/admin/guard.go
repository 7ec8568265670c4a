package admin

import (
	"crypto/sha256"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// RequestHeader is the custom header that, like a JSON content type, marks
// a state-changing request as not cross-site: a browser sends neither
// from another site without a CORS preflight, which this API never
// grants.
const RequestHeader = "X-Cotd-Request"

// Refusal says why the guard refused a request.
type Refusal uint8

// The refusals, counted in cotd_admin_refused_total.
const (
	// RefusedCrossSite: a state-changing request without a JSON content
	// type or RequestHeader, or whose Origin is not the Host.
	RefusedCrossSite Refusal = iota
	// RefusedHost: a state-changing request for a Host name that is not
	// an IP address, localhost or one of Options.Hosts (DNS rebinding).
	RefusedHost
	// RefusedAuthRate: the source failed basic auth too often lately.
	RefusedAuthRate
	// RefusedAuth: wrong or missing credentials.
	RefusedAuth
	numRefusals
)

var refusalNames = [numRefusals]string{"cross_site", "host", "auth_rate", "auth"}

func (r Refusal) String() string {
	if r < numRefusals {
		return refusalNames[r]
	}
	return "unknown"
}

type guard struct {
	hosts   map[string]bool
	refused [numRefusals]atomic.Uint64

	mu sync.Mutex
	// good caches verified credentials (a digest of user and password)
	// until their expiry: bcrypt runs once per credentialTTL, not per
	// request.
	good map[[32]byte]time.Time
	// fails are failed basic-auth attempts per source address.
	fails map[string]*failBucket
	// checks admits one bcrypt check at a time: wrong passwords in
	// parallel from many sources cost one core, not all of them.
	checks chan struct{}
}

// failBucket lets a source fail authBurst times, then once per
// authRefill.
type failBucket struct {
	tokens float64
	last   time.Time
}

const (
	credentialTTL = time.Minute
	maxGood       = 64
	authBurst     = 32
	authRefill    = time.Second
	maxFailKeys   = 10000
)

func newGuard(hosts []string) *guard {
	g := &guard{hosts: map[string]bool{}, good: map[[32]byte]time.Time{}, fails: map[string]*failBucket{},
		checks: make(chan struct{}, 1)}
	for _, h := range hosts {
		g.hosts[strings.ToLower(h)] = true
	}
	return g
}

func (g *guard) refuse(w http.ResponseWriter, r Refusal, code int, msg string) {
	g.refused[r].Add(1)
	if r == RefusedAuth || r == RefusedAuthRate {
		w.Header().Set("WWW-Authenticate", `Basic realm="cotd admin", charset="UTF-8"`)
	}
	writeJSON(w, code, Error{Error: msg})
}

// sameSite refuses a state-changing request a web page on another site
// could have made: without a JSON content type or RequestHeader (both
// need a CORS preflight cross-site), with an Origin that is not the Host,
// or for a Host name an attacker's DNS could point here.
// A request no route takes goes on to its 404 or 405.
func (g *guard) sameSite(mux *http.ServeMux, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			next.ServeHTTP(w, r)
			return
		}
		if _, pattern := mux.Handler(r); pattern == "" {
			next.ServeHTTP(w, r)
			return
		}
		mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if mt != "application/json" && r.Header.Get(RequestHeader) == "" {
			g.refuse(w, RefusedCrossSite, http.StatusForbidden,
				fmt.Sprintf("a %s needs Content-Type: application/json or an %s header", r.Method, RequestHeader))
			return
		}
		if o := r.Header.Get("Origin"); o != "" {
			u, err := url.Parse(o)
			if err != nil || !strings.EqualFold(u.Host, r.Host) {
				g.refuse(w, RefusedCrossSite, http.StatusForbidden, "Origin "+o+" is not this server")
				return
			}
		}
		if !g.hostOK(r.Host) {
			g.refuse(w, RefusedHost, http.StatusForbidden, hostRefusal(r.Host))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// hostGuard refuses the console's state-changing requests for a Host name
// an attacker's DNS could point here: the console checks their content
// type and Origin itself (web.stateChanging), but a page that rebinds its
// own name to this address passes both, and with no auth on loopback (the
// default) could then post chats and disconnects.
func (g *guard) hostGuard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
		default:
			if !g.hostOK(r.Host) {
				g.refuse(w, RefusedHost, http.StatusForbidden, hostRefusal(r.Host))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func hostRefusal(host string) string {
	return "Host " + host + " is not an address of this server (admin.allowed_hosts)"
}

func (g *guard) hostOK(hostport string) bool {
	h := hostport
	if hh, _, err := net.SplitHostPort(hostport); err == nil {
		h = hh
	}
	h = strings.ToLower(strings.Trim(h, "[]"))
	return net.ParseIP(h) != nil || h == "localhost" || g.hosts[h]
}

// basicAuth lets through requests whose credentials ok accepts. Verified
// credentials are cached for credentialTTL; checks run one at a time; a
// source that failed more than authBurst times lately is answered 429
// without a check until its bucket refills (one more a second). Wrong
// passwords in parallel cannot keep bcrypt on every core.
func (g *guard) basicAuth(ok func(user, password string) bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, has := r.BasicAuth()
		if !has {
			g.refuse(w, RefusedAuth, http.StatusUnauthorized, "unauthorized")
			return
		}
		key := sha256.Sum256([]byte(u + "\x00" + p))
		now := time.Now()
		src := r.RemoteAddr
		if h, _, err := net.SplitHostPort(src); err == nil {
			src = h
		}
		g.mu.Lock()
		exp, cached := g.good[key]
		cached = cached && now.Before(exp)
		b := g.fails[src]
		if b != nil {
			b.tokens = min(b.tokens+now.Sub(b.last).Seconds()/authRefill.Seconds(), authBurst)
			b.last = now
		}
		limited := !cached && b != nil && b.tokens < 1
		g.mu.Unlock()
		switch {
		case cached:
			next.ServeHTTP(w, r)
			return
		case limited:
			w.Header().Set("Retry-After", fmt.Sprint(int(authRefill.Seconds())))
			g.refuse(w, RefusedAuthRate, http.StatusTooManyRequests, "too many failed logins from this address; try later")
			return
		}
		g.checks <- struct{}{}
		good := ok(u, p)
		<-g.checks
		g.mu.Lock()
		if good {
			if len(g.good) >= maxGood {
				clear(g.good)
			}
			g.good[key] = now.Add(credentialTTL)
		} else {
			if b = g.fails[src]; b == nil {
				if len(g.fails) >= maxFailKeys {
					clear(g.fails)
				}
				b = &failBucket{tokens: authBurst, last: now}
				g.fails[src] = b
			}
			b.tokens--
		}
		g.mu.Unlock()
		if !good {
			g.refuse(w, RefusedAuth, http.StatusUnauthorized, "unauthorized")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// writeMetrics appends the guard's counters to /metrics.
func (g *guard) writeMetrics(w io.Writer) {
	fmt.Fprintf(w, "# HELP cotd_admin_refused_total Admin API requests refused, by reason.\n# TYPE cotd_admin_refused_total counter\n")
	for r := range numRefusals {
		fmt.Fprintf(w, "cotd_admin_refused_total{reason=%q} %d\n", r.String(), g.refused[r].Load())
	}
}
