package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"slices"
	"strings"

	"cotd/configs"
)

// routeUsages: a route is dialled by one node and accepted by the other,
// each end presenting cluster.cert, so the certificate must be good as a
// TLS server and as a TLS client. A serverAuth-only certificate (what
// `cotd certs server` makes) passes as the accepting end but is refused by
// the peer when this node dials, and the nodes never meet; nats-server only
// logs that, so it is checked here, before anything starts.
var routeUsages = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}

// CheckFiles loads the [cluster] section's certificate files as Start would
// and reports what would keep the routes (or the nats_url connection) from
// forming: a certificate without the extended key usages its role needs, or
// a route certificate that cluster.ca does not verify. It reports nothing
// for a missing file (configs reports that) or without a [cluster]
// section or certificate. For `cotd config check`.
func CheckFiles(c *configs.Cluster) []error {
	if c == nil || c.Cert == "" {
		return nil
	}
	for _, p := range []string{c.Cert, c.Key, c.CA} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err != nil {
			return nil
		}
	}
	if err := checkTLS(*c); err != nil {
		return []error{err}
	}
	return nil
}

// checkTLS checks cluster.cert for its role. Embedded (routes): serverAuth
// and clientAuth, and a chain to cluster.ca for each, as the peers will
// verify it. nats_url: clientAuth; cluster.ca there is the NATS server's
// CA, not necessarily this certificate's issuer, so no chain is checked.
func checkTLS(c configs.Cluster) error {
	if c.Cert == "" {
		return nil
	}
	pair, err := tls.LoadX509KeyPair(c.Cert, c.Key)
	if err != nil {
		return fmt.Errorf("%w: cluster.cert %s, cluster.key %s: %w", ErrConfig, c.Cert, c.Key, err)
	}
	leaf := pair.Leaf
	need, role := routeUsages, "a route certificate (each node dials and accepts routes with it)"
	if c.NATSURL != "" {
		need, role = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, "a client certificate for cluster.nats_url"
	}
	if missing := missingUsages(leaf, need); len(missing) > 0 {
		return fmt.Errorf("%w: cluster.cert %s (CN %q) has extended key usage %s, lacking %s, which %s needs: make a node certificate with `cotd certs node`",
			ErrCert, c.Cert, leaf.Subject.CommonName, usageNames(leaf.ExtKeyUsage), usageNames(missing), role)
	}
	if c.NATSURL != "" || c.CA == "" {
		return nil
	}
	pem, err := os.ReadFile(c.CA)
	if err != nil {
		return fmt.Errorf("%w: cluster.ca: %w", ErrConfig, err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return fmt.Errorf("%w: cluster.ca %s: no PEM certificate", ErrConfig, c.CA)
	}
	inter := x509.NewCertPool()
	for _, der := range pair.Certificate[1:] {
		if ic, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(ic)
		}
	}
	// One usage at a time: VerifyOptions.KeyUsages accepts a chain good for
	// any one of those listed, and both ends of a route need both.
	for _, u := range need {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{u}}); err != nil {
			return fmt.Errorf("%w: cluster.cert %s (CN %q) does not verify against cluster.ca %s as a TLS %s, so peers would refuse it: %w",
				ErrCert, c.Cert, leaf.Subject.CommonName, c.CA, u, err)
		}
	}
	return nil
}

// missingUsages returns those of need that cert's extended key usages do
// not allow. A certificate without the extension, or with
// anyExtendedKeyUsage, allows every usage (RFC 5280 §4.2.1.12, as
// crypto/x509 verifies).
func missingUsages(cert *x509.Certificate, need []x509.ExtKeyUsage) []x509.ExtKeyUsage {
	if len(cert.ExtKeyUsage) == 0 && len(cert.UnknownExtKeyUsage) == 0 || slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageAny) {
		return nil
	}
	var missing []x509.ExtKeyUsage
	for _, u := range need {
		if !slices.Contains(cert.ExtKeyUsage, u) {
			missing = append(missing, u)
		}
	}
	return missing
}

// usageNames lists usages by their RFC 5280 names ("serverAuth").
func usageNames(us []x509.ExtKeyUsage) string {
	if len(us) == 0 {
		return "(none known)"
	}
	names := make([]string, len(us))
	for i, u := range us {
		names[i] = u.String()
	}
	return strings.Join(names, "+")
}
