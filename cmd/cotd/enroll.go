package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"cotd/configs"
	"cotd/engine"
	"cotd/engine/auth"
	"cotd/engine/enroll"
	"cotd/engine/store"
	"cotd/tlsstate/pki"
)

// startEnroll starts the enrollment listener and the CRL watcher for
// serve, until ctx ends. Without a CA key, enrollment refuses to start and
// says why, and the streams are served without it. Reload the returned
// service on SIGHUP. db is the process's store (nil when it is off); its
// owner closes it.
func startEnroll(ctx context.Context, cfg *configs.Config, srv *engine.Server, db *store.DB, log zerolog.Logger) (*enroll.Server, error) {
	// The engine's Directory closes the connections of revoked certificates.
	deps := enroll.Deps{Directory: srv.Directory(), ReloadTLS: srv.ReloadTLS,
		Log: log.With().Str("component", "enroll").Logger()}
	if db != nil && cfg.EnrollEnabled() {
		// Issued certificates go to the certificate table (tokens stay in
		// the state file).
		deps.Certs = db
	}
	en, err := enroll.New(cfg, deps)
	if errors.Is(err, enroll.ErrNoCAKey) {
		log.Error().Err(err).Msg("certificate enrollment not started")
		off := *cfg
		off.Enroll.Addr = ""
		en, err = enroll.New(&off, deps)
	}
	if err == nil {
		err = en.Listen()
	}
	if err == nil {
		srv.AddMetrics(en.WriteMetrics)
	}
	if err != nil {
		return nil, err
	}
	go func() {
		if err := en.Run(ctx); err != nil {
			log.Error().Err(err).Msg("certificate enrollment stopped")
		}
	}()
	return en, nil
}

const enrollUsage = `usage:
  cotd certs enroll-package --dir DIR --server-host H [--server-port 8089] [--enroll-port 8446]
      an ATAK (H-enroll.zip) and an iTAK (H-enroll-itak.zip) data package:
      DIR/ca.pem as the trust store, a connection that enrolls with a user
      name and password (or token) instead of carrying a certificate
  cotd certs revoke [--config FILE] NAME|SERIAL
      revoke every certificate of user NAME, or the one with SERIAL (decimal
      or hex), and rewrite the CRL (tls.crl, or dev_dir/crl.pem); a running
      server applies it within enroll.crl_check and closes those connections
  cotd certs crl [--config FILE]
      write the CRL from the revoked records (creates tls.crl before a start)
`

// certsEnrollCmd implements the enrollment subcommands of `cotd certs`.
func certsEnrollCmd(sub string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("cotd certs "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var dir, host, cfgPath string
	var port, enrollPort int
	if sub == "enroll-package" {
		fs.StringVar(&dir, "dir", "", "certificate directory: reads DIR/ca.pem, writes the packages (required)")
		fs.StringVar(&host, "server-host", "", "server address the packages connect to (required)")
		fs.IntVar(&port, "server-port", pki.DefaultStreamPort, "TLS stream port")
		fs.IntVar(&enrollPort, "enroll-port", pki.DefaultEnrollPort, "enrollment port ([enroll] addr)")
	} else {
		fs.StringVar(&cfgPath, "config", "", "configuration file (default: the embedded defaults)")
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var err error
	switch {
	case sub == "enroll-package" && (dir == "" || host == "" || fs.NArg() > 0):
		err = errors.New("--dir and --server-host are required, and nothing else")
	case sub == "revoke" && fs.NArg() != 1:
		err = errors.New("name one user or serial")
	case sub == "crl" && fs.NArg() != 0:
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err != nil {
		fmt.Fprintf(stderr, "cotd certs %s: %v\n%s", sub, err, enrollUsage)
		return 2
	}
	var out []string
	switch sub {
	case "enroll-package":
		out, err = writeEnrollPackages(dir, host, port, enrollPort)
	case "revoke":
		out, err = revokeCmd(cfgPath, fs.Arg(0))
	case "crl":
		out, err = crlCmd(cfgPath)
	}
	if err != nil {
		fmt.Fprintf(stderr, "cotd certs %s: %v\n", sub, err)
		return 1
	}
	for _, l := range out {
		fmt.Fprintln(stdout, l)
	}
	return 0
}

func writeEnrollPackages(dir, host string, port, enrollPort int) ([]string, error) {
	caPath, _ := pki.Paths(dir, pki.CAName)
	data, err := os.ReadFile(caPath)
	if err != nil {
		return nil, err
	}
	ca, err := firstCert(data, caPath)
	if err != nil {
		return nil, err
	}
	trust, err := pki.TruststoreP12(&pki.Bundle{Cert: ca}, "")
	if err != nil {
		return nil, err
	}
	spec := pki.EnrollPackageSpec{Name: "enroll@" + host, Host: host, Port: port, EnrollPort: enrollPort,
		Description: "cotd " + host, TruststoreP12: trust}
	var out []string
	for _, p := range []struct {
		file  string
		write func(io.Writer, pki.EnrollPackageSpec) error
	}{{host + "-enroll.zip", pki.EnrollDataPackage}, {host + "-enroll-itak.zip", pki.ITAKEnrollPackage}} {
		var buf bytes.Buffer
		if err := p.write(&buf, spec); err != nil {
			return nil, err
		}
		path := filepath.Join(dir, p.file)
		if err := pki.WriteFileAtomic(path, buf.Bytes(), 0o644); err != nil {
			return nil, err
		}
		out = append(out, "wrote "+path)
	}
	return out, nil
}

// openStore opens where cfg keeps certificate records: the database
// ([store], when enabled) with tokens in the state file, or the state file
// alone. A SQLite file that does not exist yet holds no records and is not
// created (create says whether to make it anyway, for a revocation by
// serial). close releases it.
func openStore(cfg *configs.Config, create bool) (st enroll.Store, close func(), err error) {
	state := cfg.EnrollStatePath()
	if state == "" {
		return nil, nil, errors.New("no enrollment state file: set auth.users_file or enroll.state_file")
	}
	if !cfg.Store.Enabled {
		return enroll.NewFileStore(state), func() {}, nil
	}
	if _, err := os.Stat(cfg.Store.Path); cfg.Store.URL == "" && !create && errors.Is(err, fs.ErrNotExist) {
		return enroll.NewFileStore(state), func() {}, nil
	}
	ctx := context.Background()
	db, err := store.Open(ctx, cfg.Store, store.Options{Log: zerolog.Nop()})
	if err != nil {
		return nil, nil, err
	}
	return enroll.NewDBStore(db, state), func() { _ = db.Close(ctx) }, nil
}

// loadCA loads the CA with its key, which revocation signs the CRL with.
func loadCA(cfg *configs.Config) (*pki.Bundle, error) {
	if cfg.CAKeyPath() == "" {
		return nil, fmt.Errorf("%w: the CRL is signed with the CA's key: set tls.ca_key", enroll.ErrNoCAKey)
	}
	return pki.Load(cfg.CAPath(), cfg.CAKeyPath())
}

func revokeCmd(cfgPath, what string) ([]string, error) {
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		return nil, err
	}
	serial, isSerial := enroll.ParseSerial(what)
	st, closeStore, err := openStore(cfg, isSerial)
	if err != nil {
		return nil, err
	}
	defer closeStore()
	sel := enroll.RevokeSelector{User: what}
	if recs, err := st.Certs(what); err != nil {
		return nil, err
	} else if len(recs) == 0 {
		if !isSerial {
			return nil, fmt.Errorf("%w: no certificate recorded for user %q, and it is not a serial number", enroll.ErrNotFound, what)
		}
		sel = enroll.RevokeSelector{Serial: serial}
	}
	return revoke(cfg, st, sel)
}

func revoke(cfg *configs.Config, st enroll.Store, sel enroll.RevokeSelector) ([]string, error) {
	ca, err := loadCA(cfg)
	if err != nil {
		return nil, err
	}
	revoked, err := enroll.Revoke(st, ca, cfg.CRLPath(), sel, time.Now())
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(revoked)+1)
	for _, r := range revoked {
		out = append(out, fmt.Sprintf("revoked serial %s (user %q, client uid %q)", r.Serial, r.User, r.ClientUID))
	}
	if len(revoked) == 0 {
		out = append(out, "already revoked")
	}
	return append(out, "wrote "+cfg.CRLPath()), nil
}

func crlCmd(cfgPath string) ([]string, error) {
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		return nil, err
	}
	st, closeStore, err := openStore(cfg, false)
	if err != nil {
		return nil, err
	}
	defer closeStore()
	ca, err := loadCA(cfg)
	if err != nil {
		return nil, err
	}
	if err := enroll.WriteCRL(st, ca, cfg.CRLPath(), time.Now()); err != nil {
		return nil, err
	}
	return []string{"wrote " + cfg.CRLPath()}, nil
}

// firstCert parses the first certificate of PEM data read from path.
func firstCert(data []byte, path string) (*x509.Certificate, error) {
	for {
		var b *pem.Block
		if b, data = pem.Decode(data); b == nil {
			return nil, fmt.Errorf("%w in %s", pki.ErrNoCertificate, path)
		}
		if b.Type == "CERTIFICATE" {
			return x509.ParseCertificate(b.Bytes)
		}
	}
}

// usersToken implements `cotd users token`.
func usersToken(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("cotd users token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("file", "", "users file (required)")
	name := fs.String("name", "", "user the token enrolls (required)")
	host := fs.String("host", "", "server address the QR code points at: host, or host:port of the TLS stream (required)")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the token stays valid")
	state := fs.String("state", "", "enrollment state file (default: enrollment.json next to --file)")
	qr := fs.String("qr", "", "PNG to write the QR code to (default: NAME-enroll.png)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *file == "" || *name == "" || *host == "" || fs.NArg() > 0 || *ttl <= 0 {
		fmt.Fprintln(stderr, "cotd users token: --file, --name and --host are required, --ttl must be positive")
		return 2
	}
	fail := func(err error) int { fmt.Fprintln(stderr, "cotd users token:", err); return 1 }
	d, err := auth.Load(*file)
	if err != nil {
		return fail(err)
	}
	if u, ok := d.Lookup(*name); !ok {
		return fail(fmt.Errorf("%s: no user %q", *file, *name))
	} else if u.Disabled {
		return fail(fmt.Errorf("%s: user %q is disabled", *file, *name))
	}
	if *state == "" {
		*state = filepath.Join(filepath.Dir(*file), "enrollment.json")
	}
	if *qr == "" {
		*qr = *name + "-enroll.png"
	}
	now := time.Now()
	token, err := enroll.NewToken(enroll.NewFileStore(*state), *name, *ttl, now)
	if err != nil {
		return fail(err)
	}
	payload := enroll.QRPayload(*host, *name, token)
	png, err := enroll.QRPNG(payload)
	if err == nil {
		err = pki.WriteFileAtomic(*qr, png, 0o600) // it is a credential
	}
	if err != nil {
		return fail(err)
	}
	fmt.Fprintf(stdout, "token:   %s\nexpires: %s\nqr:      %s\nwrote %s\n", token,
		now.Add(*ttl).UTC().Format(time.RFC3339), payload, *qr)
	return 0
}

// revokeOnDisable revokes a just-disabled user's certificates when
// enroll.revoke_on_disable is on and the user has any recorded.
func revokeOnDisable(cfgPath, usersFile, name string) (string, error) {
	cfg, err := loadConfig(cfgPath)
	if err != nil || !cfg.Enroll.RevokeOnDisable {
		return "", err
	}
	if cfg.Auth.UsersFile == "" {
		cfg.Auth.UsersFile = usersFile
	}
	st, closeStore, err := openStore(cfg, false)
	if err != nil {
		return "", err
	}
	defer closeStore()
	recs, err := st.Certs(name)
	if err != nil || !slices.ContainsFunc(recs, func(r enroll.CertRecord) bool { return r.Revoked.IsZero() }) {
		return "", err
	}
	out, err := revoke(cfg, st, enroll.RevokeSelector{User: name})
	return strings.Join(out, "\n"), err
}
