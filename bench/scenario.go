package bench

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"cotd/configs"
)

// Duration is a time.Duration written with units in TOML ("10s"); a bare number other than
// 0 is refused, so "15" can never silently mean 15 ns. It is cotd's own config type, so a
// scenario and a server config read the same way.
type Duration = configs.Duration

// Bounds checked by Validate. A run must stay bounded in count and time.
const (
	// MaxClients leaves headroom under the 20,000 descriptors a process may hold here: the
	// harness needs one per client plus a few of its own. Run also checks RLIMIT_NOFILE.
	MaxClients = 19000
	// MaxDuration bounds one run's send phase.
	MaxDuration = 24 * time.Hour
	// minInterval is the shortest per-client send interval: below it one client alone is a
	// flood, not an EUD.
	minInterval = 10 * time.Millisecond
)

// Scenario is one load test, decoded from a TOML file in configs/bench. Each field's doc
// gives its key, its default and what zero means; LoadScenario decodes strictly on top of
// DefaultScenario and validates before any socket opens.
type Scenario struct {
	// Name (name) labels the reports; default: the file name without ".toml".
	Name string `toml:"name"`
	// Description (description) is free text for the reports; default "".
	Description string `toml:"description"`
	// Clients (clients) is the number of simulated EUDs, stalled ones included; required,
	// 1..MaxClients.
	Clients int `toml:"clients"`
	// Duration (duration) is the send phase, counted from the start of the run (the ramp is
	// inside it); required. A drain of measure.window follows it.
	Duration Duration `toml:"duration"`

	Target    Target    `toml:"target"`
	Connect   Connect   `toml:"connect"`
	Transport Transport `toml:"transport"`
	Groups    Groups    `toml:"groups"`
	Reconnect Reconnect `toml:"reconnect"`
	Stalled   Stalled   `toml:"stalled"`
	SA        SA        `toml:"sa"`
	Chat      Chat      `toml:"chat"`
	Markers   Markers   `toml:"markers"`
	Ping      Ping      `toml:"ping"`
	Measure   Measure   `toml:"measure"`
	Pass      Pass      `toml:"pass"`
	Hostile   Hostile   `toml:"hostile"`
	Spawn     Spawn     `toml:"spawn"`
}

// Target says where clients connect when the command line does not (--target, --spawn
// override it).
type Target struct {
	// TCP (target.tcp) is host:port of a plain streaming port, or several
	// comma-separated (the nodes of a cotd cluster: clients are spread over them
	// round-robin, and loss, latency and misrouting are accounted across them); default "".
	TCP string `toml:"tcp"`
	// TLS (target.tls) is host:port of a TLS streaming port, or several as for TCP;
	// default "".
	TLS string `toml:"tls"`
}

// Connect shapes the first connects and the retries.
type Connect struct {
	// Mode (connect.mode) is "ramp" (first connects spread evenly over Ramp) or
	// "all_at_once" (every dial starts together); default "ramp".
	Mode ConnectMode `toml:"mode"`
	// Ramp (connect.ramp) is how long the first connects are spread over; default "5s";
	// "0s" behaves as all_at_once. Must not exceed duration.
	Ramp Duration `toml:"ramp"`
	// Timeout (connect.timeout) bounds the TCP connect and, separately, the TLS handshake;
	// default "20s" (commo's connect timeout).
	Timeout Duration `toml:"timeout"`
	// RetryDelay (connect.retry_delay) is the wait after a failed connect before the next
	// attempt; default "15s" (commo reconnects after 15 s); "0s" means never retry.
	RetryDelay Duration `toml:"retry_delay"`
	// WriteTimeout (connect.write_timeout) bounds one send; a send that does not finish in
	// it closes the connection (write_timeout). Sends are driven by a few shared schedulers,
	// so a stuck write also delays the other clients of its scheduler: keep it short.
	// Default "5s".
	WriteTimeout Duration `toml:"write_timeout"`
}

// Transport picks TCP or TLS per client and the client's certificate.
type Transport struct {
	// TLSFraction (transport.tls_fraction) of the honest clients connect with TLS, spread
	// evenly over the client numbers; default 0 (all TCP).
	TLSFraction float64 `toml:"tls_fraction"`
	// UTLSFraction (transport.utls_fraction) of the TLS clients speak through utls with the
	// HelloAndroid_11_OkHttp parrot (a TLS 1.2 Android hello); the rest use crypto/tls.
	// Default 0.5.
	UTLSFraction float64 `toml:"utls_fraction"`
	// V1Fraction (transport.v1_fraction) of the honest clients answer the server's offer of
	// TAK protocol v1 (t-x-takp-v) with a request for it and, once granted, speak v1
	// (protobuf) both ways, as ATAK does; the rest stay on XML. Spread evenly over the
	// client numbers, across TCP and TLS. Default 0.
	V1Fraction float64 `toml:"v1_fraction"`
	// ClientCerts (transport.client_certs) is "shared" (every TLS client presents the same
	// certificate) or "per_client" (each has its own, CN bench-<n>, so the server sees as
	// many users as clients, as a real fleet; cotbench issues them from its own CA, so
	// this needs --spawn). Default "shared".
	ClientCerts string `toml:"client_certs"`
	// Cert and Key (transport.cert, transport.key) are the PEM client certificate and key;
	// CA (transport.ca) the PEM bundle that verifies the server's chain (no host name check,
	// as ATAK; "" skips verification). Relative paths are relative to the scenario file.
	// Ignored with --spawn, which generates all three. Default "".
	Cert string `toml:"cert"`
	Key  string `toml:"key"`
	CA   string `toml:"ca"`
	// CAKey (transport.ca_key) is the PEM key of the CA in transport.ca: with it cotbench
	// can issue per-client certificates for a run against a server it did not spawn. Its
	// certificate must be the first in transport.ca. Default "".
	CAKey string `toml:"ca_key"`
}

// Groups splits the clients into TAK routing groups, as units on one server are: client n
// is in group G<n mod count>, both IN and OUT, by the CN of its certificate (bench-<n>). A
// message is then owed only within its group, and one that crosses groups is counted as
// misrouted. It needs every honest client on TLS with its own certificate
// (transport.tls_fraction = 1, transport.client_certs = "per_client"). With --spawn
// cotbench writes the users file; against another server, put user bench-<n> in group
// G<n mod count> there.
type Groups struct {
	// Count (groups.count) of groups; default 0 (everyone hears everyone).
	Count int `toml:"count"`
}

// The values of transport.client_certs.
const (
	ClientCertsShared    = "shared"
	ClientCertsPerClient = "per_client"
)

// Reconnect describes reconnect storms: a fraction of the honest clients disconnects
// together, stays away, and comes back, several times.
type Reconnect struct {
	// Fraction (reconnect.fraction) of the honest clients take part; default 0 (no storms).
	Fraction float64 `toml:"fraction"`
	// Times (reconnect.times) is the number of storms; default 0. Required with Fraction.
	Times int `toml:"times"`
	// Every (reconnect.every) is the time from the start to the first storm and between
	// storms; default "0s". Every*Times must end inside duration.
	Every Duration `toml:"every"`
	// Offline (reconnect.offline) is how long a client stays away before redialling;
	// default "1s".
	Offline Duration `toml:"offline"`
	// Abrupt (reconnect.abrupt) drops the connection with a reset, as a phone losing its
	// network would, instead of closing it. Data still in flight may then be lost by the
	// kernel, which the loss figures will show. Default false.
	Abrupt bool `toml:"abrupt"`
}

// Stalled describes clients that connect and then stall (slowloris).
type Stalled struct {
	// Fraction (stalled.fraction) of all clients stall; they send nothing, read and discard
	// what arrives, and are neither senders nor recipients in the loss figures. Default 0.
	Fraction float64 `toml:"fraction"`
	// Mode (stalled.mode) is "silent" (connect, send nothing) or "half_hello" (connect to
	// the TLS port and send the first half of a real ClientHello); default "silent".
	Mode StallMode `toml:"mode"`
}

// SA is the self position report every honest client sends.
type SA struct {
	// Interval (sa.interval) between one client's SAs; default "5s". A client becomes a
	// recipient only once its first SA has told the server its callsign. "0s" sends no SA
	// at all: idle EUDs that only ping after 15 s of silence, for connect, handshake and
	// memory scenarios where a broadcast to thousands would swamp the measurement.
	Interval Duration `toml:"interval"`
	// Jitter (sa.jitter) varies each interval uniformly by ±Jitter (a fraction); default 0.1.
	Jitter float64 `toml:"jitter"`
}

// Chat is GeoChat traffic.
type Chat struct {
	// AllInterval (chat.all_interval) between one client's messages to All Chat Rooms
	// (broadcast); default "0s" = none.
	AllInterval Duration `toml:"all_interval"`
	// DirectedInterval (chat.directed_interval) between one client's direct messages to a
	// random other honest client, addressed with <marti><dest callsign=…/>; default "0s" =
	// none.
	DirectedInterval Duration `toml:"directed_interval"`
	// Jitter (chat.jitter) as sa.jitter; default 0.2.
	Jitter float64 `toml:"jitter"`
}

// Markers are user-placed map points (spot markers), broadcast.
type Markers struct {
	// Interval (markers.interval) between one client's markers; default "0s" = none.
	Interval Duration `toml:"interval"`
	// Jitter (markers.jitter) as sa.jitter; default 0.2.
	Jitter float64 `toml:"jitter"`
}

// Ping is the keep-alive, as commo does it.
type Ping struct {
	// Silence (ping.silence): a client that received nothing this long sends a ping;
	// default "15s".
	Silence Duration `toml:"silence"`
	// Repeat (ping.repeat): while the silence lasts, pings repeat this often; default
	// "4.5s".
	Repeat Duration `toml:"repeat"`
	// RxTimeout (ping.rx_timeout): silence this long is counted as rx_timeout (commo would
	// drop the connection here; cotbench counts it and stays); default "25s"; "0s" = off.
	RxTimeout Duration `toml:"rx_timeout"`
}

// Measure tunes the loss accounting (see Ledger).
type Measure struct {
	// Window (measure.window) is how long after a send a delivery is awaited: a recipient
	// must stay connected this long after a send to be owed it, a delivery later than this
	// is counted late, and the run drains this long after the send phase. Default "5s".
	Window Duration `toml:"window"`
	// Settle (measure.settle) is how long after a client's first SA the server is given to
	// register it and its callsign before the client is owed deliveries; default "1s".
	Settle Duration `toml:"settle"`
}

// Pass holds the pass criteria. A run passes when all hold.
type Pass struct {
	// MaxLossPct (pass.max_loss_pct) is the largest acceptable loss, in percent of the
	// deliveries owed; default 0.
	MaxLossPct float64 `toml:"max_loss_pct"`
	// MaxP99Latency (pass.max_p99_latency) bounds the p99 end-to-end delivery latency;
	// default "1s"; "0s" = not checked.
	MaxP99Latency Duration `toml:"max_p99_latency"`
	// MinConnectSuccessPct (pass.min_connect_success_pct) is the least acceptable share of
	// connect attempts (TCP connect and, for TLS, handshake) that succeed; default 100.
	MinConnectSuccessPct float64 `toml:"min_connect_success_pct"`
	// MaxUnexpected (pass.max_unexpected) bounds deliveries nobody was owed: directed
	// messages at a non-destination, a client's own messages echoed back, duplicates;
	// default 0.
	MaxUnexpected int `toml:"max_unexpected"`
	// MaxP99Connect (pass.max_p99_connect) bounds the p99 of connect plus handshake time of
	// honest clients; default "0s" = not checked.
	MaxP99Connect Duration `toml:"max_p99_connect"`
	// MaxHonestClosed (pass.max_honest_closed) bounds the honest connections the server
	// closed or reset; checked only when the scenario has hostile clients. Default 0.
	MaxHonestClosed int `toml:"max_honest_closed"`
	// MaxServerRSSMB (pass.max_server_rss_mb) bounds the server's peak resident memory,
	// in MiB, when its process is sampled (--spawn or --pid); default 0 = not checked.
	MaxServerRSSMB float64 `toml:"max_server_rss_mb"`
	// MaxCPUMicrosPerDelivery (pass.max_cpu_us_per_delivery) bounds the server's CPU per
	// delivery over the steady window, in microseconds (CostReport); it needs the server's
	// process (--spawn or --pid), and a run that could not measure it fails. Default 0 =
	// not checked.
	MaxCPUMicrosPerDelivery float64 `toml:"max_cpu_us_per_delivery"`
	// MaxServerP99Delay (pass.max_server_p99_delay) bounds the p99 of the server's own
	// delivery delay over the steady window: cotd's cotd_delivery_delay_seconds, from
	// reading a frame to handing it to a recipient's socket (ServerDelayReport), without
	// the harness's scheduling that the end-to-end latency holds. The p99 is the upper
	// bound of its histogram bucket (cotd's bounds double from 50 µs: …, 0.8ms, 1.6ms,
	// 3.2ms, 6.4ms, …), so set the limit on a bound. It needs the server's admin /metrics
	// (--spawn, or --metrics of a cotd), and a run that could not measure it fails.
	// Default "0s" = not checked.
	MaxServerP99Delay Duration `toml:"max_server_p99_delay"`
}

// Spawn adjusts the cotd that --spawn starts; zero keeps cotd's own default.
type Spawn struct {
	// LogLevel (spawn.log_level) of the spawned cotd; default "info".
	LogLevel string `toml:"log_level"`
	// HandshakeTimeout, IdleTimeout, WriteTimeout (spawn.handshake_timeout,
	// spawn.idle_timeout, spawn.write_timeout) become tls.handshake_timeout,
	// limits.idle_timeout and limits.write_timeout; default "0s" = cotd's default.
	HandshakeTimeout Duration `toml:"handshake_timeout"`
	IdleTimeout      Duration `toml:"idle_timeout"`
	WriteTimeout     Duration `toml:"write_timeout"`
	// OutboundSoftBytes, OutboundHardBytes, SocketSendBytes (spawn.outbound_soft_bytes, …)
	// become the limits.* keys of the same names; default 0 = cotd's default.
	OutboundSoftBytes int `toml:"outbound_soft_bytes"`
	OutboundHardBytes int `toml:"outbound_hard_bytes"`
	SocketSendBytes   int `toml:"socket_send_bytes"`
	// Store (spawn.store) is the spawned cotd's persistence: "sqlite" (default; a fresh
	// file in the run's directory, so no run inherits another's archive), "postgres"
	// (spawn.store_url) or "off" ([store] enabled = false), for comparing a run with the
	// store on and off.
	Store string `toml:"store"`
	// StoreURL (spawn.store_url) is the PostgreSQL URL with spawn.store = "postgres";
	// default "". Its database should be empty or cotd's own.
	StoreURL string `toml:"store_url"`
	// Cotd (the [spawn.cotd] table) is laid over the config cotbench writes for the spawned
	// cotd: any key of cotd's config under its own section, e.g.
	//   [spawn.cotd.output]
	//   coalesce_delay = "1ms"
	// Tables merge key by key; cotd's strict decoding checks the result before cotd
	// starts. --set KEY=VALUE on the command line adds to it (and wins). The listener
	// addresses, the certificates and log.format are cotbench's (it asks for port 0 and
	// reads the bound ports from cotd's JSON log, makes the certificates) and cannot be
	// set. Default: empty.
	Cotd map[string]any `toml:"cotd"`
}

// ConnectMode is how first connects are spread. It is fixed by the scenario; nothing
// changes it during a run.
type ConnectMode uint8

const (
	// ConnectRamp spreads first connects evenly over connect.ramp.
	ConnectRamp ConnectMode = iota
	// ConnectAllAtOnce starts every first dial at the same moment.
	ConnectAllAtOnce
)

func (m ConnectMode) String() string {
	switch m {
	case ConnectRamp:
		return "ramp"
	case ConnectAllAtOnce:
		return "all_at_once"
	}
	return "ConnectMode(" + strconv.Itoa(int(m)) + ")"
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (m *ConnectMode) UnmarshalText(b []byte) error {
	switch string(b) {
	case "ramp":
		*m = ConnectRamp
	case "all_at_once":
		*m = ConnectAllAtOnce
	default:
		return fmt.Errorf("want \"ramp\" or \"all_at_once\", got %q", b)
	}
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (m ConnectMode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// StallMode is what a stalled client does after connecting. Fixed by the scenario.
type StallMode uint8

const (
	// StallSilent connects (TCP only, even to a TLS port) and sends nothing.
	StallSilent StallMode = iota
	// StallHalfHello connects to the TLS port and sends half of a real ClientHello.
	StallHalfHello
)

func (m StallMode) String() string {
	switch m {
	case StallSilent:
		return "silent"
	case StallHalfHello:
		return "half_hello"
	}
	return "StallMode(" + strconv.Itoa(int(m)) + ")"
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (m *StallMode) UnmarshalText(b []byte) error {
	switch string(b) {
	case "silent":
		*m = StallSilent
	case "half_hello":
		*m = StallHalfHello
	default:
		return fmt.Errorf("want \"silent\" or \"half_hello\", got %q", b)
	}
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (m StallMode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

func dur(d time.Duration) Duration { return Duration{Duration: d} }

// DefaultScenario returns the defaults a scenario file is decoded on top of. Clients and
// duration have no default: a file must say how big and how long.
func DefaultScenario() *Scenario {
	return &Scenario{
		Connect:   Connect{Mode: ConnectRamp, Ramp: dur(5 * time.Second), Timeout: dur(20 * time.Second), RetryDelay: dur(15 * time.Second), WriteTimeout: dur(5 * time.Second)},
		Transport: Transport{UTLSFraction: 0.5},
		Reconnect: Reconnect{Offline: dur(time.Second)},
		SA:        SA{Interval: dur(5 * time.Second), Jitter: 0.1},
		Chat:      Chat{Jitter: 0.2},
		Markers:   Markers{Jitter: 0.2},
		Ping:      Ping{Silence: dur(15 * time.Second), Repeat: dur(4500 * time.Millisecond), RxTimeout: dur(25 * time.Second)},
		Measure:   Measure{Window: dur(5 * time.Second), Settle: dur(time.Second)},
		Pass:      Pass{MaxP99Latency: dur(time.Second), MinConnectSuccessPct: 100},
		Spawn:     Spawn{LogLevel: "info", Store: "sqlite"},
	}
}

// LoadScenario reads, decodes and validates the scenario at path. Relative certificate
// paths are resolved against the file's directory; the name defaults to the file's.
func LoadScenario(path string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrScenario, err)
	}
	base := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	sc, err := ParseScenario(data, base, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return sc, nil
}

// ParseScenario decodes data strictly on top of DefaultScenario (an unknown key or a
// value of the wrong type is an error naming its key) and validates the result; every
// problem is reported in one error that wraps ErrScenario. name is the default name; dir
// resolves relative certificate paths ("" leaves them).
func ParseScenario(data []byte, name, dir string) (*Scenario, error) {
	sc := DefaultScenario()
	errs := decodeStrict(data, sc)
	if sc.Name == "" {
		sc.Name = name
	}
	if dir != "" {
		for _, p := range []*string{&sc.Transport.Cert, &sc.Transport.Key, &sc.Transport.CA, &sc.Transport.CAKey} {
			if *p != "" && !filepath.IsAbs(*p) {
				*p = filepath.Join(dir, *p)
			}
		}
	}
	errs = append(errs, sc.validate()...)
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrScenario, errors.Join(errs...))
	}
	return sc, nil
}

// Validate reports every problem in sc at once, or nil.
func (sc *Scenario) Validate() error {
	if errs := sc.validate(); len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrScenario, errors.Join(errs...))
	}
	return nil
}

func (sc *Scenario) validate() []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if h := sc.Hostile; min(h.MarkerFlooders, h.PositionFlooders, h.Impostors, h.Rotators, h.Injectors) < 0 {
		bad("hostile.* counts must not be negative")
	}
	if sc.Pass.MaxHonestClosed < 0 || sc.Pass.MaxServerRSSMB < 0 {
		bad("pass.max_honest_closed and pass.max_server_rss_mb must not be negative")
	}
	fraction := func(key string, f float64) {
		if math.IsNaN(f) || f < 0 || f > 1 {
			bad("%s must be between 0 and 1, got %v", key, f)
		}
	}
	nonNegative := func(key string, d Duration) {
		if d.Duration < 0 {
			bad("%s must not be negative, got %q", key, d.Duration)
		}
	}
	positive := func(key string, d Duration) {
		if d.Duration <= 0 {
			bad("%s must be positive, got %q", key, d.Duration)
		}
	}
	interval := func(key string, d Duration, required bool) {
		switch {
		case d.Duration == 0 && !required:
		case d.Duration < minInterval:
			bad("%s must be at least %s, got %q", key, minInterval, d.Duration)
		}
	}

	if sc.Clients < 1 || sc.Clients > MaxClients {
		bad("clients must be between 1 and %d, got %d", MaxClients, sc.Clients)
	}
	if sc.Duration.Duration <= 0 || sc.Duration.Duration > MaxDuration {
		bad("duration must be positive and at most %s, got %q", MaxDuration, sc.Duration.Duration)
	}
	for key, addrs := range map[string]string{"target.tcp": sc.Target.TCP, "target.tls": sc.Target.TLS} {
		for _, addr := range splitTargets(addrs) {
			if err := CheckLoopback(addr); err != nil {
				bad("%s: %v", key, err)
			}
		}
	}
	nonNegative("connect.ramp", sc.Connect.Ramp)
	if sc.Connect.Ramp.Duration > sc.Duration.Duration && sc.Duration.Duration > 0 {
		bad("connect.ramp (%s) must not exceed duration (%s)", sc.Connect.Ramp.Duration, sc.Duration.Duration)
	}
	positive("connect.timeout", sc.Connect.Timeout)
	nonNegative("connect.retry_delay", sc.Connect.RetryDelay)
	positive("connect.write_timeout", sc.Connect.WriteTimeout)

	fraction("transport.tls_fraction", sc.Transport.TLSFraction)
	fraction("transport.utls_fraction", sc.Transport.UTLSFraction)
	fraction("transport.v1_fraction", sc.Transport.V1Fraction)
	if g := sc.Groups.Count; g < 0 {
		bad("groups.count must not be negative")
	} else if g > 1 {
		if sc.Transport.TLSFraction != 1 || sc.Transport.ClientCerts != ClientCertsPerClient {
			bad("groups.count needs every client on TLS with its own certificate (its CN names its user): transport.tls_fraction = 1 and transport.client_certs = %q", ClientCertsPerClient)
		}
		if sc.Clients > 0 && g > sc.Clients {
			bad("groups.count (%d) must not exceed clients (%d)", g, sc.Clients)
		}
	}
	switch sc.Transport.ClientCerts {
	case "", ClientCertsShared, ClientCertsPerClient:
	default:
		bad("transport.client_certs %q is not %q or %q", sc.Transport.ClientCerts, ClientCertsShared, ClientCertsPerClient)
	}
	if sc.Transport.CAKey != "" && sc.Transport.CA == "" {
		bad("transport.ca_key needs transport.ca, the certificate it belongs to")
	}
	if (sc.Transport.Cert == "") != (sc.Transport.Key == "") {
		bad("transport.cert and transport.key go together: set both or neither")
	}

	fraction("reconnect.fraction", sc.Reconnect.Fraction)
	if sc.Reconnect.Times < 0 {
		bad("reconnect.times must not be negative, got %d", sc.Reconnect.Times)
	}
	nonNegative("reconnect.offline", sc.Reconnect.Offline)
	if sc.Reconnect.Fraction > 0 {
		if sc.Reconnect.Times < 1 {
			bad("reconnect.times must be at least 1 when reconnect.fraction is set")
		}
		positive("reconnect.every", sc.Reconnect.Every)
		if last := sc.Reconnect.Every.Duration * time.Duration(sc.Reconnect.Times); last >= sc.Duration.Duration && sc.Reconnect.Every.Duration > 0 {
			bad("the last reconnect storm (reconnect.every x reconnect.times = %s) must come before the end of duration (%s)",
				last, sc.Duration.Duration)
		}
	}

	fraction("stalled.fraction", sc.Stalled.Fraction)
	if sc.Clients > 0 && sc.Stalled.Fraction > 0 && sc.honest() < 1 {
		bad("stalled.fraction %v leaves no honest client out of %d", sc.Stalled.Fraction, sc.Clients)
	}

	interval("sa.interval", sc.SA.Interval, false)
	fraction("sa.jitter", sc.SA.Jitter)
	interval("chat.all_interval", sc.Chat.AllInterval, false)
	interval("chat.directed_interval", sc.Chat.DirectedInterval, false)
	fraction("chat.jitter", sc.Chat.Jitter)
	if sc.Chat.DirectedInterval.Duration > 0 && sc.Clients > 0 && sc.honest() < 2 {
		bad("chat.directed_interval needs at least 2 honest clients")
	}
	interval("markers.interval", sc.Markers.Interval, false)
	fraction("markers.jitter", sc.Markers.Jitter)

	positive("ping.silence", sc.Ping.Silence)
	positive("ping.repeat", sc.Ping.Repeat)
	nonNegative("ping.rx_timeout", sc.Ping.RxTimeout)

	if sc.Measure.Window.Duration < 100*time.Millisecond {
		bad("measure.window must be at least 100ms, got %q", sc.Measure.Window.Duration)
	}
	nonNegative("measure.settle", sc.Measure.Settle)

	if math.IsNaN(sc.Pass.MaxLossPct) || sc.Pass.MaxLossPct < 0 || sc.Pass.MaxLossPct > 100 {
		bad("pass.max_loss_pct must be between 0 and 100, got %v", sc.Pass.MaxLossPct)
	}
	if math.IsNaN(sc.Pass.MinConnectSuccessPct) || sc.Pass.MinConnectSuccessPct < 0 || sc.Pass.MinConnectSuccessPct > 100 {
		bad("pass.min_connect_success_pct must be between 0 and 100, got %v", sc.Pass.MinConnectSuccessPct)
	}
	nonNegative("pass.max_p99_latency", sc.Pass.MaxP99Latency)
	nonNegative("pass.max_p99_connect", sc.Pass.MaxP99Connect)
	nonNegative("pass.max_server_p99_delay", sc.Pass.MaxServerP99Delay)
	if math.IsNaN(sc.Pass.MaxCPUMicrosPerDelivery) || sc.Pass.MaxCPUMicrosPerDelivery < 0 {
		bad("pass.max_cpu_us_per_delivery must be 0 (not checked) or positive, got %v", sc.Pass.MaxCPUMicrosPerDelivery)
	}
	if sc.Pass.MaxUnexpected < 0 {
		bad("pass.max_unexpected must not be negative, got %d", sc.Pass.MaxUnexpected)
	}

	switch sc.Spawn.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("spawn.log_level must be debug, info, warn or error, got %q", sc.Spawn.LogLevel)
	}
	switch {
	case sc.Spawn.Store != "sqlite" && sc.Spawn.Store != "postgres" && sc.Spawn.Store != "off":
		bad("spawn.store must be sqlite, postgres or off, got %q", sc.Spawn.Store)
	case sc.Spawn.Store == "postgres" && sc.Spawn.StoreURL == "":
		bad("spawn.store = \"postgres\" needs spawn.store_url")
	case sc.Spawn.Store != "postgres" && sc.Spawn.StoreURL != "":
		bad("spawn.store_url is set but spawn.store is %q, not postgres", sc.Spawn.Store)
	}
	nonNegative("spawn.handshake_timeout", sc.Spawn.HandshakeTimeout)
	nonNegative("spawn.idle_timeout", sc.Spawn.IdleTimeout)
	nonNegative("spawn.write_timeout", sc.Spawn.WriteTimeout)
	errs = append(errs, checkOverlay(sc.Spawn.Cotd)...)
	for key, v := range map[string]int{
		"spawn.outbound_soft_bytes": sc.Spawn.OutboundSoftBytes,
		"spawn.outbound_hard_bytes": sc.Spawn.OutboundHardBytes,
		"spawn.socket_send_bytes":   sc.Spawn.SocketSendBytes,
	} {
		if v < 0 {
			bad("%s must be 0 (cotd's default) or positive, got %d", key, v)
		}
	}
	return errs
}

// stalledCount is the number of stalled clients: the fraction of all clients, rounded.
func (sc *Scenario) stalledCount() int {
	return int(math.Round(sc.Stalled.Fraction * float64(sc.Clients)))
}

// honest is the number of clients that behave: clients minus the stalled ones.
func (sc *Scenario) honest() int { return sc.Clients - sc.stalledCount() }

// NeedsTLS reports whether some client connects to a TLS port.
func (sc *Scenario) NeedsTLS() bool {
	return sc.tlsCount() > 0 || (sc.stalledCount() > 0 && sc.Stalled.Mode == StallHalfHello)
}

// NeedsTCP reports whether some client connects to a plain TCP port.
func (sc *Scenario) NeedsTCP() bool {
	return sc.honest()-sc.tlsCount() > 0 || (sc.stalledCount() > 0 && sc.Stalled.Mode == StallSilent) ||
		sc.Hostile.count() > 0
}

func (sc *Scenario) tlsCount() int { return spreadCount(sc.honest(), sc.Transport.TLSFraction) }

// spread reports whether item i of a population gets a property held by the fraction f,
// spreading the chosen items evenly (item i is chosen when floor((i+1)f) > floor(if)), so
// that any prefix of the population holds about the same share.
func spread(i int, f float64) bool {
	return math.Floor(float64(i+1)*f+1e-9) > math.Floor(float64(i)*f+1e-9)
}

// spreadCount is how many of n items spread chooses.
func spreadCount(n int, f float64) int { return int(math.Floor(float64(n)*f + 1e-9)) }

// Overrides are command-line changes to a scenario.
type Overrides struct {
	// Duration replaces duration (0 keeps it); a ramp or storms that no longer fit are
	// shrunk to fit.
	Duration time.Duration
	// Clients replaces clients (0 keeps it).
	Clients int
	// Target sends every honest client to this address: over TLS when TLS is set, else
	// over TCP. It replaces [target] and transport.tls_fraction.
	Target string
	TLS    bool
	// TLSTarget sets target.tls (for stalled half_hello clients or a TCP/TLS mix).
	TLSTarget string
	// Set are KEY=VALUE settings of the spawned cotd's config (--set, repeated), laid over
	// the scenario's [spawn.cotd] in order (see ParseSetting).
	Set []string
}

// Apply applies o and validates the result.
func (sc *Scenario) Apply(o Overrides) error {
	if o.Duration > 0 {
		sc.Duration = dur(o.Duration)
		if sc.Connect.Ramp.Duration > o.Duration {
			sc.Connect.Ramp = dur(o.Duration / 4)
		}
		if rc := &sc.Reconnect; rc.Times > 0 && rc.Every.Duration*time.Duration(rc.Times) >= o.Duration {
			rc.Every = dur(o.Duration / time.Duration(rc.Times+1))
		}
	}
	if o.Clients > 0 {
		sc.Clients = o.Clients
	}
	switch {
	case o.Target != "" && o.TLS:
		sc.Target = Target{TLS: o.Target}
		sc.Transport.TLSFraction = 1
	case o.Target != "":
		sc.Target = Target{TCP: o.Target}
		sc.Transport.TLSFraction = 0
	case o.TLS:
		sc.Transport.TLSFraction = 1
	}
	if o.TLSTarget != "" {
		sc.Target.TLS = o.TLSTarget
	}
	for _, arg := range o.Set {
		key, val, err := ParseSetting(arg)
		if err != nil {
			return err
		}
		if sc.Spawn.Cotd == nil {
			sc.Spawn.Cotd = make(map[string]any)
		}
		setPath(sc.Spawn.Cotd, key, val)
	}
	return sc.Validate()
}
