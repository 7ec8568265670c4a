package marti

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"cotd/cot"
)

// multipartSlack is what a multipart envelope may add to the file it
// carries (boundaries, part headers, small form fields).
const multipartSlack = 1 << 20

// maxFieldBytes bounds a non-file form field.
const maxFieldBytes = 4 << 10

// baseURL is where clients download from: external_url, else the scheme
// and Host of the request (the address the client reached us at, not the
// listener's 0.0.0.0).
func (s *Server) baseURL(r *http.Request) string {
	if s.cfg.ExternalURL != "" {
		return strings.TrimRight(s.cfg.ExternalURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func (s *Server) contentURL(r *http.Request, hash string) string {
	return s.baseURL(r) + "/Marti/sync/content?hash=" + hash
}

// visible reports whether c may see file m: it shares a group with an
// uploader, or uploaded it.
func (c *caller) visible(m FileMeta) bool {
	return c.sees(m.Groups) || (c.Name != "" && c.Name == m.Submitter)
}

// lookup finds a file the caller may see; a file it may not see is as
// absent as one that does not exist.
func (s *Server) lookup(ctx context.Context, c *caller, hash, uid string) (FileMeta, bool, error) {
	var m FileMeta
	var ok bool
	var err error
	switch {
	case hash != "":
		hash = strings.ToLower(hash)
		if !validHash(hash) {
			return m, false, nil
		}
		m, ok, err = s.files.ByHash(ctx, hash)
	case uid != "":
		m, ok, err = s.files.ByUID(ctx, uid)
	}
	if err != nil || !ok || !c.visible(m) || !s.blobs.has(m.Hash) {
		return FileMeta{}, false, err
	}
	return m, true, nil
}

// GET /Marti/sync/missionquery?hash=: 200 with the download URL when the
// server has the file, 404 so that the sender uploads it.
func (s *Server) serveMissionQuery(w http.ResponseWriter, r *http.Request) {
	hash := param(r.URL.Query(), "hash")
	if hash == "" {
		httpError(w, http.StatusBadRequest, "hash is required")
		return
	}
	m, ok, err := s.lookup(r.Context(), callerOf(r), hash, "")
	if err != nil {
		s.internal(w, r, err)
		return
	}
	if !ok {
		httpError(w, http.StatusNotFound, "File not found")
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = io.WriteString(w, s.contentURL(r, m.Hash))
}

// POST /Marti/sync/missionupload?hash=&filename=&creatorUid=, multipart
// with the file in part assetfile (or resource). The server hashes the
// content itself; the answer is the download URL, no newline (commo uses
// the body as it is).
func (s *Server) serveMissionUpload(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	filename := param(q, "filename")
	if filename == "" {
		httpError(w, http.StatusBadRequest, "filename is required")
		return
	}
	m, ok := s.receive(w, r, true, uploadDefaults{name: filename, keyword: "missionpackage", mime: "application/x-zip-compressed"})
	if !ok {
		return
	}
	if want := strings.ToLower(param(q, "hash")); want != "" && want != m.Hash {
		s.reqLog(r, nil).Warn().Str("hash_param", want).Str("hash", m.Hash).Msg("missionupload: content hash differs from the hash parameter; stored by content")
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = io.WriteString(w, s.contentURL(r, m.Hash))
}

// POST /Marti/sync/upload?name=&keywords=&creatorUid=&mimetype= (iTAK,
// Data Sync): the raw file as the body, or multipart assetfile. The answer
// is the file's metadata.
func (s *Server) serveSyncUpload(w http.ResponseWriter, r *http.Request) {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	m, ok := s.receive(w, r, ct == "multipart/form-data", uploadDefaults{name: param(r.URL.Query(), "name"), keyword: "", mime: ct})
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "text/json")
	body, _ := jsonBytes(searchResultOf(m))
	_, _ = w.Write(body)
}

type uploadDefaults struct{ name, keyword, mime string }

// receive stores an upload and its metadata, or answers the error itself.
func (s *Server) receive(w http.ResponseWriter, r *http.Request, multi bool, d uploadDefaults) (FileMeta, bool) {
	c := callerOf(r)
	log := s.reqLog(r, c)
	q := r.URL.Query()
	max := s.cfg.MaxUploadBytes
	limit := max
	if multi {
		limit += multipartSlack
	}
	if r.ContentLength > limit {
		log.Warn().Int64("content_length", r.ContentLength).Int64("max", max).Msg("upload refused: too large")
		httpError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("upload of %d bytes exceeds %d", r.ContentLength, max))
		return FileMeta{}, false
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	var (
		hash     string
		size     int64
		partName string
		partMIME string
		err      error
	)
	if multi {
		hash, size, partName, partMIME, err = s.receiveMultipart(r, body, max)
	} else {
		hash, size, err = s.blobs.put(body, max)
	}
	if err != nil {
		code := http.StatusBadRequest
		var tooBig *http.MaxBytesError
		switch {
		case errors.Is(err, ErrTooLarge) || errors.As(err, &tooBig):
			code = http.StatusRequestEntityTooLarge
		case errors.Is(err, errSlowBody):
			code = http.StatusRequestTimeout
		case errors.Is(err, errStorage):
			code = http.StatusInternalServerError
		}
		log.Warn().Err(err).Int64("bytes", size).Int("code", code).Msg("upload refused")
		httpError(w, code, err.Error())
		return FileMeta{}, false
	}
	name := d.name
	if name == "" {
		name = partName
	}
	mt := firstNonEmpty(param(q, "mimetype"), partMIME, d.mime, "application/octet-stream")
	if mt == "multipart/form-data" {
		mt = "application/octet-stream"
	}
	keywords := splitKeywords(firstNonEmpty(param(q, "keywords"), param(q, "keyword"), d.keyword))
	m := FileMeta{
		Hash:       hash,
		UID:        cot.NewUID(),
		Name:       cleanName(name),
		MIMEType:   mt,
		Keywords:   keywords,
		Tool:       firstNonEmpty(param(q, "tool"), "public"),
		Submitter:  c.Name,
		CreatorUID: param(q, "creatorUid"),
		Size:       size,
		Submitted:  s.now().UTC(),
		Groups:     slices.Clone(c.In),
	}
	m, err = s.files.Put(r.Context(), m)
	if err != nil {
		s.internal(w, r, err)
		return FileMeta{}, false
	}
	s.stats.uploadBytes.Add(uint64(size))
	log.Info().Str("hash", hash).Int64("bytes", size).Str("name", m.Name).Str("creator_uid", m.CreatorUID).Msg("file stored")
	return m, true
}

// receiveMultipart streams the first file part named assetfile or resource
// (or, failing those, the first part with a file name) to disk.
func (s *Server) receiveMultipart(r *http.Request, body io.Reader, max int64) (hash string, size int64, name, partMIME string, err error) {
	ct, ps, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || ct != "multipart/form-data" || ps["boundary"] == "" {
		return "", 0, "", "", fmt.Errorf("%w: Content-Type is %q", ErrNotMultipart, r.Header.Get("Content-Type"))
	}
	// A large read buffer: multipart's own is 4 KiB, and each part Read
	// then moves at most that much (a third of the upload rate).
	mr := multipart.NewReader(bufio.NewReaderSize(body, 128<<10), ps["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return "", 0, "", "", ErrNoFilePart
		}
		if err != nil {
			return "", 0, "", "", fmt.Errorf("%w: %w", ErrBadRequest, err)
		}
		form := p.FormName()
		if form == "assetfile" || form == "resource" || p.FileName() != "" {
			hash, size, err = s.blobs.put(p, max)
			return hash, size, p.FileName(), p.Header.Get("Content-Type"), err
		}
		// A small form field: read and skip it, bounded.
		if _, err := io.Copy(io.Discard, io.LimitReader(p, maxFieldBytes)); err != nil {
			return "", 0, "", "", fmt.Errorf("%w: %w", ErrBadRequest, err)
		}
	}
}

// cleanName keeps the last path element of a client's file name and drops
// what could hurt a header or a listing: it is only ever metadata (files
// are stored by hash), but it comes back in Content-Disposition.
func cleanName(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return -1
		}
		return r
	}, name)
	name = strings.TrimSpace(name)
	if len(name) > 255 {
		name = name[:255]
		for !utf8.ValidString(name) {
			name = name[:len(name)-1]
		}
	}
	if name == "" || name == "." || name == ".." {
		return "file"
	}
	return name
}

func splitKeywords(v string) []string {
	out := []string{}
	for _, k := range strings.Split(v, ",") {
		if k = strings.TrimSpace(k); k != "" {
			out = append(out, k)
		}
	}
	return out
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// GET|HEAD /Marti/sync/content?hash=|uid=[&offset=&length=]; Range too.
func (s *Server) serveContent(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	hash, uid := param(q, "hash"), param(q, "uid")
	if hash == "" && uid == "" {
		httpError(w, http.StatusBadRequest, "hash or uid is required")
		return
	}
	m, ok, err := s.lookup(r.Context(), callerOf(r), hash, uid)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	if !ok {
		httpError(w, http.StatusNotFound, "File not found")
		return
	}
	f, err := s.blobs.open(m.Hash)
	if err != nil {
		httpError(w, http.StatusNotFound, "File not found")
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		s.internal(w, r, err)
		return
	}
	w.Header().Set("Content-Type", firstNonEmpty(m.MIMEType, "application/octet-stream"))
	w.Header().Set("Content-Disposition", mime.FormatMediaType("inline", map[string]string{"filename": m.Name}))
	w.Header().Set("ETag", `"`+m.Hash+`"`)
	offStr, lenStr := param(q, "offset"), param(q, "length")
	if offStr == "" && lenStr == "" {
		cw := &countingWriter{ResponseWriter: w}
		http.ServeContent(cw, r, "", fi.ModTime(), f)
		s.stats.downloadBytes.Add(uint64(cw.n))
		return
	}
	// TAK Server's own partial download: offset (resume) and length.
	total := fi.Size()
	off, err := strconv.ParseInt(firstNonEmpty(offStr, "0"), 10, 64)
	if err != nil || off < 0 {
		httpError(w, http.StatusBadRequest, "offset must be a whole number of bytes")
		return
	}
	if off > total {
		w.Header().Set("Content-Range", "bytes */"+strconv.FormatInt(total, 10))
		httpError(w, http.StatusRequestedRangeNotSatisfiable, "offset beyond the end of the file")
		return
	}
	n := total - off
	code := http.StatusOK
	if lenStr != "" {
		l, err := strconv.ParseInt(lenStr, 10, 64)
		if err != nil || l < 0 {
			httpError(w, http.StatusBadRequest, "length must be a whole number of bytes")
			return
		}
		n = min(n, l)
		code = http.StatusPartialContent
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, total))
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		s.internal(w, r, err)
		return
	}
	w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	w.WriteHeader(code)
	if r.Method == http.MethodHead {
		return
	}
	written, _ := io.CopyN(w, f, n)
	s.stats.downloadBytes.Add(uint64(written))
}

type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// PUT /Marti/api/sync/metadata/{hash}/tool, body "public" or "private".
// private only hides the file from search?tool=public: content still
// serves it to whoever got the link.
func (s *Server) serveMetadataTool(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 256))
	if err != nil {
		httpError(w, http.StatusBadRequest, "reading body: "+err.Error())
		return
	}
	tool := strings.TrimSpace(string(body))
	if tool == "" || len(tool) > 64 || strings.ContainsFunc(tool, unicode.IsControl) {
		httpError(w, http.StatusBadRequest, "body must be the tool name (public or private)")
		return
	}
	m, ok, err := s.lookup(r.Context(), callerOf(r), r.PathValue("hash"), "")
	if err != nil {
		s.internal(w, r, err)
		return
	}
	if !ok {
		httpError(w, http.StatusNotFound, "File not found")
		return
	}
	if err := s.files.SetTool(r.Context(), m.Hash, tool); err != nil {
		s.internal(w, r, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) internal(w http.ResponseWriter, r *http.Request, err error) {
	s.reqLog(r, nil).Error().Err(err).Msg("internal error")
	httpError(w, http.StatusInternalServerError, "internal error")
}
