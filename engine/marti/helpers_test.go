package marti_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"cotd/configs"
	"cotd/cot"
	"cotd/engine/directory"
	et "cotd/engine/enginetest"
	"cotd/engine/marti"
	"cotd/engine/store"
	"cotd/tlsstate/pki"
)

// usersFile: alice hears Blue and HQ, bob Blue, carol Red, dave HQ.
const usersFile = `
[[user]]
name = "alice"
groups = ["Blue", "HQ"]
[[user]]
name = "bob"
groups = ["Blue"]
[[user]]
name = "carol"
groups = ["Red"]
[[user]]
name = "dave"
groups = ["HQ"]
`

// world is a real engine with a TLS listener and a real Marti server on
// the same PKI and users file, both on kernel-chosen loopback ports.
type world struct {
	t     testing.TB
	pki   *et.PKI
	h     *et.Harness
	m     *marti.Server
	base  string // https://127.0.0.1:port
	files string // files_dir
	logs  *et.SyncBuffer
}

// backend says where a world keeps history and file metadata.
type backend string

const (
	inMemory backend = "memory" // JSON sidecars and in-memory history
	inSQLite backend = "sqlite" // engine/store on SQLite, fed from the engine
)

// eachBackend runs a test once per backend.
func eachBackend(t *testing.T, test func(t *testing.T, b backend)) {
	for _, b := range []backend{inMemory, inSQLite} {
		t.Run(string(b), func(t *testing.T) { test(t, b) })
	}
}

func newWorld(t testing.TB, mutate func(*configs.Config)) *world {
	t.Helper()
	return newWorldOn(t, inMemory, mutate)
}

func newWorldOn(t testing.TB, b backend, mutate func(*configs.Config)) *world {
	t.Helper()
	p := et.NewPKI(t, pki.KeyECDSAP256)
	dir := t.TempDir()
	users := filepath.Join(dir, "users.toml")
	if err := os.WriteFile(users, []byte(usersFile), 0o600); err != nil {
		t.Fatal(err)
	}
	h := et.StartTLS(t, p, func(c *configs.Config) { c.Auth.UsersFile = users })
	cfg := *h.Cfg
	cfg.Marti.HTTPSAddr = "127.0.0.1:0"
	cfg.Marti.FilesDir = filepath.Join(dir, "files")
	if mutate != nil {
		mutate(&cfg)
	}
	logs := &et.SyncBuffer{}
	var lw io.Writer = logs
	if os.Getenv("COTD_TEST_LOG") != "" {
		lw = io.MultiWriter(logs, os.Stderr)
	}
	opts := marti.Options{Config: &cfg, Dir: h.Srv.Directory(), Log: zerolog.New(lw), Version: "test"}
	if b == inSQLite {
		sc := cfg.Store
		sc.Path = filepath.Join(dir, "cotd.db")
		st, err := store.Open(context.Background(), sc, store.Options{Log: zerolog.New(lw)})
		if err != nil {
			t.Fatalf("store.Open: %v", err)
		}
		feedCtx, stopFeed := context.WithCancel(context.Background())
		fed := make(chan struct{})
		sub := h.Srv.Directory().Subscribe("test-store-feed", directory.AllKinds, 4096)
		go func() { defer close(fed); feedStore(feedCtx, sub, st) }()
		t.Cleanup(func() {
			stopFeed()
			<-fed
			_ = st.Close(context.Background())
		})
		opts.Store = st
	}
	m, err := marti.New(opts)
	if err != nil {
		t.Fatalf("marti.New: %v", err)
	}
	h.Srv.AddMetrics(m.WriteMetrics)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	select {
	case <-m.Ready():
	case err := <-done:
		t.Fatalf("marti did not start: %v", err)
	case <-time.After(et.Wait):
		t.Fatal("marti did not become ready")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("marti.Run: %v", err)
		}
	})
	return &world{t: t, pki: p, h: h, m: m, base: "https://" + m.HTTPSAddr().String(), files: cfg.Marti.FilesDir, logs: logs}
}

// http returns an HTTPS client presenting a certificate for cn.
func (w *world) http(cn string) *http.Client {
	return &http.Client{Timeout: 2 * et.Wait, Transport: &http.Transport{TLSClientConfig: w.pki.Client(w.t, cn)}}
}

// device connects a streaming client as user cn and sends its SA, then
// waits until the engine knows the device.
func (w *world) device(cn, uid, callsign string) *et.Client {
	w.t.Helper()
	c := et.DialTLS(w.t, w.h.TLSAddr(), w.pki.Client(w.t, cn))
	c.Send(et.SA(uid, callsign, "a-f-G-U-C"))
	dir := w.h.Srv.Directory()
	et.Eventually(w.t, uid+" known", func() bool {
		cl := dir.Client(uid)
		return len(cl) > 0 && cl[0].Callsign == callsign && cl[0].Identity == cn
	})
	return c
}

// do sends a request and returns status, body and headers.
func do(t testing.TB, c *http.Client, method, url, ctype string, body io.Reader) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return resp.StatusCode, b, resp.Header
}

// multipartBody is commo's missionupload body: one part named assetfile.
func multipartBody(t testing.TB, field, filename, ctype string, data []byte) (string, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	hdr := textproto.MIMEHeader{}
	hdr.Set("Content-Disposition", fmt.Sprintf(`form-data; name="%s"; filename="%s"`, field, filename))
	hdr.Set("Content-Type", ctype)
	pw, err := mw.CreatePart(hdr)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = pw.Write(data)
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return mw.FormDataContentType(), &buf
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// fileShare is the b-f-t-r commo sends to a contact after the upload.
func fileShare(uid, url, hash, senderUID, to string, size int) string {
	now := time.Now().UTC()
	return fmt.Sprintf(`<event version="2.0" uid="%s" type="b-f-t-r" how="h-e" time="%s" start="%s" stale="%s">`+
		`<point lat="35.1" lon="-97.2" hae="300" ce="9.9" le="9999999"/><detail>`+
		`<fileshare filename="MP.zip" senderUrl="%s" sizeInBytes="%d" sha256="%s" senderUid="%s" senderCallsign="ALPHA" name="MP"/>`+
		`<ackrequest uid="%s" ackrequested="true" tag="MP"/><marti><dest callsign="%s"/></marti></detail></event>`,
		uid, cot.FormatTime(now), cot.FormatTime(now), cot.FormatTime(now.Add(10*time.Second)),
		url, size, hash, senderUID, uid, to)
}

// fileAck is the receiver's b-f-t-a back to the sender.
func fileAck(uid, ackUID, receiverUID, hash, senderUID string) string {
	now := time.Now().UTC()
	return fmt.Sprintf(`<event version="2.0" uid="%s" type="b-f-t-a" how="m-g" time="%s" start="%s" stale="%s">`+
		`<point lat="0" lon="0" hae="0" ce="9999999" le="9999999"/><detail>`+
		`<ackresponse uid="%s" senderUid="%s" success="true" tag="MP" reason="" sha256="%s"/>`+
		`<marti><dest uid="%s"/></marti></detail></event>`,
		uid, cot.FormatTime(now), cot.FormatTime(now), cot.FormatTime(now.Add(10*time.Second)), ackUID, receiverUID, hash, senderUID)
}

var senderURLRe = regexp.MustCompile(`senderUrl="([^"]+)"`)

// pingBarrier: the pong comes back after the loop handled everything the
// client sent before, and after everything queued for it before.
func pingBarrier(c *et.Client, uid string) {
	c.Send(et.Ping(uid))
	c.Expect("pong", et.Type(cot.TypePong))
}

// feedStore archives what the engine routes and records connects and
// disconnects, as the process's store feed does; a test stand-in for it,
// so that Marti's store-backed queries run on real data.
func feedStore(ctx context.Context, sub directory.Subscription, st store.Store) {
	defer sub.Close()
	known := map[uint64]bool{}
	for {
		var ev directory.Event
		select {
		case <-ctx.Done():
			return
		case ev = <-sub.C():
		}
		c := ev.Client
		switch ev.Kind {
		case directory.SA, directory.Routed:
			m := ev.Message
			_ = st.Archive(m.XML, m.Recv, store.Sender{UID: c.UID, Callsign: c.Callsign, User: c.Identity, Groups: c.In})
			if ev.Kind == directory.SA && !known[c.ConnID] && c.UID != "" {
				known[c.ConnID] = true
				st.RecordConn(store.ConnRecord{Status: store.StatusConnected, UID: c.UID, Callsign: c.Callsign, User: c.Identity,
					Team: m.Header.GroupName, Role: m.Header.GroupRole, Groups: c.In, Listener: c.Listener, Time: ev.At})
			}
		case directory.Leave:
			if c.UID != "" {
				st.RecordConn(store.ConnRecord{Status: store.StatusDisconnected, UID: c.UID, Callsign: c.Callsign, User: c.Identity,
					Groups: c.In, Listener: c.Listener, Reason: ev.Reason, Time: ev.At})
			}
		}
	}
}
