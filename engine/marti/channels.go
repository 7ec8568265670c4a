package marti

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"cotd/cot"
	"cotd/engine/auth"
	"cotd/engine/directory"
)

// Group directions as TAK Server names them.
const (
	dirIn  = "IN"
	dirOut = "OUT"
)

// channels gives every group a bit position and remembers each user's
// active set (TAK's channels). Bit positions are handed out in the order
// groups are first seen and never change while the process runs: ATAK
// sends them back in PUT groups/activebits.
type channels struct {
	mu      sync.Mutex
	bitpos  map[string]int
	byBit   []string
	created map[string]time.Time
	active  map[string][]string // user -> active groups; absent = all
}

func newChannels() *channels {
	return &channels{bitpos: map[string]int{}, created: map[string]time.Time{}, active: map[string][]string{}}
}

// learn numbers every group of a users file, in sorted order so that the
// same file gives the same numbers on every start.
func (ch *channels) learn(d *auth.Directory) {
	var names []string
	for _, u := range d.Users() {
		names = append(names, u.In()...)
		names = append(names, u.Out()...)
	}
	sort.Strings(names)
	ch.mu.Lock()
	defer ch.mu.Unlock()
	ch.bitLocked(auth.Anon)
	for _, n := range names {
		ch.bitLocked(n)
	}
}

func (ch *channels) bitLocked(name string) int {
	if b, ok := ch.bitpos[name]; ok {
		return b
	}
	b := len(ch.byBit)
	ch.bitpos[name] = b
	ch.byBit = append(ch.byBit, name)
	return b
}

// group is the JSON of com.bbn.marti.remote.groups.Group. ATAK refuses the
// whole list unless name, direction and type are non-empty, created parses
// as yyyy-MM-dd and bitpos >= 0 (ServerGroup.java).
type group struct {
	Name        string `json:"name"`
	Direction   string `json:"direction"`
	Created     string `json:"created"`
	Type        string `json:"type"`
	Bitpos      int    `json:"bitpos"`
	Active      bool   `json:"active"`
	Description string `json:"description,omitempty"`
}

// groupsOf lists c's groups, OUT then IN for each name, with the active
// flags of c's user. since is the date put in created for groups first
// seen now.
func (ch *channels) groupsOf(c *caller, since time.Time) []group {
	names := append(slices.Clone(c.Out), c.In...)
	slices.Sort(names)
	names = slices.Compact(names)
	ch.mu.Lock()
	defer ch.mu.Unlock()
	active, narrowed := ch.active[c.Name]
	out := make([]group, 0, 2*len(names))
	for _, n := range names {
		b := ch.bitLocked(n)
		if _, ok := ch.created[n]; !ok {
			ch.created[n] = since
		}
		g := group{Name: n, Created: ch.created[n].UTC().Format("2006-01-02"), Type: "SYSTEM", Bitpos: b,
			Active: !narrowed || slices.Contains(active, n)}
		if slices.Contains(c.Out, n) {
			g.Direction = dirOut
			out = append(out, g)
		}
		if slices.Contains(c.In, n) {
			g.Direction = dirIn
			out = append(out, g)
		}
	}
	return out
}

// names maps bit positions back to group names; ok is false for a bit no
// group has.
func (ch *channels) names(bits []int) (names []string, ok bool) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	for _, b := range bits {
		if b < 0 || b >= len(ch.byBit) {
			return nil, false
		}
		names = append(names, ch.byBit[b])
	}
	return names, true
}

func (ch *channels) setActive(user string, active []string) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if len(active) == 0 {
		delete(ch.active, user)
		return
	}
	ch.active[user] = active
}

// activeOut is what c receives now: its Out narrowed to its active set.
func (ch *channels) activeOut(c *caller) []string {
	ch.mu.Lock()
	active, narrowed := ch.active[c.Name]
	ch.mu.Unlock()
	if !narrowed {
		return c.Out
	}
	var out []string
	for _, g := range c.Out {
		if slices.Contains(active, g) {
			out = append(out, g)
		}
	}
	return out
}

// GET /Marti/api/groups/all?useCache=&sendLatestSA=
func (s *Server) serveGroupsAll(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	groups := s.channels.groupsOf(c, s.now())
	if !strings.EqualFold(param(r.URL.Query(), "useCache"), "true") {
		// TAK Server answers a request that skips the active-group cache
		// with the groups the user receives from only.
		groups = slices.DeleteFunc(groups, func(g group) bool { return g.Direction != dirOut })
	}
	if strings.EqualFold(param(r.URL.Query(), "sendLatestSA"), "true") {
		// Before the answer: once ATAK has it, the SAs are in routing.
		s.sendLatestSA(r.Context(), c)
	}
	writeEnvelope(w, "com.bbn.marti.remote.groups.Group", groups, s.nodeID)
}

// GET /Marti/api/groups/groupCacheEnabled
func (s *Server) serveGroupCacheEnabled(w http.ResponseWriter, _ *http.Request) {
	writeEnvelope(w, "java.lang.Boolean", true, s.nodeID)
}

// maxJSONBody bounds the small JSON bodies (group lists).
const maxJSONBody = 1 << 20

// PUT /Marti/api/groups/active?clientUid= with the group list, active
// flags toggled. Routing changes at once; the user's other devices get
// t-x-g-c and re-fetch their channels.
func (s *Server) serveGroupsActive(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	var body []struct {
		Name   string `json:"name"`
		Active *bool  `json:"active"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, maxJSONBody)).Decode(&body); err != nil {
		s.reqLog(r, c).Warn().Err(err).Msg("groups/active: bad body")
		httpError(w, http.StatusBadRequest, "body must be a JSON array of groups: "+err.Error())
		return
	}
	var active []string
	for _, g := range body {
		if g.Active == nil || *g.Active {
			active = append(active, g.Name)
		}
	}
	s.applyActive(w, r, c, active)
}

// PUT /Marti/api/groups/activebits?clientUid= with a JSON array of the bit
// positions of the active groups.
func (s *Server) serveGroupsActiveBits(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	var bits []int
	if err := json.NewDecoder(io.LimitReader(r.Body, maxJSONBody)).Decode(&bits); err != nil {
		httpError(w, http.StatusBadRequest, "body must be a JSON array of bit positions: "+err.Error())
		return
	}
	names, ok := s.channels.names(bits)
	if !ok {
		httpError(w, http.StatusBadRequest, "unknown bit position")
		return
	}
	s.applyActive(w, r, c, names)
}

func (s *Server) applyActive(w http.ResponseWriter, r *http.Request, c *caller, active []string) {
	log := s.reqLog(r, c)
	if c.Name == "" {
		httpError(w, http.StatusBadRequest, "channels need a client certificate: plain HTTP callers have no user")
		return
	}
	slices.Sort(active)
	active = slices.Compact(active)
	for _, g := range active {
		if !slices.Contains(c.In, g) && !slices.Contains(c.Out, g) {
			log.Warn().Str("group", g).Msg("groups/active: not one of the user's groups")
			httpError(w, http.StatusBadRequest, fmt.Sprintf("group %q is not one of yours", g))
			return
		}
	}
	s.channels.setActive(c.Name, active)
	changed := 0
	if s.dir != nil {
		changed = s.dir.SetActiveGroups(c.Name, active)
	}
	clientUID := param(r.URL.Query(), "clientUid")
	notified := s.notifyGroupChange(r.Context(), c, clientUID)
	log.Info().Strs("active", active).Int("connections", changed).Int("notified", notified).Msg("active groups set")
	w.WriteHeader(http.StatusOK)
}

// notifyGroupChange sends t-x-g-c to c's devices other than clientUID; ATAK
// then drops what it shows from this server and re-fetches its groups.
func (s *Server) notifyGroupChange(ctx context.Context, c *caller, clientUID string) int {
	if s.dir == nil {
		return 0
	}
	n := 0
	seen := map[string]bool{clientUID: true, "": true}
	for _, cl := range s.dir.Clients() {
		if cl.Identity != c.Name || seen[cl.UID] {
			continue
		}
		seen[cl.UID] = true
		uid := cot.NewUID()
		if clientUID != "" {
			uid += "." + clientUID
		}
		doc := groupChange(uid, cl.UID, s.now())
		if s.publish(ctx, directory.Sender{Identity: "marti"}, doc) {
			n++
		}
	}
	return n
}

// sendLatestSA replays to c's devices the latest SA of every client they
// can now hear (TAK Server does this for groups/all?sendLatestSA=true).
// Each goes through routing addressed to c's devices, so groups decide as
// for any other message.
func (s *Server) sendLatestSA(ctx context.Context, c *caller) {
	if s.dir == nil || c.Name == "" {
		return
	}
	all := s.dir.Clients()
	var mine []string
	for _, cl := range all {
		if cl.Identity == c.Name && cl.UID != "" {
			mine = append(mine, cl.UID)
		}
	}
	if len(mine) == 0 {
		return
	}
	for _, cl := range all {
		if cl.Identity == c.Name || cl.LastSA == nil {
			continue
		}
		doc := withDest(cl.LastSA.XML, mine)
		s.publish(ctx, directory.Sender{Identity: "marti", UID: cl.UID, Callsign: cl.Callsign, Out: cl.In}, doc)
	}
}

func (s *Server) publish(ctx context.Context, from directory.Sender, doc []byte) bool {
	if err := s.dir.Publish(ctx, from, doc); err != nil {
		s.stats.publishFailed.Add(1)
		s.log.Warn().Err(err).Msg("engine refused a control event")
		return false
	}
	s.stats.published.Add(1)
	return true
}

// typeGroupChange tells a client its channels changed on the server.
const typeGroupChange = "t-x-g-c"

// groupChange builds TAK Server's t-x-g-c for the device destUID.
func groupChange(uid, destUID string, now time.Time) []byte {
	b := make([]byte, 0, 512)
	b = append(b, `<event version="2.0" uid="`...)
	b = cot.AppendEscaped(b, uid)
	b = append(b, `" type="`+typeGroupChange+`" how="h-g-i-g-o" time="`...)
	b = now.UTC().AppendFormat(b, cot.TimeLayout)
	b = append(b, `" start="`...)
	b = now.UTC().AppendFormat(b, cot.TimeLayout)
	b = append(b, `" stale="`...)
	b = now.Add(cot.ControlStale).UTC().AppendFormat(b, cot.TimeLayout)
	b = append(b, `"><point lat="0" lon="0" hae="0" ce="9999999" le="9999999"/><detail><link relation="p-p"/>`...)
	b = appendDest(b, []string{destUID})
	return append(b, `</detail></event>`...)
}

func appendDest(b []byte, uids []string) []byte {
	b = append(b, `<marti>`...)
	for _, u := range uids {
		b = append(b, `<dest uid="`...)
		b = cot.AppendEscaped(b, u)
		b = append(b, `"/>`...)
	}
	return append(b, `</marti>`...)
}

// withDest returns a copy of an event (which has no <marti>: the engine
// removed it when it routed the event) addressed to uids.
func withDest(doc []byte, uids []string) []byte {
	dest := appendDest(nil, uids)
	s := string(doc)
	if i := strings.LastIndex(s, "</detail>"); i >= 0 {
		return []byte(s[:i] + string(dest) + s[i:])
	}
	if i := strings.LastIndex(s, "<detail/>"); i >= 0 {
		return []byte(s[:i] + "<detail>" + string(dest) + "</detail>" + s[i+len("<detail/>"):])
	}
	if i := strings.LastIndex(s, "</event>"); i >= 0 {
		return []byte(s[:i] + "<detail>" + string(dest) + "</detail>" + s[i:])
	}
	return slices.Clone(doc)
}
