package enroll

import "errors"

// The package's errors; each is wrapped with its details.
var (
	// ErrNoCAKey: enrollment cannot sign without the CA's private key.
	ErrNoCAKey = errors.New("enroll: no CA private key")
	// ErrConfig: enrollment is not configured well enough to run.
	ErrConfig = errors.New("enroll: cannot start")
	// ErrState: the state file (certificate records, tokens) is unreadable
	// or cannot be written.
	ErrState = errors.New("enroll: bad state file")
	// ErrLocked: another process held the state file's lock too long.
	ErrLocked = errors.New("enroll: state file is locked")
	// ErrNoCRL: no CRL path is configured (tls.crl).
	ErrNoCRL = errors.New("enroll: no CRL path: set tls.crl")
	// ErrNotFound: nothing matched what was to be revoked.
	ErrNotFound = errors.New("enroll: no such certificate or user")
)
