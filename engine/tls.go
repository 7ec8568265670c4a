package engine

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync/atomic"

	"github.com/rs/zerolog"

	"cotd/configs"
	"cotd/tlsstate/pki"
)

// tlsFiles is the server's TLS material. The config handed to every
// connection (base) is fixed; its GetConfigForClient loads cur, the config
// of the latest successful reload, so SIGHUP can swap certificate, key, CA
// and CRL without touching open connections.
type tlsFiles struct {
	cert, key, ca, crl string
	// crlRequired: crl was configured (tls.crl) without the CA key to
	// write it, so a missing file is an error rather than a CRL that cotd
	// has not written yet (nothing revoked).
	crlRequired bool
	ticketKey   [32]byte

	cur  atomic.Pointer[tls.Config]
	base *tls.Config
}

func newTLSFiles(cert, key, ca, crl string, crlRequired bool) (*tlsFiles, error) {
	f := &tlsFiles{cert: cert, key: key, ca: ca, crl: crl, crlRequired: crlRequired}
	// One ticket key for the process, kept across reloads, so that clients
	// resume (a TLS 1.2 resumption is several times cheaper than a full
	// handshake) even after the certificate was swapped.
	if _, err := rand.Read(f.ticketKey[:]); err != nil {
		return nil, err
	}
	if err := f.reload(); err != nil {
		return nil, err
	}
	f.base = &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return f.cur.Load(), nil
		},
	}
	return f, nil
}

// reload reads every file again and swaps the config in one step; on any
// error the old config stays.
func (f *tlsFiles) reload() error {
	pair, err := tls.LoadX509KeyPair(f.cert, f.key)
	if err != nil {
		return fmt.Errorf("tls.cert/tls.key: %w", err)
	}
	caPEM, err := os.ReadFile(f.ca)
	if err != nil {
		return fmt.Errorf("tls.ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("tls.ca: %s holds no PEM certificate", f.ca)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{pair},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		// A flush seals a client's queued messages in one Write: full
		// 16 KiB records from the start, not the small first records
		// meant for a browser's first paint.
		DynamicRecordSizingDisabled: true,
	}
	if f.crl != "" {
		revoked, err := pki.RevokedSerials(f.crl, caPEM)
		switch {
		case errors.Is(err, fs.ErrNotExist) && !f.crlRequired:
			// The CRL cotd writes appears with the first `cotd certs
			// revoke`; until then nothing is revoked.
			revoked = nil
		case err != nil:
			return fmt.Errorf("tls.crl: %w", err)
		}
		// VerifyConnection, not VerifyPeerCertificate: it also runs when a
		// client resumes a session (the ticket key outlives reloads), so a
		// revoked certificate cannot come back through a ticket.
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) > 0 && revoked[cs.PeerCertificates[0].SerialNumber.String()] {
				return errRevoked
			}
			return nil
		}
	}
	cfg.SetSessionTicketKeys([][32]byte{f.ticketKey})
	f.cur.Store(cfg)
	return nil
}

var errRevoked = errors.New("engine: client certificate revoked by the CRL")

// tlsPaths resolves the certificate files to serve: configured ones, or the
// development PKI (created on first start).
func tlsPaths(c *configs.Config, log zerolog.Logger) (cert, key, ca string, err error) {
	if !c.TLSDev() {
		return c.TLS.Cert, c.TLS.Key, c.TLS.CA, nil
	}
	dev, created, err := pki.EnsureDevFor(c.TLS.DevDir, pki.DefaultHosts(), pki.KeyECDSAP256, c.Server.AdvertiseHost)
	if err != nil {
		return "", "", "", fmt.Errorf("engine: development certificates in %s: %w", c.TLS.DevDir, err)
	}
	ev := log.Warn().Str("dir", dev.Dir).Str("ca", dev.CACert)
	if created {
		ev = ev.Str("first_client_package", dev.FirstClientPackage).Str("password", pki.DefaultP12Password)
		ev.Msg("tls: created a development CA and server certificate; import the client package into ATAK (not for production: configure tls.cert, tls.key and tls.ca)")
	} else {
		ev.Msg("tls: serving development certificates (not for production: configure tls.cert, tls.key and tls.ca)")
	}
	return dev.ServerCert, dev.ServerKey, dev.CACert, nil
}
