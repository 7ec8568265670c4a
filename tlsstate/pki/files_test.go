package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestSaveLoad(t *testing.T) {
	for _, kt := range keyTypes {
		t.Run(kt.String(), func(t *testing.T) {
			c := chainFor(t, kt)
			dir := filepath.Join(t.TempDir(), "certs")
			certPath, keyPath, err := Save(dir, "server", c.server)
			if err != nil {
				t.Fatal(err)
			}
			if certPath != filepath.Join(dir, "server.pem") || keyPath != filepath.Join(dir, "server.key") {
				t.Errorf("paths %s %s", certPath, keyPath)
			}
			checkMode(t, dir, 0o700)
			checkMode(t, certPath, 0o644)
			checkMode(t, keyPath, 0o600)
			entries, _ := os.ReadDir(dir)
			if len(entries) != 2 {
				t.Errorf("temp files left behind: %v", entries)
			}

			b, err := Load(certPath, keyPath)
			if err != nil {
				t.Fatal(err)
			}
			if !b.Cert.Equal(c.server.Cert) || !b.Key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(c.server.Key.Public()) {
				t.Error("loaded bundle differs")
			}

			// Saving again replaces the files in place.
			if _, _, err := Save(dir, "server", c.client); err != nil {
				t.Fatal(err)
			}
			b, err = Load(certPath, keyPath)
			if err != nil || !b.Cert.Equal(c.client.Cert) {
				t.Fatalf("after overwrite: %v", err)
			}
		})
	}
}

func TestLoadKeyFormats(t *testing.T) {
	dir := t.TempDir()
	for _, kt := range keyTypes {
		c := chainFor(t, kt)
		var block *pem.Block
		switch k := c.client.Key.(type) {
		case *ecdsa.PrivateKey:
			der, err := x509.MarshalECPrivateKey(k)
			if err != nil {
				t.Fatal(err)
			}
			block = &pem.Block{Type: "EC PRIVATE KEY", Bytes: der}
		case *rsa.PrivateKey:
			block = &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}
		}
		certPath := filepath.Join(dir, kt.String()+".pem")
		keyPath := filepath.Join(dir, kt.String()+".key")
		// A chain file: leaf then CA.
		writeFile(t, certPath, append(append([]byte{}, c.client.CertPEM...), c.ca.CertPEM...))
		writeFile(t, keyPath, pem.EncodeToMemory(block))
		b, err := Load(certPath, keyPath)
		if err != nil {
			t.Fatalf("%s %s: %v", kt, block.Type, err)
		}
		if !b.Cert.Equal(c.client.Cert) {
			t.Errorf("%s: leaf is not the first certificate", kt)
		}
		if _, rest := pem.Decode(b.CertPEM); len(rest) == 0 {
			t.Errorf("%s: chain dropped from CertPEM", kt)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	ec, rs := chainFor(t, KeyECDSAP256), chainFor(t, KeyRSA2048)
	dir := t.TempDir()
	p := func(name string, data []byte) string {
		path := filepath.Join(dir, name)
		writeFile(t, path, data)
		return path
	}
	cert := p("cert.pem", ec.client.CertPEM)
	key := p("cert.key", ec.client.KeyPEM)
	otherKey := p("other.key", rs.client.KeyPEM)
	junk := p("junk", []byte("not pem"))
	encrypted := p("enc.key", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1}}))
	legacyEnc := p("legacy.key", pem.EncodeToMemory(&pem.Block{
		Type: "RSA PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: []byte{1},
	}))

	tests := []struct {
		cert, key string
		want      error
	}{
		{cert, otherKey, ErrKeyMismatch},
		{junk, key, ErrNoCertificate},
		{cert, junk, ErrPrivateKey},
		{cert, encrypted, ErrPrivateKey},
		{cert, legacyEnc, ErrPrivateKey},
		{cert, filepath.Join(dir, "missing.key"), fs.ErrNotExist},
	}
	for _, tt := range tests {
		if _, err := Load(tt.cert, tt.key); !errors.Is(err, tt.want) {
			t.Errorf("Load(%s, %s) = %v, want %v", filepath.Base(tt.cert), filepath.Base(tt.key), err, tt.want)
		}
	}

	if _, _, err := Save(dir, "../escape", ec.client); !errors.Is(err, ErrName) {
		t.Errorf("Save with a path: %v", err)
	}
	if _, _, err := Save(dir, "nokey", &Bundle{Cert: ec.client.Cert, CertPEM: ec.client.CertPEM}); !errors.Is(err, ErrNoPrivateKey) {
		t.Errorf("Save without key: %v", err)
	}
}

func TestLoadCertPool(t *testing.T) {
	a, b := chainFor(t, KeyECDSAP256), newChain(t, KeyECDSAP256)
	path := filepath.Join(t.TempDir(), "cas.pem")
	writeFile(t, path, append(append([]byte{}, a.ca.CertPEM...), b.ca.CertPEM...))
	pool, err := LoadCertPool(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []chain{a, b} {
		if _, err := c.client.Cert.Verify(x509.VerifyOptions{
			Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}); err != nil {
			t.Errorf("pool misses a CA: %v", err)
		}
	}
	empty := filepath.Join(t.TempDir(), "empty.pem")
	writeFile(t, empty, a.ca.KeyPEM)
	if _, err := LoadCertPool(empty); !errors.Is(err, ErrNoCertificate) {
		t.Errorf("key-only file: %v", err)
	}
}

func TestCreateAndLoadCA(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadCA(dir); !errors.Is(err, ErrNoCA) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("LoadCA of empty dir: %v", err)
	}
	ca, err := CreateCA(dir, "team CA", KeyECDSAP256, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := LoadCA(dir)
	if err != nil || got.Cert.SerialNumber.Cmp(ca.Cert.SerialNumber) != 0 {
		t.Fatalf("LoadCA: %v", err)
	}
	if _, err := CreateCA(dir, "again", KeyECDSAP256, 0); !errors.Is(err, ErrCAExists) {
		t.Errorf("second CreateCA: %v", err)
	}

	// A leaf saved under the CA's name is refused.
	c := chainFor(t, KeyECDSAP256)
	leafDir := t.TempDir()
	if _, _, err := Save(leafDir, CAName, c.server); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCA(leafDir); !errors.Is(err, ErrNotCA) {
		t.Errorf("LoadCA of a leaf: %v", err)
	}
}

func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s mode %o, want %o", filepath.Base(path), got, want)
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
