package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"cotd/cot"
)

// FileQuery is a Marti sync/search.
type FileQuery struct {
	// Keywords: every one given must be among the file's.
	Keywords []string
	// Name matches a part of the name, ignoring case.
	Name string
	// MIMEType, Tool and CreatorUID match exactly when set.
	MIMEType, Tool, CreatorUID string
	// From and To bound the submission time, [From, To); zero is open.
	From, To time.Time
	Scope    Scope
	// Limit is the most rows returned (newest first); 0 is DefaultLimit.
	Limit int
}

const fileCols = `id, hash, uid, name, filename, mimetype, size, keywords, submitter, creator_uid, tool, groups,
	submissiontime, expiration`

func scanFile(sc interface{ Scan(...any) error }, f *FileRecord) error {
	var kw, groups string
	if err := sc.Scan(&f.ID, &f.Hash, &f.UID, &f.Name, &f.Filename, &f.MIMEType, &f.Size, &kw, &f.Submitter,
		&f.CreatorUID, &f.Tool, &groups, timeCol{&f.Created}, timeCol{&f.Expiration}); err != nil {
		return err
	}
	f.Keywords, f.Groups = decodeList(kw), decodeList(groups)
	return nil
}

// PutFile records a file's metadata and returns it as stored (ID set). The
// same content uploaded again keeps one row: the newer upload's name,
// keywords and type win, and the groups of both uploaders may see it, so
// that a second upload never hides the file from the first uploader's
// groups.
func (db *DB) PutFile(ctx context.Context, f FileRecord) (FileRecord, error) {
	if f.Hash == "" {
		return f, fmt.Errorf("store: file without a hash")
	}
	f.Hash = strings.ToLower(f.Hash)
	if f.UID == "" {
		f.UID = cot.NewUID()
	}
	if f.Tool == "" {
		f.Tool = "public"
	}
	if f.Created.IsZero() {
		f.Created = db.now()
	}
	b := db.backend
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return f, err
	}
	defer func() { _ = tx.Rollback() }()
	old, err := scanFileRow(tx.QueryRowContext(ctx, b.q(`SELECT `+fileCols+` FROM resource WHERE hash = ?`), f.Hash))
	switch {
	case err == nil:
		f.UID = old.UID
		for _, g := range old.Groups {
			if !slices.Contains(f.Groups, g) {
				f.Groups = append(f.Groups, g)
			}
		}
		_, err = tx.ExecContext(ctx, b.q(`UPDATE resource SET name = ?, filename = ?, mimetype = ?, size = ?, keywords = ?,
			submitter = ?, creator_uid = ?, tool = ?, groups = ?, submissiontime = ?, expiration = ? WHERE id = ?`),
			clean(f.Name), clean(f.Filename), clean(f.MIMEType), f.Size, clean(encodeList(f.Keywords)), clean(f.Submitter),
			clean(f.CreatorUID), clean(f.Tool), clean(encodeList(f.Groups)), b.t(f.Created), b.t(f.Expiration), old.ID)
		f.ID = old.ID
	case noRows(err):
		err = tx.QueryRowContext(ctx, b.q(`INSERT INTO resource (hash, uid, name, filename, mimetype, size, keywords,
			submitter, creator_uid, tool, groups, submissiontime, expiration)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
			f.Hash, clean(f.UID), clean(f.Name), clean(f.Filename), clean(f.MIMEType), f.Size, clean(encodeList(f.Keywords)),
			clean(f.Submitter), clean(f.CreatorUID), clean(f.Tool), clean(encodeList(f.Groups)),
			b.t(f.Created), b.t(f.Expiration)).Scan(&f.ID)
	}
	if err != nil {
		return f, err
	}
	if err := tx.Commit(); err != nil {
		return f, err
	}
	db.stats.Written[KindFile].Inc()
	return f, nil
}

func scanFileRow(r *sql.Row) (FileRecord, error) {
	var f FileRecord
	err := scanFile(r, &f)
	return f, err
}

// File is the metadata of the file with this SHA-256; ErrNotFound when
// there is none.
func (db *DB) File(ctx context.Context, hash string) (FileRecord, error) {
	f, err := scanFileRow(db.sql.QueryRowContext(ctx, db.backend.q(`SELECT `+fileCols+` FROM resource WHERE hash = ?`),
		strings.ToLower(hash)))
	return f, isNotFound(err)
}

// SearchFiles lists the files q selects, newest first.
func (db *DB) SearchFiles(ctx context.Context, q FileQuery) ([]FileRecord, error) {
	b := db.backend
	cond, args := scopeClause("groups", q.Scope)
	where := []string{cond}
	for _, k := range q.Keywords {
		where = append(where, `keywords LIKE ? ESCAPE '\'`)
		args = append(args, "%,"+likeEscape(listEscaper.Replace(k))+",%")
	}
	if q.Name != "" {
		where = append(where, `lower(name) LIKE ? ESCAPE '\'`)
		args = append(args, "%"+likeEscape(strings.ToLower(q.Name))+"%")
	}
	for col, v := range map[string]string{"mimetype": q.MIMEType, "tool": q.Tool, "creator_uid": q.CreatorUID} {
		if v != "" {
			where = append(where, col+" = ?")
			args = append(args, v)
		}
	}
	if !q.From.IsZero() {
		where = append(where, "submissiontime >= ?")
		args = append(args, b.t(q.From))
	}
	if !q.To.IsZero() {
		where = append(where, "submissiontime < ?")
		args = append(args, b.t(q.To))
	}
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	args = append(args, limit)
	rows, err := db.sql.QueryContext(ctx, b.q(`SELECT `+fileCols+` FROM resource WHERE `+strings.Join(where, " AND ")+
		` ORDER BY submissiontime DESC, id DESC LIMIT ?`), args...)
	if err != nil {
		return nil, err
	}
	return collectRows(rows, scanFile)
}

// updateFile sets one column of the file with hash; ErrNotFound when there
// is none.
func (db *DB) updateFile(ctx context.Context, hash, col, value string) error {
	res, err := db.sql.ExecContext(ctx, db.backend.q(`UPDATE resource SET `+col+` = ? WHERE hash = ?`),
		clean(value), strings.ToLower(hash))
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		if err == nil {
			err = ErrNotFound
		}
		return err
	}
	return nil
}

// SetFileTool sets the file's tool (PUT sync/metadata/{hash}/tool:
// "public" or "private").
func (db *DB) SetFileTool(ctx context.Context, hash, tool string) error {
	return db.updateFile(ctx, hash, "tool", tool)
}

// SetFileMIMEType sets the file's MIME type (PUT sync/metadata/{hash}/mimetype).
func (db *DB) SetFileMIMEType(ctx context.Context, hash, mimeType string) error {
	return db.updateFile(ctx, hash, "mimetype", mimeType)
}

// DeleteFile removes the file's metadata; ErrNotFound when there is none.
func (db *DB) DeleteFile(ctx context.Context, hash string) error {
	res, err := db.sql.ExecContext(ctx, db.backend.q(`DELETE FROM resource WHERE hash = ?`), strings.ToLower(hash))
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		if err == nil {
			err = ErrNotFound
		}
		return err
	}
	return nil
}

const certCols = `serial, username, client_uid, subject_dn, fingerprint, issuance_date, expiration_date, revocation_date`

func scanCert(sc interface{ Scan(...any) error }, c *CertRecord) error {
	return sc.Scan(&c.Serial, &c.User, &c.ClientUID, &c.SubjectDN, &c.Fingerprint,
		timeCol{&c.Issued}, timeCol{&c.Expires}, timeCol{&c.Revoked})
}

// PutCert records an issued certificate. A serial seen before is an error:
// serials are unique per CA.
func (db *DB) PutCert(ctx context.Context, c CertRecord) error {
	if c.Serial == "" || c.User == "" {
		return fmt.Errorf("store: certificate needs a serial and a user")
	}
	b := db.backend
	_, err := db.sql.ExecContext(ctx, b.q(`INSERT INTO certificate (`+certCols+`) VALUES (`+placeholders(8)+`)`),
		strings.ToLower(c.Serial), clean(c.User), clean(c.ClientUID), clean(c.SubjectDN), strings.ToLower(c.Fingerprint),
		b.t(c.Issued), b.t(c.Expires), b.t(c.Revoked))
	return err
}

// Cert is the certificate with this serial; ErrNotFound when unknown.
func (db *DB) Cert(ctx context.Context, serial string) (CertRecord, error) {
	var c CertRecord
	err := scanCert(db.sql.QueryRowContext(ctx, db.backend.q(`SELECT `+certCols+` FROM certificate WHERE serial = ?`),
		strings.ToLower(serial)), &c)
	return c, isNotFound(err)
}

func (db *DB) certs(ctx context.Context, where string, args ...any) ([]CertRecord, error) {
	rows, err := db.sql.QueryContext(ctx, db.backend.q(`SELECT `+certCols+` FROM certificate WHERE `+where+
		` ORDER BY issuance_date, id`), args...)
	if err != nil {
		return nil, err
	}
	return collectRows(rows, scanCert)
}

// collectRows scans every row of a query into a slice and closes rows. The
// file and certificate listings read their rows the same way; on a scan
// error the rows read so far are returned with it.
func collectRows[T any](rows *sql.Rows, scan func(interface{ Scan(...any) error }, *T) error) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		var v T
		if err := scan(rows, &v); err != nil {
			return out, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// CertsByUser lists the certificates issued to user, oldest first.
func (db *DB) CertsByUser(ctx context.Context, user string) ([]CertRecord, error) {
	return db.certs(ctx, "username = ?", user)
}

// RevokedCerts lists every revoked certificate (for the CRL).
func (db *DB) RevokedCerts(ctx context.Context) ([]CertRecord, error) {
	return db.certs(ctx, "revocation_date IS NOT NULL")
}

// RevokeCert marks the certificate revoked at the given time (a second
// revocation keeps the first time); ErrNotFound when unknown.
func (db *DB) RevokeCert(ctx context.Context, serial string, at time.Time) error {
	b := db.backend
	res, err := db.sql.ExecContext(ctx, b.q(`UPDATE certificate SET revocation_date = COALESCE(revocation_date, ?)
		WHERE serial = ?`), b.t(at), strings.ToLower(serial))
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		if err == nil {
			err = ErrNotFound
		}
		return err
	}
	return nil
}

// RevokeUserCerts revokes every certificate of user not yet revoked and
// returns how many (cotd users disable).
func (db *DB) RevokeUserCerts(ctx context.Context, user string, at time.Time) (int, error) {
	b := db.backend
	res, err := db.sql.ExecContext(ctx, b.q(`UPDATE certificate SET revocation_date = ?
		WHERE username = ? AND revocation_date IS NULL`), b.t(at), user)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}
