package engine

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"cotd/configs"
	"cotd/engine/auth"
	"cotd/tlsstate/pki"
)

var errNoPEMCertificate = errors.New("engine: no PEM certificate")

// CheckFiles loads the certificate, key, CA, CRL, admin client CA and users
// file that cfg names, as New does, and returns every problem: a mismatched
// certificate and key, or a file that is not what its key says, fails here
// rather than at start. It creates nothing (the development PKI is left to
// serve) and opens no socket. A file that does not exist is skipped: the
// configuration's own validation reports it.
func CheckFiles(cfg *configs.Config) []error {
	var errs []error
	exists := func(paths ...string) bool {
		for _, p := range paths {
			if p == "" {
				continue
			}
			if _, err := os.Stat(p); err != nil {
				return false
			}
		}
		return true
	}
	t := &cfg.TLS
	crl := t.CRL
	if t.CAKey != "" && !exists(crl) {
		crl = "" // cotd writes it with the first revocation
	}
	if t.Cert != "" && t.Key != "" && t.CA != "" && exists(t.Cert, t.Key, t.CA, crl) {
		if _, err := newTLSFiles(t.Cert, t.Key, t.CA, crl, crl != ""); err != nil {
			errs = append(errs, fmt.Errorf("engine: %w", err))
		}
	}
	if t.CAKey != "" && t.CA != "" && exists(t.CA, t.CAKey) {
		// Enrollment and revocation sign with it: it must be the CA's key.
		if _, err := pki.Load(t.CA, t.CAKey); err != nil {
			errs = append(errs, fmt.Errorf("engine: tls.ca_key: %w", err))
		}
	}
	if ca := cfg.Admin.ClientCA; ca != "" && exists(ca) {
		if b, err := os.ReadFile(ca); err != nil {
			errs = append(errs, fmt.Errorf("engine: admin.client_ca: %w", err))
		} else if !x509.NewCertPool().AppendCertsFromPEM(b) {
			errs = append(errs, fmt.Errorf("admin.client_ca: %w in %s", errNoPEMCertificate, ca))
		}
	}
	if f := cfg.Auth.UsersFile; f != "" && exists(f) {
		if _, err := auth.Load(f); err != nil {
			errs = append(errs, fmt.Errorf("engine: auth.users_file: %w", err))
		}
	}
	return errs
}
