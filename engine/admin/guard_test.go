package admin_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"cotd/engine"
	"cotd/engine/admin"
	et "cotd/engine/enginetest"
)

// post sends a disconnect with the given headers (Host when host is set).
func post(t *testing.T, h *et.Harness, path, host string, hdr map[string]string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+h.Srv.AdminAddr().String()+path, strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if host != "" {
		req.Host = host
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

// With no admin auth (the default, on loopback), a web page on another
// site must not be able to disconnect anyone: a form post (text/plain), a
// foreign Origin and a rebinding Host are refused; the API's own callers
// (JSON, or the X-Cotd-Request header) are served.
func TestAdminRefusesCrossSitePosts(t *testing.T) {
	h := et.Start(t, nil)
	joinAs(t, h, "A", "ALPHA")
	joinAs(t, h, "B", "BRAVO")
	for _, c := range []struct {
		what, host string
		hdr        map[string]string
	}{
		{"a form post", "", map[string]string{"Content-Type": "text/plain"}},
		{"no content type", "", nil},
		{"a foreign Origin", "", map[string]string{"Content-Type": "application/json", "Origin": "http://evil.example"}},
		{"a rebinding Host", "evil.example:8088", map[string]string{"Content-Type": "application/json"}},
	} {
		if code := post(t, h, "/api/clients/A/disconnect", c.host, c.hdr); code != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", c.what, code)
		}
	}
	if len(h.Srv.Directory().Client("A")) != 1 {
		t.Fatal("a cross-site post disconnected the client")
	}
	h.WaitSample(t, `cotd_admin_refused_total{reason="cross_site"}`, 3)
	h.WaitSample(t, `cotd_admin_refused_total{reason="host"}`, 1)

	admin := h.Srv.AdminAddr().String()
	if code := post(t, h, "/api/clients/A/disconnect", "", map[string]string{"Content-Type": "application/json", "Origin": "http://" + admin}); code != http.StatusOK {
		t.Errorf("a same-origin JSON post: %d", code)
	}
	if code := post(t, h, "/api/clients/B/disconnect", "", map[string]string{adminRequestHeader: "1"}); code != http.StatusOK {
		t.Errorf("a post with %s: %d", adminRequestHeader, code)
	}
	et.Eventually(t, "both disconnected", func() bool {
		return len(h.Srv.Directory().Client("A")) == 0 && len(h.Srv.Directory().Client("B")) == 0
	})
}

const adminRequestHeader = admin.RequestHeader

// Verified credentials are cached (one check for many requests); a source
// that keeps failing gets 429 without a check.
func TestAdminBasicAuthCachedAndRateLimited(t *testing.T) {
	var checks atomic.Int64
	srv := httptest.NewServer(admin.New(admin.Options{
		Metrics:   func(w io.Writer) error { _, err := io.WriteString(w, "x 1\n"); return err },
		Authorize: func(u, p string) bool { checks.Add(1); return u == "ops" && p == "right" },
	}))
	defer srv.Close()
	get := func(user, pw string) int {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/metrics", nil)
		req.SetBasicAuth(user, pw)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	for range 10 {
		if code := get("ops", "right"); code != http.StatusOK {
			t.Fatalf("right credentials: %d", code)
		}
	}
	if n := checks.Load(); n != 1 {
		t.Errorf("%d checks for ten requests with the same credentials, want 1", n)
	}
	codes := map[int]int{}
	start := time.Now()
	for range 100 {
		codes[get("ops", "wrong")]++
	}
	if codes[http.StatusTooManyRequests] == 0 || codes[http.StatusUnauthorized] == 0 {
		t.Errorf("100 wrong passwords: %v, want 401s then 429s", codes)
	}
	// A burst of 32, and one more per second the loop took.
	if n, most := checks.Load()-1, 32+int64(time.Since(start)/time.Second)+1; n > most {
		t.Errorf("%d checks for 100 wrong passwords from one source, want at most %d", n, most)
	}
}

// The console checks its posts' content type and Origin itself; a page that
// rebinds its own name to this address passes both, so the admin guard
// refuses a console post for a foreign Host before the console sees it.
func TestConsolePostsRefuseARebindingHost(t *testing.T) {
	var reached atomic.Int64
	h := et.StartWith(t, et.Options{
		Console: func(*engine.Server) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached.Add(1) })
		},
	})
	json := map[string]string{"Content-Type": "application/json"}
	if code := post(t, h, "/web/api/disconnect", "evil.example:8088", json); code != http.StatusForbidden {
		t.Errorf("a rebinding Host: %d, want 403", code)
	}
	h.WaitSample(t, `cotd_admin_refused_total{reason="host"}`, 1)
	if n := reached.Load(); n != 0 {
		t.Fatalf("the console saw %d refused posts", n)
	}
	if code := post(t, h, "/web/api/disconnect", "", json); code != http.StatusOK || reached.Load() != 1 {
		t.Errorf("a post for this server's address: %d, console reached %d times", code, reached.Load())
	}
}
