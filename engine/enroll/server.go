package enroll

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"cotd/configs"
	"cotd/engine/auth"
	"cotd/engine/directory"
	"cotd/internal/netlimit"
	"cotd/tlsstate/pki"
)

// Disconnecter is the part of the engine's Directory that revocation uses.
type Disconnecter interface {
	Disconnect(sel directory.Selector, reason directory.Reason) int
}

// Deps are what the enrollment service needs from the rest of the process.
type Deps struct {
	// Directory closes the connections of revoked certificates; nil means
	// they stay open until they reconnect (and are refused then).
	Directory Disconnecter
	// ReloadTLS makes the stream listener re-read its CA and CRL; nil
	// means none (tests of enrollment alone).
	ReloadTLS func() error
	// Store keeps certificate records and tokens; nil means Certs with
	// the tokens in the state file, or without Certs everything there.
	Store Store
	// Certs is the process's database (engine/store), where certificate
	// records go when Store is nil.
	Certs CertDB
	Log   zerolog.Logger
}

// Server is the enrollment HTTPS listener and the revocation watcher.
type Server struct {
	cfg    configs.Enroll
	paths  paths
	log    zerolog.Logger
	store  Store
	thr    *throttle
	stats  Stats
	watch  *Watcher
	checks chan struct{} // bounds concurrent bcrypt checks

	ca       atomic.Pointer[caState]
	cert     atomic.Pointer[tls.Certificate]
	users    usersCache
	profileD string

	http *http.Server
	ln   net.Listener
}

// caState is the signing CA and the chain handed to clients.
type caState struct {
	ca    *pki.Bundle
	chain []*x509.Certificate // every certificate of the CA file, the signer first
}

// paths are the files the service reads, resolved from the configuration.
type paths struct {
	serverCert, serverKey, ca, caKey, crl, users string
}

func resolvePaths(c *configs.Config) paths {
	p := paths{serverCert: c.TLS.Cert, serverKey: c.TLS.Key, ca: c.CAPath(), caKey: c.CAKeyPath(),
		crl: c.CRLPath(), users: c.Auth.UsersFile}
	if c.TLSDev() {
		p.serverCert, p.serverKey = pki.Paths(c.TLS.DevDir, pki.ServerName)
	}
	if c.Enroll.Cert != "" {
		p.serverCert, p.serverKey = c.Enroll.Cert, c.Enroll.Key
	}
	return p
}

// New builds the enrollment service from cfg: the HTTPS listener when
// cfg.EnrollEnabled(), and always the revocation watcher when TLS has a
// CRL path. It refuses (ErrNoCAKey) when enrollment is on and there is no
// CA key to sign with. Start it with Run.
func New(cfg *configs.Config, deps Deps) (*Server, error) {
	s := &Server{cfg: cfg.Enroll, paths: resolvePaths(cfg), log: deps.Log, store: deps.Store,
		checks: make(chan struct{}, runtime.GOMAXPROCS(0)), profileD: cfg.Enroll.ProfileDir}
	s.thr = newThrottle(cfg.Enroll.FreeFailures, cfg.Enroll.FailureDelay.Duration, cfg.Enroll.MaxFailureDelay.Duration)
	if p := cfg.EnrollStatePath(); s.store == nil && p != "" {
		if deps.Certs != nil {
			s.store = NewDBStore(deps.Certs, p)
		} else {
			s.store = NewFileStore(p)
		}
	}
	if cfg.TLSEnabled() && s.paths.crl != "" {
		w, err := NewWatcher(s.paths.crl, s.paths.ca, s.store, deps.ReloadTLS, deps.Directory, &s.stats, s.log)
		if err != nil {
			return nil, err
		}
		s.watch = w
	}
	if !cfg.EnrollEnabled() {
		return s, nil
	}
	if s.paths.caKey == "" {
		return nil, fmt.Errorf("%w: enrollment (enroll.addr %s) signs client certificates with the CA's key: set tls.ca_key, or enroll.addr = \"\" to turn enrollment off", ErrNoCAKey, cfg.Enroll.Addr)
	}
	if err := s.loadTLS(); err != nil {
		return nil, err
	}
	s.users.path = s.paths.users
	if _, err := s.users.get(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return s, nil
}

// loadTLS reads the CA (with its key) and the server certificate.
func (s *Server) loadTLS() error {
	ca, err := pki.Load(s.paths.ca, s.paths.caKey)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: %w", ErrNoCAKey, err)
		}
		return fmt.Errorf("%w: CA %s with key %s: %w", ErrConfig, s.paths.ca, s.paths.caKey, err)
	}
	if !ca.Cert.IsCA {
		return fmt.Errorf("%w: %s is not a CA certificate", ErrConfig, s.paths.ca)
	}
	chain := []*x509.Certificate{ca.Cert}
	for _, c := range pki.ParseCerts(ca.CertPEM) { // every certificate of the CA file
		if !c.Equal(ca.Cert) {
			chain = append(chain, c)
		}
	}
	pair, err := tls.LoadX509KeyPair(s.paths.serverCert, s.paths.serverKey)
	if err != nil {
		return fmt.Errorf("%w: server certificate: %w", ErrConfig, err)
	}
	s.ca.Store(&caState{ca: ca, chain: chain})
	s.cert.Store(&pair)
	return nil
}

// Addr is the bound address after Listen, or nil.
func (s *Server) Addr() net.Addr {
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Stats exposes the counters.
func (s *Server) Stats() *Stats { return &s.stats }

// Store is the certificate and token store.
func (s *Server) Store() Store { return s.store }

// Listen binds the enrollment listener (when enrollment is on), so that
// Addr is known before Run.
func (s *Server) Listen() error {
	if s.ca.Load() == nil || s.ln != nil {
		return nil
	}
	tcp, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("enroll: listen %s: %w", s.cfg.Addr, err)
	}
	lim := netlimit.New(tcp, s.cfg.MaxConns, func() { s.stats.Refused[RefusedConnLimit].Inc() })
	s.ln = tls.NewListener(lim, &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.cert.Load(), nil
		},
	})
	s.http = &http.Server{
		Handler: s.handler(),
		// net/http runs the TLS handshake under the smallest of these.
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout.Duration,
		ReadTimeout:       s.cfg.ReadTimeout.Duration,
		WriteTimeout:      s.cfg.WriteTimeout.Duration,
		IdleTimeout:       s.cfg.IdleTimeout.Duration,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          log.New(errorLog{s}, "", 0),
	}
	s.log.Info().Str("addr", s.ln.Addr().String()).Str("ca", s.paths.ca).
		Str("state", stateName(s.store)).Msg("enrollment listening (HTTPS, HTTP Basic)")
	return nil
}

func stateName(st Store) string {
	switch st := st.(type) {
	case *FileStore:
		return st.Path()
	case *DBStore:
		return "database (tokens in " + st.tokens.Path() + ")"
	}
	return fmt.Sprintf("%T", st)
}

// Run serves until ctx ends: the listener (after Listen) and the CRL
// watcher.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	var wg sync.WaitGroup
	if s.watch != nil {
		wg.Add(1)
		go func() { defer wg.Done(); s.watch.Run(ctx, s.cfg.CRLCheck.Duration) }()
	}
	errc := make(chan error, 1)
	if s.http != nil {
		go func() { errc <- s.http.Serve(s.ln) }()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	if s.http != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = s.http.Shutdown(sctx)
		cancel()
	}
	wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// Reload re-reads the CA, the server certificate and the CRL (SIGHUP). On
// error the previous material stays.
func (s *Server) Reload() error {
	var errs []error
	if s.ca.Load() != nil {
		if err := s.loadTLS(); err != nil {
			s.log.Error().Err(err).Msg("enrollment reload failed; keeping the previous certificates")
			errs = append(errs, err)
		}
	}
	if s.watch != nil {
		s.watch.Check()
	}
	return errors.Join(errs...)
}

// usersCache re-reads the users file when it changed: `cotd users` edits
// (disable, passwd) apply to the next request without a reload.
type usersCache struct {
	path string
	mu   sync.Mutex
	key  fileKey
	dir  *auth.Directory
}

// fileKey tells a rewritten file (atomic rename: a new inode) from the
// one read before.
type fileKey struct {
	ino, size int64
	mtime     time.Time
}

func statKey(path string) (fileKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileKey{}, err
	}
	k := fileKey{size: fi.Size(), mtime: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		k.ino = int64(st.Ino)
	}
	return k, nil
}

func (u *usersCache) get() (*auth.Directory, error) {
	k, err := statKey(u.path)
	if err != nil {
		return nil, fmt.Errorf("auth.users_file: %w", err)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.dir != nil && k == u.key {
		return u.dir, nil
	}
	d, err := auth.Load(u.path)
	if err != nil {
		if u.dir != nil {
			return u.dir, err // a half-edited file: keep serving the last good one
		}
		return nil, err
	}
	u.dir, u.key = d, k
	return d, nil
}

// errorLog receives net/http's own complaints: failed TLS handshakes are
// counted, the rest logged.
type errorLog struct{ s *Server }

func (e errorLog) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	if strings.Contains(msg, "TLS handshake error") {
		e.s.stats.Refused[RefusedTLS].Inc()
		e.s.log.Debug().Str("why", msg).Msg("enrollment TLS handshake failed")
		return len(p), nil
	}
	e.s.log.Warn().Str("why", msg).Msg("enrollment http")
	return len(p), nil
}

// profileFiles reads the profile directory's regular files (recursively),
// with paths relative to it.
func profileFiles(dir string, limit int64) ([]pki.PackageFile, error) {
	var files []pki.PackageFile
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if total += int64(len(data)); total > limit {
			return fmt.Errorf("%w: enroll.profile_dir holds more than %d bytes", ErrConfig, limit)
		}
		files = append(files, pki.PackageFile{Name: filepath.ToSlash(rel), Data: data})
		return nil
	})
	return files, err
}
