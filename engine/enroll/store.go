package enroll

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"cotd/internal/flock"
	"cotd/tlsstate/pki"
)

// CertRecord is one issued (or revoked) certificate.
type CertRecord struct {
	// User is the certificate's CN; "" for a serial revoked by hand that
	// cotd did not issue.
	User string `json:"user"`
	// Serial is the certificate serial number in decimal.
	Serial string `json:"serial"`
	// ClientUID is the device uid the client gave when enrolling.
	ClientUID string `json:"client_uid,omitempty"`
	// SubjectDN and Fingerprint (hex SHA-256 of the DER) identify the
	// certificate to an administrator.
	SubjectDN   string    `json:"subject,omitempty"`
	Fingerprint string    `json:"sha256,omitempty"`
	Issued      time.Time `json:"issued,omitzero"`
	NotAfter    time.Time `json:"not_after,omitzero"`
	// Revoked is when it was revoked; zero while valid.
	Revoked time.Time `json:"revoked,omitzero"`
}

// Token is a one-time enrollment token. Only its hash is kept.
type Token struct {
	User    string    `json:"user"`
	Hash    string    `json:"sha256"`
	Expires time.Time `json:"expires"`
	// Used is when a certificate was issued with it; zero while unused.
	Used time.Time `json:"used,omitzero"`
}

// TokenState is what a presented token is worth.
type TokenState uint8

// The token states.
const (
	// TokenInvalid: unknown, expired, or used longer ago than the grace.
	TokenInvalid TokenState = iota
	// TokenUnused: it may sign one certificate.
	TokenUnused
	// TokenJustUsed: it signed a certificate moments ago; the client may
	// still fetch its config and profile with it, not sign again.
	TokenJustUsed
)

func (s TokenState) String() string {
	switch s {
	case TokenUnused:
		return "unused"
	case TokenJustUsed:
		return "just_used"
	}
	return "invalid"
}

// usedTokenGrace is how long after signing a token still opens the
// read-only endpoints: ATAK fetches the enrollment profile right after the
// certificate, with the same credentials.
const usedTokenGrace = 10 * time.Minute

// Store keeps certificate records and tokens. Implementations are safe for
// concurrent use, from goroutines and from other processes (the `cotd`
// commands edit it while the server runs).
type Store interface {
	// RecordCert adds an issued certificate.
	RecordCert(r CertRecord) error
	// Certs returns the records of user.
	Certs(user string) ([]CertRecord, error)
	// RevokedCerts returns every revoked record (for the CRL).
	RevokedCerts() ([]CertRecord, error)
	// Revoke marks revoked, at at, every valid certificate that sel
	// matches and returns them; a serial with no record is recorded as
	// revoked. ErrNotFound when nothing matched.
	Revoke(sel RevokeSelector, at time.Time) ([]CertRecord, error)
	// AddToken stores a token.
	AddToken(t Token) error
	// CheckToken says what secret is worth for user at now.
	CheckToken(user, secret string, now time.Time) (TokenState, error)
	// ConsumeToken marks an unused token used, atomically: of two
	// concurrent callers one gets true.
	ConsumeToken(user, secret string, now time.Time) (bool, error)
}

// RevokeSelector picks certificates: every valid one of User, or the one
// with Serial (decimal; User then names its owner if known).
type RevokeSelector struct {
	User   string
	Serial string
}

// state is the file's document.
type state struct {
	Certs  []CertRecord `json:"certificates"`
	Tokens []Token      `json:"tokens"`
}

// FileStore is a Store in one JSON file, rewritten atomically (temporary
// file, fsync, rename) under an advisory lock on path+".lock", like the
// users file.
type FileStore struct {
	path string
}

// NewFileStore returns the store at path; the file is created on the
// first write.
func NewFileStore(path string) *FileStore { return &FileStore{path: path} }

// Path is the state file.
func (f *FileStore) Path() string { return f.path }

func (f *FileStore) load() (*state, error) {
	data, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return &state{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrState, err)
	}
	var st state
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrState, f.path, err)
	}
	return &st, nil
}

// lockTimeout bounds the wait for another writer.
const lockTimeout = 10 * time.Second

// update runs fn on the state under the lock and saves it when fn returns
// nil.
func (f *FileStore) update(fn func(st *state) error) error {
	if dir := filepath.Dir(f.path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("%w: %w", ErrState, err)
		}
	}
	unlock, err := flock.Lock(f.path+".lock", lockTimeout)
	switch {
	case errors.Is(err, flock.ErrTimeout):
		return fmt.Errorf("%w: %s.lock held for more than %v", ErrLocked, f.path, lockTimeout)
	case err != nil:
		return fmt.Errorf("%w: lock: %w", ErrState, err)
	}
	defer unlock()
	st, err := f.load()
	if err != nil {
		return err
	}
	if err := fn(st); err != nil {
		return err
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrState, err)
	}
	if err := pki.WriteFileAtomic(f.path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("%w: %w", ErrState, err)
	}
	return nil
}

// RecordCert implements Store.
func (f *FileStore) RecordCert(r CertRecord) error {
	return f.update(func(st *state) error {
		st.Certs = append(st.Certs, r)
		return nil
	})
}

// Certs implements Store.
func (f *FileStore) Certs(user string) ([]CertRecord, error) {
	st, err := f.load()
	if err != nil {
		return nil, err
	}
	var out []CertRecord
	for _, c := range st.Certs {
		if c.User == user {
			out = append(out, c)
		}
	}
	return out, nil
}

// RevokedCerts implements Store.
func (f *FileStore) RevokedCerts() ([]CertRecord, error) {
	st, err := f.load()
	if err != nil {
		return nil, err
	}
	var out []CertRecord
	for _, c := range st.Certs {
		if !c.Revoked.IsZero() {
			out = append(out, c)
		}
	}
	return out, nil
}

// Revoke implements Store.
func (f *FileStore) Revoke(sel RevokeSelector, at time.Time) ([]CertRecord, error) {
	var out []CertRecord
	err := f.update(func(st *state) error {
		found := false
		for i := range st.Certs {
			c := &st.Certs[i]
			match := (sel.Serial != "" && c.Serial == sel.Serial) || (sel.Serial == "" && sel.User != "" && c.User == sel.User)
			if !match {
				continue
			}
			found = true
			if c.Revoked.IsZero() {
				c.Revoked = at
				out = append(out, *c)
			}
		}
		if !found && sel.Serial != "" {
			r := CertRecord{User: sel.User, Serial: sel.Serial, Revoked: at}
			st.Certs = append(st.Certs, r)
			out = append(out, r)
			found = true
		}
		if !found {
			return ErrNotFound
		}
		return nil
	})
	return out, err
}

// AddToken implements Store. Expired tokens are dropped on the way.
func (f *FileStore) AddToken(t Token) error {
	return f.update(func(st *state) error {
		now := time.Now()
		st.Tokens = slices.DeleteFunc(st.Tokens, func(x Token) bool { return tokenDead(x, now) })
		st.Tokens = append(st.Tokens, t)
		return nil
	})
}

func tokenDead(t Token, now time.Time) bool {
	return now.After(t.Expires) || (!t.Used.IsZero() && now.Sub(t.Used) > usedTokenGrace)
}

// HashToken is how a token is kept: SHA-256 in hex. A token has 128
// random bits, so a fast hash is enough.
func HashToken(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

func tokenState(t Token, user, hash string, now time.Time) TokenState {
	if t.User != user || subtle.ConstantTimeCompare([]byte(t.Hash), []byte(hash)) != 1 || now.After(t.Expires) {
		return TokenInvalid
	}
	if t.Used.IsZero() {
		return TokenUnused
	}
	if now.Sub(t.Used) <= usedTokenGrace {
		return TokenJustUsed
	}
	return TokenInvalid
}

// CheckToken implements Store.
func (f *FileStore) CheckToken(user, secret string, now time.Time) (TokenState, error) {
	st, err := f.load()
	if err != nil {
		return TokenInvalid, err
	}
	hash := HashToken(secret)
	for _, t := range st.Tokens {
		if s := tokenState(t, user, hash, now); s != TokenInvalid {
			return s, nil
		}
	}
	return TokenInvalid, nil
}

// ConsumeToken implements Store.
func (f *FileStore) ConsumeToken(user, secret string, now time.Time) (bool, error) {
	hash := HashToken(secret)
	used := false
	err := f.update(func(st *state) error {
		for i := range st.Tokens {
			if tokenState(st.Tokens[i], user, hash, now) == TokenUnused {
				st.Tokens[i].Used = now
				used = true
				return nil
			}
		}
		return errNothingToSave
	})
	if errors.Is(err, errNothingToSave) {
		err = nil
	}
	return used, err
}

// errNothingToSave ends an update without writing.
var errNothingToSave = errors.New("enroll: nothing to save")
