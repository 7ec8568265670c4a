package web

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/rs/zerolog"

	"cotd/configs"
	"cotd/cot"
	"cotd/engine/directory"
)

//go:embed assets
var assets embed.FS

// The errors the console reports; each is wrapped with the detail.
var (
	ErrNoFile       = errors.New("web: no such file")
	errNotJSON      = errors.New("web: a state-changing request must be application/json")
	errCrossOrigin  = errors.New("web: cross-origin request refused")
	errBadRequest   = errors.New("web: bad request")
	errNoContact    = errors.New("web: no connected client has that callsign")
	errTooManyViews = errors.New("web: too many browsers connected")
	errNoChat       = errors.New("web: no <__chat> in the document")
)

// MaxViewers bounds the browsers connected at once; each holds a queue of
// viewer_queue updates and a goroutine.
const MaxViewers = 64

// maxBody bounds a request body (a chat or a disconnect).
const maxBody = 64 << 10

// maxChatBytes bounds a chat's text; ATAK's own limit is far below.
const maxChatBytes = 4096

// writeTimeout bounds one write to a browser; a browser that takes no
// bytes this long is closed.
const writeTimeout = 10 * time.Second

// ConsoleUID is the device uid the console's chats are sent from.
const ConsoleUID = "cotd-web-console"

// User is one entry of the users file as the console shows it.
type User struct {
	Name string `json:"name"`
	// In and Out are the groups the user publishes into and receives from.
	In  []string `json:"in"`
	Out []string `json:"out"`
	// Password: the user can log in with <auth> (has a password hash).
	Password bool `json:"password"`
	Disabled bool `json:"disabled"`
}

// File is one data package or file the server holds.
type File struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	MIME      string    `json:"mime"`
	Size      int64     `json:"size"`
	Submitter string    `json:"submitter"`
	Uploaded  time.Time `json:"uploaded"`
}

// Files lists and opens the server's files (Marti's store). Open returns an
// error wrapping ErrNoFile for an unknown id.
type Files interface {
	List(ctx context.Context) ([]File, error)
	Open(ctx context.Context, id string) (io.ReadCloser, File, error)
}

// Options are what the wiring hands the console besides the Directory.
type Options struct {
	// Config is the [web] block.
	Config configs.Web
	// Counters reads the engine's metrics for the charts; nil charts only
	// connections (from the Directory).
	Counters func() Counters
	// Users lists the users file's users; nil shows no users section.
	Users func() []User
	// Files lists the data packages; nil shows no files section.
	Files Files
	// Log receives the audit lines (disconnects, chats) and warnings.
	Log zerolog.Logger
	// SampleEvery overrides the charts' sampling interval (tests); 0 means
	// SampleEvery.
	SampleEvery time.Duration
}

// RefuseReason is why the console refused a request.
type RefuseReason uint8

// The refusal reasons.
const (
	RefuseCrossSite  RefuseReason = iota // not JSON, or from another origin
	RefuseBadRequest                     // unreadable or invalid body
	RefuseTooMany                        // MaxViewers browsers already connected
	RefusePublish                        // the engine refused a chat
	numRefuseReasons
)

var refuseNames = [numRefuseReasons]string{"cross_site", "bad_request", "too_many_viewers", "publish"}

func (r RefuseReason) String() string {
	if r < numRefuseReasons {
		return refuseNames[r]
	}
	return "unknown"
}

// Handler serves the console. Mount it at "/" of the admin listener, behind
// the admin auth; it answers "/" and "/web/…" and 404s everything else.
type Handler struct {
	dir     directory.Directory
	opts    Options
	hub     *hub
	sampler *sampler
	mux     *http.ServeMux

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	refused [numRefuseReasons]atomic.Uint64
}

// New starts the console: its two subscriptions to dir (the picture, and
// routed messages for the chat) and the chart sampler, running until ctx
// ends or Close. Zero fields of opts.Config take the defaults of
// configs.Default().Web.
func New(ctx context.Context, dir directory.Directory, opts Options) *Handler {
	def := configs.Default().Web // cotd.toml's values, so that they are written in one place
	if opts.Config.ViewerQueue < 1 {
		opts.Config.ViewerQueue = def.ViewerQueue
	}
	if opts.Config.ChatCallsign == "" {
		opts.Config.ChatCallsign = def.ChatCallsign
	}
	if opts.Config.History.Duration <= 0 {
		opts.Config.History = def.History
	}
	if opts.SampleEvery <= 0 {
		opts.SampleEvery = SampleEvery
	}
	counters := opts.Counters
	if counters == nil {
		counters = func() Counters { return Counters{Connections: int64(len(dir.Clients()))} }
	}
	ctx, cancel := context.WithCancel(ctx)
	h := &Handler{
		dir: dir, opts: opts,
		hub:     newHub(dir, opts.Log),
		sampler: newSampler(int(opts.Config.History.Duration/opts.SampleEvery), counters),
		ctx:     ctx, cancel: cancel,
	}
	h.routes()
	samples := make(chan sample, 4)
	picture := dir.Subscribe("web", directory.KindsOf(directory.Join, directory.Leave, directory.SA), pictureCapacity)
	routed := dir.Subscribe("web_chat", directory.KindsOf(directory.Routed), routedCapacity)
	h.wg.Add(2)
	go func() { defer h.wg.Done(); h.hub.run(ctx, picture, routed, samples) }()
	go func() { defer h.wg.Done(); h.sample(ctx, opts.SampleEvery, samples) }()
	return h
}

// Close stops the console's goroutines and closes every browser's socket.
func (h *Handler) Close() {
	h.cancel()
	h.wg.Wait()
}

func (h *Handler) sample(ctx context.Context, every time.Duration, out chan<- sample) {
	t := time.NewTicker(every)
	defer t.Stop()
	h.sampler.take(time.Now()) // the first point, so a chart starts at once
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s := h.sampler.take(now)
			select {
			case out <- s:
			default: // the hub is busy: this point reaches a page through the history it loads when its feed (re)connects
			}
		}
	}
}

func (h *Handler) routes() {
	sub, _ := fs.Sub(assets, "assets")
	m := http.NewServeMux()
	m.HandleFunc("GET /{$}", h.serveIndex)
	m.Handle("GET /web/assets/", http.StripPrefix("/web/assets/", http.FileServerFS(sub)))
	m.HandleFunc("GET /web/ws", h.serveWS)
	m.HandleFunc("GET /web/api/config", h.serveConfig)
	m.HandleFunc("GET /web/api/clients", h.serveClients)
	m.HandleFunc("GET /web/api/history", h.serveHistory)
	m.HandleFunc("GET /web/api/users", h.serveUsers)
	m.HandleFunc("GET /web/api/files", h.serveFiles)
	m.HandleFunc("GET /web/api/files/{id}", h.serveFile)
	m.HandleFunc("POST /web/api/disconnect", h.serveDisconnect)
	m.HandleFunc("POST /web/api/chat", h.serveChat)
	h.mux = m
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY") // a framed disconnect button is a clickjacking target
	hd.Set("Referrer-Policy", "no-referrer")
	h.mux.ServeHTTP(w, r)
}

func (h *Handler) serveIndex(w http.ResponseWriter, _ *http.Request) {
	page, err := assets.ReadFile("assets/index.html")
	if err != nil {
		http.Error(w, "web: page missing from the build", http.StatusInternalServerError)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	// Tiles may come from any configured server; nothing else leaves cotd.
	hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data: https: http:; "+
		"style-src 'self' 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
	_, _ = w.Write(page)
}

// pageConfig is what the page needs to start.
type pageConfig struct {
	Tiles            string `json:"tiles"`
	TilesAttribution string `json:"tilesAttribution"`
	ChatCallsign     string `json:"chatCallsign"`
	SampleEveryMs    int64  `json:"sampleEvery"`
	HistoryMs        int64  `json:"history"`
	Users            bool   `json:"users"`
	Files            bool   `json:"files"`
}

func (h *Handler) serveConfig(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, pageConfig{
		Tiles: h.opts.Config.Tiles, TilesAttribution: h.opts.Config.TilesAttribution,
		ChatCallsign: h.opts.Config.ChatCallsign, SampleEveryMs: h.opts.SampleEvery.Milliseconds(),
		HistoryMs: h.opts.Config.History.Milliseconds(),
		Users:     h.opts.Users != nil, Files: h.opts.Files != nil,
	})
}

func (h *Handler) serveClients(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, h.hub.clients())
}

func (h *Handler) serveHistory(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, h.sampler.samples())
}

func (h *Handler) serveUsers(w http.ResponseWriter, _ *http.Request) {
	if h.opts.Users == nil {
		writeJSON(w, http.StatusOK, []User{})
		return
	}
	us := h.opts.Users()
	if us == nil {
		us = []User{}
	}
	for i := range us {
		us[i].In, us[i].Out = nonNil(us[i].In), nonNil(us[i].Out) // a one-way user has no groups the other way
	}
	writeJSON(w, http.StatusOK, us)
}

func (h *Handler) serveFiles(w http.ResponseWriter, r *http.Request) {
	if h.opts.Files == nil {
		writeJSON(w, http.StatusOK, []File{})
		return
	}
	fs, err := h.opts.Files.List(r.Context())
	if err != nil {
		h.opts.Log.Error().Err(err).Msg("web: cannot list files")
		writeError(w, http.StatusInternalServerError, fmt.Errorf("web: cannot list files: %w", err))
		return
	}
	if fs == nil {
		fs = []File{}
	}
	writeJSON(w, http.StatusOK, fs)
}

func (h *Handler) serveFile(w http.ResponseWriter, r *http.Request) {
	if h.opts.Files == nil {
		writeError(w, http.StatusNotFound, ErrNoFile)
		return
	}
	id := r.PathValue("id")
	rc, f, err := h.opts.Files.Open(r.Context(), id)
	if errors.Is(err, ErrNoFile) {
		writeError(w, http.StatusNotFound, fmt.Errorf("%w: %q", ErrNoFile, id))
		return
	}
	if err != nil {
		h.opts.Log.Error().Err(err).Str("file", id).Msg("web: cannot open a file")
		writeError(w, http.StatusInternalServerError, fmt.Errorf("web: cannot open file %q: %w", id, err))
		return
	}
	defer rc.Close()
	hd := w.Header()
	ct := f.MIME
	if ct == "" {
		ct = "application/octet-stream"
	}
	hd.Set("Content-Type", ct)
	if f.Size > 0 {
		hd.Set("Content-Length", strconv.FormatInt(f.Size, 10))
	}
	hd.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": f.Name}))
	h.audit(r).Str("file", id).Str("name", f.Name).Msg("web: file download")
	_, _ = io.Copy(w, rc)
}

// stateChanging refuses what a page of another site could make a browser
// send: a body that is not JSON (an HTML form can only send urlencoded,
// multipart or text/plain, and a script of another origin cannot send JSON
// without a CORS preflight, which the console never answers) or an Origin
// or Sec-Fetch-Site naming another site. It decodes the body into v.
func (h *Handler) stateChanging(w http.ResponseWriter, r *http.Request, v any) bool {
	refuse := func(status int, reason RefuseReason, err error) bool {
		h.refused[reason].Add(1)
		h.audit(r).Err(err).Str("reason", reason.String()).Msg("web: request refused")
		writeError(w, status, err)
		return false
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return refuse(http.StatusUnsupportedMediaType, RefuseCrossSite, errNotJSON)
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return refuse(http.StatusForbidden, RefuseCrossSite, fmt.Errorf("%w: origin %q is not %q", errCrossOrigin, o, r.Host))
		}
	}
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
		return refuse(http.StatusForbidden, RefuseCrossSite, fmt.Errorf("%w: Sec-Fetch-Site %q", errCrossOrigin, s))
	}
	d := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return refuse(http.StatusBadRequest, RefuseBadRequest, fmt.Errorf("%w: %w", errBadRequest, err))
	}
	return true
}

type disconnectRequest struct {
	ID uint64 `json:"id"`
}

func (h *Handler) serveDisconnect(w http.ResponseWriter, r *http.Request) {
	var req disconnectRequest
	if !h.stateChanging(w, r, &req) {
		return
	}
	if req.ID == 0 {
		h.refused[RefuseBadRequest].Add(1)
		writeError(w, http.StatusBadRequest, fmt.Errorf("%w: id must be a connection id", errBadRequest))
		return
	}
	n := h.dir.Disconnect(directory.Selector{ConnID: req.ID}, directory.ReasonAdmin)
	h.audit(r).Uint64("conn", req.ID).Int("connections", n).Msg("web: admin disconnect")
	if n == 0 {
		writeError(w, http.StatusNotFound, fmt.Errorf("web: no open connection has id %d", req.ID))
		return
	}
	writeJSON(w, http.StatusOK, struct {
		ID           uint64 `json:"id"`
		Disconnected int    `json:"disconnected"`
	}{req.ID, n})
}

type chatRequest struct {
	Text string `json:"text"`
	// To is a contact's callsign; "" is All Chat Rooms.
	To string `json:"to"`
}

func (h *Handler) serveChat(w http.ResponseWriter, r *http.Request) {
	var req chatRequest
	if !h.stateChanging(w, r, &req) {
		return
	}
	bad := func(format string, a ...any) {
		h.refused[RefuseBadRequest].Add(1)
		writeError(w, http.StatusBadRequest, fmt.Errorf("%w: %s", errBadRequest, fmt.Sprintf(format, a...)))
	}
	switch {
	case req.Text == "":
		bad("the chat is empty")
		return
	case len(req.Text) > maxChatBytes:
		bad("the chat is %d bytes, more than %d", len(req.Text), maxChatBytes)
		return
	}
	var to chatTo
	if req.To != "" && req.To != AllChatRooms {
		to.Callsign = req.To
		for _, c := range h.dir.Clients() {
			if c.Callsign == req.To && c.UID != "" {
				to.UID = c.UID
				break
			}
		}
		if to.UID == "" {
			writeError(w, http.StatusNotFound, fmt.Errorf("%w: %q", errNoContact, req.To))
			return
		}
	}
	msgID := cot.NewUID()
	from := chatFrom{UID: ConsoleUID, Callsign: h.opts.Config.ChatCallsign}
	doc := geoChat(from, to, req.Text, msgID, time.Now())
	sender := directory.Sender{Identity: "web:" + requester(r), UID: from.UID, Callsign: from.Callsign}
	if err := h.dir.Publish(r.Context(), sender, doc); err != nil {
		h.refused[RefusePublish].Add(1)
		status := http.StatusBadRequest
		if errors.Is(err, directory.ErrBusy) {
			status = http.StatusServiceUnavailable
		}
		h.audit(r).Err(err).Msg("web: chat refused by the engine")
		writeError(w, status, fmt.Errorf("web: chat not sent: %w", err))
		return
	}
	h.audit(r).Str("to", to.Callsign).Str("message", msgID).Msg("web: chat sent")
	writeJSON(w, http.StatusOK, struct {
		MessageID string `json:"messageId"`
	}{msgID})
}

func (h *Handler) serveWS(w http.ResponseWriter, r *http.Request) {
	if h.hub.viewerCount() >= MaxViewers {
		h.refused[RefuseTooMany].Add(1)
		writeError(w, http.StatusServiceUnavailable, fmt.Errorf("%w: %d", errTooManyViews, MaxViewers))
		return
	}
	// Accept checks that Origin names this host, so another site cannot
	// open the feed with the administrator's credentials.
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		h.refused[RefuseCrossSite].Add(1)
		h.audit(r).Err(err).Msg("web: websocket refused")
		return
	}
	defer c.CloseNow()
	v := newViewer(h.opts.Config.ViewerQueue)
	h.hub.add(v)
	defer h.hub.remove(v)
	// The page sends nothing: CloseRead's context ends when the browser
	// goes away (or breaks that rule). Shutdown is apart from it, so that
	// the browser is told why with a close frame rather than a reset.
	gone := c.CloseRead(context.Background())
	stopCtx, cancel := context.WithCancel(gone)
	defer cancel()
	stop := context.AfterFunc(h.ctx, cancel)
	defer stop()
	for {
		b := v.next(stopCtx, h.hub)
		if b == nil {
			if gone.Err() == nil {
				_ = c.Close(websocket.StatusGoingAway, "cotd console closing")
			}
			return
		}
		wctx, wcancel := context.WithTimeout(gone, writeTimeout)
		err := c.Write(wctx, websocket.MessageText, b)
		wcancel()
		if err != nil {
			return
		}
	}
}

// WriteMetrics appends the console's metrics in the Prometheus text format.
func (h *Handler) WriteMetrics(w io.Writer) error {
	_, err := fmt.Fprintf(w, "# HELP cotd_web_viewers Browsers connected to the web console.\n# TYPE cotd_web_viewers gauge\ncotd_web_viewers %d\n"+
		"# HELP cotd_web_dropped_total Updates a web console browser missed because its queue was full.\n# TYPE cotd_web_dropped_total counter\ncotd_web_dropped_total %d\n"+
		"# HELP cotd_web_refused_total Web console requests refused, by reason.\n# TYPE cotd_web_refused_total counter\n",
		h.hub.viewerCount(), h.hub.dropped.Load())
	for r := range numRefuseReasons {
		if err == nil {
			_, err = fmt.Fprintf(w, "cotd_web_refused_total{reason=%q} %d\n", r.String(), h.refused[r].Load())
		}
	}
	return err
}

// audit starts a log line naming who asked: the basic-auth user or the
// client certificate's CN, and the address.
func (h *Handler) audit(r *http.Request) *zerolog.Event {
	return h.opts.Log.Info().Str("admin_remote", r.RemoteAddr).Str("admin", requester(r))
}

func requester(r *http.Request) string {
	if u, _, ok := r.BasicAuth(); ok {
		return u
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		return r.TLS.PeerCertificates[0].Subject.CommonName
	}
	return "anonymous"
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, struct {
		Error string `json:"error"`
	}{err.Error()})
}
