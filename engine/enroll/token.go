package enroll

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"time"

	qrcode "github.com/skip2/go-qrcode"
)

// tokenBytes is the token's entropy: 128 bits, beyond guessing even
// without the throttle.
const tokenBytes = 16

// NewToken makes a one-time token for user valid for ttl, stores its hash
// and returns the secret (shown once, never stored).
func NewToken(store Store, user string, ttl time.Duration, now time.Time) (string, error) {
	if ttl <= 0 {
		return "", fmt.Errorf("%w: token lifetime must be positive, got %v", ErrConfig, ttl)
	}
	var b [tokenBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	secret := hex.EncodeToString(b[:])
	err := store.AddToken(Token{User: user, Hash: HashToken(secret), Expires: now.Add(ttl).UTC().Truncate(time.Second)})
	if err != nil {
		return "", err
	}
	return secret, nil
}

// QRPayload is what ATAK and iTAK scan to enroll: the token goes in as the
// Basic password (ATAK55 CotMapComponent).
func QRPayload(host, user, token string) string {
	// In the documented order (url.Values would sort the keys).
	return "tak://com.atakmap.app/enroll?host=" + url.QueryEscape(host) +
		"&username=" + url.QueryEscape(user) + "&token=" + url.QueryEscape(token)
}

// QRPNG renders payload as a PNG QR code (medium error correction, 512
// pixels: readable from a screen or a printout).
func QRPNG(payload string) ([]byte, error) {
	return qrcode.Encode(payload, qrcode.Medium, 512)
}
