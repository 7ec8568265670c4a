package configs

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

//go:embed cotd.toml
var defaultTOML []byte

// DefaultTOML returns the embedded default configuration file.
func DefaultTOML() []byte { return bytes.Clone(defaultTOML) }

// Config is the whole server configuration. The defaults quoted on each field
// come from the embedded cotd.toml.
type Config struct {
	TCP    TCP    `toml:"tcp"`
	TLS    TLS    `toml:"tls"`
	Limits Limits `toml:"limits"`
	Broker Broker `toml:"broker"`
	SA     SA     `toml:"sa"`
	Admin  Admin  `toml:"admin"`
	Auth   Auth   `toml:"auth"`
	Log    Log    `toml:"log"`
	Web    Web    `toml:"web"`
	Enroll Enroll `toml:"enroll"`
	Marti  Marti  `toml:"marti"`
	Output Output `toml:"output"`
	Server Server `toml:"server"`
	Store  Store  `toml:"store"`
	// Cluster is nil without a [cluster] section: a single node, no NATS.
	Cluster *Cluster `toml:"cluster"`
}

// TCP is the plain streaming listener.
type TCP struct {
	// Addr is host:port; default "0.0.0.0:8087"; "" disables the listener.
	Addr string `toml:"addr"`
	// Protocol is "negotiate" (default), "xml" or "protobuf".
	Protocol string `toml:"protocol"`
	// Groups are given (IN and OUT) to clients with no user entry; empty
	// (default) means __ANON__.
	Groups []string `toml:"groups"`
}

// TLS is the mutual-TLS streaming listener.
type TLS struct {
	// Addr is host:port; default "0.0.0.0:8089"; "" disables the listener.
	// The listener is served when Cert and Key are set, or DevCerts is on.
	Addr string `toml:"addr"`
	// Cert and Key are PEM files of the server certificate and its key.
	Cert string `toml:"cert"`
	Key  string `toml:"key"`
	// CA is the PEM bundle client certificates must chain to.
	CA string `toml:"ca"`
	// CRL is an optional revocation list (PEM or DER) from CA; "" = none
	// (with dev_certs: dev_dir/crl.pem). With CAKey set, cotd writes it
	// (`cotd certs revoke`) and a missing file means nothing is revoked.
	CRL string `toml:"crl"`
	// CAKey is the CA's private key (PEM), which enrollment and `cotd certs
	// revoke` sign with; default "" = none (with dev_certs: dev_dir/ca.key).
	CAKey string `toml:"ca_key"`
	// DevCerts, with Cert and Key empty, creates a development PKI in
	// DevDir on first start and serves TLS with it; default true.
	DevCerts bool `toml:"dev_certs"`
	// DevDir holds the development PKI; default "cotd-data/certs".
	DevDir string `toml:"dev_dir"`
	// Protocol is "negotiate" (default), "xml" or "protobuf".
	Protocol string `toml:"protocol"`
	// Groups are given (IN and OUT) to clients with no user entry; empty
	// (default) means __ANON__.
	Groups []string `toml:"groups"`
	// HandshakeTimeout bounds a TLS handshake, counted from accept; default 10s.
	HandshakeTimeout Duration `toml:"handshake_timeout"`
}

// Limits bound what one connection may cost.
type Limits struct {
	// IdleTimeout closes a connection that sends nothing this long; default 90s.
	IdleTimeout Duration `toml:"idle_timeout"`
	// MaxFrameBytes caps one inbound CoT document; default 1 MiB.
	MaxFrameBytes int `toml:"max_frame_bytes"`
	// OutboundSoftBytes: above it, position reports to that client are
	// dropped and counted; default 256 KiB.
	OutboundSoftBytes int `toml:"outbound_soft_bytes"`
	// OutboundHardBytes: above it the client is closed as a slow consumer;
	// default 2 MiB. Must exceed OutboundSoftBytes.
	OutboundHardBytes int `toml:"outbound_hard_bytes"`
	// WriteTimeout closes a client whose socket takes no queued bytes for
	// this long; default 60s.
	WriteTimeout Duration `toml:"write_timeout"`
	// SocketSendBytes sets SO_SNDBUF on client sockets; default 0 keeps the
	// kernel's auto-tuning.
	SocketSendBytes int `toml:"socket_send_bytes"`
	// DrainTimeout bounds how long shutdown waits for queued output; default 5s.
	DrainTimeout Duration `toml:"drain_timeout"`
	// InboundBytesPerSec and InboundEventsPerSec are each connection's
	// inbound budget, well above a busy ATAK (positions, pings, chat,
	// markers: a few KB and a few events a second); a connection over
	// it is not read until its budget refills, so a flooder reaches the
	// others at this rate at most. Defaults 262144 and 200; 0 turns that
	// budget off.
	InboundBytesPerSec  int `toml:"inbound_bytes_per_sec"`
	InboundEventsPerSec int `toml:"inbound_events_per_sec"`
	// InboundBurstBytes and InboundBurstEvents are what a connection may
	// send at once (its buckets' size). A connection with more than
	// InboundBurstBytes unread while over its budget is closed
	// rate_limited. Defaults 2097152 (at least limits.max_frame_bytes)
	// and 1000; must be positive.
	InboundBurstBytes  int `toml:"inbound_burst_bytes"`
	InboundBurstEvents int `toml:"inbound_burst_events"`
	// MaxPartialBytes bounds the inbound bytes held in partial frames (and
	// input left unread) across all connections; past it the connection
	// holding the most is closed (partial_frames). Default 134217728
	// (128 MiB); must be at least max_frame_bytes.
	MaxPartialBytes int `toml:"max_partial_bytes"`
	// MaxConnections bounds the open streaming connections, both
	// listeners; one more is closed at accept and counted. Default 0: the
	// descriptor limit (RLIMIT_NOFILE) less a quarter (at least 64) for
	// everything else, logged at start. gnet stops serving when accept
	// meets EMFILE: keep it under the descriptor limit.
	MaxConnections int `toml:"max_connections"`
}

// Broker sizes the routing goroutines.
type Broker struct {
	// Shards is the number of routing goroutines; default 0 = GOMAXPROCS.
	Shards int `toml:"shards"`
	// Inbox is the number of frames a shard holds before it drops new ones
	// (counted); default 16384.
	Inbox int `toml:"inbox"`
	// InboxBytes bounds the bytes of the frames a shard holds; past it new
	// ones are dropped (counted as inbox_full); default 67108864 (64 MiB);
	// must be at least limits.max_frame_bytes.
	InboxBytes int `toml:"inbox_bytes"`
}

// SA controls the latest-SA cache.
type SA struct {
	// Replay sends each new client the latest SA of every connected client;
	// default true.
	Replay bool `toml:"replay"`
	// TakeoverQuiet: a uid belongs to the connection that announced it
	// (to its certificate CN or <auth> user, which may take it over from
	// another connection at once). Another connection claiming it is
	// refused unless the holder has sent nothing for this long: a phone
	// that changed network reconnects while its old connection lingers
	// half-open. Default 15s (ATAK pings every 15 s); must be positive.
	TakeoverQuiet Duration `toml:"takeover_quiet"`
	// MaxPerConnection bounds the uids one connection may announce SAs
	// for (a device announces one); past it SAs for new uids are dropped
	// and counted. Default 4; must be positive.
	MaxPerConnection int `toml:"max_per_connection"`
	// MaxPerGateway is that bound for users marked gateway in the users
	// file. Default 10000; must be positive.
	MaxPerGateway int `toml:"max_per_gateway"`
	// MaxCached bounds the SA cache; past it SAs of new uids are routed
	// but not cached (counted). Default 100000; must be positive.
	MaxCached int `toml:"max_cached"`
	// DefaultStale is how long an SA without a stale time stays cached;
	// default 5m; must be positive.
	DefaultStale Duration `toml:"default_stale"`
}

// Admin is the HTTP listener for metrics and the admin API.
type Admin struct {
	// Addr is host:port; default "127.0.0.1:8088"; "" disables it.
	Addr string `toml:"addr"`
	// BasicUser and BasicPasswordHash (bcrypt) turn on HTTP basic auth;
	// both empty (default) means none.
	BasicUser         string `toml:"basic_user"`
	BasicPasswordHash string `toml:"basic_password_hash"`
	// ClientCA, when set, makes the listener TLS and requires a client
	// certificate from that CA; default "".
	ClientCA string `toml:"client_ca"`
	// Pprof serves /debug/pprof/; default false.
	Pprof bool `toml:"pprof"`
	// AllowedHosts are host names a state-changing request (a POST) may
	// be addressed to, besides IP addresses and localhost: a name an
	// attacker's DNS points here (DNS rebinding) is refused. Default
	// empty.
	AllowedHosts []string `toml:"allowed_hosts"`
}

// Auth controls who may connect and what they may see.
type Auth struct {
	// UsersFile is the TOML users file; default "" (no users).
	UsersFile string `toml:"users_file"`
	// RequireKnownUser refuses TLS clients whose CN has no user entry;
	// default false (they get the listener's groups).
	RequireKnownUser bool `toml:"require_known_user"`
	// MaxPendingPerAddress and MaxPending bound the <auth> password
	// checks waiting, from one address and in all; one more is refused
	// (the connection closed, counted). Defaults 4 and 64; must be
	// positive.
	MaxPendingPerAddress int `toml:"max_pending_per_address"`
	MaxPending           int `toml:"max_pending"`
	// FailureBackoff: after a failed <auth>, the address is refused for
	// this long, doubling with each further failure up to
	// MaxFailureBackoff; so is the user from addresses that failed before
	// (never from a clean address, so the real user is not locked out).
	// Defaults 1s and 1m; must be positive.
	FailureBackoff    Duration `toml:"failure_backoff"`
	MaxFailureBackoff Duration `toml:"max_failure_backoff"`
}

// The wire protocols a listener may speak.
const (
	ProtocolNegotiate = "negotiate"
	ProtocolXML       = "xml"
	ProtocolProtobuf  = "protobuf"
)

// The log formats.
const (
	LogAuto    = "auto"
	LogJSON    = "json"
	LogConsole = "console"
)

// Log selects the log output.
type Log struct {
	// Level is debug, info, warn or error; default info.
	Level string `toml:"level"`
	// Format is auto (default: console when stderr is a terminal, json
	// otherwise), json or console.
	Format string `toml:"format"`
}

// Web is the browser console (live map, clients, charts, chat) served on
// the admin listener at "/", behind the admin listener's auth.
type Web struct {
	// Enabled serves the console; default true (it needs admin.addr).
	Enabled bool `toml:"enabled"`
	// Tiles is the map tile URL template ({z}, {x}, {y}, optionally {s});
	// default OpenStreetMap's. "" draws a plain coordinate grid and fetches
	// nothing, for air-gapped deployments.
	Tiles string `toml:"tiles"`
	// TilesAttribution is shown on the map for the tiles; default
	// OpenStreetMap's credit; "" shows none.
	TilesAttribution string `toml:"tiles_attribution"`
	// History is how far back the charts reach, sampled every 10 s;
	// default "1h". Must be at least 1m and at most 24h.
	History Duration `toml:"history"`
	// ViewerQueue is how many updates one browser may have waiting; past it
	// that browser misses updates (counted) and is sent a fresh picture
	// when it catches up; default 256. Must be at least 16.
	ViewerQueue int `toml:"viewer_queue"`
	// ChatCallsign is the sender's callsign of chats typed in the console;
	// default "cotd". Must not be empty.
	ChatCallsign string `toml:"chat_callsign"`
}

// Marti is the Marti HTTP API (TAK Server's 8443/8080): file sharing, data
// packages, contacts, channels and track history for ATAK, WinTAK and iTAK.
type Marti struct {
	// HTTPSAddr is host:port of the mutual-TLS listener; default
	// "0.0.0.0:8443"; "" disables it. It is served with the streaming
	// listener's certificate, key and CA (tls.cert, tls.key, tls.ca, or the
	// development PKI), and a client certificate's CN maps to the same user
	// and groups as on the stream.
	HTTPSAddr string `toml:"https_addr"`
	// HTTPAddr is host:port of a plain HTTP listener for TCP-only
	// deployments; default "" (off). Its callers are anonymous: they get
	// tcp.groups.
	HTTPAddr string `toml:"http_addr"`
	// ExternalURL is the base URL ("https://tak.example:8443") put in the
	// download links handed to clients; default "" builds it from the
	// request's scheme and Host.
	ExternalURL string `toml:"external_url"`
	// MaxUploadBytes caps one uploaded file; default 419430400 (400 MiB).
	MaxUploadBytes int64 `toml:"max_upload_bytes"`
	// FilesDir holds uploaded files, named by their SHA-256; default
	// "cotd-data/files".
	FilesDir string `toml:"files_dir"`
	// ReadHeaderTimeout bounds reading a request's headers; default 10s.
	ReadHeaderTimeout Duration `toml:"read_header_timeout"`
	// BodyTimeout is how long one read of a request body or one write of a
	// response may make no progress before the request is abandoned, so a
	// slow uploader or a stalled downloader frees its slot; default 30s.
	BodyTimeout Duration `toml:"body_timeout"`
	// IdleTimeout closes a keep-alive connection with no request this long;
	// default 2m.
	IdleTimeout Duration `toml:"idle_timeout"`
	// MaxConnections bounds the open connections of each listener; one
	// more is closed at once and counted; default 4096. Must be positive.
	MaxConnections int `toml:"max_connections"`
}

// MartiHTTPSEnabled reports whether the Marti mutual-TLS listener is to be
// served: it needs an address and the TLS material of [tls].
func (c *Config) MartiHTTPSEnabled() bool {
	return c.Marti.HTTPSAddr != "" && ((c.TLS.Cert != "" && c.TLS.Key != "") || c.TLS.DevCerts)
}

// Output shapes how queued output is written to each client.
type Output struct {
	// CoalesceDelay is how long a client's queued messages may wait to be
	// written together in one system call (and, on TLS, sealed together
	// into full records) while its event loop is busy; a loop that wrote
	// nothing for this long writes at once, so a lone message is not held.
	// Default 2ms; "0s" writes every delivery at once. At most 50ms.
	CoalesceDelay Duration `toml:"coalesce_delay"`
	// CoalesceBytes: a client with this many bytes queued is written at
	// once, without waiting for CoalesceDelay; default 16384 (one full TLS
	// record). Must be positive.
	CoalesceBytes int `toml:"coalesce_bytes"`
}

// maxCoalesceDelay bounds output.coalesce_delay: past it, coalescing costs
// more latency than any client should see.
const maxCoalesceDelay = 50 * time.Millisecond

// Server says how clients reach this server.
type Server struct {
	// AdvertiseHost is the host name or IPv4 address clients should connect
	// to: it goes into the development data package (and file-share URLs).
	// Default "": this machine's first non-loopback IPv4 address, else its
	// host name; the start-up log says which one was chosen.
	AdvertiseHost string `toml:"advertise_host"`
	// Procs is GOMAXPROCS for `cotd serve`. Default 0: the CPUs Go would
	// use plus one per event loop (gnet runs one loop per CPU). The loops
	// spend their time blocked in epoll_wait and writev, each holding a P
	// until the runtime takes it back (20 µs to 10 ms later); the extra Ps
	// let the broker shards and timers run meanwhile. The GOMAXPROCS
	// environment variable, when set, wins over both.
	Procs int `toml:"procs"`
}

// Duration is a time.Duration that must be written with units ("10s"); a
// bare number is refused so that "90" can never silently mean 90 ns.
type Duration struct {
	time.Duration
	// invalid holds why the text did not parse. UnmarshalText records it
	// instead of failing, because a decode error would stop the TOML decoder
	// at the first bad duration; Parse reports every one, by key.
	invalid string
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	s := string(b)
	d.Duration, d.invalid = 0, ""
	if _, err := strconv.ParseFloat(s, 64); err == nil && s != "0" {
		d.invalid = fmt.Sprintf("duration %q needs a unit (e.g. %q)", s, s+"s")
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		d.invalid = fmt.Sprintf("bad duration %q: want a number with a unit, like \"10s\" or \"2m\"", s)
		return nil
	}
	d.Duration = v
	return nil
}

// Problem is why the text given to UnmarshalText was refused, or nil.
// Decoders other than Parse (cotbench's scenarios) check it after decoding.
func (d Duration) Problem() error {
	if d.invalid == "" {
		return nil
	}
	return errors.New(d.invalid)
}

// durationErrors finds every Duration in v that did not parse, named by its
// TOML key, in every section (those added later included).
func durationErrors(v reflect.Value, prefix string) []error {
	if d, ok := v.Interface().(Duration); ok {
		if d.invalid != "" {
			return []error{fmt.Errorf("%s: %s", prefix, d.invalid)}
		}
		return nil
	}
	if v.Kind() == reflect.Pointer && !v.IsNil() {
		v = v.Elem() // an optional section, such as [cluster]
	}
	if v.Kind() != reflect.Struct {
		return nil
	}
	var errs []error
	for i := range v.NumField() {
		f := v.Type().Field(i)
		if !f.IsExported() {
			continue
		}
		key, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if key == "" {
			key = f.Name
		}
		if prefix != "" {
			key = prefix + "." + key
		}
		errs = append(errs, durationErrors(v.Field(i), key)...)
	}
	return errs
}

// notPositive reports a duration that must be positive and is not. One that
// did not parse reads as zero but is not reported here: durationErrors
// reports it, with the reason.
func notPositive(key string, d Duration) error {
	if d.Duration <= 0 && d.invalid == "" {
		return fmt.Errorf("%s must be positive, got %q", key, d.Duration)
	}
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.Duration.String()), nil }

// Default returns the embedded defaults.
func Default() *Config {
	c, err := Parse(defaultTOML)
	if err != nil {
		// The embedded file is part of the binary and covered by tests.
		panic("configs: embedded defaults do not load: " + err.Error())
	}
	return c
}

// ErrInvalid wraps every configuration problem; errors.Is(err, ErrInvalid).
var ErrInvalid = errors.New("configs: invalid configuration")

// Parse decodes data strictly on top of the embedded defaults and validates
// the result. An unknown key, a wrong type and every failed check are
// reported together.
func Parse(data []byte) (*Config, error) {
	c, errs := decode(data)
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, errors.Join(errs...))
	}
	return c, nil
}

// decode is Parse returning every problem as a list, and the configuration
// even when it has problems (nil only when the TOML does not decode), so
// that `cotd config check` can go on to load the files it names.
func decode(data []byte) (*Config, []error) {
	c := &Config{}
	if !bytes.Equal(data, defaultTOML) {
		c = Default()
	}
	md, err := toml.Decode(string(data), c)
	if err != nil {
		return nil, []error{err}
	}
	var errs []error
	for _, k := range md.Undecoded() {
		errs = append(errs, fmt.Errorf("unknown key %q", k.String()))
	}
	errs = append(errs, durationErrors(reflect.ValueOf(*c), "")...)
	errs = append(errs, c.validate()...)
	return c, errs
}

// Load reads and parses the file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Validate reports every problem in c at once, or nil.
func (c *Config) Validate() error {
	if errs := c.validate(); len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalid, errors.Join(errs...))
	}
	return nil
}

const maxFrameCeiling = 64 << 20

func (c *Config) validate() []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	checkAddr := func(key, addr string) {
		if addr == "" {
			return
		}
		if err := validAddr(addr); err != nil {
			bad("%s: %v", key, err)
		}
	}
	checkAddr("tcp.addr", c.TCP.Addr)
	checkAddr("tls.addr", c.TLS.Addr)
	checkAddr("admin.addr", c.Admin.Addr)
	if c.TCP.Addr == "" && !c.TLSEnabled() {
		bad("no listener: tcp.addr is empty and tls is not configured (tls.addr with tls.cert and tls.key, or tls.dev_certs)")
	}
	if c.TCP.Addr != "" && c.TLSEnabled() && samePort(c.TCP.Addr, c.TLS.Addr) {
		bad("tcp.addr and tls.addr share port %s", port(c.TCP.Addr))
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		bad("tls.cert and tls.key go together: set both or neither")
	}
	if c.TLS.Cert != "" && c.TLS.CA == "" {
		bad("tls.ca is required with tls.cert: clients are verified against it (mutual TLS)")
	}
	if c.TLS.Cert == "" && c.TLS.DevCerts && c.TLS.DevDir == "" {
		bad("tls.dev_dir must name a directory when tls.dev_certs is on")
	}
	crl := c.TLS.CRL
	if c.TLS.CAKey != "" {
		crl = "" // cotd writes it (`cotd certs revoke`); until then nothing is revoked
	}
	for key, path := range map[string]string{"tls.cert": c.TLS.Cert, "tls.key": c.TLS.Key, "tls.ca": c.TLS.CA, "tls.crl": crl, "tls.ca_key": c.TLS.CAKey} {
		if path == "" {
			continue
		}
		if _, err := os.Stat(path); err != nil {
			bad("%s: %v", key, err)
		}
	}

	for key, p := range map[string]string{"tcp.protocol": c.TCP.Protocol, "tls.protocol": c.TLS.Protocol} {
		switch p {
		case ProtocolNegotiate, ProtocolXML, ProtocolProtobuf:
		default:
			bad("%s must be %q, %q or %q, got %q", key, ProtocolNegotiate, ProtocolXML, ProtocolProtobuf, p)
		}
	}
	if (c.Admin.BasicUser == "") != (c.Admin.BasicPasswordHash == "") {
		bad("admin.basic_user and admin.basic_password_hash go together: set both or neither")
	}
	if c.Admin.BasicPasswordHash != "" && !strings.HasPrefix(c.Admin.BasicPasswordHash, "$2") {
		bad("admin.basic_password_hash must be a bcrypt hash (\"$2a$…\"; make one with `cotd users hash`)")
	}
	if c.Admin.ClientCA != "" && c.TLS.Cert == "" && !c.TLS.DevCerts {
		bad("admin.client_ca needs a server certificate: set tls.cert and tls.key, or tls.dev_certs")
	}
	if c.Auth.RequireKnownUser && c.Auth.UsersFile == "" {
		bad("auth.require_known_user needs auth.users_file")
	}
	for key, path := range map[string]string{"admin.client_ca": c.Admin.ClientCA, "auth.users_file": c.Auth.UsersFile} {
		if path == "" {
			continue
		}
		if _, err := os.Stat(path); err != nil {
			bad("%s: %v", key, err)
		}
	}

	errs = append(errs, c.Cluster.validate()...)

	positive := func(key string, d Duration) {
		if err := notPositive(key, d); err != nil {
			errs = append(errs, err)
		}
	}
	positive("tls.handshake_timeout", c.TLS.HandshakeTimeout)
	positive("limits.idle_timeout", c.Limits.IdleTimeout)
	positive("limits.write_timeout", c.Limits.WriteTimeout)
	positive("limits.drain_timeout", c.Limits.DrainTimeout)
	positive("sa.takeover_quiet", c.SA.TakeoverQuiet)
	positive("auth.failure_backoff", c.Auth.FailureBackoff)
	positive("auth.max_failure_backoff", c.Auth.MaxFailureBackoff)
	if c.Auth.MaxPendingPerAddress <= 0 || c.Auth.MaxPending <= 0 {
		bad("auth.max_pending_per_address and auth.max_pending must be positive")
	}
	positive("sa.default_stale", c.SA.DefaultStale)
	for key, n := range map[string]int{"sa.max_per_connection": c.SA.MaxPerConnection,
		"sa.max_per_gateway": c.SA.MaxPerGateway, "sa.max_cached": c.SA.MaxCached} {
		if n <= 0 {
			bad("%s must be positive, got %d", key, n)
		}
	}

	if c.Limits.MaxFrameBytes < 1024 || c.Limits.MaxFrameBytes > maxFrameCeiling {
		bad("limits.max_frame_bytes must be between 1024 and %d, got %d", maxFrameCeiling, c.Limits.MaxFrameBytes)
	}
	if c.Limits.OutboundSoftBytes <= 0 {
		bad("limits.outbound_soft_bytes must be positive, got %d", c.Limits.OutboundSoftBytes)
	}
	if c.Limits.OutboundHardBytes <= c.Limits.OutboundSoftBytes {
		bad("limits.outbound_hard_bytes (%d) must exceed limits.outbound_soft_bytes (%d)",
			c.Limits.OutboundHardBytes, c.Limits.OutboundSoftBytes)
	}
	if c.Limits.InboundBytesPerSec < 0 || c.Limits.InboundEventsPerSec < 0 {
		bad("limits.inbound_bytes_per_sec and limits.inbound_events_per_sec must be 0 (off) or positive")
	}
	if c.Limits.InboundBurstBytes < c.Limits.MaxFrameBytes {
		bad("limits.inbound_burst_bytes (%d) must be at least limits.max_frame_bytes (%d)", c.Limits.InboundBurstBytes, c.Limits.MaxFrameBytes)
	}
	if c.Limits.MaxPartialBytes < c.Limits.MaxFrameBytes {
		bad("limits.max_partial_bytes (%d) must be at least limits.max_frame_bytes (%d)", c.Limits.MaxPartialBytes, c.Limits.MaxFrameBytes)
	}
	if c.Limits.MaxConnections < 0 {
		bad("limits.max_connections must be 0 (from the descriptor limit) or positive, got %d", c.Limits.MaxConnections)
	}
	if c.Limits.InboundBurstEvents <= 0 {
		bad("limits.inbound_burst_events must be positive, got %d", c.Limits.InboundBurstEvents)
	}
	if c.Limits.SocketSendBytes < 0 {
		bad("limits.socket_send_bytes must be 0 (kernel default) or positive, got %d", c.Limits.SocketSendBytes)
	}
	if d := c.Output.CoalesceDelay.Duration; d < 0 || d > maxCoalesceDelay {
		bad("output.coalesce_delay must be between 0s and %s, got %s", maxCoalesceDelay, d)
	}
	if c.Output.CoalesceBytes <= 0 {
		bad("output.coalesce_bytes must be positive, got %d", c.Output.CoalesceBytes)
	}
	if c.Broker.Shards < 0 || c.Broker.Shards > 1024 {
		bad("broker.shards must be between 0 (GOMAXPROCS) and 1024, got %d", c.Broker.Shards)
	}
	if c.Broker.InboxBytes < c.Limits.MaxFrameBytes {
		bad("broker.inbox_bytes (%d) must be at least limits.max_frame_bytes (%d)", c.Broker.InboxBytes, c.Limits.MaxFrameBytes)
	}
	if c.Broker.Inbox < 16 {
		bad("broker.inbox must be at least 16, got %d", c.Broker.Inbox)
	}
	if c.Web.Enabled {
		if h := c.Web.History; h.invalid == "" && (h.Duration < time.Minute || h.Duration > 24*time.Hour) {
			bad("web.history must be between 1m and 24h, got %q", c.Web.History.Duration)
		}
		if c.Web.ViewerQueue < 16 {
			bad("web.viewer_queue must be at least 16, got %d", c.Web.ViewerQueue)
		}
		if strings.TrimSpace(c.Web.ChatCallsign) == "" {
			bad("web.chat_callsign must not be empty")
		}
		if c.Web.Tiles != "" && !strings.Contains(c.Web.Tiles, "{z}") {
			bad("web.tiles must be a URL template with {z}, {x} and {y}, or \"\" for a plain grid, got %q", c.Web.Tiles)
		}
	}
	errs = append(errs, c.Enroll.validate()...)
	if c.Enroll.Addr != "" {
		for _, o := range []struct{ key, addr string }{{"tcp.addr", c.TCP.Addr}, {"tls.addr", c.TLS.Addr},
			{"admin.addr", c.Admin.Addr}, {"marti.https_addr", c.Marti.HTTPSAddr}, {"marti.http_addr", c.Marti.HTTPAddr}} {
			if o.addr != "" && samePort(o.addr, c.Enroll.Addr) {
				bad("enroll.addr and %s share port %s", o.key, port(c.Enroll.Addr))
			}
		}
	}
	checkAddr("marti.https_addr", c.Marti.HTTPSAddr)
	checkAddr("marti.http_addr", c.Marti.HTTPAddr)
	if c.Marti.HTTPSAddr != "" && c.Marti.HTTPAddr != "" && samePort(c.Marti.HTTPSAddr, c.Marti.HTTPAddr) {
		bad("marti.https_addr and marti.http_addr share port %s", port(c.Marti.HTTPSAddr))
	}
	if u := c.Marti.ExternalURL; u != "" && !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
		bad("marti.external_url must start with https:// or http://, got %q", u)
	}
	if c.Marti.MaxUploadBytes <= 0 {
		bad("marti.max_upload_bytes must be positive, got %d", c.Marti.MaxUploadBytes)
	}
	if c.Marti.FilesDir == "" {
		bad("marti.files_dir must name a directory")
	}
	positive("marti.read_header_timeout", c.Marti.ReadHeaderTimeout)
	positive("marti.body_timeout", c.Marti.BodyTimeout)
	positive("marti.idle_timeout", c.Marti.IdleTimeout)
	if c.Marti.MaxConnections < 1 {
		bad("marti.max_connections must be positive, got %d", c.Marti.MaxConnections)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level must be debug, info, warn or error, got %q", c.Log.Level)
	}
	switch c.Log.Format {
	case LogAuto, LogJSON, LogConsole:
	default:
		bad("log.format must be auto, json or console, got %q", c.Log.Format)
	}
	if c.Server.Procs < 0 || c.Server.Procs > 4096 {
		bad("server.procs must be between 0 (CPUs plus event loops) and 4096, got %d", c.Server.Procs)
	}
	if h := c.Server.AdvertiseHost; h != "" && (strings.ContainsAny(h, ":/ ") || net.ParseIP(h) != nil && net.ParseIP(h).To4() == nil) {
		bad("server.advertise_host must be a host name or IPv4 address without a port (TAK connect strings cannot hold IPv6), got %q", h)
	}
	errs = append(errs, c.Store.validate()...)
	return errs
}

// Store is persistence: history, chat, client endpoints, file metadata and
// issued certificates. An embedded SQLite file by default; PostgreSQL when
// URL is set.
type Store struct {
	// Enabled turns the store on; default true. Off, nothing is kept across
	// a restart but the users file and certificates.
	Enabled bool `toml:"enabled"`
	// Path is the SQLite file, created on first start; default
	// "cotd-data/cotd.db". Ignored when URL is set.
	Path string `toml:"path"`
	// URL selects PostgreSQL ("postgres://user:pass@host:5432/db"); default
	// "" (SQLite at Path).
	URL string `toml:"url"`
	// Archive keeps every routed event (cot_router); default true. GeoChat,
	// connections, files and certificates are kept either way; control
	// messages never.
	Archive bool `toml:"archive"`
	// OfflineChat keeps a directed GeoChat for each known but offline
	// recipient, to be delivered when it next connects; default true.
	OfflineChat bool `toml:"offline_chat"`
	// QueueSize is how many records wait for the writer before new ones are
	// dropped (counted); default 65536.
	QueueSize int `toml:"queue_size"`
	// BatchSize is the most records one transaction writes; default 2000.
	// A crash loses at most the batch being written.
	BatchSize int `toml:"batch_size"`
	// DrainTimeout bounds how long shutdown waits for queued records to be
	// written; default 5s. What is left is counted as dropped.
	DrainTimeout Duration `toml:"drain_timeout"`
	// PoolSize is the number of database connections (PostgreSQL; SQLite
	// readers); default 4.
	PoolSize int `toml:"pool_size"`
	// PruneInterval is how often expired rows are looked for; default 1m.
	PruneInterval Duration `toml:"prune_interval"`
	// PruneBatch is the most rows one prune transaction deletes, so that
	// no delete holds a lock long; default 1000.
	PruneBatch int `toml:"prune_batch"`
	// Retention is how long each kind is kept.
	Retention Retention `toml:"retention"`
}

// Retention is how long the store keeps each kind, by server time; "0"
// keeps it forever.
type Retention struct {
	// Events (cot_router); default 720h (30 days).
	Events Duration `toml:"events"`
	// Chat (cot_router_chat, with the offline copies); default 2160h (90 days).
	Chat Duration `toml:"chat"`
	// Files (resource rows; the files themselves go with them); default 0.
	Files Duration `toml:"files"`
	// Connections (client_endpoint_event); default 2160h (90 days).
	Connections Duration `toml:"connections"`
}

func (s *Store) validate() []error {
	if !s.Enabled {
		return nil
	}
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if s.URL != "" {
		// The URL itself is never echoed: it may carry a password.
		u, err := url.Parse(s.URL)
		switch {
		case err != nil:
			bad("store.url is not a URL (want postgres://user:password@host:5432/database)")
		case u.Scheme != "postgres" && u.Scheme != "postgresql":
			bad("store.url must start with postgres:// or postgresql://, got scheme %q", u.Scheme)
		case u.Host == "" && u.Query().Get("host") == "":
			bad("store.url names no host")
		}
	} else if s.Path == "" {
		bad("store.path must name a file when store.url is empty")
	}
	if s.QueueSize < 16 {
		bad("store.queue_size must be at least 16, got %d", s.QueueSize)
	}
	if s.BatchSize < 1 || s.BatchSize > s.QueueSize {
		bad("store.batch_size must be between 1 and store.queue_size (%d), got %d", s.QueueSize, s.BatchSize)
	}
	if s.PoolSize < 1 || s.PoolSize > 1000 {
		bad("store.pool_size must be between 1 and 1000, got %d", s.PoolSize)
	}
	if s.PruneBatch < 1 {
		bad("store.prune_batch must be positive, got %d", s.PruneBatch)
	}
	for key, d := range map[string]Duration{"store.drain_timeout": s.DrainTimeout, "store.prune_interval": s.PruneInterval} {
		if err := notPositive(key, d); err != nil {
			errs = append(errs, err)
		}
	}
	for key, d := range map[string]Duration{
		"store.retention.events": s.Retention.Events, "store.retention.chat": s.Retention.Chat,
		"store.retention.files": s.Retention.Files, "store.retention.connections": s.Retention.Connections,
	} {
		if d.Duration < 0 {
			bad("%s must be 0 (keep forever) or positive, got %q", key, d.Duration)
		}
	}
	return errs
}

// TLSEnabled reports whether the TLS listener is to be served.
func (c *Config) TLSEnabled() bool {
	return c.TLS.Addr != "" && ((c.TLS.Cert != "" && c.TLS.Key != "") || c.TLS.DevCerts)
}

// TLSDev reports whether TLS runs on generated development certificates.
func (c *Config) TLSDev() bool { return c.TLSEnabled() && c.TLS.Cert == "" }

func validAddr(addr string) error {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %v", addr, err)
	}
	if host != "" && net.ParseIP(host) == nil && strings.ContainsAny(host, " /") {
		return fmt.Errorf("%q has a bad host", addr)
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q has a bad port", addr)
	}
	return nil
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// samePort reports whether two listeners would collide. Port 0 asks the
// kernel for a free port, so two zeros never collide.
func samePort(a, b string) bool {
	pa, pb := port(a), port(b)
	return pa != "0" && pa == pb
}

// Enroll is certificate enrollment (TAK Server's port 8446): ATAK, WinTAK
// and iTAK send a user name and password (or a one-time token) and a CSR,
// and get a client certificate signed by the CA.
type Enroll struct {
	// Addr is the HTTPS listener, host:port; default "0.0.0.0:8446"; ""
	// disables it. It is served when the TLS stream listener is and
	// auth.users_file is set (the passwords it checks), and it needs the CA
	// key (tls.ca_key, or the development CA's).
	Addr string `toml:"addr"`
	// Cert and Key are the server certificate of the enrollment listener;
	// default "" = the stream's (tls.cert, or the development one). ATAK's
	// QR and quick-connect enrollment trusts only public CAs and checks the
	// host name here, so a publicly trusted certificate (e.g. Let's
	// Encrypt) belongs here when clients enroll that way.
	Cert string `toml:"cert"`
	Key  string `toml:"key"`
	// Validity of issued certificates; default "8760h" (365 days), never
	// past the CA's own expiry. Zero is refused.
	Validity Duration `toml:"validity"`
	// O and OU are the name entries /Marti/api/tls/config announces and
	// issued certificates carry; default "" (not announced).
	O  string `toml:"o"`
	OU string `toml:"ou"`
	// StateFile records issued certificates and one-time tokens; default ""
	// = enrollment.json next to auth.users_file.
	StateFile string `toml:"state_file"`
	// MinRSABits is the smallest RSA key a CSR may carry; default 2048.
	// ECDSA P-256, P-384 and P-521 keys are always accepted.
	MinRSABits int `toml:"min_rsa_bits"`
	// ProfileDir, when set, is a directory whose files are sent as the
	// enrollment profile data package (/Marti/api/tls/profile/enrollment);
	// default "" = no profile (HTTP 204).
	ProfileDir string `toml:"profile_dir"`
	// RevokeOnDisable makes `cotd users disable` revoke the user's
	// certificates too; default true.
	RevokeOnDisable bool `toml:"revoke_on_disable"`
	// CRLCheck is how often the server looks for a changed CRL (written by
	// `cotd certs revoke`) and applies it: new handshakes refuse the
	// revoked certificates and their connections are closed; default "2s".
	CRLCheck Duration `toml:"crl_check"`
	// ReadHeaderTimeout bounds the TLS handshake and request headers;
	// default "10s". ReadTimeout bounds the whole request, WriteTimeout the
	// response; default "30s" each. IdleTimeout closes an idle keep-alive
	// connection; default "60s".
	ReadHeaderTimeout Duration `toml:"read_header_timeout"`
	ReadTimeout       Duration `toml:"read_timeout"`
	WriteTimeout      Duration `toml:"write_timeout"`
	IdleTimeout       Duration `toml:"idle_timeout"`
	// MaxBodyBytes caps a request body (a CSR); default 65536.
	MaxBodyBytes int `toml:"max_body_bytes"`
	// MaxConns caps open connections; more are closed at accept and
	// counted; default 256.
	MaxConns int `toml:"max_conns"`
	// FreeFailures is how many failed logins a source address (or a user,
	// from the sources that failed for it) may make before each further
	// failure doubles a lock-out that starts at FailureDelay and stops at
	// MaxFailureDelay; defaults 5, "1s", "5m".
	FreeFailures    int      `toml:"free_failures"`
	FailureDelay    Duration `toml:"failure_delay"`
	MaxFailureDelay Duration `toml:"max_failure_delay"`
}

func (e *Enroll) validate() []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if e.Addr != "" {
		if err := validAddr(e.Addr); err != nil {
			bad("enroll.addr: %v", err)
		}
	}
	for key, d := range map[string]Duration{
		"enroll.validity": e.Validity, "enroll.crl_check": e.CRLCheck,
		"enroll.read_header_timeout": e.ReadHeaderTimeout, "enroll.read_timeout": e.ReadTimeout,
		"enroll.write_timeout": e.WriteTimeout, "enroll.idle_timeout": e.IdleTimeout,
		"enroll.failure_delay": e.FailureDelay, "enroll.max_failure_delay": e.MaxFailureDelay,
	} {
		if err := notPositive(key, d); err != nil {
			errs = append(errs, err)
		}
	}
	if e.MaxFailureDelay.Duration < e.FailureDelay.Duration {
		bad("enroll.max_failure_delay (%v) must not be below enroll.failure_delay (%v)", e.MaxFailureDelay.Duration, e.FailureDelay.Duration)
	}
	if (e.Cert == "") != (e.Key == "") {
		bad("enroll.cert and enroll.key go together: set both or neither")
	}
	for key, path := range map[string]string{"enroll.cert": e.Cert, "enroll.key": e.Key} {
		if path == "" {
			continue
		}
		if _, err := os.Stat(path); err != nil {
			bad("%s: %v", key, err)
		}
	}
	if e.MinRSABits < 2048 || e.MinRSABits > 8192 {
		bad("enroll.min_rsa_bits must be between 2048 and 8192, got %d", e.MinRSABits)
	}
	if e.MaxBodyBytes < 4096 || e.MaxBodyBytes > 1<<20 {
		bad("enroll.max_body_bytes must be between 4096 and 1048576, got %d", e.MaxBodyBytes)
	}
	if e.MaxConns < 1 {
		bad("enroll.max_conns must be positive, got %d", e.MaxConns)
	}
	if e.FreeFailures < 1 {
		bad("enroll.free_failures must be at least 1, got %d", e.FreeFailures)
	}
	for key, v := range map[string]string{"enroll.o": e.O, "enroll.ou": e.OU} {
		if strings.ContainsAny(v, "\x00\r\n") {
			bad("%s must be one line", key)
		}
	}
	if e.ProfileDir != "" {
		if fi, err := os.Stat(e.ProfileDir); err != nil {
			bad("enroll.profile_dir: %v", err)
		} else if !fi.IsDir() {
			bad("enroll.profile_dir: %s is not a directory", e.ProfileDir)
		}
	}
	return errs
}

// EnrollEnabled reports whether the enrollment listener is to be served:
// it signs certificates for the TLS stream listener and checks passwords
// from the users file.
func (c *Config) EnrollEnabled() bool {
	return c.Enroll.Addr != "" && c.TLSEnabled() && c.Auth.UsersFile != ""
}

// CAKeyPath is the CA private key enrollment and revocation sign with:
// tls.ca_key, or the development CA's key; "" when there is none.
func (c *Config) CAKeyPath() string {
	if c.TLS.CAKey != "" || !c.TLSDev() {
		return c.TLS.CAKey
	}
	return filepath.Join(c.TLS.DevDir, "ca.key")
}

// CAPath is the CA certificate bundle: tls.ca, or the development CA's.
func (c *Config) CAPath() string {
	if !c.TLSDev() {
		return c.TLS.CA
	}
	return filepath.Join(c.TLS.DevDir, "ca.pem")
}

// CRLPath is where the revocation list is read and written: tls.crl, or
// dev_dir/crl.pem with development certificates; "" when neither.
func (c *Config) CRLPath() string {
	if c.TLS.CRL != "" || !c.TLSDev() {
		return c.TLS.CRL
	}
	return filepath.Join(c.TLS.DevDir, "crl.pem")
}

// EnrollStatePath is the enrollment state file: enroll.state_file, or
// enrollment.json next to auth.users_file; "" when neither is set.
func (c *Config) EnrollStatePath() string {
	if c.Enroll.StateFile != "" || c.Auth.UsersFile == "" {
		return c.Enroll.StateFile
	}
	return filepath.Join(filepath.Dir(c.Auth.UsersFile), "enrollment.json")
}

// Cluster joins this node to others through NATS (ARCHITECTURE.md §11):
// routed messages, directed messages and presence cross nodes. Without a
// [cluster] section the server is a single node and runs no NATS at all.
type Cluster struct {
	// Node is this node's name, unique in the cluster: letters, digits,
	// '-' and '_'. Required.
	Node string `toml:"node"`
	// Listen is host:port of the embedded NATS server's cluster (route)
	// port, which the other nodes' routes dial. Required unless NATSURL is
	// set. This node connects to the embedded server in-process; its client
	// port is on 127.0.0.1 (kernel-chosen) and takes only a per-process
	// random token.
	Listen string `toml:"listen"`
	// Routes are the other nodes' route URLs (nats-route://host:port);
	// empty (default): this node only accepts routes. Listing every node,
	// this one included, is fine.
	Routes []string `toml:"routes"`
	// Advertise is the route address (host:port) other nodes are told to
	// dial for this one, when Listen is not reachable as such (NAT, a
	// container); "" (default) advertises Listen.
	Advertise string `toml:"advertise"`
	// NATSURL uses an existing NATS cluster (nats://host:port, several
	// comma-separated) instead of the embedded server; "" (default)
	// embeds one. Listen and Routes must then be empty.
	NATSURL string `toml:"nats_url"`
	// Cert and Key (PEM) are this node's certificate for routes (embedded:
	// both ends present it, so it needs serverAuth and clientAuth, as
	// `cotd certs node` makes it) or its client certificate (nats_url); CA
	// is the bundle the peer must chain to. All empty (default): plain TCP.
	Cert string `toml:"cert"`
	Key  string `toml:"key"`
	CA   string `toml:"ca"`
	// User and Password authenticate routes (embedded: what peers must
	// present and what this node presents) or the client connection
	// (nats_url). Empty (default): no authentication.
	User     string `toml:"user"`
	Password string `toml:"password"`
	// Token authenticates the client connection to nats_url; "" = none.
	Token string `toml:"token"`
	// DeadAfter: a node not heard from for this long is gone and its
	// clients are announced gone (t-x-d-d); 0 means 15s. Nodes beat every
	// third of it.
	DeadAfter Duration `toml:"dead_after"`
	// Queue is how many messages may wait for NATS before more are dropped
	// (and counted); 0 means 16384.
	Queue int `toml:"queue"`
}

// validate checks a [cluster] section; nil is a single node.
// ValidNodeName reports whether s may be a cluster.node name: not empty,
// letters, digits, '-' and '_' only (it names a NATS subject token and a
// certificate file, so `cotd certs node` checks the same rule).
func ValidNodeName(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return s != ""
}

func (c *Cluster) validate() []error {
	if c == nil {
		return nil
	}
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.Node == "" {
		bad("cluster.node is required: a name unique in the cluster")
	}
	if c.Node != "" && !ValidNodeName(c.Node) {
		bad("cluster.node %q: use letters, digits, '-' and '_' only", c.Node)
	}
	switch {
	case c.NATSURL != "" && (c.Listen != "" || len(c.Routes) > 0):
		bad("cluster.nats_url excludes cluster.listen and cluster.routes (those are for the embedded server)")
	case c.NATSURL == "" && c.Listen == "":
		bad("cluster.listen is required for the embedded NATS server (or set cluster.nats_url)")
	case c.Listen != "":
		if err := validAddr(c.Listen); err != nil {
			bad("cluster.listen: %v", err)
		}
	}
	for _, r := range c.Routes {
		if !strings.HasPrefix(r, "nats-route://") {
			bad("cluster.routes: %q must be nats-route://host:port", r)
		}
	}
	for _, u := range strings.Split(c.NATSURL, ",") {
		if u != "" && !strings.HasPrefix(u, "nats://") && !strings.HasPrefix(u, "tls://") {
			bad("cluster.nats_url: %q must be nats://host:port or tls://host:port", u)
		}
	}
	if (c.Cert == "") != (c.Key == "") {
		bad("cluster.cert and cluster.key go together: set both or neither")
	}
	if c.Cert != "" && c.CA == "" && c.NATSURL == "" {
		bad("cluster.ca is required with cluster.cert: routes verify their peers against it")
	}
	for key, path := range map[string]string{"cluster.cert": c.Cert, "cluster.key": c.Key, "cluster.ca": c.CA} {
		if path == "" {
			continue
		}
		if _, err := os.Stat(path); err != nil {
			bad("%s: %v", key, err)
		}
	}
	if (c.User == "") != (c.Password == "") {
		bad("cluster.user and cluster.password go together: set both or neither")
	}
	if c.Token != "" && c.NATSURL == "" {
		bad("cluster.token is for cluster.nats_url; routes authenticate with cluster.user and cluster.password")
	}
	if c.DeadAfter.Duration < 0 {
		bad("cluster.dead_after must be 0 (15s) or positive, got %q", c.DeadAfter.Duration)
	}
	if c.Queue < 0 {
		bad("cluster.queue must be 0 (16384) or positive, got %d", c.Queue)
	}
	return errs
}
