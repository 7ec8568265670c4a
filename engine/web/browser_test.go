package web

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"cotd/configs"
	"cotd/cot"
	"cotd/engine/auth"
	"cotd/engine/enginetest"
)

// chromium finds Debian's chromium (or COTD_CHROMIUM). CI installs it
// (.ci/run) and sets COTD_REQUIRE_BROWSER, so there a missing browser
// fails instead of skipping.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("COTD_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("COTD_REQUIRE_BROWSER") != "" {
		t.Fatal("no chromium found and COTD_REQUIRE_BROWSER is set (apt-get install chromium)")
	}
	t.Skip("no chromium installed (apt-get install chromium); set COTD_CHROMIUM to use another")
	return ""
}

// browserLog records what the page must never produce: console errors,
// uncaught exceptions, failed loads, and requests to anywhere but cotd.
type browserLog struct {
	mu       sync.Mutex
	problems []string
}

func (b *browserLog) add(format string, a ...any) {
	b.mu.Lock()
	b.problems = append(b.problems, fmt.Sprintf(format, a...))
	b.mu.Unlock()
}

func (b *browserLog) check(t *testing.T, when string) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		t.Errorf("%s: %s", when, p)
	}
	b.problems = nil
}

// startBrowser runs a headless chromium with a fresh profile and none of
// its background traffic (the machine may have no network), watching the
// page for problems.
func startBrowser(t *testing.T, origin string, others ...string) (context.Context, *browserLog) {
	t.Helper()
	path := chromium(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1200),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	tctx, cancelTab := chromedp.NewContext(actx)
	// Bounds a failure, not a measurement: the browser lives as long as
	// this context, and the whole test takes seconds when it passes.
	ctx, cancelRun := context.WithTimeout(tctx, 2*time.Minute)
	done := make(chan struct{}, 3)
	t.Cleanup(func() {
		cancelRun()
		cancelTab()
		cancelAlloc()
		for range 3 {
			<-done
		}
	})

	log := &browserLog{}
	// Subscribe before the first navigation, so that nothing is missed.
	console := chromedp.Console(ctx)
	requests := chromedp.Events(ctx, network.RequestWillBeSent)
	failures := chromedp.Events(ctx, network.LoadingFailed)
	allowed := func(u string) bool {
		for _, o := range append([]string{origin, "ws" + strings.TrimPrefix(origin, "http"), "data:"}, others...) {
			if u == o || strings.HasPrefix(u, strings.TrimSuffix(o, ":")+"/") || o == "data:" && strings.HasPrefix(u, o) {
				return true
			}
		}
		return false
	}
	go func() {
		defer func() { done <- struct{}{} }()
		for m, err := range console {
			if err != nil {
				return
			}
			switch m.Type {
			case chromedp.ConsoleError, chromedp.ConsoleWarning, chromedp.ConsoleException:
				log.add("console %s", m)
			}
		}
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		for ev, err := range requests {
			if err != nil {
				return
			}
			if u := ev.Request.URL; !allowed(u) {
				log.add("request to %s: nothing may leave cotd but for the configured tiles", u)
			}
		}
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		for ev, err := range failures {
			if err != nil {
				return
			}
			log.add("load failed: %s %s", ev.ErrorText, ev.BlockedReason)
		}
	}()
	return context.WithValue(ctx, browserLogKey{}, log), log
}

// waitJS polls a JavaScript expression in the page until it is true. On
// failure it reports what the page complained of, which usually says why.
func waitJS(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(enginetest.Wait))); err != nil {
		if l, ok := ctx.Value(browserLogKey{}).(*browserLog); ok {
			l.check(t, "the page")
		}
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

type browserLogKey struct{}

// do runs browser steps or fails the test.
func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}

func screenshotDir(t *testing.T) string {
	if d := os.Getenv("COTD_SCREENSHOT_DIR"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// TestBrowser drives the console in a real browser against a real engine:
// the page loads clean, a TAK client appears on the map and in the table,
// its SA moves its marker, a chat typed in the page reaches a TAK client,
// and disconnect in the table closes the client.
func TestBrowser(t *testing.T) {
	c := startConsole(t, func(o *Options) {
		o.Config.History.Duration = time.Minute
		o.SampleEvery = 200 * time.Millisecond // charts to look at within the test
	})
	ctx, blog := startBrowser(t, c.url)

	do(t, ctx, chromedp.Navigate(c.url+"/"))
	waitJS(t, ctx, "the feed to be live", `document.body.dataset.live === "true"`)
	waitJS(t, ctx, "the plain grid", `document.querySelectorAll("#map canvas.leaflet-tile").length > 0`)
	waitJS(t, ctx, "the users and groups", `document.querySelector('#users tr[data-user="alice"]') !== null && document.querySelector('#groups tr[data-group="Red"]') !== null`)
	waitJS(t, ctx, "the data packages", `document.querySelector('#files tr[data-file="pkg1"] a[href="/web/api/files/pkg1"]') !== null`)
	waitJS(t, ctx, "a chart point", `Number(document.getElementById("chart-connections").dataset.points) >= 1`)
	blog.check(t, "page load")

	// A TAK client connects and reports.
	alpha := enginetest.Dial(t, c.eng.TCPAddr())
	start := time.Now()
	alpha.Send(sa("ALPHA-1", "ALPHA", "Cyan", 47.6205, -122.3493, 90, 5))
	marker := `document.querySelector('#map .unit[data-uid="ALPHA-1"]')`
	waitJS(t, ctx, "ALPHA on the map", marker+` !== null && `+marker+`.dataset.lat === "47.6205" && `+marker+`.dataset.team === "Cyan"`)
	waitJS(t, ctx, "ALPHA in the table", `document.querySelector('#clients tr[data-uid="ALPHA-1"]') !== null`)
	t.Logf("ALPHA on the map and in the table %v after its SA was sent", time.Since(start).Round(time.Millisecond))
	row := eval[string](t, ctx, `document.querySelector('#clients tr[data-uid="ALPHA-1"]').innerText`)
	for _, want := range []string{"ALPHA", "ALPHA-1", "anonymous", "__ANON__", "127.0.0.1:", "tcp", "xml"} {
		if !strings.Contains(row, want) {
			t.Errorf("table row %q lacks %q", row, want)
		}
	}
	if label := eval[string](t, ctx, marker+`.querySelector(".label").textContent`); label != "ALPHA" {
		t.Errorf("marker label %q, want the callsign", label)
	}
	if rot := eval[string](t, ctx, marker+`.querySelector("path").getAttribute("transform")`); rot != "rotate(90)" {
		t.Errorf("the arrow is not turned along the course: %q", rot)
	}
	if colour := eval[string](t, ctx, marker+`.querySelector("path").getAttribute("fill")`); colour != "#00bcd4" {
		t.Errorf("team Cyan drawn in %q", colour)
	}
	// Its popup tells course and speed.
	do(t, ctx, chromedp.Click(chromedp.CSS(`#map .unit[data-uid="ALPHA-1"]`)))
	waitJS(t, ctx, "ALPHA's popup", `document.querySelector("#map .leaflet-popup-content") !== null`)
	popup := eval[string](t, ctx, `document.querySelector("#map .leaflet-popup-content").innerText`)
	for _, want := range []string{"ALPHA-1", "Cyan / Team Member", "a-f-G-U-C", "47.62050, -122.34930", "90°", "5.0 m/s (18.0 km/h)"} {
		if !strings.Contains(popup, want) {
			t.Errorf("popup %q lacks %q", popup, want)
		}
	}
	do(t, ctx, chromedp.Click(chromedp.CSS(`#map .leaflet-popup-close-button`)))
	transform := marker + `.closest(".leaflet-marker-icon").style.transform`
	before := eval[string](t, ctx, transform)

	// Its next SA moves the marker (and draws a trail).
	alpha.Send(sa("ALPHA-1", "ALPHA", "Cyan", 47.6305, -122.3393, 45, 6))
	waitJS(t, ctx, "ALPHA's marker moved", marker+` !== null && `+marker+`.dataset.lat === "47.6305" && `+marker+`.dataset.lon === "-122.3393"`)
	if after := eval[string](t, ctx, transform); after == before {
		t.Errorf("the marker did not move on screen: transform %q before and after", before)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll("#map .leaflet-overlay-pane path").length`); n < 1 {
		t.Error("no trail drawn")
	}

	// A chat typed in the page reaches a TAK client.
	bravo := enginetest.Dial(t, c.eng.TCPAddr())
	bravo.Send(sa("BRAVO-1", "BRAVO", "Red", 47.615, -122.36, 270, 1))
	waitJS(t, ctx, "BRAVO in the chat's contacts", `[...document.querySelectorAll("#chat-to option")].some(o => o.value === "BRAVO")`)
	do(t, ctx,
		chromedp.SetValue(chromedp.CSS(`#chat-to`), "BRAVO"),
		chromedp.SendKeys(chromedp.CSS(`#chat-text`), "Meet at the north gate"),
		chromedp.Click(chromedp.CSS(`#chat-send`)),
	)
	got := bravo.Expect("the chat typed in the page", func(h *cot.Header) bool { return h.Type == cot.TypeChat })
	if ch, err := readChat(got.Raw); err != nil || ch.Text != "Meet at the north gate" || ch.Room != "BRAVO" {
		t.Errorf("BRAVO got %+v, %v", ch, err)
	}
	waitJS(t, ctx, "the text box cleared", `document.getElementById("chat-text").value === ""`)
	do(t, ctx,
		chromedp.SetValue(chromedp.CSS(`#chat-to`), AllChatRooms),
		chromedp.SendKeys(chromedp.CSS(`#chat-text`), "All units, radio check"),
		chromedp.Click(chromedp.CSS(`#chat-send`)),
	)
	got = alpha.Expect("the chat to All Chat Rooms", func(h *cot.Header) bool { return h.Type == cot.TypeChat })
	if ch, _ := readChat(got.Raw); ch.Text != "All units, radio check" || ch.Room != AllChatRooms {
		t.Errorf("ALPHA got %+v", ch)
	}
	waitJS(t, ctx, "the chats in the page's log", `document.querySelectorAll("#chat-log li").length === 2 && document.getElementById("chat-log").textContent.includes("radio check")`)
	waitJS(t, ctx, "BRAVO on the map", `document.querySelector('#map .unit[data-uid="BRAVO-1"]') !== null`)

	// The charts have sampled the two clients and their traffic.
	waitJS(t, ctx, "the connections chart at 2", `document.getElementById("value-connections").textContent.startsWith("now 2")`)
	waitJS(t, ctx, "deliveries charted", `!document.getElementById("value-deliveries").textContent.includes("max n/a")`)
	shotPNG, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(screenshotDir(t), "console.png")
	if err := os.WriteFile(shot, shotPNG, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", shot)

	// Disconnect from the table: the first click arms the button, the
	// second closes ALPHA's connection. Each click finds the button and
	// clicks it in one step inside the page: live updates re-render the
	// table, so a node found by one DevTools call may be gone by the next.
	button := `#clients tr[data-uid="ALPHA-1"] button[data-action="disconnect"]`
	click := `(() => { const b = document.querySelector('` + button + `'); if (b) b.click(); return b !== null })()`
	if !eval[bool](t, ctx, click) {
		t.Fatal("no disconnect button for ALPHA")
	}
	waitJS(t, ctx, "the armed button", `document.querySelector('`+button+`.confirm') !== null`)
	if _, ok := c.eng.Srv.Directory().Connection(c.connID(t, "ALPHA-1")); !ok {
		t.Fatal("the first click disconnected ALPHA")
	}
	if !eval[bool](t, ctx, click) {
		t.Fatal("the disconnect button for ALPHA went away")
	}
	alpha.Closed()
	waitJS(t, ctx, "ALPHA gone from the map and the table", marker+` === null && document.querySelector('#clients tr[data-uid="ALPHA-1"]') === null`)
	if !eval[bool](t, ctx, `document.querySelector('#clients tr[data-uid="BRAVO-1"]') !== null`) {
		t.Error("BRAVO left the table too")
	}
	blog.check(t, "after the session")
}

// wsAuth sits between the admin listener's auth and the console, and
// records whether the WebSocket handshake that reached the console carried
// the credentials.
type wsAuth struct {
	next     http.Handler
	wsAuthed atomic.Bool
}

func (b *wsAuth) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if u, _, ok := r.BasicAuth(); ok && u == "ops" && r.URL.Path == "/web/ws" {
		b.wsAuthed.Store(true)
	}
	b.next.ServeHTTP(w, r)
}

// TestBrowserBehindBasicAuth: behind the admin listener's basic auth, the
// credentials an operator types once cover the page, its API calls and the
// live feed's WebSocket (which a browser sends from its auth cache). The
// map draws tiles from the configured template (a local tile server here).
func TestBrowserBehindBasicAuth(t *testing.T) {
	var tiles atomic.Int64
	tileSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tiles.Add(1)
		w.Header().Set("Content-Type", "image/png")
		_, _ = w.Write(onePixelPNG)
	}))
	t.Cleanup(tileSrv.Close)
	hash, err := auth.HashPassword("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	var guard *wsAuth
	c := startConsoleWith(t, func(cfg *configs.Config) { cfg.Admin.BasicUser, cfg.Admin.BasicPasswordHash = "ops", hash },
		func(o *Options) { o.Config.Tiles = tileSrv.URL + "/tiles/{z}/{x}/{y}.png" },
		func(h http.Handler) http.Handler { guard = &wsAuth{next: h}; return guard })
	ctx, blog := startBrowser(t, c.url, tileSrv.URL+"/tiles")

	// The operator answers the browser's credentials prompt; every other
	// request goes on untouched.
	ictx, stop := context.WithCancel(ctx)
	paused := chromedp.Events(ictx, fetch.RequestPaused)
	challenges := chromedp.Events(ictx, fetch.AuthRequired)
	var challenged atomic.Int64
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	wg.Add(2)
	go func() {
		defer wg.Done()
		for ev, err := range paused {
			if err != nil {
				return
			}
			_, _ = chromedp.Call(ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
		}
	}()
	go func() {
		defer wg.Done()
		for ev, err := range challenges {
			if err != nil {
				return
			}
			challenged.Add(1)
			_, _ = chromedp.Call(ctx, fetch.ContinueWithAuth, fetch.ContinueWithAuthParams{RequestID: ev.RequestID,
				AuthChallengeResponse: &fetch.AuthChallengeResponse{Response: fetch.AuthChallengeResponseResponseProvideCredentials, Username: "ops", Password: "s3cret"}})
		}
	}()
	handle := true
	if _, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{HandleAuthRequests: &handle}); err != nil {
		t.Fatal(err)
	}

	do(t, ctx, chromedp.Navigate(c.url+"/"))
	waitJS(t, ctx, "the feed to be live", `document.body.dataset.live === "true"`)
	alpha := enginetest.Dial(t, c.eng.TCPAddr())
	alpha.Send(sa("ALPHA-1", "ALPHA", "Cyan", 47.6205, -122.3493, 90, 5))
	waitJS(t, ctx, "ALPHA on the map", `document.querySelector('#map .unit[data-uid="ALPHA-1"]') !== null`)
	waitJS(t, ctx, "tiles from the template", `document.querySelectorAll('#map img.leaflet-tile[src^="`+tileSrv.URL+`/tiles/"]').length > 0`)
	if tiles.Load() == 0 {
		t.Error("the tile server saw no request")
	}

	// A state-changing request goes with the cached credentials too.
	waitJS(t, ctx, "ALPHA in the chat's contacts", `[...document.querySelectorAll("#chat-to option")].some(o => o.value === "ALPHA")`)
	do(t, ctx,
		chromedp.SetValue(chromedp.CSS(`#chat-to`), "ALPHA"),
		chromedp.SendKeys(chromedp.CSS(`#chat-text`), "behind the auth"),
		chromedp.Click(chromedp.CSS(`#chat-send`)),
	)
	got := alpha.Expect("the chat typed in the page", func(h *cot.Header) bool { return h.Type == cot.TypeChat })
	if ch, err := readChat(got.Raw); err != nil || ch.Text != "behind the auth" {
		t.Errorf("ALPHA got %+v, %v", ch, err)
	}
	if !guard.wsAuthed.Load() || challenged.Load() == 0 {
		t.Errorf("the WebSocket carried credentials: %v; challenges answered: %d", guard.wsAuthed.Load(), challenged.Load())
	}
	blog.check(t, "behind basic auth")
	_, _ = chromedp.Call(ctx, fetch.Disable, cdp.Empty{})
}

// onePixelPNG is a map tile as far as the browser is concerned.
var onePixelPNG = func() []byte {
	var b bytes.Buffer
	img := image.NewNRGBA(image.Rect(0, 0, 1, 1))
	img.Set(0, 0, color.NRGBA{R: 0xe0, G: 0xe8, B: 0xd8, A: 0xff})
	_ = png.Encode(&b, img)
	return b.Bytes()
}()
