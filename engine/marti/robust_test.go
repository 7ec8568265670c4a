package marti_test

import (
	"bufio"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"mime/multipart"
	"net/http"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cotd/configs"
	et "cotd/engine/enginetest"
	"cotd/tlsstate/pki"
)

// TestClientWithoutCertificateIsRefusedAtTheHandshake: no handler runs.
func TestClientWithoutCertificateIsRefusedAtTheHandshake(t *testing.T) {
	w := newWorld(t, nil)
	noCert := &http.Client{Timeout: et.Wait, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: w.pki.Pool, ServerName: "127.0.0.1"}}}
	resp, err := noCert.Get(w.base + "/Marti/api/version")
	if err == nil {
		resp.Body.Close()
		t.Fatalf("served without a client certificate: %d", resp.StatusCode)
	}
	// A certificate from another CA is refused the same way.
	other := et.NewPKI(t, pki.KeyECDSAP256)
	stranger := &http.Client{Timeout: et.Wait, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: w.pki.Pool, ServerName: "127.0.0.1", Certificates: []tls.Certificate{other.ClientCert(t, "alice", time.Hour)}}}}
	if resp, err := stranger.Get(w.base + "/Marti/api/version"); err == nil {
		resp.Body.Close()
		t.Fatalf("served a certificate from another CA: %d", resp.StatusCode)
	}
	if code, _, _ := do(t, w.http("alice"), "GET", w.base+"/Marti/api/version", "", nil); code != 200 {
		t.Fatalf("a good client after the refusals: %d", code)
	}
	if n := w.m.Requests("version", 200); n != 1 {
		t.Fatalf("version answered %d times, want only the good client's", n)
	}
}

// TestUnknownUserRefusedWithRequireKnownUser: a certificate whose CN has
// no user entry gets 403 when auth.require_known_user is on.
func TestUnknownUserRefusedWithRequireKnownUser(t *testing.T) {
	w := newWorld(t, func(c *configs.Config) { c.Auth.RequireKnownUser = true })
	if code, _, _ := do(t, w.http("mallory"), "GET", w.base+"/Marti/api/version", "", nil); code != 403 {
		t.Fatalf("unknown user: %d, want 403", code)
	}
}

// TestSlowClientsTimeOut: an uploader that stalls mid-body gets 408 and a
// client that never finishes its headers is dropped; both within bounds,
// and others are served meanwhile.
func TestSlowClientsTimeOut(t *testing.T) {
	w := newWorld(t, func(c *configs.Config) {
		c.Marti.BodyTimeout.Duration = 300 * time.Millisecond
		c.Marti.ReadHeaderTimeout.Duration = 300 * time.Millisecond
	})
	conn, err := tls.Dial("tcp", w.m.HTTPSAddr().String(), w.pki.Client(t, "alice"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /Marti/sync/upload?name=slow.zip HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/zip\r\nContent-Length: 100000\r\n\r\n0123456789")
	_ = conn.SetReadDeadline(time.Now().Add(et.Wait))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("the stalled upload got no answer: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("stalled upload: %d, want 408", resp.StatusCode)
	}

	hdr, err := tls.Dial("tcp", w.m.HTTPSAddr().String(), w.pki.Client(t, "alice"))
	if err != nil {
		t.Fatal(err)
	}
	defer hdr.Close()
	fmt.Fprintf(hdr, "GET /Marti/api/version HTTP/1.1\r\nHost: 127")
	if code, _, _ := do(t, w.http("bob"), "GET", w.base+"/Marti/api/version", "", nil); code != 200 {
		t.Fatalf("another client while one stalls: %d", code)
	}
	_ = hdr.SetReadDeadline(time.Now().Add(et.Wait))
	if _, err := io.ReadAll(hdr); err != nil {
		t.Fatalf("the header-stalled connection was not closed by the server: %v", err)
	}
	if w.m.Requests("sync_upload", 408) != 1 {
		t.Fatalf("408 not counted")
	}
	if s := search(t, w.http("alice"), w.base+"/Marti/sync/search"); s.ResultCount != 0 {
		t.Fatalf("a cut-off upload was stored: %+v", s)
	}
}

// pattern is a reader of n bytes that costs no memory: a 64 KiB block
// repeated, with a counter so no two blocks are alike.
type pattern struct {
	left  int64
	block [64 << 10]byte
	i     uint64
	off   int
	sum   hash.Hash
}

func newPattern(n int64) *pattern {
	p := &pattern{left: n, sum: sha256.New(), off: 64 << 10}
	for i := range p.block {
		p.block[i] = byte(i * 7)
	}
	return p
}

func (p *pattern) Read(b []byte) (int, error) {
	if p.left == 0 {
		return 0, io.EOF
	}
	if p.off == len(p.block) {
		p.i++
		p.block[0], p.block[1], p.block[2] = byte(p.i), byte(p.i>>8), byte(p.i>>16)
		p.off = 0
	}
	n := copy(b, p.block[p.off:])
	n = int(min(int64(n), p.left))
	p.off += n
	p.left -= int64(n)
	p.sum.Write(b[:n])
	return n, nil
}

// liveHeap is the heap the last GC found reachable: what the process
// holds, not the garbage it has yet to collect (which the race detector
// lets pile up).
func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// heapPeak samples the live heap until stop is closed. A sampler, not a
// synchronisation: it bounds what the process held.
func heapPeak(stop <-chan struct{}) (peak func() uint64) {
	var max atomic.Uint64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if v := liveHeap(); v > max.Load() {
				max.Store(v)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 { wg.Wait(); return max.Load() }
}

// TestLargeUploadStreamsWithBoundedMemory sends 200 MB (generated, not a
// file) as commo does, multipart and chunked, and downloads it back: the
// heap of the whole process (client, engine and Marti) stays far below
// the file's size, and the content hash is the generator's.
func TestLargeUploadStreamsWithBoundedMemory(t *testing.T) {
	size := int64(200 << 20)
	if testing.Short() {
		size = 16 << 20
	}
	w := newWorld(t, nil)
	ac := w.http("alice")
	runtime.GC()
	base := liveHeap()

	gen := newPattern(size)
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		part, err := mw.CreateFormFile("assetfile", "big.zip")
		if err == nil {
			_, err = io.Copy(part, gen)
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	stop := make(chan struct{})
	peak := heapPeak(stop)
	code, body, _ := do(t, ac, "POST", w.base+"/Marti/sync/missionupload?filename=big.zip", mw.FormDataContentType(), pr)
	want := hex.EncodeToString(gen.sum.Sum(nil))
	if code != 200 || string(body) != w.base+"/Marti/sync/content?hash="+want {
		close(stop)
		t.Fatalf("upload: %d %q, want the URL of %s", code, body, want)
	}
	resp, err := ac.Get(string(body))
	if err != nil {
		close(stop)
		t.Fatal(err)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	resp.Body.Close()
	close(stop)
	if err != nil || n != size || hex.EncodeToString(h.Sum(nil)) != want {
		t.Fatalf("download: %d bytes, %v, hash %x", n, err, h.Sum(nil))
	}
	grew := int64(peak()) - int64(base)
	t.Logf("%d MiB up and down; live heap grew at most %.1f MiB", size>>20, float64(grew)/(1<<20))
	if grew > 64<<20 {
		t.Fatalf("heap grew %d MiB moving a %d MiB file: something buffers it", grew>>20, size>>20)
	}
	var meta searchJSON
	_, b, _ := do(t, ac, "GET", w.base+"/Marti/sync/search?name=big.zip", "", nil)
	if err := json.Unmarshal(b, &meta); err != nil || meta.ResultCount != 1 || meta.Results[0].Size != fmt.Sprint(size) {
		t.Fatalf("metadata: %s", b)
	}
}

// TestPlainHTTPAndExternalURL: http_addr serves anonymous callers with
// tcp.groups; external_url, when set, is what download links start with.
func TestPlainHTTPAndExternalURL(t *testing.T) {
	w := newWorld(t, func(c *configs.Config) {
		c.Marti.HTTPAddr = "127.0.0.1:0"
		c.Marti.ExternalURL = "https://tak.example:8443/"
	})
	plain := &http.Client{Timeout: et.Wait}
	base := "http://" + w.m.HTTPAddr().String()
	if code, body, _ := do(t, plain, "GET", base+"/Marti/api/version", "", nil); code != 200 || string(body) != "cotd-test" {
		t.Fatalf("plain version: %d %q", code, body)
	}
	ctype, mb := multipartBody(t, "assetfile", "anon.zip", "application/zip", []byte("anonymous"))
	code, body, _ := do(t, plain, "POST", base+"/Marti/sync/missionupload?filename=anon.zip", ctype, mb)
	if want := "https://tak.example:8443/Marti/sync/content?hash=" + sha([]byte("anonymous")); code != 200 || string(body) != want {
		t.Fatalf("plain upload: %d %q, want %q", code, body, want)
	}
	// Anonymous is __ANON__: alice (Blue, HQ) does not see it, another
	// anonymous caller does.
	if s := search(t, w.http("alice"), w.base+"/Marti/sync/search"); s.ResultCount != 0 {
		t.Fatalf("alice sees an __ANON__ upload: %+v", s)
	}
	if s := search(t, plain, base+"/Marti/sync/search"); s.ResultCount != 1 || s.Results[0].SubmissionUser != "" {
		t.Fatalf("anonymous search: %+v", s)
	}
	if code, _, _ := do(t, plain, "PUT", base+"/Marti/api/groups/active", "application/json", strings.NewReader("[]")); code != 400 {
		t.Fatalf("channels without a certificate: %d, want 400", code)
	}
}

// TestStalledDownloadIsAbandoned: a client that stops reading a large
// download frees the handler after body_timeout (the write deadline).
func TestStalledDownloadIsAbandoned(t *testing.T) {
	w := newWorld(t, func(c *configs.Config) { c.Marti.BodyTimeout.Duration = 300 * time.Millisecond })
	ac := w.http("alice")
	gen := newPattern(64 << 20)
	code, body, _ := do(t, ac, "POST", w.base+"/Marti/sync/upload?name=big.bin", "application/octet-stream", gen)
	if code != 200 {
		t.Fatalf("upload: %d %s", code, body)
	}
	hash := hex.EncodeToString(gen.sum.Sum(nil))
	conn, err := tls.Dial("tcp", w.m.HTTPSAddr().String(), w.pki.Client(t, "alice"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// 64 MiB is far more than the socket buffers hold; never read.
	fmt.Fprintf(conn, "GET /Marti/sync/content?hash=%s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", hash)
	et.Eventually(t, "the stalled download's handler to give up", func() bool { return w.m.Requests("content", 200) == 1 })
	if code, _, _ := do(t, ac, "GET", w.base+"/Marti/api/version", "", nil); code != 200 {
		t.Fatalf("served after the stall: %d", code)
	}
}

// TestConnectionLimit: with max_connections open, one more is closed at
// accept and counted; a slot freed serves the next.
func TestConnectionLimit(t *testing.T) {
	w := newWorld(t, func(c *configs.Config) { c.Marti.MaxConnections = 1 })
	held, err := tls.Dial("tcp", w.m.HTTPSAddr().String(), w.pki.Client(t, "alice"))
	if err != nil {
		t.Fatal(err)
	}
	// The server has accepted held once it answers on it.
	fmt.Fprintf(held, "GET /Marti/api/version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
	br := bufio.NewReader(held)
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("the first connection: %v", err)
	}
	extra, err := tls.Dial("tcp", w.m.HTTPSAddr().String(), w.pki.Client(t, "bob"))
	if err == nil {
		_ = extra.SetReadDeadline(time.Now().Add(et.Wait))
		_, err = extra.Read(make([]byte, 1))
		extra.Close()
	}
	if err == nil {
		t.Fatal("a connection beyond max_connections was served")
	}
	if n := w.m.RefusedConnections(); n != 1 {
		t.Fatalf("refused %d, want 1", n)
	}
	held.Close()
	et.Eventually(t, "a request once the slot is free", func() bool {
		c := w.http("bob")
		resp, err := c.Get(w.base + "/Marti/api/version")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}
