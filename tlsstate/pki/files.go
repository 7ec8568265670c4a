package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Base names (without .pem/.key) of the CA and server files in a certificate
// directory, as written by Save and read by LoadCA and EnsureDev.
const (
	CAName     = "ca"
	ServerName = "server"
)

const (
	certPerm = 0o644
	keyPerm  = 0o600 // private keys and .p12 files (they hold a key)
	dirPerm  = 0o700
)

// Paths returns dir/name.pem and dir/name.key.
func Paths(dir, name string) (certPath, keyPath string) {
	return filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
}

// Save writes b to dir/name.pem (0644) and dir/name.key (0600), creating dir
// (0700) if needed. Each file is written to a temp file in dir and renamed
// into place, the key first, so a reader never sees a partial file and a
// certificate file always has its key beside it.
func Save(dir, name string, b *Bundle) (certPath, keyPath string, err error) {
	if err := checkFileName(name); err != nil {
		return "", "", err
	}
	if b == nil || b.Key == nil || len(b.KeyPEM) == 0 {
		return "", "", ErrNoPrivateKey
	}
	if err := os.MkdirAll(dir, dirPerm); err != nil {
		return "", "", err
	}
	certPath, keyPath = Paths(dir, name)
	if err := writeFileAtomic(keyPath, b.KeyPEM, keyPerm); err != nil {
		return "", "", err
	}
	if err := writeFileAtomic(certPath, b.CertPEM, certPerm); err != nil {
		return "", "", err
	}
	return certPath, keyPath, nil
}

// Load reads a certificate (the first CERTIFICATE block of certPath; any
// further blocks stay in CertPEM) and its private key (PKCS#8, SEC1 or
// PKCS#1, unencrypted), and checks that they belong together.
func Load(certPath, keyPath string) (*Bundle, error) {
	certData, err := os.ReadFile(certPath)
	if err != nil {
		return nil, err
	}
	certs, certPEM := parseCerts(certData)
	if len(certs) == 0 {
		return nil, fmt.Errorf("%w in %s", ErrNoCertificate, certPath)
	}
	keyData, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, err
	}
	key, keyPEM, err := parseKey(keyData)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", err, keyPath)
	}
	pub, ok := certs[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(key.Public()) {
		return nil, fmt.Errorf("%w: %s and %s", ErrKeyMismatch, certPath, keyPath)
	}
	return &Bundle{Cert: certs[0], Key: key, CertPEM: certPEM, KeyPEM: keyPEM}, nil
}

// LoadCertPool reads every CERTIFICATE block in path into a new pool, for
// tls.Config.ClientCAs or RootCAs.
func LoadCertPool(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	certs, _ := parseCerts(data)
	if len(certs) == 0 {
		return nil, fmt.Errorf("%w in %s", ErrNoCertificate, path)
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

// LoadCA loads dir/ca.pem and dir/ca.key. If either is missing the error
// wraps ErrNoCA (and fs.ErrNotExist).
func LoadCA(dir string) (*Bundle, error) {
	certPath, keyPath := Paths(dir, CAName)
	b, err := Load(certPath, keyPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w %s: %w", ErrNoCA, dir, err)
	}
	if err != nil {
		return nil, err
	}
	if !b.Cert.IsCA {
		return nil, fmt.Errorf("%w: %s", ErrNotCA, certPath)
	}
	return b, nil
}

// CreateCA makes a CA with NewCA and saves it as dir/ca.pem and dir/ca.key.
// It refuses (ErrCAExists) if either file exists: replacing a CA silently
// locks out every client it issued.
func CreateCA(dir, cn string, kt KeyType, validFor time.Duration) (*Bundle, error) {
	return createCA(dir, cn, kt, validFor, time.Now())
}

func createCA(dir, cn string, kt KeyType, validFor time.Duration, now time.Time) (*Bundle, error) {
	certPath, keyPath := Paths(dir, CAName)
	for _, p := range []string{certPath, keyPath} {
		if _, err := os.Lstat(p); err == nil {
			return nil, fmt.Errorf("%w: %s", ErrCAExists, p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	ca, err := newCA(cn, kt, validFor, now)
	if err != nil {
		return nil, err
	}
	if _, _, err := Save(dir, CAName, ca); err != nil {
		return nil, err
	}
	return ca, nil
}

// ClientOptions says how SaveClient packages a client.
type ClientOptions struct {
	// Password protects the .p12 files. Empty means DefaultP12Password, the
	// password TAK clients try first.
	Password string

	// PackageHost, if not empty, makes SaveClient also write NAME.zip, a data
	// package that connects to PackageHost:PackagePort over TLS. Empty means
	// no package.
	PackageHost string

	// PackagePort is the TLS stream port; zero means DefaultStreamPort.
	PackagePort int

	// Description labels the connection in the client. Empty means
	// "cotd PackageHost".
	Description string
}

// ClientFiles are the paths SaveClient wrote. Package is empty when no
// package was asked for.
type ClientFiles struct {
	Cert, Key, P12, Package string
}

// SaveClient writes a client issued by ca to dir: NAME.pem, NAME.key,
// NAME.p12 (key, certificate and CA, see ClientP12) and, with
// opts.PackageHost, the data package NAME.zip. Everything but NAME.pem is
// 0600: each holds the private key.
func SaveClient(dir, name string, client, ca *Bundle, opts ClientOptions) (ClientFiles, error) {
	var files ClientFiles
	if err := checkFileName(name); err != nil {
		return files, err
	}
	password := opts.Password
	if password == "" {
		password = DefaultP12Password
	}
	p12, err := ClientP12(client, ca, password)
	if err != nil {
		return files, err
	}
	var zip []byte
	if opts.PackageHost != "" {
		trust, err := TruststoreP12(ca, password)
		if err != nil {
			return files, err
		}
		desc := opts.Description
		if desc == "" {
			desc = "cotd " + opts.PackageHost
		}
		var buf bytes.Buffer
		err = DataPackage(&buf, DataPackageSpec{
			Name: name + "@" + opts.PackageHost, Host: opts.PackageHost, Port: opts.PackagePort,
			Description: desc, ClientP12: p12, TruststoreP12: trust,
			Password: password, ClientName: name,
		})
		if err != nil {
			return files, err
		}
		zip = buf.Bytes()
	}
	if files.Cert, files.Key, err = Save(dir, name, client); err != nil {
		return ClientFiles{}, err
	}
	files.P12 = filepath.Join(dir, name+".p12")
	if err := writeFileAtomic(files.P12, p12, keyPerm); err != nil {
		return ClientFiles{}, err
	}
	if zip != nil {
		files.Package = filepath.Join(dir, name+".zip")
		if err := writeFileAtomic(files.Package, zip, keyPerm); err != nil {
			return ClientFiles{}, err
		}
	}
	return files, nil
}

// checkFileName accepts a name that stays one path element in dir.
func checkFileName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`+"\x00") {
		return fmt.Errorf("%w: file name %q", ErrName, name)
	}
	return nil
}

// writeFileAtomic writes data to a temp file in path's directory, fsyncs it
// and renames it over path, so readers see the old file or the whole new one.
// os.CreateTemp creates the file 0600, so a key is never readable by others,
// not even while being written; Chmod then sets perm regardless of umask.
func writeFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// ParseCerts returns the certificate of every CERTIFICATE block in PEM
// data that parses, in order; the rest is skipped.
func ParseCerts(data []byte) []*x509.Certificate {
	certs, _ := parseCerts(data)
	return certs
}

// parseCerts returns every parseable CERTIFICATE block and their PEM.
func parseCerts(data []byte) ([]*x509.Certificate, []byte) {
	var certs []*x509.Certificate
	var out []byte
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return certs, out
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			continue
		}
		certs = append(certs, c)
		out = append(out, pem.EncodeToMemory(block)...)
	}
}

// parseKey returns the first private key block as a crypto.Signer.
func parseKey(data []byte) (crypto.Signer, []byte, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, nil, ErrPrivateKey
		}
		if _, ok := block.Headers["Proc-Type"]; ok {
			return nil, nil, fmt.Errorf("%w (encrypted keys are not supported)", ErrPrivateKey)
		}
		var key any
		var err error
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, nil, fmt.Errorf("%w (encrypted keys are not supported)", ErrPrivateKey)
		default:
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrPrivateKey, err)
		}
		switch k := key.(type) {
		case *ecdsa.PrivateKey:
			return k, pem.EncodeToMemory(block), nil
		case *rsa.PrivateKey:
			return k, pem.EncodeToMemory(block), nil
		}
		return nil, nil, fmt.Errorf("%w: %T", ErrPrivateKey, key)
	}
}
