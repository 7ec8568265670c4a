package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"cotd/configs"
)

// SpawnOptions configures StartCotd.
type SpawnOptions struct {
	// Binary is the cotd to run; "" builds ./cmd/cotd of the repository at RepoDir, or
	// finds cotd on PATH when there is no repository.
	Binary string
	// RepoDir is the repository root; "" searches upwards from the working directory for
	// the go.mod of module cotd.
	RepoDir string
	// Dir holds the config, certificates, log and built binary; it must exist.
	Dir string
	// TCP and TLS choose the listeners; TLS needs PKI.
	TCP, TLS bool
	PKI      *PKI
	// Settings are the scenario's [spawn] adjustments.
	Settings Spawn
	// Users, when not nil, is written as cotd's users file ([auth] users_file): the
	// routing groups of a scenario with groups.count.
	Users []byte
	// ReadyTimeout bounds start-up, from the start of the process to its "cotd ready"
	// line; 0 means 60s (generous: a loaded machine, a store to migrate).
	ReadyTimeout time.Duration
	Log          zerolog.Logger
}

// Spawned is a cotd started for one run.
type Spawned struct {
	Binary, ConfigPath, LogPath string
	// Settings are the [spawn.cotd] and --set settings the config carries, "key = value".
	Settings []string
	// TCPAddr, TLSAddr and AdminAddr are the addresses cotd bound (its config asks for
	// port 0; they are read from its "cotd ready" log line); TCPAddr or TLSAddr is ""
	// when that listener was not asked for.
	TCPAddr, TLSAddr, AdminAddr string
	MetricsURL                  string
	PID                         int
	cmd                         *exec.Cmd
	logFile                     *os.File
	done                        chan struct{}
	waitErr                     error
	stopOnce                    sync.Once
	stopErr                     error
	stopping                    atomic.Bool
}

// StartCotd builds or finds cotd, writes a config whose listeners are on loopback port 0
// (and the PKI's certificates for TLS), starts it, learns the ports the kernel gave it from
// its "cotd ready" log line, and checks that its admin listener answers and its stream
// ports accept. If cotd exits first (e.g. it refuses the config) or never logs that line,
// the error names its log file and carries its last log line.
//
// cotd binds port 0 itself: ports picked here and bound by cotd moments later could be
// taken in between (on a busy machine another program's outgoing connection takes one).
func StartCotd(ctx context.Context, o SpawnOptions) (*Spawned, error) {
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 60 * time.Second
	}
	// Absolute, because cotd runs in o.Dir (Start sets its working directory).
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSpawn, err)
	}
	o.Dir = dir
	bin := o.Binary
	if bin != "" && strings.ContainsRune(bin, filepath.Separator) {
		if bin, err = filepath.Abs(bin); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrSpawn, err)
		}
	}
	if bin == "" {
		if bin, err = buildCotd(ctx, o.RepoDir, o.Dir, o.Log); err != nil {
			return nil, err
		}
	}
	s := &Spawned{
		Binary:     bin,
		ConfigPath: filepath.Join(o.Dir, "cotd.toml"),
		LogPath:    filepath.Join(o.Dir, "cotd.log"),
		Settings:   flatten(o.Settings.Cotd),
		done:       make(chan struct{}),
	}
	var tcpAddr, tlsAddr string
	if o.TCP {
		tcpAddr = anyLoopbackPort
	}
	var files PKIFiles
	if o.TLS {
		if o.PKI == nil {
			return nil, fmt.Errorf("%w: a TLS listener needs certificates", ErrSpawn)
		}
		tlsAddr = anyLoopbackPort
		if files, err = o.PKI.WriteFiles(o.Dir); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrSpawn, err)
		}
	}
	usersPath := ""
	if o.Users != nil {
		usersPath = filepath.Join(o.Dir, "users.toml")
		if err := os.WriteFile(usersPath, o.Users, 0o600); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrSpawn, err)
		}
	}
	base := append(spawnConfig(tcpAddr, tlsAddr, anyLoopbackPort, files, usersPath, o.Settings), storeConfig(o.Settings, o.Dir)...)
	cfg, err := overlayConfig(base, o.Settings.Cotd)
	if err != nil {
		return nil, fmt.Errorf("%w: the scenario's [spawn.cotd] settings: %w", ErrSpawn, err)
	}
	if _, err := configs.Parse(cfg); err != nil {
		return nil, fmt.Errorf("%w: the generated cotd config does not validate: %w", ErrSpawn, err)
	}
	if err := os.WriteFile(s.ConfigPath, cfg, 0o644); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSpawn, err)
	}
	if s.logFile, err = os.Create(s.LogPath); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSpawn, err)
	}
	s.cmd = exec.Command(bin, "serve", "--config", s.ConfigPath)
	s.cmd.Stdout, s.cmd.Stderr = s.logFile, s.logFile
	// Whatever cotd writes by a relative path (cotd-data/…) lands in the
	// run's directory, not in cotbench's working directory.
	s.cmd.Dir = o.Dir
	// Its own process group, so that a Ctrl-C meant for cotbench does not stop cotd under
	// the run (Stop ends it after the report is taken); and SIGTERM if cotbench dies.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := s.cmd.Start(); err != nil {
		_ = s.logFile.Close()
		return nil, fmt.Errorf("%w: start %s: %w", ErrSpawn, bin, err)
	}
	s.PID = s.cmd.Process.Pid
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.done)
	}()
	if err := s.waitReady(ctx, o.ReadyTimeout, o.TCP, o.TLS); err != nil {
		_ = s.Stop()
		return nil, err
	}
	o.Log.Info().Str("binary", bin).Int("pid", s.PID).Str("tcp", s.TCPAddr).Str("tls", s.TLSAddr).
		Str("admin", s.AdminAddr).Str("log", s.LogPath).Msg("cotd spawned")
	return s, nil
}

// anyLoopbackPort is every listener's address in a spawned cotd's config: the kernel picks
// the port when cotd binds, and cotd's "cotd ready" line says which.
const anyLoopbackPort = "127.0.0.1:0"

// readyPoll is how often the log is read for the ready line: it adds at most this much to
// a start-up that takes hundreds of milliseconds.
const readyPoll = 20 * time.Millisecond

// waitReady reads cotd's log as it grows until the "cotd ready" line, takes the bound
// addresses from it, and checks that they answer. The log is a file cotd writes to
// directly (not a pipe cotbench must keep draining during the run), so it is read again
// every readyPoll.
func (s *Spawned) waitReady(ctx context.Context, timeout time.Duration, wantTCP, wantTLS bool) error {
	f, err := os.Open(s.LogPath)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSpawn, err)
	}
	defer f.Close()
	tail := &lineReader{r: f}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	for {
		var rl readyLine
		found, err := tail.each(func(line []byte) bool {
			var ok bool
			rl, ok = parseReady(line)
			return ok
		})
		if err != nil {
			return fmt.Errorf("%w: reading cotd's log %s: %w", ErrSpawn, s.LogPath, err)
		}
		if found {
			return s.adopt(rl, wantTCP, wantTLS)
		}
		select {
		case <-s.done:
			return fmt.Errorf("%w: cotd exited during start-up (%v): %s (config %s, log %s)",
				ErrSpawn, s.waitErr, lastLogError(s.LogPath), s.ConfigPath, s.LogPath)
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrSpawn, ctx.Err())
		case <-deadline.C:
			return fmt.Errorf("%w: cotd (pid %d) still running but logged no \"cotd ready\" line within %s; last line: %s (config %s, log %s)",
				ErrSpawn, s.PID, timeout, lastLogError(s.LogPath), s.ConfigPath, s.LogPath)
		case <-tick.C:
		}
	}
}

// adopt takes the addresses of cotd's ready line and checks them once: the listeners are
// bound and accepting when cotd logs the line, so a failure here is a real one.
func (s *Spawned) adopt(rl readyLine, wantTCP, wantTLS bool) error {
	var missing []string
	tcpBound, tlsBound := rl.addr("tcp"), rl.addr("tls")
	if wantTCP && tcpBound == "" {
		missing = append(missing, "the tcp listener")
	}
	if wantTLS && tlsBound == "" {
		missing = append(missing, "the tls listener")
	}
	if rl.Admin == "" {
		missing = append(missing, "the admin listener")
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: cotd's \"cotd ready\" line names no address for %s (config %s, log %s)",
			ErrSpawn, strings.Join(missing, " or "), s.ConfigPath, s.LogPath)
	}
	if wantTCP {
		s.TCPAddr = tcpBound
	}
	if wantTLS {
		s.TLSAddr = tlsBound
	}
	s.AdminAddr = rl.Admin
	s.MetricsURL = "http://" + rl.Admin + "/metrics"
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + s.AdminAddr + "/healthz")
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			err = errors.New(resp.Status)
		}
	}
	if err != nil {
		return fmt.Errorf("%w: cotd is ready but its admin listener %s does not answer /healthz: %w (log %s)",
			ErrSpawn, s.AdminAddr, err, s.LogPath)
	}
	for _, addr := range []string{s.TCPAddr, s.TLSAddr} {
		if addr == "" {
			continue
		}
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			return fmt.Errorf("%w: cotd is ready but its listener %s does not accept: %w (log %s)",
				ErrSpawn, addr, err, s.LogPath)
		}
		_ = c.Close()
	}
	return nil
}

// readyLine is what cotbench reads of cotd's "cotd ready" log record (engine's banner):
// the address each listener bound, and the admin listener's.
type readyLine struct {
	Message   string `json:"message"`
	Admin     string `json:"admin"`
	Listeners []struct {
		Listener string `json:"listener"`
		Addr     string `json:"addr"`
	} `json:"listeners"`
}

// addr is the bound address of the listener of that kind ("tcp", "tls"), or "".
func (rl readyLine) addr(kind string) string {
	for _, ln := range rl.Listeners {
		if ln.Listener == kind {
			return ln.Addr
		}
	}
	return ""
}

// parseReady reports whether line is cotd's JSON "cotd ready" record, and reads it.
func parseReady(line []byte) (readyLine, bool) {
	var rl readyLine
	if json.Unmarshal(line, &rl) != nil || rl.Message != "cotd ready" {
		return readyLine{}, false
	}
	return rl, true
}

// lineReader reads a growing file line by line: each call reads what was appended since
// the last, keeping a line not yet finished for the next.
type lineReader struct {
	r       io.Reader
	partial []byte
	chunk   []byte
}

// maxLogLine bounds the unfinished line kept between reads: a ready line is a few hundred
// bytes, and a runaway line without a newline must not grow cotbench's memory.
const maxLogLine = 1 << 20

// each reads what is new and calls fn with every complete line (without its newline) until
// fn returns true; it reports whether one did.
func (lr *lineReader) each(fn func(line []byte) bool) (bool, error) {
	if lr.chunk == nil {
		lr.chunk = make([]byte, 32<<10)
	}
	for {
		n, err := lr.r.Read(lr.chunk)
		lr.partial = append(lr.partial, lr.chunk[:n]...)
		rest := lr.partial
		for {
			i := bytes.IndexByte(rest, '\n')
			if i < 0 {
				break
			}
			line := rest[:i]
			rest = rest[i+1:]
			if fn(line) {
				return true, nil
			}
		}
		if len(rest) > maxLogLine {
			rest = nil
		}
		lr.partial = append(lr.partial[:0], rest...) // copy() semantics: rest lies after it
		if errors.Is(err, io.EOF) || (err == nil && n == 0) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
	}
}

// Exited returns why cotd exited if it did (and Stop did not stop it), else nil.
func (s *Spawned) Exited() error {
	select {
	case <-s.done:
		if s.stopping.Load() {
			return nil
		}
		if s.waitErr != nil {
			return s.waitErr
		}
		return errors.New("exited")
	default:
		return nil
	}
}

// Stop asks cotd to shut down (SIGTERM: it drains and closes) and kills it if it has not
// exited in 15 s.
func (s *Spawned) Stop() error {
	s.stopOnce.Do(func() {
		select {
		case <-s.done:
		default:
			s.stopping.Store(true)
			_ = s.cmd.Process.Signal(syscall.SIGTERM)
			t := time.NewTimer(15 * time.Second)
			select {
			case <-s.done:
			case <-t.C:
				_ = s.cmd.Process.Kill()
				<-s.done
				s.stopErr = fmt.Errorf("%w: cotd did not stop within 15s of SIGTERM; killed", ErrSpawn)
			}
			t.Stop()
		}
		_ = s.logFile.Close()
	})
	return s.stopErr
}

// spawnConfig writes a cotd config with only the keys cotbench sets; everything else keeps
// cotd's embedded defaults, so that an older or newer cotd reads it alike.
func spawnConfig(tcp, tlsAddr, admin string, f PKIFiles, users string, st Spawn) []byte {
	var b bytes.Buffer
	q := strconv.Quote
	b.WriteString("# Written by cotbench for one run.\n\n[tcp]\naddr = " + q(tcp) + "\n\n[tls]\naddr = " + q(tlsAddr) + "\n")
	if tlsAddr != "" {
		b.WriteString("cert = " + q(f.ServerCert) + "\nkey = " + q(f.ServerKey) + "\nca = " + q(f.CA) + "\n")
	}
	if d := st.HandshakeTimeout.Duration; d > 0 {
		b.WriteString("handshake_timeout = " + q(d.String()) + "\n")
	}
	b.WriteString("\n[limits]\n")
	for _, kv := range []struct {
		key string
		d   time.Duration
	}{{"idle_timeout", st.IdleTimeout.Duration}, {"write_timeout", st.WriteTimeout.Duration}} {
		if kv.d > 0 {
			b.WriteString(kv.key + " = " + q(kv.d.String()) + "\n")
		}
	}
	for _, kv := range []struct {
		key string
		n   int
	}{{"outbound_soft_bytes", st.OutboundSoftBytes}, {"outbound_hard_bytes", st.OutboundHardBytes}, {"socket_send_bytes", st.SocketSendBytes}} {
		if kv.n > 0 {
			b.WriteString(kv.key + " = " + strconv.Itoa(kv.n) + "\n")
		}
	}
	if users != "" {
		b.WriteString("\n[auth]\nusers_file = " + q(users) + "\n")
	}
	b.WriteString("\n[admin]\naddr = " + q(admin) + "\n\n[log]\nlevel = " + q(st.LogLevel) + "\nformat = \"json\"\n")
	// The HTTP side is not what a run measures, and its default ports are
	// fixed ones that two runs (or a run and a real server) would share.
	b.WriteString("\n[marti]\nhttps_addr = \"\"\n\n[enroll]\naddr = \"\"\n")
	return b.Bytes()
}

// storeConfig is the spawned cotd's [store] section (spawn.store): off, PostgreSQL at
// spawn.store_url, or SQLite in a fresh file under dir. Not left to cotd's default, whose
// relative path would put the archive in cotbench's working directory and carry it from
// run to run.
func storeConfig(st Spawn, dir string) []byte {
	q := strconv.Quote
	switch st.Store {
	case "off":
		return []byte("\n[store]\nenabled = false\n")
	case "postgres":
		return []byte("\n[store]\nenabled = true\nurl = " + q(st.StoreURL) + "\n")
	}
	return []byte("\n[store]\nenabled = true\npath = " + q(filepath.Join(dir, "store", "cotd.db")) + "\n")
}

// buildCotd builds ./cmd/cotd of the repository into dir, or finds cotd on PATH when no
// repository holds the working directory.
func buildCotd(ctx context.Context, repo, dir string, log zerolog.Logger) (string, error) {
	if repo == "" {
		repo = FindRepo()
	}
	if repo == "" {
		if p, err := exec.LookPath("cotd"); err == nil {
			return p, nil
		}
		return "", fmt.Errorf("%w: not inside the cotd repository and no cotd on PATH; pass --cotd PATH", ErrSpawn)
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("%w: no go toolchain to build cotd; pass --cotd PATH", ErrSpawn)
	}
	out := filepath.Join(dir, "cotd")
	t0 := time.Now()
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", out, "./cmd/cotd")
	cmd.Dir = repo
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%w: go build ./cmd/cotd in %s: %w\n%s", ErrSpawn, repo, err, msg)
	}
	log.Info().Str("binary", out).Dur("took", time.Since(t0)).Msg("cotd built")
	return out, nil
}

// FindRepo returns the root of the cotd repository holding the working directory, or "".
func FindRepo() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if f, err := os.Open(filepath.Join(dir, "go.mod")); err == nil {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				if strings.TrimSpace(sc.Text()) == "module cotd" {
					_ = f.Close()
					return dir
				}
			}
			_ = f.Close()
			return "" // another module
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// lastLogError returns the most telling line of cotd's log: the last error-level JSON
// record as "message: error", else the last line.
func lastLogError(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "(no log)"
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		var rec struct {
			Level   string `json:"level"`
			Message string `json:"message"`
			Error   string `json:"error"`
		}
		if json.Unmarshal([]byte(lines[i]), &rec) == nil && (rec.Level == "error" || rec.Level == "fatal") {
			if rec.Error != "" {
				return rec.Message + ": " + rec.Error
			}
			return rec.Message
		}
	}
	if len(lines) == 0 || lines[len(lines)-1] == "" {
		return "(empty log)"
	}
	return lines[len(lines)-1]
}

// ScrapeMetrics fetches a Prometheus text endpoint and returns each series (name with its
// labels) and value.
func ScrapeMetrics(url string) (map[string]float64, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return parsePromText(resp.Body)
}

func parsePromText(r io.Reader) (map[string]float64, error) {
	out := make(map[string]float64)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest := line, ""
		if i := strings.LastIndexByte(line, '}'); i >= 0 {
			name, rest = line[:i+1], line[i+1:]
		} else if i := strings.IndexByte(line, ' '); i >= 0 {
			name, rest = line[:i], line[i:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		out[name] = v
	}
	return out, sc.Err()
}

// metricsDelta keeps, for counters (…_total, …_count, …_sum), what the run added and, for
// gauges, the value after the run. Histogram buckets are left out.
func metricsDelta(before, after map[string]float64) map[string]float64 {
	out := make(map[string]float64, len(after))
	for k, v := range after {
		base, _, _ := strings.Cut(k, "{")
		switch {
		case strings.HasSuffix(base, "_bucket"):
			continue
		case strings.HasSuffix(base, "_total"), strings.HasSuffix(base, "_count"), strings.HasSuffix(base, "_sum"):
			out[k] = v - before[k]
		default:
			out[k] = v
		}
	}
	return out
}

// GroupUsers is a cotd users file putting user bench-<n> (the CN of client n's certificate)
// in group G<n mod groups>, both ways, for clients 0 to clients-1.
func GroupUsers(clients, groups int) []byte {
	var b bytes.Buffer
	b.WriteString("# Written by cotbench: the routing groups of the run.\n")
	for n := range clients {
		fmt.Fprintf(&b, "\n[[user]]\nname = \"bench-%d\"\ngroups = [\"G%d\"]\n", n, n%groups)
	}
	return b.Bytes()
}
