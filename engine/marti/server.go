package marti

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"cotd/configs"
	"cotd/engine/auth"
	"cotd/engine/directory"
	"cotd/engine/store"
	"cotd/internal/netlimit"
)

// The errors of the package.
var (
	ErrNoListener   = errors.New("marti: no listener: marti.https_addr needs the [tls] certificates, or set marti.http_addr")
	ErrNotFound     = errors.New("marti: not found")
	ErrBadRequest   = errors.New("marti: bad request")
	ErrTooLarge     = errors.New("marti: upload larger than marti.max_upload_bytes")
	ErrNotMultipart = errors.New("marti: not multipart/form-data")
	ErrNoFilePart   = errors.New("marti: no assetfile part in the upload")
	ErrForbidden    = errors.New("marti: user may not connect")
	ErrTLS          = errors.New("marti: tls material")

	errSlowBody = errors.New("marti: request body stalled")
	errStorage  = errors.New("marti: storage") // the server's disk, not the client
)

// Options builds a Server.
type Options struct {
	// Config is the whole configuration: [marti], and [tls], [tcp] and
	// [auth] for identity.
	Config *configs.Config
	// Dir is the engine.
	Dir directory.Directory
	// Log is the logger; each request's lines carry the caller.
	Log zerolog.Logger
	// Version is cotd's version, shown in /api/version.
	Version string
	// NodeID names this server in envelopes; "" means the host name.
	NodeID string
	// Store, when set, keeps file metadata and answers history queries
	// (fed by the store feed, not by Marti). Without it, file metadata is
	// kept in JSON sidecars in files_dir and history in memory.
	Store store.Store
	// Files and History override what Store (or its absence) gives.
	Files   FileIndex
	History History
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Server is the Marti API: its listeners and handlers.
type Server struct {
	cfg     configs.Marti
	full    *configs.Config
	dir     directory.Directory
	log     zerolog.Logger
	version string
	nodeID  string
	now     func() time.Time

	users atomic.Pointer[auth.Directory] // nil when no users file
	tls   *tlsFiles                      // nil when only plain HTTP is served

	blobs   *blobStore
	files   FileIndex
	hist    History
	memHist *memHistory // the default History, fed by Run; nil when History was given

	channels *channels
	missions *missions
	stats    *requestStats

	ready     chan struct{}
	httpsAddr net.Addr
	httpAddr  net.Addr
	mu        sync.Mutex
	servers   []*http.Server
}

// New checks the options and prepares the server; Run serves it.
func New(o Options) (*Server, error) {
	cfg := o.Config
	if cfg == nil {
		return nil, fmt.Errorf("%w: no configuration", ErrBadRequest)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !cfg.MartiHTTPSEnabled() && cfg.Marti.HTTPAddr == "" {
		return nil, ErrNoListener
	}
	s := &Server{
		cfg:      cfg.Marti,
		full:     cfg,
		dir:      o.Dir,
		log:      o.Log.With().Str("component", "marti").Logger(),
		version:  o.Version,
		nodeID:   o.NodeID,
		now:      o.Now,
		stats:    newRequestStats(),
		channels: newChannels(),
		ready:    make(chan struct{}),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.version == "" {
		s.version = "dev"
	}
	if s.nodeID == "" {
		s.nodeID = "cotd"
	}
	if err := s.loadUsers(); err != nil {
		return nil, err
	}
	if cfg.MartiHTTPSEnabled() {
		t, err := newTLSFiles(cfg, o.Log)
		if err != nil {
			return nil, err
		}
		s.tls = t
	}
	blobs, err := newBlobStore(cfg.Marti.FilesDir)
	if err != nil {
		return nil, err
	}
	s.blobs = blobs
	if s.missions, err = openMissions(cfg.Marti.FilesDir); err != nil {
		return nil, err
	}
	s.files, s.hist = o.Files, o.History
	if o.Store != nil {
		if s.files == nil {
			s.files = storeFiles{o.Store}
		}
		if s.hist == nil {
			s.hist = storeHistory{o.Store}
		}
	}
	if s.files == nil {
		idx, err := openSidecarIndex(blobs)
		if err != nil {
			return nil, err
		}
		s.files = idx
	}
	if s.hist == nil {
		s.memHist = newMemHistory(defaultHistoryLimits)
		s.hist = s.memHist
	}
	return s, nil
}

// Ready is closed once every listener accepts.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// HTTPSAddr is the bound mutual-TLS address after Ready, or nil.
func (s *Server) HTTPSAddr() net.Addr { return s.httpsAddr }

// HTTPAddr is the bound plain HTTP address after Ready, or nil.
func (s *Server) HTTPAddr() net.Addr { return s.httpAddr }

// Run binds the listeners, serves until ctx ends, then shuts down: it stops
// accepting and gives requests in flight up to five seconds.
func (s *Server) Run(ctx context.Context) error {
	var lns []net.Listener
	closeAll := func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}
	if s.tls != nil {
		ln, err := net.Listen("tcp", s.cfg.HTTPSAddr)
		if err != nil {
			return fmt.Errorf("marti: https_addr: %w", err)
		}
		s.httpsAddr = ln.Addr()
		lns = append(lns, tls.NewListener(netlimit.New(ln, s.cfg.MaxConnections, s.countRefusedConn), s.tls.base))
	}
	if s.cfg.HTTPAddr != "" {
		ln, err := net.Listen("tcp", s.cfg.HTTPAddr)
		if err != nil {
			closeAll()
			return fmt.Errorf("marti: http_addr: %w", err)
		}
		s.httpAddr = ln.Addr()
		lns = append(lns, netlimit.New(ln, s.cfg.MaxConnections, s.countRefusedConn))
	}
	var feed sync.WaitGroup
	feedCtx, stopFeed := context.WithCancel(context.Background())
	if s.memHist != nil && s.dir != nil {
		sub := s.dir.Subscribe("marti", directory.AllKinds, 8192)
		feed.Add(1)
		go func() {
			defer feed.Done()
			s.memHist.consume(feedCtx, sub)
		}()
	}
	errc := make(chan error, len(lns))
	handler := s.Handler()
	s.mu.Lock()
	for _, ln := range lns {
		srv := &http.Server{
			Handler:           handler,
			ReadHeaderTimeout: s.cfg.ReadHeaderTimeout.Duration,
			IdleTimeout:       s.cfg.IdleTimeout.Duration,
			// Bodies are bounded per read and per write (progress
			// deadlines), not as a whole: a 400 MiB upload over a slow
			// link is legitimate, a stalled one is not.
			MaxHeaderBytes: 64 << 10,
			ErrorLog:       log.New(zerologWriter{s.log}, "", 0),
		}
		s.servers = append(s.servers, srv)
		go func() { errc <- srv.Serve(ln) }()
	}
	s.mu.Unlock()
	ev := s.log.Info()
	if s.httpsAddr != nil {
		ev = ev.Str("https", s.httpsAddr.String())
	}
	if s.httpAddr != nil {
		ev = ev.Str("http", s.httpAddr.String())
	}
	ev.Str("files_dir", s.cfg.FilesDir).Msg("marti listening")
	close(s.ready)

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		err = fmt.Errorf("marti: %w", err)
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.mu.Lock()
	for _, srv := range s.servers {
		_ = srv.Shutdown(shutCtx)
	}
	s.mu.Unlock()
	stopFeed()
	feed.Wait()
	return err
}

// Reload re-reads the users file and the TLS material (SIGHUP). On error
// the previous state stays and the error is logged and returned.
func (s *Server) Reload() error {
	var errs []error
	if err := s.loadUsers(); err != nil {
		errs = append(errs, err)
	}
	if s.tls != nil {
		if err := s.tls.reload(); err != nil {
			errs = append(errs, err)
		}
	}
	err := errors.Join(errs...)
	if err != nil {
		s.log.Error().Err(err).Msg("reload failed; keeping the previous users and certificates")
	}
	return err
}

func (s *Server) loadUsers() error {
	path := s.full.Auth.UsersFile
	if path == "" {
		return nil
	}
	d, err := auth.Load(path)
	if err != nil {
		return fmt.Errorf("marti: %w", err)
	}
	s.users.Store(d)
	s.channels.learn(d)
	return nil
}

// zerologWriter sends net/http's own complaints (TLS handshake errors,
// refused requests) to the log at debug: a scanner must not flood it.
type zerologWriter struct{ l zerolog.Logger }

func (z zerologWriter) Write(p []byte) (int, error) {
	z.l.Debug().Str("http", string(trimNL(p))).Msg("http server")
	return len(p), nil
}

func trimNL(p []byte) []byte {
	for len(p) > 0 && (p[len(p)-1] == '\n' || p[len(p)-1] == '\r') {
		p = p[:len(p)-1]
	}
	return p
}
