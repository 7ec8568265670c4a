package marti

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"cotd/engine/directory"
)

// apiVersion is TAK Server's API level: ATAK reads the envelope's version
// as a number and sends search's tool filter only from level 2 on.
const apiVersion = "3"

// envelope is TAK Server's ApiResponse: non-null fields only, in this
// order. ATAK checks type literally.
type envelope struct {
	Version string `json:"version"`
	Type    string `json:"type"`
	Data    any    `json:"data"`
	NodeID  string `json:"nodeId"`
}

func writeEnvelope(w http.ResponseWriter, typ string, data any, nodeID string) {
	writeJSON(w, http.StatusOK, newEnvelope(typ, data, nodeID))
}

func newEnvelope(typ string, data any, nodeID string) envelope {
	return envelope{Version: apiVersion, Type: typ, Data: data, NodeID: nodeID}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		httpError(w, http.StatusInternalServerError, "encoding: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

// GET /Marti/api/version: plain text.
func (s *Server) serveVersion(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte("cotd-" + s.version))
}

type serverConfig struct {
	Version  string `json:"version"`
	API      string `json:"api"`
	Hostname string `json:"hostname"`
}

// GET /Marti/api/version/config: what ATAK calls on every stream connect.
func (s *Server) serveVersionConfig(w http.ResponseWriter, r *http.Request) {
	writeEnvelope(w, "ServerConfig", serverConfig{Version: "cotd-" + s.version, API: apiVersion, Hostname: hostOnly(r.Host)}, s.nodeID)
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

// clientEndpoint is com.bbn.marti.remote.ClientEndpoint. ATAK drops the
// whole list if one element lacks uid or callsign, has a lastEventTime it
// cannot parse, or a lastStatus other than Connected or Disconnected
// (ServerContact.java): entries without uid or callsign are never listed.
type clientEndpoint struct {
	Callsign      string `json:"callsign"`
	UID           string `json:"uid"`
	Username      string `json:"username"`
	Team          string `json:"team"`
	Role          string `json:"role"`
	LastEventTime string `json:"lastEventTime"`
	LastStatus    string `json:"lastStatus"`
}

// endpointTime is ATAK's KMLDateTimeFormatterMillis (yyyy-MM-dd'T'HH:mm:ss.S'Z').
const endpointTime = "2006-01-02T15:04:05.000Z"

// GET /Marti/api/clientEndPoints?secAgo=&showCurrentlyConnectedClients=&showMostRecentOnly=&group=
func (s *Server) serveClientEndPoints(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	q := r.URL.Query()
	var since time.Time
	if v := param(q, "secAgo"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			httpError(w, http.StatusBadRequest, "secAgo must be a whole number of seconds")
			return
		}
		if n > 0 {
			since = s.now().Add(-time.Duration(n) * time.Second)
		}
	}
	filter := params(q, "group")
	for _, g := range filter {
		if !slices.Contains(c.In, g) && !slices.Contains(c.Out, g) {
			httpError(w, http.StatusForbidden, "group "+strconv.Quote(g)+" is not one of yours")
			return
		}
	}
	onlyConnected := strings.EqualFold(param(q, "showCurrentlyConnectedClients"), "true")
	visible := func(groups []string) bool {
		if !c.sees(groups) {
			return false
		}
		if len(filter) == 0 {
			return true
		}
		for _, g := range groups {
			if slices.Contains(filter, g) {
				return true
			}
		}
		return false
	}
	var clients []directory.Client
	if s.dir != nil {
		clients = s.dir.Clients()
	}
	var gone []Endpoint
	if !onlyConnected {
		var err error
		if gone, err = s.hist.Disconnected(r.Context(), since, c.Hears); err != nil {
			s.internal(w, r, err)
			return
		}
	}
	writeEnvelope(w, "com.bbn.marti.remote.ClientEndpoint", clientEndpoints(clients, gone, since, visible), s.nodeID)
}

// clientEndpoints merges connected clients and those that left into one
// list, one entry per uid (the connected one wins), oldest event first.
func clientEndpoints(clients []directory.Client, gone []Endpoint, since time.Time, visible func([]string) bool) []clientEndpoint {
	out := []clientEndpoint{}
	seen := map[string]int{}
	for _, cl := range clients {
		if cl.UID == "" || cl.Callsign == "" || !visible(cl.In) {
			continue
		}
		at := cl.LastSeen
		if at.IsZero() {
			at = cl.Since
		}
		if at.Before(since) {
			continue
		}
		e := clientEndpoint{Callsign: cl.Callsign, UID: cl.UID, Username: cl.Identity,
			LastEventTime: at.UTC().Format(endpointTime), LastStatus: "Connected"}
		if cl.LastSA != nil && cl.LastSA.Header != nil {
			e.Team, e.Role = cl.LastSA.Header.GroupName, cl.LastSA.Header.GroupRole
		}
		if i, dup := seen[cl.UID]; dup {
			// A reconnected device: the newer connection, keeping what
			// only the older one's SA told so far.
			if e.Team == "" && e.Role == "" {
				e.Team, e.Role = out[i].Team, out[i].Role
			}
			out[i] = e
			continue
		}
		seen[cl.UID] = len(out)
		out = append(out, e)
	}
	for _, g := range gone {
		if _, dup := seen[g.UID]; dup || g.UID == "" || g.Callsign == "" || !visible(g.Groups) {
			continue
		}
		seen[g.UID] = len(out)
		out = append(out, clientEndpoint{Callsign: g.Callsign, UID: g.UID, Username: g.Identity, Team: g.Team,
			Role: g.Role, LastEventTime: g.At.UTC().Format(endpointTime), LastStatus: "Disconnected"})
	}
	return out
}

// GET /Marti/api/device/profile/connection?syncSecago=&clientUid=: cotd
// has no device profiles yet, so always 204 (ATAK treats it as nothing to
// import). Both parameters are required, as on TAK Server.
func (s *Server) serveProfileConnection(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if param(q, "clientUid") == "" || param(q, "syncSecago") == "" {
		httpError(w, http.StatusBadRequest, "syncSecago and clientUid are required")
		return
	}
	if _, err := strconv.ParseInt(param(q, "syncSecago"), 10, 64); err != nil {
		httpError(w, http.StatusBadRequest, "syncSecago must be a whole number of seconds")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// GET /Marti/api/device/profile/tool/{tool}?clientUid=: 204, as for the
// connection profile (ATAK asks on connect for its registered tools).
func (s *Server) serveProfileTool(w http.ResponseWriter, r *http.Request) {
	if param(r.URL.Query(), "clientUid") == "" {
		httpError(w, http.StatusBadRequest, "clientUid is required")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// contact is TAK Server's RemoteSubscriptionLite in contacts/all.
type contact struct {
	FilterGroups []string `json:"filterGroups"`
	Notes        string   `json:"notes"`
	Callsign     string   `json:"callsign"`
	Team         string   `json:"team"`
	Role         string   `json:"role"`
	Takv         string   `json:"takv"`
	UID          string   `json:"uid"`
}

// GET /Marti/api/contacts/all: a bare JSON array (no envelope) of the
// connected clients the caller can hear.
func (s *Server) serveContactsAll(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	var clients []directory.Client
	if s.dir != nil {
		clients = s.dir.Clients()
	}
	writeJSON(w, http.StatusOK, contacts(clients, c.sees))
}

func contacts(clients []directory.Client, visible func([]string) bool) []contact {
	out := []contact{}
	seen := map[string]bool{}
	for _, cl := range clients {
		if cl.UID == "" || cl.Callsign == "" || seen[cl.UID] || !visible(cl.In) {
			continue
		}
		seen[cl.UID] = true
		ct := contact{FilterGroups: append([]string{}, cl.In...), Callsign: cl.Callsign, UID: cl.UID}
		if cl.LastSA != nil && cl.LastSA.Header != nil {
			ct.Team, ct.Role = cl.LastSA.Header.GroupName, cl.LastSA.Header.GroupRole
		}
		out = append(out, ct)
	}
	return out
}

// xmlDecl is TAK Server's declaration on /api/cot answers.
const xmlDecl = "<?xml version='1.0' encoding='UTF-8' standalone='yes'?>"

// GET /Marti/api/cot/xml/{uid}: the latest event of uid the caller could
// have heard; 404 with an empty body when none.
func (s *Server) serveCotXML(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	uid := r.PathValue("uid")
	rec, ok, err := s.hist.Latest(r.Context(), uid, c.Hears)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	if !ok {
		rec, ok = s.latestConnected(uid, c)
	}
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/xml")
	_, _ = w.Write(append([]byte(xmlDecl), rec.XML...))
}

// latestConnected is the live client's last SA, for a uid history lacks.
func (s *Server) latestConnected(uid string, c *caller) (Record, bool) {
	if s.dir == nil {
		return Record{}, false
	}
	for _, cl := range s.dir.Client(uid) {
		if cl.LastSA != nil && c.sees(cl.In) {
			return Record{UID: uid, XML: cl.LastSA.XML, Groups: cl.In, At: cl.LastSA.Recv}, true
		}
	}
	return Record{}, false
}

// maxEvents bounds one history answer.
const maxEvents = 10000

// GET /Marti/api/cot/xml/{uid}/all?secago= | start=&end= (ISO date-times).
func (s *Server) serveCotXMLAll(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	from, to, ok := s.timeRange(w, r, false)
	if !ok {
		return
	}
	recs, err := s.hist.Events(r.Context(), Query{UID: r.PathValue("uid"), From: from, To: to, Groups: c.Hears})
	if err != nil {
		s.internal(w, r, err)
		return
	}
	writeEvents(w, recs)
}

// GET /Marti/api/cot/sa?start=&end=[&left&bottom&right&top]: position
// reports in a window of at most 24 hours; 404 when none.
func (s *Server) serveCotSA(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	from, to, ok := s.timeRange(w, r, true)
	if !ok {
		return
	}
	if to.Sub(from) > 24*time.Hour {
		httpError(w, http.StatusBadRequest, "the window from start to end may not exceed 24 hours")
		return
	}
	q := r.URL.Query()
	var box [4]float64 // left, bottom, right, top
	hasBox := false
	for i, k := range []string{"left", "bottom", "right", "top"} {
		v := param(q, k)
		if v == "" {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			httpError(w, http.StatusBadRequest, k+" must be a number")
			return
		}
		box[i], hasBox = f, true
	}
	all, err := s.hist.Events(r.Context(), Query{From: from, To: to, SAOnly: true, Groups: c.Hears})
	if err != nil {
		s.internal(w, r, err)
		return
	}
	var recs []Record
	for _, rec := range all {
		if hasBox && (rec.Lon < box[0] || rec.Lat < box[1] || rec.Lon > box[2] || rec.Lat > box[3]) {
			continue
		}
		recs = append(recs, rec)
	}
	if len(recs) == 0 {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	writeEvents(w, recs)
}

func writeEvents(w http.ResponseWriter, recs []Record) {
	var b bytes.Buffer
	b.WriteString(xmlDecl)
	b.WriteString("\n<events>\n")
	for _, r := range recs {
		b.Write(r.XML)
		b.WriteByte('\n')
	}
	b.WriteString("</events>")
	w.Header().Set("Content-Type", "application/xml")
	_, _ = w.Write(b.Bytes())
}

// timeRange reads secago or start/end (ISO date-times). With required,
// start and end must be there.
func (s *Server) timeRange(w http.ResponseWriter, r *http.Request, required bool) (from, to time.Time, ok bool) {
	q := r.URL.Query()
	if v := param(q, "secago"); v != "" && !required {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			httpError(w, http.StatusBadRequest, "secago must be a whole number of seconds")
			return from, to, false
		}
		return s.now().Add(-time.Duration(n) * time.Second), time.Time{}, true
	}
	start, end := param(q, "start"), param(q, "end")
	if required && (start == "" || end == "") {
		httpError(w, http.StatusBadRequest, "start and end are required (ISO 8601 date-times)")
		return from, to, false
	}
	var err error
	if start != "" {
		if from, err = parseISO(start); err != nil {
			httpError(w, http.StatusBadRequest, "start: "+err.Error())
			return from, to, false
		}
	}
	if end != "" {
		if to, err = parseISO(end); err != nil {
			httpError(w, http.StatusBadRequest, "end: "+err.Error())
			return from, to, false
		}
	}
	if !from.IsZero() && !to.IsZero() && to.Before(from) {
		httpError(w, http.StatusBadRequest, "end is before start")
		return from, to, false
	}
	return from, to, true
}

// parseISO reads the date-times TAK clients send: RFC 3339 with or without
// fraction or zone (UTC then), or epoch milliseconds.
func parseISO(v string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04:05Z0700", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), nil
		}
	}
	if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.UnixMilli(ms).UTC(), nil
	}
	return time.Time{}, &time.ParseError{Value: v, Layout: time.RFC3339, Message: ": not an ISO 8601 date-time or epoch milliseconds"}
}
