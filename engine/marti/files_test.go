package marti_test

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"cotd/configs"
	et "cotd/engine/enginetest"
)

// dataPackage is a small but real data package.
func dataPackage(t testing.TB, note string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	f, _ := zw.Create("MANIFEST/manifest.xml")
	_, _ = io.WriteString(f, `<MissionPackageManifest version="2"><Configuration><Parameter name="uid" value="mp-1"/><Parameter name="name" value="MP"/></Configuration><Contents/></MissionPackageManifest>`)
	f, _ = zw.Create("note.txt")
	_, _ = io.WriteString(f, note)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type searchJSON struct {
	ResultCount int
	Results     []struct {
		UID, Name, Hash, PrimaryKey, SubmissionDateTime, SubmissionUser, CreatorUid, MIMEType, Size, Tool string
		Keywords                                                                                          []string
	}
}

func search(t *testing.T, c *http.Client, url string) searchJSON {
	t.Helper()
	code, body, _ := do(t, c, "GET", url, "", nil)
	var s searchJSON
	if err := json.Unmarshal(body, &s); code != 200 || err != nil || s.ResultCount != len(s.Results) {
		t.Fatalf("search %s: %d %v %s", url, code, err, body)
	}
	return s
}

// TestSendDataPackageToContact plays commo's send-to-contact sequence:
// missionquery 404, multipart upload, metadata tool, the fileshare CoT over
// the stream, the recipient's download by senderUrl, and its ack back.
func TestSendDataPackageToContact(t *testing.T) { eachBackend(t, testSendDataPackageToContact) }

func testSendDataPackageToContact(t *testing.T, b backend) {
	w := newWorldOn(t, b, nil)
	alice := w.device("alice", "ANDROID-A", "ALPHA")
	bob := w.device("bob", "ANDROID-B", "BRAVO")
	_ = w.device("carol", "ANDROID-C", "CHARLIE")
	ac, bc, cc := w.http("alice"), w.http("bob"), w.http("carol")
	mp := dataPackage(t, "hello bravo")
	hash := sha(mp)

	code, _, _ := do(t, ac, "GET", w.base+"/Marti/sync/missionquery?hash="+hash, "", nil)
	if code != 404 {
		t.Fatalf("missionquery before upload: %d, want 404", code)
	}
	ctype, body := multipartBody(t, "assetfile", "MP.zip", "application/x-zip-compressed", mp)
	code, got, hdr := do(t, ac, "POST", w.base+"/Marti/sync/missionupload?hash="+hash+"&filename=MP.zip&creatorUid=ANDROID-A", ctype, body)
	wantURL := w.base + "/Marti/sync/content?hash=" + hash
	if code != 200 || string(got) != wantURL || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
		t.Fatalf("missionupload: %d %q %q, want 200 %q", code, got, hdr.Get("Content-Type"), wantURL)
	}
	if code, got, _ = do(t, ac, "GET", w.base+"/Marti/sync/missionquery?hash="+hash, "", nil); code != 200 || string(got) != wantURL {
		t.Fatalf("missionquery after upload: %d %q", code, got)
	}
	if code, _, _ = do(t, ac, "PUT", w.base+"/Marti/api/sync/metadata/"+hash+"/tool", "text/plain", strings.NewReader("private")); code != 200 {
		t.Fatalf("metadata tool: %d", code)
	}

	alice.Send(fileShare("fs-1", wantURL, hash, "ANDROID-A", "BRAVO", len(mp)))
	share := bob.Expect("the file share", et.UID("fs-1"))
	m := senderURLRe.FindSubmatch(share.Raw)
	if m == nil || share.H.Type != "b-f-t-r" {
		t.Fatalf("share without senderUrl: %s", share.Raw)
	}
	code, got, hdr = do(t, bc, "GET", string(m[1]), "", nil)
	if code != 200 || !bytes.Equal(got, mp) || hdr.Get("Content-Type") != "application/x-zip-compressed" ||
		hdr.Get("Content-Disposition") != `inline; filename=MP.zip` {
		t.Fatalf("bob's download: %d %d bytes %q %q", code, len(got), hdr.Get("Content-Type"), hdr.Get("Content-Disposition"))
	}
	bob.Send(fileAck("ack-1", "fs-1", "ANDROID-B", hash, "ANDROID-A"))
	if ack := alice.Expect("the ack", et.UID("ack-1")); ack.H.Type != "b-f-t-a" {
		t.Fatalf("ack type %s", ack.H.Type)
	}

	// Group isolation: carol (Red) can neither fetch nor find it.
	if code, _, _ = do(t, cc, "GET", wantURL, "", nil); code != 404 {
		t.Fatalf("carol downloaded alice's file: %d", code)
	}
	if code, _, _ = do(t, cc, "GET", w.base+"/Marti/sync/missionquery?hash="+hash, "", nil); code != 404 {
		t.Fatalf("carol's missionquery: %d", code)
	}
	if s := search(t, cc, w.base+"/Marti/sync/search?keywords=missionpackage"); s.ResultCount != 0 {
		t.Fatalf("carol found %+v", s)
	}
	// private hides it from the public list only.
	s := search(t, bc, w.base+"/Marti/sync/search?keywords=missionpackage")
	if s.ResultCount != 1 || s.Results[0].Hash != hash || s.Results[0].Name != "MP.zip" || s.Results[0].Tool != "private" ||
		s.Results[0].SubmissionUser != "alice" || s.Results[0].CreatorUid != "ANDROID-A" || s.Results[0].PrimaryKey != "1" {
		t.Fatalf("bob's search: %+v", s)
	}
	if s = search(t, bc, w.base+"/Marti/sync/search?keywords=missionpackage&tool=public"); s.ResultCount != 0 {
		t.Fatalf("a private package in the public list: %+v", s)
	}

	// Partial downloads: HEAD, Range, offset and length.
	req, _ := http.NewRequest("HEAD", wantURL, nil)
	resp, err := bc.Do(req)
	if err != nil || resp.StatusCode != 200 || resp.ContentLength != int64(len(mp)) {
		t.Fatalf("HEAD: %v %+v", err, resp)
	}
	resp.Body.Close()
	req, _ = http.NewRequest("GET", wantURL, nil)
	req.Header.Set("Range", "bytes=0-9")
	resp, err = bc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 206 || !bytes.Equal(got, mp[:10]) {
		t.Fatalf("Range: %d %q", resp.StatusCode, got)
	}
	if code, got, _ = do(t, bc, "GET", wantURL+"&offset=5&length=10", "", nil); code != 206 || !bytes.Equal(got, mp[5:15]) {
		t.Fatalf("offset+length: %d %q", code, got)
	}
	if code, got, _ = do(t, bc, "GET", wantURL+"&offset=5", "", nil); code != 200 || !bytes.Equal(got, mp[5:]) {
		t.Fatalf("offset (resume): %d %d bytes", code, len(got))
	}
	if code, _, _ = do(t, bc, "GET", wantURL+"&offset=999999", "", nil); code != 416 {
		t.Fatalf("offset past the end: %d, want 416", code)
	}
}

// TestITAKUpload: iTAK posts the raw zip to sync/upload with CreatorUid
// and name in the query, and reads the metadata back.
func TestITAKUpload(t *testing.T) { eachBackend(t, testITAKUpload) }

func testITAKUpload(t *testing.T, b backend) {
	w := newWorldOn(t, b, nil)
	bc := w.http("bob")
	mp := dataPackage(t, "from itak")
	code, body, hdr := do(t, bc, "POST", w.base+"/Marti/sync/upload?CreatorUid=iTAK-B&keywords=missionpackage&name=X.zip", "application/x-zip-compressed", bytes.NewReader(mp))
	var meta struct {
		UID, Name, Hash, CreatorUid, Size, MIMEType string
		Keywords                                    []string
	}
	if err := json.Unmarshal(body, &meta); code != 200 || err != nil || hdr.Get("Content-Type") != "text/json" {
		t.Fatalf("sync/upload: %d %v %s", code, err, body)
	}
	if meta.Hash != sha(mp) || meta.Name != "X.zip" || meta.CreatorUid != "iTAK-B" || meta.Size != "477" && meta.Size != itoa(len(mp)) ||
		len(meta.Keywords) != 1 || meta.Keywords[0] != "missionpackage" || meta.MIMEType != "application/x-zip-compressed" || meta.UID == "" {
		t.Fatalf("metadata %+v", meta)
	}
	s := search(t, w.http("alice"), w.base+"/Marti/sync/search?keywords=missionpackage&tool=public")
	if s.ResultCount != 1 || s.Results[0].Hash != meta.Hash {
		t.Fatalf("alice (shares Blue) does not find bob's upload: %+v", s)
	}
	if code, got, _ := do(t, w.http("alice"), "GET", w.base+"/Marti/sync/content?uid="+meta.UID, "", nil); code != 200 || !bytes.Equal(got, mp) {
		t.Fatalf("download by uid: %d", code)
	}
	// The same content again: one file, one entry.
	ctype, mb := multipartBody(t, "assetfile", "again.zip", "application/zip", mp)
	if code, _, _ := do(t, bc, "POST", w.base+"/Marti/sync/upload?name=again.zip", ctype, mb); code != 200 {
		t.Fatalf("multipart sync/upload: %d", code)
	}
	if s = search(t, bc, w.base+"/Marti/sync/search"); s.ResultCount != 1 || s.Results[0].Name != "again.zip" {
		t.Fatalf("after the same content twice: %+v", s)
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// TestBadUploads: each refusal is specific, counted, and leaves nothing
// behind; names with path tricks stay metadata.
func TestBadUploads(t *testing.T) {
	w := newWorld(t, func(c *configs.Config) { c.Marti.MaxUploadBytes = 4096 })
	ac := w.http("alice")
	up := w.base + "/Marti/sync/missionupload?filename=MP.zip"

	code, body, _ := do(t, ac, "POST", up, "application/zip", bytes.NewReader([]byte("PK not multipart")))
	if code != 400 || !strings.Contains(string(body), "multipart") {
		t.Fatalf("not multipart: %d %s", code, body)
	}
	if code, _, _ = do(t, ac, "POST", w.base+"/Marti/sync/missionupload", "", nil); code != 400 {
		t.Fatalf("no filename: %d", code)
	}
	big := bytes.Repeat([]byte("x"), 8192)
	ctype, mb := multipartBody(t, "assetfile", "big.zip", "application/zip", big)
	if code, _, _ = do(t, ac, "POST", up, ctype, mb); code != 413 {
		t.Fatalf("oversize multipart: %d, want 413", code)
	}
	// Without a Content-Length (chunked), found while streaming.
	if code, _, _ = do(t, ac, "POST", w.base+"/Marti/sync/upload?name=big", "application/zip", io.MultiReader(bytes.NewReader(big))); code != 413 {
		t.Fatalf("oversize chunked: %d, want 413", code)
	}
	ctype, mb = multipartBody(t, "other", "", "text/plain", []byte("no file"))
	if code, _, _ = do(t, ac, "POST", up, ctype, mb); code != 400 {
		t.Fatalf("no file part: %d, want 400", code)
	}
	// Path tricks in both names: stored by hash, the name is cleaned.
	ctype, mb = multipartBody(t, "assetfile", `..\..\evil.zip`, "application/zip", []byte("trick"))
	if code, _, _ = do(t, ac, "POST", w.base+"/Marti/sync/missionupload?filename=../../../etc/passwd", ctype, mb); code != 200 {
		t.Fatalf("tricky names: %d", code)
	}
	s := search(t, ac, w.base+"/Marti/sync/search")
	if s.ResultCount != 1 || s.Results[0].Name != "passwd" {
		t.Fatalf("tricky name kept as %+v", s)
	}
	var names []string
	_ = filepath.WalkDir(filepath.Dir(w.files), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasSuffix(p, "users.toml") {
			names = append(names, strings.TrimPrefix(p, w.files+"/"))
		}
		return nil
	})
	h := sha([]byte("trick"))
	if len(names) != 2 || names[0] != h[:2]+"/"+h || names[1] != h[:2]+"/"+h+".json" {
		t.Fatalf("files on disk: %v, want only the blob and its metadata", names)
	}
	for _, bad := range []string{"0000000000000000000000000000000000000000000000000000000000000000", "../../users.toml", "%2e%2e%2fusers.toml"} {
		if code, _, _ = do(t, ac, "GET", w.base+"/Marti/sync/content?hash="+bad, "", nil); code != 404 {
			t.Fatalf("content?hash=%s: %d, want 404", bad, code)
		}
	}
	if code, _, _ = do(t, ac, "PUT", w.base+"/Marti/api/sync/metadata/"+strings.Repeat("a", 64)+"/tool", "text/plain", strings.NewReader("public")); code != 404 {
		t.Fatalf("metadata of an unknown hash: %d, want 404", code)
	}
	for route, c := range map[string]int{"missionupload": 400, "sync_upload": 413, "content": 404, "metadata_tool": 404} {
		if w.m.Requests(route, c) == 0 {
			t.Errorf("%s %d not counted", route, c)
		}
	}
	if w.m.Requests("missionupload", 413) != 1 {
		t.Errorf("missionupload 413 counted %d times, want 1", w.m.Requests("missionupload", 413))
	}
}
