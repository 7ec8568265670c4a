package configs

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"os"
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
	// CRL is an optional revocation list (PEM or DER) from CA; "" = none.
	CRL string `toml:"crl"`
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
}

// Broker sizes the routing goroutines.
type Broker struct {
	// Shards is the number of routing goroutines; default 0 = GOMAXPROCS.
	Shards int `toml:"shards"`
	// Inbox is the number of frames a shard holds before it drops new ones
	// (counted); default 16384.
	Inbox int `toml:"inbox"`
}

// SA controls the latest-SA cache.
type SA struct {
	// Replay sends each new client the latest SA of every connected client;
	// default true.
	Replay bool `toml:"replay"`
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
}

// Auth controls who may connect and what they may see.
type Auth struct {
	// UsersFile is the TOML users file; default "" (no users).
	UsersFile string `toml:"users_file"`
	// RequireKnownUser refuses TLS clients whose CN has no user entry;
	// default false (they get the listener's groups).
	RequireKnownUser bool `toml:"require_known_user"`
}

// The wire protocols a listener may speak.
const (
	ProtocolNegotiate = "negotiate"
	ProtocolXML       = "xml"
	ProtocolProtobuf  = "protobuf"
)

// Log selects the log output.
type Log struct {
	// Level is debug, info, warn or error; default info.
	Level string `toml:"level"`
	// Format is json (default) or console.
	Format string `toml:"format"`
}

// Duration is a time.Duration that must be written with units ("10s"); a
// bare number is refused so that "90" can never silently mean 90 ns.
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	s := string(b)
	if _, err := strconv.ParseFloat(s, 64); err == nil && s != "0" {
		return fmt.Errorf("duration %q needs a unit (e.g. %q)", s, s+"s")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("bad duration %q: want a number with a unit, like \"10s\" or \"2m\"", s)
	}
	d.Duration = v
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
	c := &Config{}
	if !bytes.Equal(data, defaultTOML) {
		c = Default()
	}
	md, err := toml.Decode(string(data), c)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	var errs []error
	for _, k := range md.Undecoded() {
		errs = append(errs, fmt.Errorf("unknown key %q", k.String()))
	}
	errs = append(errs, c.validate()...)
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, errors.Join(errs...))
	}
	return c, nil
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
	for key, path := range map[string]string{"tls.cert": c.TLS.Cert, "tls.key": c.TLS.Key, "tls.ca": c.TLS.CA, "tls.crl": c.TLS.CRL} {
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
		if d.Duration <= 0 {
			bad("%s must be positive, got %q", key, d.Duration)
		}
	}
	positive("tls.handshake_timeout", c.TLS.HandshakeTimeout)
	positive("limits.idle_timeout", c.Limits.IdleTimeout)
	positive("limits.write_timeout", c.Limits.WriteTimeout)
	positive("limits.drain_timeout", c.Limits.DrainTimeout)

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
	if c.Limits.SocketSendBytes < 0 {
		bad("limits.socket_send_bytes must be 0 (kernel default) or positive, got %d", c.Limits.SocketSendBytes)
	}
	if c.Broker.Shards < 0 || c.Broker.Shards > 1024 {
		bad("broker.shards must be between 0 (GOMAXPROCS) and 1024, got %d", c.Broker.Shards)
	}
	if c.Broker.Inbox < 16 {
		bad("broker.inbox must be at least 16, got %d", c.Broker.Inbox)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level must be debug, info, warn or error, got %q", c.Log.Level)
	}
	switch c.Log.Format {
	case "json", "console":
	default:
		bad("log.format must be json or console, got %q", c.Log.Format)
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

// Cluster joins this node to others through NATS (ARCHITECTURE.md §11):
// routed messages, directed messages and presence cross nodes. Without a
// [cluster] section the server is a single node and runs no NATS at all.
type Cluster struct {
	// Node is this node's name, unique in the cluster: letters, digits,
	// '-' and '_'. Required.
	Node string `toml:"node"`
	// Listen is host:port of the embedded NATS server's cluster (route)
	// port, which the other nodes' routes dial. Required unless NATSURL is
	// set. Local clients of the embedded server connect in-process: it opens
	// no client port.
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
	// Cert and Key (PEM) are this node's certificate for routes (embedded)
	// or its client certificate (nats_url); CA is the bundle the peer must
	// chain to. All empty (default): plain TCP.
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
func (c *Cluster) validate() []error {
	if c == nil {
		return nil
	}
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.Node == "" {
		bad("cluster.node is required: a name unique in the cluster")
	}
	for _, r := range c.Node {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			bad("cluster.node %q: use letters, digits, '-' and '_' only", c.Node)
			break
		}
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
