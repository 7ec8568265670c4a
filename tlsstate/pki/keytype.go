package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"strings"
)

// KeyType is the algorithm of a generated key. The zero value is the
// default, KeyECDSAP256. A key's type is fixed when it is generated; there
// are no transitions.
type KeyType uint8

const (
	// KeyECDSAP256: ECDSA on NIST P-256, signed with SHA-256. Small and fast
	// (a handshake signature costs microseconds, not the ~1 ms of RSA).
	KeyECDSAP256 KeyType = iota
	// KeyRSA2048: RSA-2048 with PKCS#1 v1.5 SHA-256 signatures, TAK Server's
	// default, for clients or tooling that expect RSA.
	KeyRSA2048
)

// String returns the canonical name ParseKeyType accepts.
func (k KeyType) String() string {
	switch k {
	case KeyECDSAP256:
		return "ecdsa-p256"
	case KeyRSA2048:
		return "rsa-2048"
	}
	return fmt.Sprintf("KeyType(%d)", uint8(k))
}

// ParseKeyType reads a key type name, case-insensitively: "ecdsa-p256"
// (also "ecdsa", "ec", "p256", "") or "rsa-2048" (also "rsa", "rsa2048").
// The empty string is the default, KeyECDSAP256.
func ParseKeyType(s string) (KeyType, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "ecdsa-p256", "ecdsa", "ec", "p256", "p-256":
		return KeyECDSAP256, nil
	case "rsa-2048", "rsa", "rsa2048":
		return KeyRSA2048, nil
	}
	return 0, fmt.Errorf("%w %q (want ecdsa-p256 or rsa-2048)", ErrKeyType, s)
}

// MarshalText implements encoding.TextMarshaler, so a KeyType can be a
// configuration field.
func (k KeyType) MarshalText() ([]byte, error) {
	if k > KeyRSA2048 {
		return nil, fmt.Errorf("%w %d", ErrKeyType, uint8(k))
	}
	return []byte(k.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseKeyType.
func (k *KeyType) UnmarshalText(b []byte) error {
	v, err := ParseKeyType(string(b))
	if err != nil {
		return err
	}
	*k = v
	return nil
}

func (k KeyType) generate() (crypto.Signer, error) {
	switch k {
	case KeyECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case KeyRSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	}
	return nil, fmt.Errorf("%w %d", ErrKeyType, uint8(k))
}
