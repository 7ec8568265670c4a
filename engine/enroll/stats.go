package enroll

import (
	"io"

	"cotd/engine/metrics"
)

// Refusal is why a request or connection was turned away.
type Refusal uint8

// The refusals, counted in cotd_enroll_refused_total.
const (
	// RefusedNoCredentials: no or malformed HTTP Basic credentials.
	RefusedNoCredentials Refusal = iota
	// RefusedBadCredentials: wrong password or token, unknown or disabled
	// user.
	RefusedBadCredentials
	// RefusedThrottled: too many failed logins from the source (or for the
	// user from it).
	RefusedThrottled
	// RefusedBadCSR: a CSR that does not parse or verify.
	RefusedBadCSR
	// RefusedWrongCN: the CSR's CN is not the authenticated user.
	RefusedWrongCN
	// RefusedKey: the CSR's key type or size.
	RefusedKey
	// RefusedTooLarge: a body over enroll.max_body_bytes.
	RefusedTooLarge
	// RefusedAccept: signClient/v2 with an Accept it cannot answer.
	RefusedAccept
	// RefusedTokenUsed: a one-time token already signed a certificate.
	RefusedTokenUsed
	// RefusedBadRequest: a bad query parameter, method or path.
	RefusedBadRequest
	// RefusedConnLimit: a connection over enroll.max_conns, closed at accept.
	RefusedConnLimit
	// RefusedTLS: a failed TLS handshake.
	RefusedTLS
	// RefusedInternal: the server failed (state file, signing).
	RefusedInternal
	numRefusals
)

var refusalNames = [numRefusals]string{
	"no_credentials", "bad_credentials", "throttled", "bad_csr", "wrong_cn", "key", "too_large",
	"accept", "token_used", "bad_request", "conn_limit", "tls", "internal",
}

func (r Refusal) String() string {
	if r < numRefusals {
		return refusalNames[r]
	}
	return "unknown"
}

// Stats are the enrollment counters.
type Stats struct {
	// Issued counts certificates handed out.
	Issued metrics.Counter
	// Refused counts refusals by reason.
	Refused [numRefusals]metrics.Counter
	// Revoked counts connections closed because their certificate was
	// revoked.
	Revoked metrics.Counter
	// CRLApplied counts CRL changes applied to the running server.
	CRLApplied metrics.Counter
}

// Write writes the counters in the Prometheus text format.
func (s *Stats) Write(w *metrics.Writer) {
	w.One("cotd_enroll_issued_total", "Client certificates issued by enrollment.", "counter", float64(s.Issued.Value()))
	metrics.Vec(w, "cotd_enroll_refused_total", "Enrollment requests and connections refused, by reason.", "counter", "reason",
		Refusal(0), numRefusals, func(r Refusal) float64 { return float64(s.Refused[r].Value()) })
	w.One("cotd_enroll_revoked_disconnects_total", "Connections closed because their certificate was revoked.", "counter", float64(s.Revoked.Value()))
	w.One("cotd_enroll_crl_applied_total", "Changed CRLs applied to the running server.", "counter", float64(s.CRLApplied.Value()))
}

// WriteMetrics writes the enrollment counters in the Prometheus text
// format, for the admin listener's /metrics.
func (s *Server) WriteMetrics(w io.Writer) error {
	mw := metrics.NewWriter(w)
	s.stats.Write(mw)
	return mw.Flush()
}
