package engine

import (
	"slices"
	"time"

	"cotd/engine/directory"
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

func infoOf(c directory.Client) ClientInfo {
	ci := ClientInfo{ID: c.ConnID, UID: c.UID, Callsign: c.Callsign, Remote: c.Remote, Listener: c.Listener,
		Protocol: c.Protocol, State: c.State, Since: c.Since, LastSeen: c.LastSeen, QueuedBytes: c.QueuedBytes}
	if c.Listener == ListenerTLS.String() {
		ci.CN = c.Identity
	}
	ci.Groups = append(slices.Clone(c.In), c.Out...)
	slices.Sort(ci.Groups)
	ci.Groups = slices.Compact(ci.Groups)
	return ci
}

func infos(cs []directory.Client) []ClientInfo {
	var out []ClientInfo
	for _, c := range cs {
		out = append(out, infoOf(c))
	}
	return out
}

// Clients lists every open connection, oldest first. Any goroutine.
func (s *Server) Clients() []ClientInfo { return infos(s.Directory().Clients()) }

// ClientsByUID lists the connections whose device uid is uid.
func (s *Server) ClientsByUID(uid string) []ClientInfo { return infos(s.Directory().Client(uid)) }

// Disconnect closes every connection of the device uid, with the reason "admin".
func (s *Server) Disconnect(uid string) int {
	return s.Directory().Disconnect(directory.Selector{UID: uid}, directory.ReasonAdmin)
}

// Connection describes the open connection with id id. Any goroutine.
func (s *Server) Connection(id uint64) (ClientInfo, bool) {
	c, ok := s.Directory().Connection(id)
	return infoOf(c), ok
}

// DisconnectConnection closes the connection with id id, with the reason "admin".
func (s *Server) DisconnectConnection(id uint64) bool {
	return s.Directory().Disconnect(directory.Selector{ConnID: id}, directory.ReasonAdmin) == 1
}
