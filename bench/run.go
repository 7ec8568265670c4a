package bench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// Options says where and how to run a scenario; the scenario says what to run.
type Options struct {
	// Spawn starts a cotd for the run (StartCotd), which binds loopback ports of its own,
	// and targets it; it replaces the scenario's [target].
	Spawn bool
	// Cotd is the cotd binary to spawn; "" builds ./cmd/cotd of the repository that holds
	// the working directory.
	Cotd string
	// Cert, Key and CA override transport.cert, transport.key and transport.ca.
	Cert, Key, CA string
	// CAKey is the key of CA, to issue per-client certificates (overrides transport.ca_key).
	CAKey string
	// PID is a server process to sample from /proc; with Spawn the spawned cotd's.
	PID int
	// MetricsURL is a Prometheus text endpoint scraped before and after the run; with
	// Spawn the spawned cotd's /metrics.
	MetricsURL string
	// Progress receives a live progress line each second; nil for none.
	Progress io.Writer
	// Log is the harness's own log (spawn, failures at debug level).
	Log zerolog.Logger
	// Version labels the report.
	Version string
}

// runner is one run in progress.
type runner struct {
	sc     *Scenario
	dialer *dialer
	log    zerolog.Logger
	st     *stats
	ledger *Ledger
	euds   []*eud
	shards []*shard
	honest int
	groups int // routing groups (groups.count); 1 when there are none

	hst            hostileStats
	start, sendEnd time.Time
	stopping       atomic.Bool
	wg             sync.WaitGroup
}

// Run plays sc and returns its report. Errors wrapping ErrScenario, ErrTarget or ErrSpawn
// mean the run could not start; a run that started always returns a report (marked
// interrupted if ctx ended first), whose Pass says whether the criteria held.
func Run(ctx context.Context, sc *Scenario, opt Options) (*Report, error) {
	if err := sc.Validate(); err != nil {
		return nil, err
	}
	if err := checkDescriptors(sc.Clients + sc.Hostile.count()); err != nil {
		return nil, err
	}
	tgt := RunTarget{TCP: sc.Target.TCP, TLS: sc.Target.TLS, PID: opt.PID}
	metricsURL := opt.MetricsURL
	var material *TLSMaterial
	var notes []string
	var sp *Spawned
	keep := false
	if opt.Spawn {
		dir, err := os.MkdirTemp("", "cotbench-")
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrSpawn, err)
		}
		// The directory (config, certificates, cotd's log) is kept when something went
		// wrong, for a look at the log.
		keep = true
		defer func() {
			if !keep {
				_ = os.RemoveAll(dir)
			}
		}()
		var pki *PKI
		if sc.NeedsTLS() {
			if pki, err = NewPKI("cotbench"); err != nil {
				return nil, fmt.Errorf("%w: %w", ErrSpawn, err)
			}
			material = pki.Material()
		}
		var users []byte
		if sc.Groups.Count > 1 {
			users = GroupUsers(sc.honest(), sc.Groups.Count)
		}
		sp, err = StartCotd(ctx, SpawnOptions{
			Binary: opt.Cotd, Dir: dir, TCP: sc.NeedsTCP(), TLS: sc.NeedsTLS(), PKI: pki,
			Settings: sc.Spawn, Users: users, Log: opt.Log,
		})
		if err != nil {
			// Keep the directory only if cotd ran and left a log (the error names it).
			_, statErr := os.Stat(filepath.Join(dir, "cotd.log"))
			keep = statErr == nil
			return nil, err
		}
		defer func() { _ = sp.Stop() }()
		tgt = RunTarget{TCP: sp.TCPAddr, TLS: sp.TLSAddr, PID: sp.PID, Spawned: true, Cotd: sp.Binary, Settings: sp.Settings}
		metricsURL = sp.MetricsURL
	} else if sc.NeedsTLS() {
		cert, key, ca := orElse(opt.Cert, sc.Transport.Cert), orElse(opt.Key, sc.Transport.Key), orElse(opt.CA, sc.Transport.CA)
		m, err := LoadTLSMaterial(cert, key, ca, orElse(opt.CAKey, sc.Transport.CAKey))
		if err != nil {
			return nil, err
		}
		if m.Roots == nil {
			notes = append(notes, "no CA given: the server's certificate was not verified")
		}
		material = m
	}
	if err := checkTargets(sc, tgt); err != nil {
		return nil, err
	}
	d, err := newDialer(tgt.TCP, tgt.TLS, sc.Connect.Timeout.Duration, material)
	if err != nil {
		return nil, err
	}

	var before map[string]float64
	delayAbsent := ""
	if metricsURL != "" {
		if before, err = ScrapeMetrics(metricsURL); err != nil {
			notes = append(notes, "metrics not scraped: "+err.Error())
			metricsURL = ""
			delayAbsent = "the server's /metrics could not be scraped: " + err.Error()
		}
	}
	r := newRunner(sc, d, opt.Log)
	if sc.Transport.ClientCerts == ClientCertsPerClient && sc.NeedsTLS() {
		if err := r.issueCerts(material); err != nil {
			return nil, err
		}
	}
	// The monitor scrapes the server's delay histogram only where the scrape above worked.
	opt.MetricsURL = metricsURL
	rep := r.run(ctx, opt, tgt, sp)
	if delayAbsent != "" {
		rep.ServerDelayAbsent = delayAbsent
	}
	rep.Notes = append(notes, rep.Notes...)
	rep.Version = opt.Version
	if metricsURL != "" {
		if after, err := ScrapeMetrics(metricsURL); err == nil {
			rep.ServerMetrics = metricsDelta(before, after)
		} else {
			rep.Notes = append(rep.Notes, "metrics not scraped after the run: "+err.Error())
		}
	}
	if sp != nil {
		if err := sp.Exited(); err != nil {
			rep.Notes = append(rep.Notes, "the spawned cotd exited during the run: "+err.Error()+" (log: "+sp.LogPath+")")
		}
	}
	rep.evaluate(sc)
	if sp != nil {
		if rep.Pass {
			keep = false
		} else {
			rep.Notes = append(rep.Notes, "the spawned cotd's config and log are kept in "+filepath.Dir(sp.LogPath))
		}
	}
	return rep, nil
}

func orElse(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// checkTargets makes sure every kind of client has a loopback address to go to.
func checkTargets(sc *Scenario, t RunTarget) error {
	var missing []string
	if sc.NeedsTCP() && t.TCP == "" {
		missing = append(missing, "the scenario has TCP clients but no TCP target (--target, --spawn or target.tcp)")
	}
	if sc.NeedsTLS() && t.TLS == "" {
		missing = append(missing, "the scenario has TLS clients but no TLS target (--target with --tls, --tls-target, --spawn or target.tls)")
	}
	for _, addr := range append(splitTargets(t.TCP), splitTargets(t.TLS)...) {
		if err := CheckLoopback(addr); err != nil {
			missing = append(missing, err.Error())
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %v", ErrTarget, missing)
	}
	return nil
}

// checkDescriptors refuses a run that cannot hold one descriptor per client: limits are
// not raised here.
func checkDescriptors(clients int) error {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return nil
	}
	if need := uint64(clients) + 64; need > rl.Cur {
		return fmt.Errorf("%w: %d clients need about %d descriptors; this process may open %d (ulimit -n)",
			ErrScenario, clients, need, rl.Cur)
	}
	return nil
}

func newRunner(sc *Scenario, d *dialer, log zerolog.Logger) *runner {
	r := &runner{sc: sc, dialer: d, log: log, st: newStats(), honest: sc.honest(), groups: max(sc.Groups.Count, 1)}
	n := max(4, 2*runtime.GOMAXPROCS(0))
	for range n {
		r.shards = append(r.shards, newShard(r))
	}
	honest := r.honest
	ti, si := 0, 0
	for i := range sc.Clients {
		e := &eud{r: r, n: i, shard: r.shards[i%n], stalled: i >= honest}
		if !e.stalled {
			e.v1 = spread(i, sc.Transport.V1Fraction)
			if spread(i, sc.Transport.TLSFraction) {
				e.tr = transportTLS
				if spread(ti, sc.Transport.UTLSFraction) {
					e.tr = transportUTLS
				}
				ti++
			}
			e.storm = sc.Reconnect.Fraction > 0 && spread(si, sc.Reconnect.Fraction)
			si++
		}
		r.euds = append(r.euds, e)
	}
	return r
}

// groupOf is client n's routing group.
func (r *runner) groupOf(n int) int { return n % r.groups }

// groupPeer picks a random honest client other than n in n's group; ok is false when n is
// alone in it.
func (r *runner) groupPeer(n int) (peer int, ok bool) {
	g := r.groupOf(n)
	members := (r.honest - g + r.groups - 1) / r.groups // g, g+groups, … below honest
	if members < 2 {
		return 0, false
	}
	k := rand.IntN(members - 1)
	if self := (n - g) / r.groups; k >= self {
		k++
	}
	return g + k*r.groups, true
}

// issueCerts gives every honest TLS client a certificate of its own, CN bench-<n>.
func (r *runner) issueCerts(m *TLSMaterial) error {
	if m == nil || m.Issue == nil {
		return fmt.Errorf("%w: transport.client_certs = %q needs a CA to issue them from: run with --spawn, or give the CA's key (transport.ca_key or --ca-key)", ErrTarget, ClientCertsPerClient)
	}
	for _, e := range r.euds {
		if e.stalled || e.tr == transportTCP {
			continue
		}
		c, err := m.Issue("bench-" + strconv.Itoa(e.n))
		if err != nil {
			return fmt.Errorf("%w: client certificate for bench-%d: %w", ErrTarget, e.n, err)
		}
		e.cert = &c
	}
	return nil
}

// run plays the scenario: connects per the ramp, sends until the end of the send phase,
// drains for measure.window, closes everything and builds the report.
func (r *runner) run(ctx context.Context, opt Options, tgt RunTarget, sp *Spawned) *Report {
	sc := r.sc
	loadBefore := loadAverage()
	r.start = time.Now()
	r.sendEnd = r.start.Add(sc.Duration.Duration)
	r.ledger = NewLedger(r.start, sc.Duration.Duration, sc.Measure.Window.Duration, sc.Measure.Settle.Duration, r.groups)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()

	shardCtx, stopShards := context.WithCancel(context.Background())
	var shardsDone sync.WaitGroup
	for _, sh := range r.shards {
		shardsDone.Add(1)
		go func() { defer shardsDone.Done(); sh.run(shardCtx) }()
	}

	mon := newMonitor(r, opt, tgt.PID, sp)
	monCtx, stopMon := context.WithCancel(context.Background())
	monDone := make(chan struct{})
	go func() { defer close(monDone); mon.loop(monCtx) }()

	ramp := sc.Connect.Ramp.Duration
	if sc.Connect.Mode == ConnectAllAtOnce {
		ramp = 0
	}
	r.wg.Add(len(r.euds))
	for i, e := range r.euds {
		at := r.start
		if ramp > 0 {
			at = r.start.Add(time.Duration(int64(ramp) * int64(i) / int64(len(r.euds))))
		}
		go e.run(runCtx, at)
	}
	r.runHostiles(runCtx)
	stormsDone := make(chan struct{})
	go func() { defer close(stormsDone); r.storms(runCtx) }()

	interrupted := false
	end := time.NewTimer(time.Until(r.sendEnd.Add(sc.Measure.Window.Duration)))
	select {
	case <-end.C:
	case <-ctx.Done():
		interrupted = true
		end.Stop()
	}

	r.stopping.Store(true)
	cancel()
	for _, e := range r.euds {
		if s := e.sess.Load(); s != nil {
			_ = s.raw.Close()
		}
	}
	var notes []string
	if !waitTimeout(&r.wg, 30*time.Second) {
		notes = append(notes, "some clients did not stop within 30s")
	}
	<-stormsDone
	stopShards()
	shardsDone.Wait()
	stopMon()
	<-monDone
	rep := r.report(mon, tgt, time.Since(r.start))
	rep.Host = HostInfo{CPUs: runtime.NumCPU(), LoadBefore: loadBefore, LoadAfter: loadAverage()}
	rep.Interrupted = interrupted
	rep.Notes = append(rep.Notes, notes...)
	if opt.Progress != nil {
		fmt.Fprintln(opt.Progress)
	}
	return rep
}

// storms disconnects the storm clients together every reconnect.every, reconnect.times
// times. A client that is not connected at that moment sits that storm out.
func (r *runner) storms(ctx context.Context) {
	rc := r.sc.Reconnect
	if rc.Fraction == 0 || rc.Times == 0 {
		return
	}
	for k := 1; k <= rc.Times; k++ {
		if !sleepCtx(ctx, time.Until(r.start.Add(rc.Every.Duration*time.Duration(k)))) {
			return
		}
		now := time.Now().UnixNano()
		n := 0
		for _, e := range r.euds {
			if !e.storm {
				continue
			}
			if s := e.sess.Load(); s != nil && !s.closed.Load() {
				s.leaving.Store(true)
				e.shard.schedule(s, now)
				n++
			}
		}
		r.log.Info().Int("storm", k).Int("clients", n).Msg("reconnect storm")
	}
}

func waitTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}
