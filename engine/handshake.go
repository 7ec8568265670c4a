package engine

import (
	"crypto/tls"
	"errors"
	"io"
	"time"

	"github.com/rs/zerolog"

	"cotd/configs"
	"cotd/tlsstate"
)

// HandshakeResult classifies how a TLS handshake ended, for counting.
type HandshakeResult uint8

// The handshake results, counted in cotd_tls_handshakes_total.
const (
	HandshakeOK HandshakeResult = iota
	HandshakeFailed
	HandshakeTimeout
	HandshakeNotTLS
	HandshakeAbandoned // the client closed, or the server stopped, mid-handshake
	numHandshakeResults
)

var handshakeResultNames = [numHandshakeResults]string{"ok", "failed", "timeout", "not_tls", "abandoned"}

func (r HandshakeResult) String() string {
	if r < numHandshakeResults {
		return handshakeResultNames[r]
	}
	return "unknown"
}

// onEstablished runs on the loop when the handshake has completed: the
// client is now identified by its certificate and joins the broker. It
// reports false when the certificate's user is refused.
func (ss *session) onEstablished() bool {
	s := ss.srv
	ss.established.Store(true)
	s.stats.Handshaking[ss.ln.kind].Add(-1)
	ss.hsDeadline = 0
	cn := ss.tls.PeerCN()
	cs := ss.tls.ConnectionState()
	s.stats.Handshakes[HandshakeOK].Inc()
	s.stats.HandshakeSeconds.Observe(time.Since(ss.opened).Seconds())
	ev := ss.logger().Info().Str("tls_version", tls.VersionName(cs.Version)).
		Str("cipher", tls.CipherSuiteName(cs.CipherSuite)).Bool("resumed", cs.DidResume).
		Dur("handshake", time.Since(ss.opened))
	if h := ss.tls.Hello(); h != nil {
		ev = ev.Str("ja3", h.JA3Hash)
	}
	ev.Msg("tls established")
	ss.tls.ReleaseHello()
	m, gw, refuse := s.membershipFor(ss.ln, cn)
	if refuse != "" {
		s.stats.Logins[LoginRefused].Inc()
		ss.logger().Warn().Str("why", refuse).Msg("client certificate user refused; closing")
		ss.reason.CompareAndSwap(uint32(reasonUnset), uint32(ReasonAuthFailed))
		return false
	}
	ss.userName.Store(&cn)
	ss.client.SetOwner(cn, gw)
	s.broker.SetMembership(ss.client, m)
	if s.protocolOf(ss.ln) == configs.ProtocolProtobuf {
		ss.speakV1()
	}
	ss.startProtocol()
	s.broker.Join(ss.client)
	s.joined(ss)
	return true
}

// failTLS records why the TLS layer gave up, with a log line that names the
// connection and what the client offered.
func (ss *session) failTLS(err error) {
	r := ReasonTLSError
	msg := "tls failure; closing connection"
	lvl := zerolog.WarnLevel
	switch {
	case errors.Is(err, tlsstate.ErrNotTLS):
		r, msg = ReasonNotTLS, "plaintext on TLS port; closing connection"
	case errors.Is(err, io.EOF):
		r, msg, lvl = ReasonPeerClosed, "client sent close_notify", zerolog.DebugLevel
	case errors.Is(err, tlsstate.ErrHandshake):
		msg = "tls handshake failed; closing connection"
	}
	if !ss.reason.CompareAndSwap(uint32(reasonUnset), uint32(r)) {
		return
	}
	ev := ss.logger().WithLevel(lvl).Err(err).Str("reason", r.String())
	if h := ss.tls.Hello(); h != nil {
		ev = ev.Str("ja3", h.JA3Hash).Str("tls_max_version", tls.VersionName(h.MaxVersion()))
	}
	ev.Msg(msg)
}

// countHandshakeEnd counts a handshake that never completed, by the
// connection's close reason.
func (s *Server) countHandshakeEnd(ss *session, r CloseReason) {
	res := HandshakeAbandoned
	switch r {
	case ReasonTLSError:
		res = HandshakeFailed
	case ReasonHandshakeTimeout:
		res = HandshakeTimeout
		ss.logger().Warn().Str("reason", r.String()).Str("phase", ss.tls.Phase().String()).
			Msg("tls handshake timed out; closing connection")
	case ReasonNotTLS:
		res = HandshakeNotTLS
	}
	s.stats.Handshakes[res].Inc()
}

// ReloadTLS re-reads the certificate, key, CA and CRL (SIGHUP). New
// handshakes use them; established connections are not touched. On error
// the previous material stays in force.
func (s *Server) ReloadTLS() error {
	if s.tls == nil {
		return nil
	}
	if err := s.tls.reload(); err != nil {
		s.log.Error().Err(err).Msg("tls reload failed; keeping the previous certificates")
		return err
	}
	s.log.Info().Msg("tls certificates reloaded")
	return nil
}
