package store

import "errors"

var (
	// ErrNotFound: no row matches (unknown hash, uid, serial).
	ErrNotFound = errors.New("store: not found")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store: closed")
	// ErrUnreachable: PostgreSQL could not be reached or refused the login.
	ErrUnreachable = errors.New("store: database unreachable")
	// ErrCorrupt: the SQLite file is not a readable database.
	ErrCorrupt = errors.New("store: database file is corrupt or not a database")
	// ErrForeign: the database holds tables cotd did not create.
	ErrForeign = errors.New("store: not a cotd database")
	// ErrSchemaTooNew: the database was migrated by a newer cotd.
	ErrSchemaTooNew = errors.New("store: database schema is newer than this cotd")
	// ErrNotArchived: the document is not something the store keeps
	// (control messages, <auth>).
	ErrNotArchived = errors.New("store: not archived")
	// ErrBadEvent: the document could not be parsed.
	ErrBadEvent = errors.New("store: bad event")
	// ErrDropped: the queue was full or the store closing; the record was
	// counted as dropped.
	ErrDropped = errors.New("store: dropped")
	// ErrConfig: the store configuration cannot be used.
	ErrConfig = errors.New("store: bad configuration")
)
