package store

import (
	"context"
	"strings"
	"time"
)

// DefaultLimit caps a query that sets no Limit, so that one request cannot
// pull a whole archive into memory.
const DefaultLimit = 10000

// EventQuery selects events (or chats) by server time, uid, place and type.
type EventQuery struct {
	// UID selects one uid's events; "" any.
	UID string
	// From and To bound the server time, [From, To); zero is open.
	From, To time.Time
	// Box, when set, keeps events whose point lies inside it.
	Box *Box
	// TypePrefix keeps events whose type starts with it ("a-" for atoms).
	TypePrefix string
	Scope      Scope
	// Limit is the most rows returned (the oldest first); 0 is DefaultLimit.
	Limit int
}

// Box is a latitude/longitude rectangle. MinLon > MaxLon means it crosses
// the antimeridian.
type Box struct {
	MinLat, MinLon, MaxLat, MaxLon float64
}

// EndpointQuery selects client endpoints.
type EndpointQuery struct {
	// Since keeps endpoints whose last connect or disconnect is at or after
	// it (clientEndPoints' secAgo); zero keeps all.
	Since time.Time
	// ConnectedOnly keeps those whose last status is Connected.
	ConnectedOnly bool
	Scope         Scope
}

const selectEventCols = `id, ` + insertEventCols

// scanEvent reads selectEventCols.
func scanEvent(sc interface{ Scan(...any) error }, e *EventRecord, extra ...any) error {
	var groups string
	dest := []any{&e.ID, &e.UID, &e.Type, &e.How, timeCol{&e.Time}, timeCol{&e.Start}, timeCol{&e.Stale},
		&e.Lat, &e.Lon, &e.HAE, &e.CE, &e.LE, &e.Detail, timeCol{&e.ServerTime},
		&e.SenderUID, &e.SenderCallsign, &e.SenderUser, &groups}
	if err := sc.Scan(append(dest, extra...)...); err != nil {
		return err
	}
	e.Groups = decodeList(groups)
	return nil
}

// LatestEvent is the newest event of uid that sc may see (TAK Server's
// /api/cot/xml/{uid}); ErrNotFound when there is none.
func (db *DB) LatestEvent(ctx context.Context, uid string, sc Scope) (EventRecord, error) {
	b := db.backend
	cond, args := scopeClause("groups", sc)
	var e EventRecord
	err := scanEvent(db.sql.QueryRowContext(ctx, b.q(`SELECT `+selectEventCols+` FROM cot_router
		WHERE uid = ? AND `+cond+` ORDER BY servertime DESC, id DESC LIMIT 1`), append([]any{uid}, args...)...), &e)
	return e, isNotFound(err)
}

// LatestEvents is the newest event of each uid that has one (POST /api/cot),
// in the order of uids.
func (db *DB) LatestEvents(ctx context.Context, uids []string, sc Scope) ([]EventRecord, error) {
	var out []EventRecord
	for _, u := range uids {
		e, err := db.LatestEvent(ctx, u, sc)
		if err == ErrNotFound {
			continue
		}
		if err != nil {
			return out, err
		}
		out = append(out, e)
	}
	return out, nil
}

// eventWhere builds the WHERE clause of q.
func eventWhere(q EventQuery, b Backend) (string, []any) {
	cond, args := scopeClause("groups", q.Scope)
	where := []string{cond}
	if q.UID != "" {
		where = append(where, "uid = ?")
		args = append(args, q.UID)
	}
	if !q.From.IsZero() {
		where = append(where, "servertime >= ?")
		args = append(args, b.t(q.From))
	}
	if !q.To.IsZero() {
		where = append(where, "servertime < ?")
		args = append(args, b.t(q.To))
	}
	if q.TypePrefix != "" {
		where = append(where, `cot_type LIKE ? ESCAPE '\'`)
		args = append(args, likeEscape(q.TypePrefix)+"%")
	}
	if bx := q.Box; bx != nil {
		where = append(where, "point_lat >= ? AND point_lat <= ?")
		args = append(args, bx.MinLat, bx.MaxLat)
		if bx.MinLon <= bx.MaxLon {
			where = append(where, "point_lon >= ? AND point_lon <= ?")
		} else {
			where = append(where, "(point_lon >= ? OR point_lon <= ?)")
		}
		args = append(args, bx.MinLon, bx.MaxLon)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	args = append(args, limit)
	return strings.Join(where, " AND ") + " ORDER BY servertime, id LIMIT ?", args
}

// Events lists the events q selects, oldest first: a uid's track
// (/api/cot/xml/{uid}/all, ExportMissionKML) or what happened in a box and
// a time window (/api/cot/sa).
func (db *DB) Events(ctx context.Context, q EventQuery) ([]EventRecord, error) {
	where, args := eventWhere(q, db.backend)
	rows, err := db.sql.QueryContext(ctx, db.backend.q(`SELECT `+selectEventCols+` FROM cot_router WHERE `+where), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []EventRecord
	for rows.Next() {
		var e EventRecord
		if err := scanEvent(rows, &e); err != nil {
			return out, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

const chatCols = `chat_sender_callsign, chat_room, chat_room_id, message_id, chat_content, dest_uid, dest_callsign`

func scanChat(sc interface{ Scan(...any) error }, c *ChatRecord, extra ...any) error {
	var du, dc string
	err := scanEvent(sc, &c.EventRecord, append([]any{&c.ChatSenderCallsign, &c.Room, &c.RoomID,
		&c.MessageID, &c.Text, &du, &dc}, extra...)...)
	c.DestUIDs, c.DestCallsigns = decodeList(du), decodeList(dc)
	return err
}

// Chats lists GeoChat messages as Events lists events (UID selects the
// chat event's uid).
func (db *DB) Chats(ctx context.Context, q EventQuery) ([]ChatRecord, error) {
	where, args := eventWhere(q, db.backend)
	rows, err := db.sql.QueryContext(ctx, db.backend.q(`SELECT `+selectEventCols+`, `+chatCols+
		` FROM cot_router_chat WHERE `+where), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ChatRecord
	for rows.Next() {
		var c ChatRecord
		if err := scanChat(rows, &c); err != nil {
			return out, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// ClientEndpoints lists the clients the server has seen, newest first, with
// their last status (/api/clientEndPoints).
func (db *DB) ClientEndpoints(ctx context.Context, q EndpointQuery) ([]Endpoint, error) {
	b := db.backend
	cond, args := scopeClause("groups", q.Scope)
	if !q.Since.IsZero() {
		cond += " AND last_event_time >= ?"
		args = append(args, b.t(q.Since))
	}
	if q.ConnectedOnly {
		cond += " AND last_status = ?"
		args = append(args, StatusConnected.String())
	}
	rows, err := db.sql.QueryContext(ctx, b.q(`SELECT uid, callsign, username, team, role, groups, address, listener,
		last_status, last_event_time FROM client_endpoint WHERE `+cond+` ORDER BY last_event_time DESC, id DESC`), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Endpoint
	for rows.Next() {
		var e Endpoint
		var groups, status string
		if err := rows.Scan(&e.UID, &e.Callsign, &e.User, &e.Team, &e.Role, &groups, &e.Address, &e.Listener,
			&status, timeCol{&e.LastEventTime}); err != nil {
			return out, err
		}
		e.Groups, e.LastStatus = decodeList(groups), parseStatus(status)
		out = append(out, e)
	}
	return out, rows.Err()
}

// PendingChats lists the chats kept for a recipient who was offline, by its
// uid or (for a device that came back under a new uid) its callsign, oldest
// first. Hand each to the client, then MarkDelivered.
func (db *DB) PendingChats(ctx context.Context, uid, callsign string) ([]PendingChat, error) {
	b := db.backend
	cols := strings.ReplaceAll(selectEventCols+", "+chatCols, "\n", " ")
	var prefixed []string
	for _, c := range strings.Split(cols, ",") {
		prefixed = append(prefixed, "c."+strings.TrimSpace(c))
	}
	rows, err := db.sql.QueryContext(ctx, b.q(`SELECT `+strings.Join(prefixed, ", ")+`, p.id, p.recipient_uid, p.recipient_callsign
		FROM cot_router_chat_pending p JOIN cot_router_chat c ON c.id = p.chat_id
		WHERE p.delivered IS NULL AND (p.recipient_uid = ? OR (? <> '' AND p.recipient_callsign = ?))
		ORDER BY c.servertime, c.id`), uid, callsign, callsign)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []PendingChat
	for rows.Next() {
		var p PendingChat
		if err := scanChat(rows, &p.Chat, &p.ID, &p.RecipientUID, &p.RecipientCallsign); err != nil {
			return out, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// MarkDelivered records that the pending chats ids were handed to their
// recipient at the given time; they are not listed again.
func (db *DB) MarkDelivered(ctx context.Context, ids []int64, at time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	b := db.backend
	args := []any{b.t(at)}
	for _, id := range ids {
		args = append(args, id)
	}
	_, err := db.sql.ExecContext(ctx, b.q(`UPDATE cot_router_chat_pending SET delivered = ?
		WHERE delivered IS NULL AND id IN (`+placeholders(len(ids))+`)`), args...)
	return err
}
