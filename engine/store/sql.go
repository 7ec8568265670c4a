package store

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Backend is the database engine behind a store.
//
// Chosen once at Open from the configuration; it never changes.
type Backend uint8

const (
	// BackendSQLite is the embedded default (one file, WAL).
	BackendSQLite Backend = iota
	// BackendPostgres is PostgreSQL, when [store] url is set.
	BackendPostgres
)

func (b Backend) String() string {
	switch b {
	case BackendSQLite:
		return "sqlite"
	case BackendPostgres:
		return "postgres"
	}
	return "Backend(" + strconv.Itoa(int(b)) + ")"
}

// sqliteTimeLayout is how SQLite holds times: fixed width, so that text
// order is time order and indexes work, in UTC with the precision
// PostgreSQL keeps (microseconds), readable by SQLite's date functions.
const sqliteTimeLayout = "2006-01-02T15:04:05.000000Z"

// q rewrites the '?' placeholders of a query written once for both
// backends into PostgreSQL's $1, $2, … The queries here never contain '?'
// anywhere else.
func (b Backend) q(query string) string {
	if b != BackendPostgres || !strings.Contains(query, "?") {
		return query
	}
	var sb strings.Builder
	sb.Grow(len(query) + 16)
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			sb.WriteByte('$')
			sb.WriteString(strconv.Itoa(n))
			continue
		}
		sb.WriteByte(query[i])
	}
	return sb.String()
}

// t encodes a time parameter: NULL for the zero time.
func (b Backend) t(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	t = t.UTC().Truncate(time.Microsecond)
	if b == BackendSQLite {
		return t.Format(sqliteTimeLayout)
	}
	return t
}

// timeCol scans a time column of either backend into a time.Time (zero for
// NULL).
type timeCol struct{ t *time.Time }

func (c timeCol) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*c.t = time.Time{}
	case time.Time:
		*c.t = v.UTC()
	case string:
		return c.parse(v)
	case []byte:
		return c.parse(string(v))
	default:
		return fmt.Errorf("store: cannot read %T as a time", src)
	}
	return nil
}

func (c timeCol) parse(s string) error {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("store: bad stored time %q: %w", s, err)
	}
	*c.t = t.UTC()
	return nil
}

// clean makes a string storable on both backends: PostgreSQL refuses
// invalid UTF-8 and NUL in text, and one such record must not fail the
// batch it travels in.
func clean(s string) string {
	if utf8.ValidString(s) && !strings.Contains(s, "\x00") {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// scopeClause is the SQL condition and parameters for sc on the list column
// col: a row is visible when its groups share one with sc.
func scopeClause(col string, sc Scope) (string, []any) {
	if sc.All {
		return "1=1", nil
	}
	if len(sc.Groups) == 0 {
		return "1=0", nil
	}
	var sb strings.Builder
	args := make([]any, 0, len(sc.Groups))
	sb.WriteByte('(')
	for i, g := range sc.Groups {
		if i > 0 {
			sb.WriteString(" OR ")
		}
		sb.WriteString(col)
		sb.WriteString(` LIKE ? ESCAPE '\'`)
		args = append(args, "%,"+likeEscape(listEscaper.Replace(g))+",%")
	}
	sb.WriteByte(')')
	return sb.String(), args
}

// likeEscape quotes LIKE's wildcards (and the escape character) in s.
func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// placeholders is "?, ?, …" n times.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// MaskURL returns a PostgreSQL URL fit for logs and errors: the password,
// whether in the user part or a password= parameter, replaced by xxxxx.
func MaskURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		// Unparsable: show only the scheme, since the password could be
		// anywhere in what is left.
		if i := strings.Index(raw, "://"); i > 0 {
			return raw[:i] + "://(unparsable URL)"
		}
		return "(unparsable URL)"
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// txer is what the batch writer needs of a transaction, so that chats and
// connection events are written by one piece of code on both backends
// (database/sql on SQLite, pgx on PostgreSQL).
type txer interface {
	exec(ctx context.Context, query string, args ...any) error
	queryRow(ctx context.Context, query string, args ...any) rowScanner
}

type rowScanner interface {
	Scan(dest ...any) error
}

type sqlTx struct{ tx *sql.Tx }

func (t sqlTx) exec(ctx context.Context, query string, args ...any) error {
	_, err := t.tx.ExecContext(ctx, query, args...)
	return err
}

func (t sqlTx) queryRow(ctx context.Context, query string, args ...any) rowScanner {
	return t.tx.QueryRowContext(ctx, query, args...)
}
