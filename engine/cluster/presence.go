package cluster

import (
	"cmp"
	"encoding/json"
	"errors"
	"hash/fnv"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"cotd/engine/directory"
)

// pClient is one client as its node announces it.
type pClient struct {
	Conn     uint64    `json:"conn"`
	Identity string    `json:"identity,omitempty"`
	UID      string    `json:"uid,omitempty"`
	Callsign string    `json:"callsign,omitempty"`
	In       []string  `json:"in"`
	Out      []string  `json:"out"`
	Listener string    `json:"listener,omitempty"`
	Protocol string    `json:"protocol,omitempty"`
	Remote   string    `json:"remote,omitempty"`
	Since    time.Time `json:"since"`
}

func fromClient(c directory.Client) pClient {
	return pClient{Conn: c.ConnID, Identity: c.Identity, UID: c.UID, Callsign: c.Callsign, In: c.In, Out: c.Out,
		Listener: c.Listener, Protocol: c.Protocol, Remote: c.Remote, Since: c.Since}
}

// same reports whether an announcement of q would tell nothing new after p.
func (p *pClient) same(q *pClient) bool {
	return p.Identity == q.Identity && p.UID == q.UID && p.Callsign == q.Callsign &&
		slices.Equal(p.In, q.In) && slices.Equal(p.Out, q.Out) && p.Protocol == q.Protocol
}

// digest is p's share of its node's presence digest (XORed over clients,
// so that order does not matter).
func (p *pClient) digest() uint64 {
	h := fnv.New64a()
	var b [8]byte
	for i := range b {
		b[i] = byte(p.Conn >> (8 * i))
	}
	h.Write(b[:])
	for _, s := range []string{p.Identity, p.UID, p.Callsign, strings.Join(p.In, ","), strings.Join(p.Out, ","), p.Protocol} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return h.Sum64()
}

// The presence operations.
const (
	opSet   = "set"   // these clients joined or changed
	opLeave = "leave" // these clients left
	opFull  = "full"  // one part of the node's whole presence
)

// presence is a message on cotd.p.<node>.
type presence struct {
	Op string `json:"op"`
	// Started is when the node started (unix nanos): a node restarted
	// under the same name is a new node, whose connection ids mean other
	// clients.
	Started int64     `json:"started"`
	Gen     uint64    `json:"gen,omitempty"`
	Part    int       `json:"part,omitempty"`
	Parts   int       `json:"parts,omitempty"`
	Clients []pClient `json:"clients"`
}

// heartbeat is a message on cotd.hb.<node>.
type heartbeat struct {
	Started int64  `json:"started"`
	N       int    `json:"n"`
	Sum     uint64 `json:"sum"`
}

// ask asks for presence (cotd.sync.<node>) or SAs (cotd.q.sa): Node is
// who asks; Groups are the groups whose latest SAs it wants.
type ask struct {
	Node   string   `json:"node"`
	Groups []string `json:"groups,omitempty"`
}

// peer is what this node knows of another.
type peer struct {
	started   int64
	lastHeard time.Time
	lastAsked time.Time
	clients   map[uint64]pClient
	sum       uint64
	full      *fullBuild
}

type fullBuild struct {
	gen     uint64
	got     map[int]bool
	parts   int
	clients []pClient
}

// fullPart bounds the clients in one part of a full presence, to stay far
// below NATS's payload limit (1 MB by default).
const fullPart = 500

func (n *Node) controlLoop() {
	defer n.wg.Done()
	scan := time.NewTicker(n.o.ScanEvery)
	defer scan.Stop()
	beat := time.NewTicker(n.deadAfter / 3)
	defer beat.Stop()
	n.scan()
	n.heartbeat()
	for {
		select {
		case <-n.quit:
			return
		case m := <-n.in:
			n.handle(m)
		case ev, ok := <-n.events.C():
			if ok {
				n.onEvent(ev)
			}
		case <-scan.C:
			n.scan()
		case <-beat.C:
			n.heartbeat()
			n.checkDead(time.Now())
		case <-n.reconnected:
			// Whatever happened while disconnected: tell everyone again,
			// and ask again for what this node's clients hear.
			n.publishFull()
			n.heartbeat()
			n.askAll(n.heardGroups())
		}
	}
}

// onEvent announces a join or leave at once, without waiting for a scan.
func (n *Node) onEvent(ev directory.Event) {
	switch ev.Kind {
	case directory.Join:
		if ev.Client.State == "established" {
			p := fromClient(ev.Client)
			n.local[p.Conn] = p
			n.publishPresence(opSet, []pClient{p})
			n.hear()
		}
	case directory.Leave:
		if p, ok := n.local[ev.Client.ConnID]; ok {
			delete(n.local, p.Conn)
			n.publishPresence(opLeave, []pClient{{Conn: p.Conn}})
			n.hear()
		}
	}
}

// scan compares the Directory with what was announced and announces the
// difference: logins, uids and callsigns learned from SAs, group changes,
// and anything an event queue dropped.
func (n *Node) scan() {
	var set, gone []pClient
	seen := make(map[uint64]bool, len(n.local))
	for _, c := range n.o.Directory.Clients() {
		if c.State != "established" {
			continue
		}
		p := fromClient(c)
		seen[p.Conn] = true
		if old, ok := n.local[p.Conn]; !ok || !old.same(&p) {
			n.local[p.Conn] = p
			set = append(set, p)
		}
	}
	for conn := range n.local {
		if !seen[conn] {
			delete(n.local, conn)
			gone = append(gone, pClient{Conn: conn})
		}
	}
	if len(set) > 0 {
		n.publishPresence(opSet, set)
	}
	if len(gone) > 0 {
		n.publishPresence(opLeave, gone)
	}
	n.hear()
}

func (n *Node) publishPresence(op string, cs []pClient) {
	n.publishJSON(subjPresence+n.name, presence{Op: op, Started: n.started, Clients: cs})
}

// publishFull announces the whole local presence, in parts.
func (n *Node) publishFull() {
	n.gen++
	all := make([]pClient, 0, len(n.local))
	for _, p := range n.local {
		all = append(all, p)
	}
	parts := max(1, (len(all)+fullPart-1)/fullPart)
	for i := range parts {
		chunk := all[i*fullPart : min(len(all), (i+1)*fullPart)]
		n.publishJSON(subjPresence+n.name, presence{Op: opFull, Started: n.started, Gen: n.gen, Part: i, Parts: parts, Clients: chunk})
	}
}

func (n *Node) heartbeat() {
	var sum uint64
	for _, p := range n.local {
		sum ^= p.digest()
	}
	n.publishJSON(subjHeartbeat+n.name, heartbeat{Started: n.started, N: len(n.local), Sum: sum})
}

func (n *Node) publishJSON(subj string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		n.log.Error().Err(err).Msg("cannot encode a cluster message") // a bug
		return
	}
	if err := n.nc.Publish(subj, b); err != nil {
		n.stats.PublishErrors.Inc()
	}
}

// hear subscribes to the groups this node's clients hear, and no others.
// For a group it starts to hear, it asks every node for the latest SAs of
// that group's senders: a late joiner gets them although this node did not
// cache them.
func (n *Node) hear() {
	want := make(map[string]bool)
	for _, p := range n.local {
		for _, g := range p.Out {
			want[g] = true
		}
	}
	var added []string
	for g := range want {
		if n.heard[g] != nil {
			continue
		}
		subj := subjGroup + token(g)
		sub, err := n.nc.ChanSubscribe(subj, n.in)
		if err != nil {
			n.log.Warn().Err(err).Str("group", g).Msg("cannot subscribe to a group: its messages from other nodes are missed until the next try")
			continue
		}
		n.heard[g] = sub
		n.byToken[subj] = g
		added = append(added, g)
	}
	for g, sub := range n.heard {
		if !want[g] {
			_ = sub.Unsubscribe()
			delete(n.heard, g)
			delete(n.byToken, sub.Subject)
		}
	}
	slices.Sort(added)
	n.askAll(added)
}

func (n *Node) heardGroups() []string {
	out := make([]string, 0, len(n.heard))
	for g := range n.heard {
		out = append(out, g)
	}
	slices.Sort(out)
	return out
}

// askAll asks every node for the latest SAs of groups.
func (n *Node) askAll(groups []string) {
	if len(groups) > 0 {
		n.publishJSON(subjAskSA, ask{Node: n.name, Groups: groups})
	}
}

// handle is everything that arrives, in the order NATS delivered it.
func (n *Node) handle(m *nats.Msg) {
	subj := m.Subject
	switch {
	case strings.HasPrefix(subj, subjGroup), strings.HasPrefix(subj, subjNode):
		n.onFrame(m)
	case strings.HasPrefix(subj, subjPresence):
		var p presence
		if err := json.Unmarshal(m.Data, &p); err != nil {
			n.stats.BadFrames.Inc()
			return
		}
		n.onPresence(strings.TrimPrefix(subj, subjPresence), &p)
	case strings.HasPrefix(subj, subjHeartbeat):
		var hb heartbeat
		if err := json.Unmarshal(m.Data, &hb); err != nil {
			n.stats.BadFrames.Inc()
			return
		}
		n.onHeartbeat(strings.TrimPrefix(subj, subjHeartbeat), &hb)
	case strings.HasPrefix(subj, subjSync), subj == subjAskSA:
		var a ask
		if err := json.Unmarshal(m.Data, &a); err != nil || a.Node == "" || a.Node == n.name {
			return
		}
		if strings.HasPrefix(subj, subjSync) {
			n.publishFull()
		}
		n.replaySAs(a.Node, a.Groups)
	}
}

func (n *Node) onFrame(m *nats.Msg) {
	var f frame
	if err := decodeFrame(m.Data, &f); err != nil {
		n.stats.BadFrames.Inc()
		n.log.Warn().Err(err).Str("subject", m.Subject).Msg("bad frame from the cluster")
		return
	}
	if f.from.Node == "" || f.from.Node == n.name {
		n.stats.BadFrames.Inc()
		return
	}
	n.stats.Received[f.kind].Inc()
	if f.kind == frameGroup {
		// A message into several groups this node hears comes once per
		// group: route the copy of the first of them only.
		g, ok := n.byToken[m.Subject]
		if !ok {
			return // unsubscribed meanwhile
		}
		first := ""
		for _, x := range f.from.In {
			if n.heard[x] != nil {
				first = x
				break
			}
		}
		if first != g {
			n.stats.Duplicates.Inc()
			return
		}
	}
	n.touch(f.from.Node)
	err := n.remote.RemotePublish(f.from, f.xml, f.toUID)
	switch {
	case err == nil:
	case errors.Is(err, directory.ErrBusy):
		n.stats.Busy.Inc()
	default:
		n.stats.BadFrames.Inc()
		n.log.Warn().Err(err).Str("from", f.from.Node).Uint64("conn", f.from.ConnID).Msg("unroutable message from the cluster")
	}
}

// touch makes sure a node that sends is known, so that its ghosts are
// announced gone if it dies before its first heartbeat came through.
func (n *Node) touch(node string) {
	n.mu.Lock()
	if _, ok := n.peers[node]; !ok {
		n.peers[node] = &peer{lastHeard: time.Now(), clients: make(map[uint64]pClient)}
	}
	n.mu.Unlock()
}

// peerLocked returns node's state, starting over when the node restarted.
// n.mu is held.
func (n *Node) peerLocked(node string, started int64) *peer {
	p, ok := n.peers[node]
	if ok && p.started != 0 && p.started != started {
		n.log.Info().Str("peer", node).Msg("cluster node restarted: its former clients are gone")
		n.forgetLocked(node)
		ok = false
	}
	if !ok {
		p = &peer{lastHeard: time.Now(), clients: make(map[uint64]pClient)}
		n.peers[node] = p
		n.log.Info().Str("peer", node).Msg("cluster node joined")
	}
	p.started = started
	return p
}

// forgetLocked drops node and announces its clients gone. n.mu is held.
func (n *Node) forgetLocked(node string) {
	delete(n.peers, node)
	for _, conn := range n.remote.RemoteNode(node) {
		n.remote.RemoteLeave(node, conn)
	}
}

func (n *Node) onPresence(node string, msg *presence) {
	n.mu.Lock()
	defer n.mu.Unlock()
	p := n.peerLocked(node, msg.Started)
	switch msg.Op {
	case opSet:
		for _, c := range msg.Clients {
			n.setLocked(node, p, c)
		}
	case opLeave:
		for _, c := range msg.Clients {
			if old, ok := p.clients[c.Conn]; ok {
				p.sum ^= old.digest()
				delete(p.clients, c.Conn)
			}
			n.remote.RemoteLeave(node, c.Conn)
		}
	case opFull:
		if p.full == nil || p.full.gen != msg.Gen {
			p.full = &fullBuild{gen: msg.Gen, got: make(map[int]bool), parts: msg.Parts}
		}
		if p.full.got[msg.Part] {
			return
		}
		p.full.got[msg.Part] = true
		p.full.clients = append(p.full.clients, msg.Clients...)
		if len(p.full.got) < p.full.parts {
			return
		}
		keep := make(map[uint64]bool, len(p.full.clients))
		for _, c := range p.full.clients {
			keep[c.Conn] = true
			n.setLocked(node, p, c)
		}
		for conn, old := range p.clients {
			if !keep[conn] {
				p.sum ^= old.digest()
				delete(p.clients, conn)
			}
		}
		// Ghosts made from messages that outlived their sender's leave.
		for _, conn := range n.remote.RemoteNode(node) {
			if !keep[conn] {
				n.remote.RemoteLeave(node, conn)
			}
		}
		p.full = nil
	}
}

func (n *Node) setLocked(node string, p *peer, c pClient) {
	if old, ok := p.clients[c.Conn]; ok {
		p.sum ^= old.digest()
	}
	p.clients[c.Conn] = c
	p.sum ^= c.digest()
	n.remote.RemoteJoin(directory.Client{Node: node, ConnID: c.Conn, Identity: c.Identity,
		UID: c.UID, Callsign: c.Callsign, In: c.In, Out: c.Out})
}

// onHeartbeat keeps node alive and, when its digest disagrees with what
// this node knows (a lost presence message, a partition that healed, a
// node just met), asks it for its whole presence and, for a node just
// met, the latest SAs of the groups this node hears.
func (n *Node) onHeartbeat(node string, hb *heartbeat) {
	n.mu.Lock()
	_, known := n.peers[node]
	p := n.peerLocked(node, hb.Started)
	now := time.Now()
	p.lastHeard = now
	agree := hb.N == len(p.clients) && hb.Sum == p.sum
	askNow := !agree && now.Sub(p.lastAsked) >= n.deadAfter/3
	if askNow {
		p.lastAsked = now
	}
	n.mu.Unlock()
	if !askNow {
		return
	}
	a := ask{Node: n.name}
	if !known {
		a.Groups = n.heardGroups()
	}
	n.publishJSON(subjSync+node, a)
}

// checkDead announces the clients of every node not heard from within
// dead_after gone.
func (n *Node) checkDead(now time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for name, p := range n.peers {
		if now.Sub(p.lastHeard) <= n.deadAfter {
			continue
		}
		n.stats.NodesLost.Inc()
		n.log.Warn().Str("peer", name).Int("clients", len(p.clients)).Dur("silent", now.Sub(p.lastHeard)).
			Msg("cluster node lost: its clients are announced gone; routing to it resumes when it is heard again")
		n.forgetLocked(name)
	}
}

// replaySAs sends node the latest SA of each local client that publishes
// into one of groups.
func (n *Node) replaySAs(node string, groups []string) {
	if len(groups) == 0 {
		return
	}
	var buf []byte
	for _, c := range n.o.Directory.Clients() {
		if c.LastSA == nil || !slices.ContainsFunc(c.In, func(g string) bool { return slices.Contains(groups, g) }) {
			continue
		}
		buf = appendFrame(buf[:0], &frame{kind: frameReplay, xml: c.LastSA.XML,
			from: directory.Origin{Node: n.name, ConnID: c.ConnID, In: c.In, Out: c.Out}})
		if err := n.nc.Publish(subjNode+node, buf); err != nil {
			n.stats.PublishErrors.Inc()
			return
		}
		n.stats.Published[frameReplay].Inc()
	}
}

// remoteClients lists other nodes' clients (uid "" for all), by node and
// connection.
func (n *Node) remoteClients(uid string) []directory.Client {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []directory.Client
	for name, p := range n.peers {
		for _, c := range p.clients {
			if uid != "" && c.UID != uid {
				continue
			}
			out = append(out, directory.Client{ConnID: c.Conn, Identity: c.Identity, UID: c.UID, Callsign: c.Callsign,
				In: slices.Clone(c.In), Out: slices.Clone(c.Out), Listener: c.Listener, Protocol: c.Protocol,
				State: "established", Node: name, Remote: c.Remote, Since: c.Since})
		}
	}
	slices.SortFunc(out, func(a, b directory.Client) int {
		if c := strings.Compare(a.Node, b.Node); c != 0 {
			return c
		}
		return cmp.Compare(a.ConnID, b.ConnID)
	})
	return out
}
