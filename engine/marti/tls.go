package marti

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync/atomic"

	"github.com/rs/zerolog"

	"cotd/configs"
	"cotd/tlsstate/pki"
)

// tlsFiles is the listener's TLS material: the streaming listener's
// certificate, key, CA and CRL, so that a client trusted on 8089 is trusted
// here and a revoked one is refused in both places. The handshake asks
// current() for the config, so Reload swaps it without touching open
// connections.
type tlsFiles struct {
	cert, key, ca, crl string
	cur                atomic.Pointer[tls.Config]
	base               *tls.Config
}

func newTLSFiles(c *configs.Config, log zerolog.Logger) (*tlsFiles, error) {
	f := &tlsFiles{cert: c.TLS.Cert, key: c.TLS.Key, ca: c.TLS.CA, crl: c.TLS.CRL}
	if c.TLS.Cert == "" {
		// The engine created the development PKI already (it starts
		// first); this only loads it.
		dev, _, err := pki.EnsureDev(c.TLS.DevDir, pki.DefaultHosts(), pki.KeyECDSAP256)
		if err != nil {
			return nil, fmt.Errorf("%w: development certificates in %s: %w", ErrTLS, c.TLS.DevDir, err)
		}
		f.cert, f.key, f.ca = dev.ServerCert, dev.ServerKey, dev.CACert
		log.Debug().Str("dir", dev.Dir).Msg("marti: serving the development certificates")
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

func (f *tlsFiles) reload() error {
	pair, err := tls.LoadX509KeyPair(f.cert, f.key)
	if err != nil {
		return fmt.Errorf("%w: certificate and key: %w", ErrTLS, err)
	}
	caPEM, err := os.ReadFile(f.ca)
	if err != nil {
		return fmt.Errorf("%w: ca: %w", ErrTLS, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("%w: %s holds no PEM certificate", ErrTLS, f.ca)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{pair},
		// A client without a certificate is refused at the handshake, as
		// on TAK Server's 8443, before any handler runs.
		ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs:  pool,
		NextProtos: []string{"http/1.1"},
	}
	if f.crl != "" {
		revoked, err := pki.RevokedSerials(f.crl, caPEM)
		if err != nil {
			return fmt.Errorf("%w: crl: %w", ErrTLS, err)
		}
		cfg.VerifyPeerCertificate = func(_ [][]byte, chains [][]*x509.Certificate) error {
			for _, chain := range chains {
				if len(chain) > 0 && revoked[chain[0].SerialNumber.String()] {
					return fmt.Errorf("%w: client certificate revoked by the CRL", ErrTLS)
				}
			}
			return nil
		}
	}
	f.cur.Store(cfg)
	return nil
}
