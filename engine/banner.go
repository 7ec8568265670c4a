package engine

import (
	"crypto/x509"
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"cotd/tlsstate/pki"
)

// certWarnWithin is how close to expiry a certificate gets a warning at
// start: a month leaves time to renew before clients are refused.
const certWarnWithin = 30 * 24 * time.Hour

// banner logs what this server is and how it is set up, once at start.
func (s *Server) banner(now time.Time) {
	backlog := s.backlog
	lns := zerolog.Arr()
	for _, ln := range s.listeners {
		lns = lns.Dict(zerolog.Dict().Str("listener", ln.kind.String()).Stringer("addr", ln.bound).
			Int("backlog", backlog).Str("protocol", s.protocolOf(ln)))
	}
	lim := &s.cfg.Limits
	// The ready line is written at info even when log.level is warn or error:
	// it is how a supervisor (cotbench --spawn, a test) that gave port 0
	// learns the ports the kernel chose. A disabled logger stays silent.
	rl := s.log
	if lv := rl.GetLevel(); lv > zerolog.InfoLevel && lv < zerolog.NoLevel {
		rl = rl.Level(zerolog.InfoLevel)
	}
	ev := rl.Info().Str("version", s.Version).Array("listeners", lns).
		Str("tls", s.tlsMode()).
		Stringer("idle_timeout", lim.IdleTimeout.Duration).Int("max_frame_bytes", lim.MaxFrameBytes).
		Int("outbound_soft_bytes", lim.OutboundSoftBytes).Int("outbound_hard_bytes", lim.OutboundHardBytes).
		Stringer("write_timeout", lim.WriteTimeout.Duration).Int("broker_shards", s.broker.NumShards()).
		Bool("sa_replay", s.cfg.SA.Replay)
	if d := s.users.Load(); d != nil {
		ev = ev.Int("users", d.Len())
	}
	if s.adminAddr != nil {
		ev = ev.Stringer("admin", s.adminAddr)
	}
	ev.Msg("cotd ready")
	s.logAdvertised()
	if backlog < s.somax {
		s.log.Warn().Int("backlog", backlog).Int64("max_connections", s.maxConns).Uint64("rlimit_nofile", s.fdLimit).
			Msg("listen backlog lowered: the descriptor limit leaves too few beyond max_connections for a full accept queue; raise RLIMIT_NOFILE (LimitNOFILE=) or lower limits.max_connections")
	} else if backlog < minBacklog {
		s.log.Warn().Int("backlog", backlog).Int("recommended", minBacklog).
			Msg("net.core.somaxconn is low: a reconnect burst can overflow the accept queue (see configs/sysctl.conf)")
	}
	if s.tls != nil {
		if cert := s.tls.leaf(); cert != nil {
			ev := s.log.Info()
			if pki.ExpiresWithin(cert, certWarnWithin, now) {
				ev = s.log.Warn()
			}
			ev.Str("subject", cert.Subject.CommonName).Time("not_after", cert.NotAfter).
				Stringer("remaining", pki.TimeLeft(cert, now).Round(time.Hour)).Msg("tls server certificate")
		}
	}
}

func (s *Server) tlsMode() string {
	switch {
	case s.tls == nil:
		return "off"
	case s.cfg.TLSDev():
		return "development certificates"
	case s.cfg.TLS.CRL != "":
		return "mutual TLS with CRL"
	}
	return "mutual TLS"
}

func (s *Server) protocolOf(ln *listener) string {
	if ln.kind == ListenerTLS {
		return s.cfg.TLS.Protocol
	}
	return s.cfg.TCP.Protocol
}

// leaf is the server certificate in force.
func (f *tlsFiles) leaf() *x509.Certificate {
	cfg := f.cur.Load()
	if cfg == nil || len(cfg.Certificates) == 0 {
		return nil
	}
	if c := cfg.Certificates[0].Leaf; c != nil {
		return c
	}
	c, err := x509.ParseCertificate(cfg.Certificates[0].Certificate[0])
	if err != nil {
		return nil
	}
	return c
}

// advertised is the host clients should connect to: server.advertise_host,
// or the address the development data package uses by default. auto
// reports the latter.
func (s *Server) advertised() (host string, auto bool) {
	if h := s.cfg.Server.AdvertiseHost; h != "" {
		return h, false
	}
	return pki.PackageHost(pki.DefaultHosts()), true
}

// logAdvertised says, once at start, where clients should connect (in TAK's
// connect-string form) and how to change it: a guessed address that is
// wrong for the network is the first thing a new user runs into.
func (s *Server) logAdvertised() {
	host, auto := s.advertised()
	ev := s.log.Info().Str("advertise_host", host).Bool("chosen_automatically", auto)
	var connect []string
	for _, ln := range s.listeners {
		if ln.bound == nil {
			continue
		}
		proto := "tcp"
		if ln.kind == ListenerTLS {
			proto = "ssl"
		}
		connect = append(connect, fmt.Sprintf("%s:%d:%s", host, ln.bound.Port, proto))
	}
	ev = ev.Strs("connect", connect)
	msg := "clients connect to " + strings.Join(connect, " or ")
	if auto {
		msg += fmt.Sprintf("; %s was chosen automatically: set advertise_host in the [server] section of the configuration file to the name or IPv4 address clients reach this machine by", host)
	}
	if s.cfg.TLSDev() {
		msg += "; the development data package was made for the address in force when it was created (remove " + s.cfg.TLS.DevDir + " to make it again)"
	}
	ev.Msg(msg)
}
