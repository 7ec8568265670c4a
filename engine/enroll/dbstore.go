package enroll

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"time"

	"cotd/engine/store"
)

// CertDB is the part of the process's store (engine/store) that keeps
// issued certificates: TAK Server's certificate table.
type CertDB interface {
	PutCert(ctx context.Context, c store.CertRecord) error
	Cert(ctx context.Context, serial string) (store.CertRecord, error)
	CertsByUser(ctx context.Context, user string) ([]store.CertRecord, error)
	RevokeCert(ctx context.Context, serial string, at time.Time) error
	RevokedCerts(ctx context.Context) ([]store.CertRecord, error)
}

// DBStore keeps certificate records in the database and one-time tokens
// in the state file: the tokens are short-lived secrets the database has
// no table for.
type DBStore struct {
	db     CertDB
	tokens *FileStore
}

// NewDBStore returns a Store over db, with tokens in the file at
// tokenPath.
func NewDBStore(db CertDB, tokenPath string) *DBStore {
	return &DBStore{db: db, tokens: NewFileStore(tokenPath)}
}

// dbTimeout bounds one database call: enrollment answers a person waiting
// on a phone.
const dbTimeout = 10 * time.Second

// notIssued stands for the owner of a serial revoked by hand that cotd
// never issued (the table needs a user name).
const notIssued = "(not issued by cotd)"

// The database keeps serials in lowercase hex (TAK Server's form); this
// package in decimal (Go's big.Int, the CRL's).
func toHex(dec string) (string, error) {
	n, ok := new(big.Int).SetString(dec, 10)
	if !ok {
		return "", fmt.Errorf("%w: serial %q is not a decimal number", ErrState, dec)
	}
	return n.Text(16), nil
}

func fromDB(c store.CertRecord) CertRecord {
	dec := c.Serial
	if n, ok := new(big.Int).SetString(c.Serial, 16); ok {
		dec = n.String()
	}
	user := c.User
	if user == notIssued {
		user = ""
	}
	return CertRecord{User: user, Serial: dec, ClientUID: c.ClientUID, SubjectDN: c.SubjectDN,
		Fingerprint: c.Fingerprint, Issued: c.Issued, NotAfter: c.Expires, Revoked: c.Revoked}
}

func ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), dbTimeout)
}

// RecordCert implements Store.
func (s *DBStore) RecordCert(r CertRecord) error {
	serial, err := toHex(r.Serial)
	if err != nil {
		return err
	}
	c, cancel := ctx()
	defer cancel()
	return s.db.PutCert(c, store.CertRecord{Serial: serial, User: r.User, ClientUID: r.ClientUID,
		SubjectDN: r.SubjectDN, Fingerprint: r.Fingerprint, Issued: r.Issued, Expires: r.NotAfter, Revoked: r.Revoked})
}

// Certs implements Store.
func (s *DBStore) Certs(user string) ([]CertRecord, error) {
	c, cancel := ctx()
	defer cancel()
	recs, err := s.db.CertsByUser(c, user)
	return convert(recs), err
}

// RevokedCerts implements Store.
func (s *DBStore) RevokedCerts() ([]CertRecord, error) {
	c, cancel := ctx()
	defer cancel()
	recs, err := s.db.RevokedCerts(c)
	return convert(recs), err
}

func convert(recs []store.CertRecord) []CertRecord {
	out := make([]CertRecord, len(recs))
	for i, r := range recs {
		out[i] = fromDB(r)
	}
	return out
}

// Revoke implements Store.
func (s *DBStore) Revoke(sel RevokeSelector, at time.Time) ([]CertRecord, error) {
	c, cancel := ctx()
	defer cancel()
	if sel.Serial == "" {
		recs, err := s.db.CertsByUser(c, sel.User)
		if err != nil {
			return nil, err
		}
		if len(recs) == 0 {
			return nil, ErrNotFound
		}
		var out []CertRecord
		for _, r := range recs {
			if !r.Revoked.IsZero() {
				continue
			}
			if err := s.db.RevokeCert(c, r.Serial, at); err != nil {
				return out, err
			}
			r.Revoked = at
			out = append(out, fromDB(r))
		}
		return out, nil
	}
	serial, err := toHex(sel.Serial)
	if err != nil {
		return nil, err
	}
	r, err := s.db.Cert(c, serial)
	switch {
	case errors.Is(err, store.ErrNotFound):
		user := sel.User
		if user == "" {
			user = notIssued
		}
		r = store.CertRecord{Serial: serial, User: user, Issued: at, Expires: at, Revoked: at}
		if err := s.db.PutCert(c, r); err != nil {
			return nil, err
		}
		return []CertRecord{fromDB(r)}, nil
	case err != nil:
		return nil, err
	case !r.Revoked.IsZero():
		return nil, nil // already revoked
	}
	if err := s.db.RevokeCert(c, serial, at); err != nil {
		return nil, err
	}
	r.Revoked = at
	return []CertRecord{fromDB(r)}, nil
}

// AddToken implements Store.
func (s *DBStore) AddToken(t Token) error { return s.tokens.AddToken(t) }

// CheckToken implements Store.
func (s *DBStore) CheckToken(user, secret string, now time.Time) (TokenState, error) {
	return s.tokens.CheckToken(user, secret, now)
}

// ConsumeToken implements Store.
func (s *DBStore) ConsumeToken(user, secret string, now time.Time) (bool, error) {
	return s.tokens.ConsumeToken(user, secret, now)
}
