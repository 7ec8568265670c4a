package engine

import (
	"slices"
	"sort"
	"time"
)

// ClientInfo describes one connection for the admin API.
type ClientInfo struct {
	ID          uint64    `json:"id"`
	UID         string    `json:"uid,omitempty"`
	Callsign    string    `json:"callsign,omitempty"`
	CN          string    `json:"cn,omitempty"`
	Remote      string    `json:"remote"`
	Listener    string    `json:"listener"`
	Protocol    string    `json:"protocol"` // "xml" or "takproto/1"
	State       string    `json:"state"`    // "handshaking" or "established"
	Since       time.Time `json:"connected_since"`
	LastSeen    time.Time `json:"last_seen,omitzero"`
	QueuedBytes int64     `json:"queued_bytes"`
	Groups      []string  `json:"groups,omitempty"`
}

// Clients lists every open connection, oldest first. Any goroutine.
func (s *Server) Clients() []ClientInfo {
	var out []ClientInfo
	s.sessions.Range(func(_, v any) bool {
		out = append(out, v.(*session).info())
		return true
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// ClientsByUID lists the connections whose device uid is uid (a device that
// reconnected may briefly have two).
func (s *Server) ClientsByUID(uid string) []ClientInfo {
	var out []ClientInfo
	for _, c := range s.Clients() {
		if c.UID == uid {
			out = append(out, c)
		}
	}
	return out
}

// Disconnect closes every connection of the device uid, with the reason
// "admin". It reports how many it closed.
func (s *Server) Disconnect(uid string) int {
	n := 0
	s.sessions.Range(func(_, v any) bool {
		ss := v.(*session)
		if ss.client.Identity().UID == uid && ss.closeWith(ReasonAdmin) {
			ss.logger().Info().Str("uid", uid).Msg("disconnected by an administrator")
			n++
		}
		return true
	})
	return n
}

// Connection describes the open connection with id id. Any goroutine.
func (s *Server) Connection(id uint64) (ClientInfo, bool) {
	v, ok := s.sessions.Load(id)
	if !ok {
		return ClientInfo{}, false
	}
	return v.(*session).info(), true
}

// DisconnectConnection closes the connection with id id, with the reason
// "admin". It reports whether this call closed it.
func (s *Server) DisconnectConnection(id uint64) bool {
	v, ok := s.sessions.Load(id)
	if !ok {
		return false
	}
	ss := v.(*session)
	if !ss.closeWith(ReasonAdmin) {
		return false // already closing
	}
	ss.logger().Info().Msg("disconnected by an administrator")
	return true
}

// info snapshots what other goroutines may read about a session.
func (ss *session) info() ClientInfo {
	id := ss.client.Identity()
	ci := ClientInfo{
		ID:          ss.id,
		UID:         id.UID,
		Callsign:    id.Callsign,
		Remote:      ss.remote,
		Listener:    ss.ln.kind.String(),
		Protocol:    "xml",
		State:       "established",
		Since:       ss.opened,
		LastSeen:    ss.client.LastSeen(),
		QueuedBytes: ss.queued(),
	}
	if ss.outV1.Load() {
		ci.Protocol = "takproto/1"
	}
	g := ss.client.Groups()
	ci.Groups = append(slices.Clone(g.In), g.Out...)
	slices.Sort(ci.Groups)
	ci.Groups = slices.Compact(ci.Groups)
	if !ss.established.Load() {
		ci.State = "handshaking"
	} else if ss.tls != nil {
		ci.CN = ss.tls.PeerCN()
	}
	return ci
}
