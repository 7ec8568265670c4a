package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"cotd/engine/enginetest"
)

// feed is a Go WebSocket viewer of the console.
type feed struct {
	t    *testing.T
	conn *websocket.Conn
}

func (c *console) feed(t *testing.T) *feed {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), enginetest.Wait)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(c.srv.URL, "http")+"/web/ws", nil)
	if err != nil {
		t.Fatalf("dial the feed: %v", err)
	}
	conn.SetReadLimit(16 << 20)
	t.Cleanup(func() { _ = conn.CloseNow() })
	return &feed{t: t, conn: conn}
}

// next reads messages until one matches, or fails after enginetest.Wait.
func (f *feed) next(what string, match func(message) bool) message {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), enginetest.Wait)
	defer cancel()
	for {
		_, b, err := f.conn.Read(ctx)
		if err != nil {
			f.t.Fatalf("waiting for %s: %v", what, err)
		}
		var m message
		if err := json.Unmarshal(b, &m); err != nil {
			f.t.Fatalf("a message that is not JSON: %v: %s", err, b)
		}
		if match(m) {
			return m
		}
	}
}

func TestFeedFollowsAClient(t *testing.T) {
	c := startConsole(t, nil)
	f := c.feed(t)
	f.next("the first snapshot", func(m message) bool { return m.T == "snapshot" && len(m.Clients) == 0 })

	alpha := enginetest.Dial(t, c.eng.TCPAddr())
	alpha.Send(sa("ALPHA-1", "ALPHA", "Cyan", 47.6, -122.3, 214.5, 1.5))
	m := f.next("ALPHA's position", func(m message) bool { return m.T == "sa" && m.Client.UID == "ALPHA-1" })
	p := m.Client.Pos
	if p == nil || p.Lat != 47.6 || p.Lon != -122.3 || p.Team != "Cyan" || p.Course == nil || *p.Course != 214.5 ||
		p.Speed == nil || *p.Speed != 1.5 || m.Client.Callsign != "ALPHA" || len(m.Client.Trail) != 1 {
		t.Fatalf("sa %+v pos %+v", m.Client, p)
	}
	alpha.Send(sa("ALPHA-1", "ALPHA", "Cyan", 47.7, -122.2, 10, 3))
	m = f.next("ALPHA's second position", func(m message) bool { return m.T == "sa" && m.Client.Pos.Lat == 47.7 })
	if tr := m.Client.Trail; len(tr) != 2 || tr[0] != [2]float64{47.6, -122.3} || tr[1] != [2]float64{47.7, -122.2} {
		t.Errorf("trail %v", tr)
	}

	// A second viewer starts with the picture, trail included.
	g := c.feed(t)
	s := g.next("a snapshot with ALPHA", func(m message) bool { return m.T == "snapshot" })
	if len(s.Clients) != 1 || s.Clients[0].UID != "ALPHA-1" || len(s.Clients[0].Trail) != 2 || s.Clients[0].Pos.Lat != 47.7 {
		t.Fatalf("snapshot %+v", s.Clients)
	}

	_ = alpha.Conn.Close()
	f.next("ALPHA leaving", func(m message) bool { return m.T == "leave" && m.ID == s.Clients[0].ID })
}

// A browser that reads nothing loses updates, counted, and never slows
// routing: every position still reaches a TAK client at once.
func TestSlowViewerDropsAndNeverSlowsRouting(t *testing.T) {
	c := startConsole(t, func(o *Options) { o.Config.ViewerQueue = 16 })
	v := newViewer(16)
	c.web.hub.add(v) // a viewer nobody drains: the worst browser there is
	v.next(context.Background(), c.web.hub)

	alpha := enginetest.Dial(t, c.eng.TCPAddr())
	bravo := enginetest.Dial(t, c.eng.TCPAddr())
	bravo.Send(sa("BRAVO-1", "BRAVO", "Red", 1, 1, 0, 0))
	c.connID(t, "BRAVO-1")
	const n = 200
	var last string
	for i := range n {
		last = sa("ALPHA-1", "ALPHA", "Cyan", 10+float64(i)/1000, 20, 0, 0)
		alpha.Send(last)
	}
	enginetest.Eventually(t, "BRAVO received all of ALPHA's positions", func() bool {
		k := 0
		for _, ev := range bravo.Events() {
			if ev.H.UID == "ALPHA-1" {
				k++
			}
		}
		return k == n
	})
	enginetest.Eventually(t, "the viewer's drops counted", func() bool { return v.dropped.Load() > 0 })
	if !strings.Contains(c.metrics(t), "cotd_web_dropped_total ") || c.web.hub.dropped.Load() < v.dropped.Load() {
		t.Errorf("drops not exported:\n%s", c.metrics(t))
	}
	// Having lost updates, the viewer is sent the whole picture next, with
	// ALPHA where it last reported.
	enginetest.Eventually(t, "the hub processed ALPHA's last position", func() bool {
		c.web.hub.mu.Lock()
		defer c.web.hub.mu.Unlock()
		for _, tr := range c.web.hub.tracks {
			if tr.pos.Lat == 10+float64(n-1)/1000 {
				return true
			}
		}
		return false
	})
	ctx, cancel := context.WithTimeout(context.Background(), enginetest.Wait)
	defer cancel()
	var m message
	if err := json.Unmarshal(v.next(ctx, c.web.hub), &m); err != nil || m.T != "snapshot" {
		t.Fatalf("after drops the viewer got %q, %v; want a snapshot", m.T, err)
	}
	found := false
	for _, cl := range m.Clients {
		found = found || cl.UID == "ALPHA-1" && cl.Pos.Lat == 10+float64(n-1)/1000
	}
	if !found || m.Dropped == 0 {
		t.Errorf("the snapshot lacks ALPHA's last position or the drop count: %+v", m)
	}
}

// Another site's page cannot open the feed with the administrator's
// browser, and the number of browsers is bounded.
func TestFeedRefusesOtherOriginsAndTooManyViewers(t *testing.T) {
	c := startConsole(t, nil)
	url := "ws" + strings.TrimPrefix(c.srv.URL, "http") + "/web/ws"
	ctx, cancel := context.WithTimeout(context.Background(), enginetest.Wait)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"http://evil.example"}}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a feed from another origin: %v, %v", resp, err)
	}

	var feeds []*feed
	for range MaxViewers {
		f := c.feed(t)
		f.next("a snapshot", func(m message) bool { return m.T == "snapshot" })
		feeds = append(feeds, f)
	}
	_, resp, err = websocket.Dial(ctx, url, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("viewer %d: %v, %v; want 503", MaxViewers+1, resp, err)
	}
	m := c.metrics(t)
	for _, want := range []string{fmt.Sprintf("cotd_web_viewers %d", MaxViewers), `cotd_web_refused_total{reason="too_many_viewers"} 1`, `cotd_web_refused_total{reason="cross_site"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s:\n%s", want, m)
		}
	}

	// Closing the console closes every browser's socket.
	c.web.Close()
	for _, f := range feeds {
		if _, _, err := f.conn.Read(ctx); websocket.CloseStatus(err) != websocket.StatusGoingAway {
			t.Fatalf("after Close a browser's socket read %v, want going away", err)
		}
	}
}

// When the engine drops events for the console (its queue was full), the
// console cannot patch the browsers' picture: it sends every browser the
// whole picture again.
func TestLostEventsResendThePicture(t *testing.T) {
	defer func(n int) { pictureCapacity = n }(pictureCapacity)
	pictureCapacity = 4
	c := startConsole(t, nil)
	f := c.feed(t)
	f.next("the first snapshot", func(m message) bool { return m.T == updateSnapshot })

	alpha := enginetest.Dial(t, c.eng.TCPAddr())
	c.web.hub.mu.Lock() // the hub stalls: the engine's queue to it fills
	locked := true
	defer func() {
		if locked {
			c.web.hub.mu.Unlock()
		}
	}()
	const n = 40
	for i := range n {
		alpha.Send(sa("ALPHA-1", "ALPHA", "Cyan", 10+float64(i)/100, 20, 0, 0))
	}
	enginetest.Eventually(t, "the engine dropping events for the console", func() bool {
		var b strings.Builder
		_ = c.eng.Srv.WriteMetrics(&b)
		return strings.Contains(b.String(), `cotd_directory_dropped_total{subscriber="web"}`) &&
			!strings.Contains(b.String(), `cotd_directory_dropped_total{subscriber="web"} 0`)
	})
	last := 10 + float64(n-1)/100
	enginetest.Eventually(t, "the engine routing ALPHA's last SA", func() bool {
		cs := c.eng.Srv.Directory().Client("ALPHA-1")
		return len(cs) == 1 && cs[0].LastSA != nil && cs[0].LastSA.Header.Lat == last
	})
	c.web.hub.mu.Unlock()
	locked = false

	m := f.next("a fresh snapshot", func(m message) bool { return m.T == updateSnapshot })
	if len(m.Clients) != 1 || m.Clients[0].Pos == nil || m.Clients[0].Pos.Lat != last {
		t.Fatalf("the resent picture %+v; want ALPHA at %v", m.Clients, last)
	}
	if !strings.Contains(c.logs.String(), "lost events") {
		t.Errorf("the loss is not logged:\n%s", c.logs.String())
	}
}
