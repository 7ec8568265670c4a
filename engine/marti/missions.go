package marti

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"cotd/cot"
	"cotd/engine/directory"
)

// The minimum of TAK Server's mission API that ATAK's Data Sync and iTAK
// use (marti-api.md §A.4): list, create, get, delete, subscribe and
// unsubscribe, add and remove content (files by hash, CoT by uid), the
// change log, and the mission CoT notices to subscribers. Missions live in
// memory and in files_dir/missions.json (written atomically on each
// change); the store has no mission tables yet.

// Mission CoT types.
const (
	typeMissionChange = "t-x-m-c"
	typeMissionCreate = "t-x-m-n"
	typeMissionDelete = "t-x-m-d"
)

// missionTime is how mission JSON writes times (TAK Server's ISO form).
const missionTime = "2006-01-02T15:04:05.000Z"

type mission struct {
	Name        string          `json:"name"`
	GUID        string          `json:"guid"`
	Description string          `json:"description"`
	ChatRoom    string          `json:"chatRoom"`
	Tool        string          `json:"tool"`
	CreatorUID  string          `json:"creatorUid"`
	Creator     string          `json:"creator"` // the user; only the creator may delete
	Created     time.Time       `json:"createTime"`
	Groups      []string        `json:"groups"`
	Keywords    []string        `json:"keywords"`
	Hashes      []missionItem   `json:"hashes"`
	UIDs        []missionItem   `json:"uids"`
	Subscribers []string        `json:"subscribers"` // client uids
	Changes     []missionChange `json:"changes"`
}

type missionItem struct {
	Key        string    `json:"key"` // hash or uid
	CreatorUID string    `json:"creatorUid"`
	At         time.Time `json:"timestamp"`
}

type missionChange struct {
	Type       string    `json:"type"` // CREATE_MISSION, ADD_CONTENT, REMOVE_CONTENT
	CreatorUID string    `json:"creatorUid"`
	At         time.Time `json:"timestamp"`
	Hash       string    `json:"hash,omitempty"`
	UID        string    `json:"contentUid,omitempty"`
}

// maxChanges bounds a mission's change log (the newest are kept).
const maxChanges = 1000

type missions struct {
	path   string
	mu     sync.Mutex
	byName map[string]*mission
}

func openMissions(dir string) (*missions, error) {
	ms := &missions{path: filepath.Join(dir, "missions.json"), byName: map[string]*mission{}}
	data, err := os.ReadFile(ms.path)
	if os.IsNotExist(err) {
		return ms, nil
	}
	if err != nil {
		return nil, fmt.Errorf("marti: missions: %w", err)
	}
	var list []*mission
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, fmt.Errorf("marti: %s: %w", ms.path, err)
	}
	for _, m := range list {
		ms.byName[m.Name] = m
	}
	return ms, nil
}

// saveLocked writes every mission to a temporary file and renames it over
// missions.json.
func (ms *missions) saveLocked() error {
	list := make([]*mission, 0, len(ms.byName))
	for _, m := range ms.byName {
		list = append(list, m)
	}
	slices.SortFunc(list, func(a, b *mission) int { return strings.Compare(a.Name, b.Name) })
	data, err := json.Marshal(list)
	if err != nil {
		return err
	}
	tmp := ms.path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o640); err != nil {
		return fmt.Errorf("marti: missions: %w", err)
	}
	if err := os.Rename(tmp, ms.path); err != nil {
		return fmt.Errorf("marti: missions: %w", err)
	}
	return nil
}

// missionRole is TAK Server's MissionRole.
type missionRole struct {
	Type        string   `json:"type"`
	Permissions []string `json:"permissions"`
}

var (
	roleOwner      = missionRole{Type: "MISSION_OWNER", Permissions: []string{"MISSION_MANAGE_FEEDS", "MISSION_SET_PASSWORD", "MISSION_WRITE", "MISSION_MANAGE_LAYERS", "MISSION_UPDATE_GROUPS", "MISSION_READ", "MISSION_DELETE", "MISSION_SET_ROLE"}}
	roleSubscriber = missionRole{Type: "MISSION_SUBSCRIBER", Permissions: []string{"MISSION_WRITE", "MISSION_READ"}}
)

type contentJSON struct {
	CreatorUID string          `json:"creatorUid"`
	Timestamp  string          `json:"timestamp"`
	Data       contentDataJSON `json:"data"`
}

type contentDataJSON struct {
	UID            string   `json:"uid"`
	Name           string   `json:"name"`
	Keywords       []string `json:"keywords"`
	MIMEType       string   `json:"mimeType"`
	SubmissionTime string   `json:"submissionTime"`
	Submitter      string   `json:"submitter"`
	CreatorUID     string   `json:"creatorUid"`
	Hash           string   `json:"hash"`
	Size           int64    `json:"size"`
	Tool           string   `json:"tool"`
}

type uidJSON struct {
	Data       string `json:"data"`
	CreatorUID string `json:"creatorUid"`
	Timestamp  string `json:"timestamp"`
}

type missionJSON struct {
	Name              string        `json:"name"`
	Description       string        `json:"description"`
	ChatRoom          string        `json:"chatRoom"`
	BaseLayer         string        `json:"baseLayer"`
	Bbox              string        `json:"bbox"`
	Path              string        `json:"path"`
	Classification    string        `json:"classification"`
	Tool              string        `json:"tool"`
	Keywords          []string      `json:"keywords"`
	CreatorUID        string        `json:"creatorUid"`
	CreateTime        string        `json:"createTime"`
	ExternalData      []any         `json:"externalData"`
	Feeds             []any         `json:"feeds"`
	MapLayers         []any         `json:"mapLayers"`
	DefaultRole       missionRole   `json:"defaultRole"`
	OwnerRole         missionRole   `json:"ownerRole"`
	InviteOnly        bool          `json:"inviteOnly"`
	Expiration        int64         `json:"expiration"`
	GUID              string        `json:"guid"`
	Groups            []string      `json:"groups"`
	UIDs              []uidJSON     `json:"uids"`
	Contents          []contentJSON `json:"contents"`
	PasswordProtected bool          `json:"passwordProtected"`
}

func (s *Server) missionView(ctx context.Context, m *mission) missionJSON {
	v := missionJSON{Name: m.Name, Description: m.Description, ChatRoom: m.ChatRoom, Tool: m.Tool, Keywords: nonNil(m.Keywords),
		CreatorUID: m.CreatorUID, CreateTime: m.Created.UTC().Format(missionTime), ExternalData: []any{}, Feeds: []any{},
		MapLayers: []any{}, DefaultRole: roleSubscriber, OwnerRole: roleOwner, Expiration: -1, GUID: m.GUID,
		Groups: nonNil(m.Groups), UIDs: []uidJSON{}, Contents: []contentJSON{}}
	for _, u := range m.UIDs {
		v.UIDs = append(v.UIDs, uidJSON{Data: u.Key, CreatorUID: u.CreatorUID, Timestamp: u.At.UTC().Format(missionTime)})
	}
	for _, h := range m.Hashes {
		f, ok, err := s.files.ByHash(ctx, h.Key)
		if err != nil || !ok {
			continue
		}
		v.Contents = append(v.Contents, contentJSON{CreatorUID: h.CreatorUID, Timestamp: h.At.UTC().Format(missionTime),
			Data: contentDataJSON{UID: f.UID, Name: f.Name, Keywords: nonNil(f.Keywords), MIMEType: f.MIMEType,
				SubmissionTime: f.Submitted.UTC().Format(missionTime), Submitter: f.Submitter, CreatorUID: f.CreatorUID,
				Hash: f.Hash, Size: f.Size, Tool: f.Tool}})
	}
	return v
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// mission returns the named mission if the caller may see it.
func (s *Server) mission(c *caller, name string) (*mission, bool) {
	m, ok := s.missions.byName[name]
	if !ok || !c.sees(m.Groups) {
		return nil, false
	}
	return m, true
}

// missionOr404 is mission for the {name} in r's path, answering 404 when c
// may not see it; the handlers that answer under the lock share it so that
// the refusal reads the same everywhere. The caller holds missions.mu.
func (s *Server) missionOr404(w http.ResponseWriter, r *http.Request, c *caller) (*mission, bool) {
	m, ok := s.mission(c, r.PathValue("name"))
	if !ok {
		httpError(w, http.StatusNotFound, "no such mission")
	}
	return m, ok
}

// GET /Marti/api/missions
func (s *Server) serveMissions(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	s.missions.mu.Lock()
	var list []*mission
	for _, m := range s.missions.byName {
		if c.sees(m.Groups) {
			list = append(list, m)
		}
	}
	slices.SortFunc(list, func(a, b *mission) int { return strings.Compare(a.Name, b.Name) })
	out := []missionJSON{}
	for _, m := range list {
		out = append(out, s.missionView(r.Context(), m))
	}
	s.missions.mu.Unlock()
	writeEnvelope(w, "Mission", out, s.nodeID)
}

// GET /Marti/api/missions/{name}
func (s *Server) serveMission(w http.ResponseWriter, r *http.Request) {
	s.missions.mu.Lock()
	defer s.missions.mu.Unlock()
	m, ok := s.missionOr404(w, r, callerOf(r))
	if !ok {
		return
	}
	writeEnvelope(w, "Mission", []missionJSON{s.missionView(r.Context(), m)}, s.nodeID)
}

// PUT|POST /Marti/api/missions/{name}?creatorUid=&group=&description=&chatRoom=&tool=
// creates a mission (201) or returns the existing one (200).
func (s *Server) serveMissionCreate(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	q := r.URL.Query()
	name := r.PathValue("name")
	if name == "" || len(name) > 256 || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 }) {
		httpError(w, http.StatusBadRequest, "bad mission name")
		return
	}
	groups := append(params(q, "group"), params(q, "groups")...)
	groups = splitKeywords(strings.Join(groups, ","))
	for _, g := range groups {
		if !slices.Contains(c.In, g) {
			httpError(w, http.StatusBadRequest, fmt.Sprintf("group %q is not one you publish into", g))
			return
		}
	}
	if len(groups) == 0 {
		groups = slices.Clone(c.In)
	}
	s.missions.mu.Lock()
	if m, ok := s.missions.byName[name]; ok {
		defer s.missions.mu.Unlock()
		if !c.sees(m.Groups) {
			httpError(w, http.StatusConflict, "a mission of that name exists")
			return
		}
		writeEnvelope(w, "Mission", []missionJSON{s.missionView(r.Context(), m)}, s.nodeID)
		return
	}
	now := s.now().UTC()
	m := &mission{Name: name, GUID: cot.NewUID(), Description: param(q, "description"), ChatRoom: param(q, "chatRoom"),
		Tool: firstNonEmpty(param(q, "tool"), "public"), CreatorUID: param(q, "creatorUid"), Creator: c.Name, Created: now,
		Groups: groups, Keywords: splitKeywords(strings.Join(params(q, "keywords"), ",")),
		Changes: []missionChange{{Type: "CREATE_MISSION", CreatorUID: param(q, "creatorUid"), At: now}}}
	s.missions.byName[name] = m
	err := s.missions.saveLocked()
	view := s.missionView(r.Context(), m)
	s.missions.mu.Unlock()
	if err != nil {
		s.internal(w, r, err)
		return
	}
	// Announced to everyone who could see it (ATAK lists it in Data Sync).
	s.publish(r.Context(), directory.Sender{Identity: "marti", Out: groups},
		missionNotice(typeMissionCreate, "CREATE", m, nil, nil, now))
	s.reqLog(r, c).Info().Str("mission", name).Strs("groups", groups).Msg("mission created")
	w.Header().Set("Content-Type", "application/json")
	body, _ := json.Marshal(newEnvelope("Mission", []missionJSON{view}, s.nodeID))
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(body)
}

// DELETE /Marti/api/missions/{name}: only its creator.
func (s *Server) serveMissionDelete(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	s.missions.mu.Lock()
	m, ok := s.mission(c, r.PathValue("name"))
	if !ok {
		s.missions.mu.Unlock()
		httpError(w, http.StatusNotFound, "no such mission")
		return
	}
	if m.Creator != c.Name {
		s.missions.mu.Unlock()
		httpError(w, http.StatusForbidden, "only the mission's creator may delete it")
		return
	}
	delete(s.missions.byName, m.Name)
	err := s.missions.saveLocked()
	view := s.missionView(r.Context(), m)
	s.missions.mu.Unlock()
	if err != nil {
		s.internal(w, r, err)
		return
	}
	s.publish(r.Context(), directory.Sender{Identity: "marti", Out: m.Groups},
		missionNotice(typeMissionDelete, "DELETE", m, nil, nil, s.now()))
	writeEnvelope(w, "Mission", []missionJSON{view}, s.nodeID)
}

type subscriptionJSON struct {
	Token      string      `json:"token"`
	Mission    missionJSON `json:"mission"`
	ClientUID  string      `json:"clientUid"`
	Username   string      `json:"username"`
	CreateTime string      `json:"createTime"`
	Role       missionRole `json:"role"`
}

// PUT /Marti/api/missions/{name}/subscription?uid=<clientUid>
func (s *Server) serveMissionSubscribe(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	uid := firstNonEmpty(param(r.URL.Query(), "uid"), param(r.URL.Query(), "clientUid"))
	if uid == "" {
		httpError(w, http.StatusBadRequest, "uid is required")
		return
	}
	s.missions.mu.Lock()
	defer s.missions.mu.Unlock()
	m, ok := s.missionOr404(w, r, c)
	if !ok {
		return
	}
	if !slices.Contains(m.Subscribers, uid) {
		m.Subscribers = append(m.Subscribers, uid)
		if err := s.missions.saveLocked(); err != nil {
			s.internal(w, r, err)
			return
		}
	}
	role := roleSubscriber
	if m.Creator == c.Name {
		role = roleOwner
	}
	writeEnvelope(w, "com.bbn.marti.sync.model.MissionSubscription", subscriptionJSON{Token: cot.NewUID(),
		Mission: s.missionView(r.Context(), m), ClientUID: uid, Username: c.Name,
		CreateTime: s.now().UTC().Format(missionTime), Role: role}, s.nodeID)
}

// DELETE /Marti/api/missions/{name}/subscription?uid=<clientUid>
func (s *Server) serveMissionUnsubscribe(w http.ResponseWriter, r *http.Request) {
	uid := firstNonEmpty(param(r.URL.Query(), "uid"), param(r.URL.Query(), "clientUid"))
	s.missions.mu.Lock()
	defer s.missions.mu.Unlock()
	m, ok := s.missionOr404(w, r, callerOf(r))
	if !ok {
		return
	}
	if i := slices.Index(m.Subscribers, uid); i >= 0 {
		m.Subscribers = slices.Delete(m.Subscribers, i, i+1)
		if err := s.missions.saveLocked(); err != nil {
			s.internal(w, r, err)
			return
		}
	}
	w.WriteHeader(http.StatusOK)
}

// GET /Marti/api/missions/{name}/subscriptions: the subscribed client uids.
func (s *Server) serveMissionSubscriptions(w http.ResponseWriter, r *http.Request) {
	s.missions.mu.Lock()
	defer s.missions.mu.Unlock()
	m, ok := s.missionOr404(w, r, callerOf(r))
	if !ok {
		return
	}
	writeEnvelope(w, "MissionSubscription", nonNil(slices.Clone(m.Subscribers)), s.nodeID)
}

// GET /Marti/api/missions/{name}/cot: the latest event of each of the
// mission's uids the caller may see, as <events>.
func (s *Server) serveMissionCot(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	s.missions.mu.Lock()
	m, ok := s.mission(c, r.PathValue("name"))
	var uids []string
	if ok {
		for _, u := range m.UIDs {
			uids = append(uids, u.Key)
		}
	}
	s.missions.mu.Unlock()
	if !ok {
		httpError(w, http.StatusNotFound, "no such mission")
		return
	}
	var recs []Record
	for _, u := range uids {
		rec, found, err := s.hist.Latest(r.Context(), u, c.Hears)
		if err != nil {
			s.internal(w, r, err)
			return
		}
		if found {
			recs = append(recs, rec)
		}
	}
	writeEvents(w, recs)
}

type changeJSON struct {
	Type            string           `json:"type"`
	MissionName     string           `json:"missionName"`
	Timestamp       string           `json:"timestamp"`
	CreatorUID      string           `json:"creatorUid"`
	ServerTime      string           `json:"serverTime"`
	ContentUID      string           `json:"contentUid,omitempty"`
	ContentResource *contentDataJSON `json:"contentResource,omitempty"`
}

// GET /Marti/api/missions/{name}/changes
func (s *Server) serveMissionChanges(w http.ResponseWriter, r *http.Request) {
	s.missions.mu.Lock()
	defer s.missions.mu.Unlock()
	m, ok := s.missionOr404(w, r, callerOf(r))
	if !ok {
		return
	}
	out := []changeJSON{}
	for _, ch := range m.Changes {
		ts := ch.At.UTC().Format(missionTime)
		cj := changeJSON{Type: ch.Type, MissionName: m.Name, Timestamp: ts, CreatorUID: ch.CreatorUID, ServerTime: ts, ContentUID: ch.UID}
		if ch.Hash != "" {
			if f, ok, err := s.files.ByHash(r.Context(), ch.Hash); err == nil && ok {
				cj.ContentResource = &contentDataJSON{UID: f.UID, Name: f.Name, Keywords: nonNil(f.Keywords), MIMEType: f.MIMEType,
					SubmissionTime: f.Submitted.UTC().Format(missionTime), Submitter: f.Submitter, CreatorUID: f.CreatorUID,
					Hash: f.Hash, Size: f.Size, Tool: f.Tool}
			}
		}
		out = append(out, cj)
	}
	writeEnvelope(w, "MissionChange", out, s.nodeID)
}

// PUT /Marti/api/missions/{name}/contents?creatorUid= with
// {"hashes":[…],"uids":[…]}: files the caller may see, and CoT uids.
func (s *Server) serveMissionAddContents(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	var body struct {
		Hashes []string `json:"hashes"`
		UIDs   []string `json:"uids"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, maxJSONBody)).Decode(&body); err != nil {
		httpError(w, http.StatusBadRequest, `body must be {"hashes":[…],"uids":[…]}: `+err.Error())
		return
	}
	for _, h := range body.Hashes {
		if _, ok, err := s.lookup(r.Context(), c, h, ""); err != nil || !ok {
			httpError(w, http.StatusNotFound, "no file "+h)
			return
		}
	}
	creator := param(r.URL.Query(), "creatorUid")
	s.changeContents(w, r, c, func(m *mission, now time.Time) []missionChange {
		var changes []missionChange
		for _, h := range body.Hashes {
			h = strings.ToLower(h)
			if !slices.ContainsFunc(m.Hashes, func(it missionItem) bool { return it.Key == h }) {
				m.Hashes = append(m.Hashes, missionItem{Key: h, CreatorUID: creator, At: now})
				changes = append(changes, missionChange{Type: "ADD_CONTENT", CreatorUID: creator, At: now, Hash: h})
			}
		}
		for _, u := range body.UIDs {
			if u != "" && !slices.ContainsFunc(m.UIDs, func(it missionItem) bool { return it.Key == u }) {
				m.UIDs = append(m.UIDs, missionItem{Key: u, CreatorUID: creator, At: now})
				changes = append(changes, missionChange{Type: "ADD_CONTENT", CreatorUID: creator, At: now, UID: u})
			}
		}
		return changes
	})
}

// DELETE /Marti/api/missions/{name}/contents?hash=|uid=&creatorUid=
func (s *Server) serveMissionRemoveContents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	hash, uid, creator := strings.ToLower(param(q, "hash")), param(q, "uid"), param(q, "creatorUid")
	if hash == "" && uid == "" {
		httpError(w, http.StatusBadRequest, "hash or uid is required")
		return
	}
	s.changeContents(w, r, callerOf(r), func(m *mission, now time.Time) []missionChange {
		var changes []missionChange
		if hash != "" {
			n := len(m.Hashes)
			m.Hashes = slices.DeleteFunc(m.Hashes, func(it missionItem) bool { return it.Key == hash })
			if len(m.Hashes) < n {
				changes = append(changes, missionChange{Type: "REMOVE_CONTENT", CreatorUID: creator, At: now, Hash: hash})
			}
		}
		if uid != "" {
			n := len(m.UIDs)
			m.UIDs = slices.DeleteFunc(m.UIDs, func(it missionItem) bool { return it.Key == uid })
			if len(m.UIDs) < n {
				changes = append(changes, missionChange{Type: "REMOVE_CONTENT", CreatorUID: creator, At: now, UID: uid})
			}
		}
		return changes
	})
}

// changeContents applies edit to the named mission, saves it, answers with
// the mission and tells its subscribers (t-x-m-c) what changed.
func (s *Server) changeContents(w http.ResponseWriter, r *http.Request, c *caller, edit func(*mission, time.Time) []missionChange) {
	now := s.now().UTC()
	s.missions.mu.Lock()
	m, ok := s.mission(c, r.PathValue("name"))
	if !ok {
		s.missions.mu.Unlock()
		httpError(w, http.StatusNotFound, "no such mission")
		return
	}
	changes := edit(m, now)
	m.Changes = append(m.Changes, changes...)
	if n := len(m.Changes); n > maxChanges {
		m.Changes = slices.Clone(m.Changes[n-maxChanges:])
	}
	var err error
	if len(changes) > 0 {
		err = s.missions.saveLocked()
	}
	view := s.missionView(r.Context(), m)
	subs := slices.Clone(m.Subscribers)
	notice := missionNotice(typeMissionChange, "CHANGE", m, changes, subs, now)
	s.missions.mu.Unlock()
	if err != nil {
		s.internal(w, r, err)
		return
	}
	if len(changes) > 0 && len(subs) > 0 {
		s.publish(r.Context(), directory.Sender{Identity: "marti", Out: view.Groups}, notice)
	}
	writeEnvelope(w, "Mission", []missionJSON{view}, s.nodeID)
}

// missionNotice builds TAK Server's mission CoT: to the subscribers named
// in dest, or (dest empty) to whoever routing lets hear the sender.
func missionNotice(typ, kind string, m *mission, changes []missionChange, dest []string, now time.Time) []byte {
	b := make([]byte, 0, 1024)
	b = append(b, `<event version="2.0" uid="`...)
	b = append(b, cot.NewUID()...)
	b = append(b, `" type="`...)
	b = append(b, typ...)
	b = append(b, `" how="h-g-i-g-o" time="`...)
	b = now.UTC().AppendFormat(b, cot.TimeLayout)
	b = append(b, `" start="`...)
	b = now.UTC().AppendFormat(b, cot.TimeLayout)
	b = append(b, `" stale="`...)
	b = now.Add(cot.ControlStale).UTC().AppendFormat(b, cot.TimeLayout)
	b = append(b, `"><point lat="0" lon="0" hae="0" ce="9999999" le="9999999"/><detail><mission type="`...)
	b = append(b, kind...)
	b = append(b, `" tool="`...)
	b = cot.AppendEscaped(b, m.Tool)
	b = append(b, `" name="`...)
	b = cot.AppendEscaped(b, m.Name)
	b = append(b, `" guid="`...)
	b = cot.AppendEscaped(b, m.GUID)
	b = append(b, `" authorUid="`...)
	b = cot.AppendEscaped(b, m.CreatorUID)
	b = append(b, `">`...)
	if len(changes) > 0 {
		b = append(b, `<MissionChanges>`...)
		for _, ch := range changes {
			b = append(b, `<MissionChange><contentUid>`...)
			b = cot.AppendEscaped(b, ch.UID)
			b = append(b, `</contentUid><contentHash>`...)
			b = cot.AppendEscaped(b, ch.Hash)
			b = append(b, `</contentHash><creatorUid>`...)
			b = cot.AppendEscaped(b, ch.CreatorUID)
			b = append(b, `</creatorUid><isFederatedChange>false</isFederatedChange><missionName>`...)
			b = cot.AppendEscaped(b, m.Name)
			b = append(b, `</missionName><timestamp>`...)
			b = ch.At.UTC().AppendFormat(b, cot.TimeLayout)
			b = append(b, `</timestamp><type>`...)
			b = append(b, ch.Type...)
			b = append(b, `</type></MissionChange>`...)
		}
		b = append(b, `</MissionChanges>`...)
	}
	b = append(b, `</mission>`...)
	if len(dest) > 0 {
		b = appendDest(b, dest)
	}
	return append(b, `</detail></event>`...)
}
