package engine

import (
	"errors"
	"fmt"
	"time"

	"cotd/engine/auth"
	"cotd/engine/broker"
)

// authState is where a connection is with its <auth> document.
//
// Legal transitions: authNone -> authPending (an <auth> arrived and is
// being checked off the loop) -> authDone (accepted) or the connection
// closes (refused). An <auth> in authDone is ignored.
type authState uint8

const (
	authNone authState = iota
	authPending
	authDone
)

func (a authState) String() string {
	switch a {
	case authNone:
		return "none"
	case authPending:
		return "pending"
	case authDone:
		return "done"
	}
	return "unknown"
}

// authResult is what the password check reports back to the loop.
type authResult struct {
	user *auth.User
	err  error
}

// maxHeldBytes bounds what a client may send while its <auth> is being
// checked; past it the client is closed rather than buffered without end.
const maxHeldBytes = 1 << 20

// loadUsers reads the users file, if one is configured.
func (s *Server) loadUsers() error {
	if s.cfg.Auth.UsersFile == "" {
		return nil
	}
	d, err := auth.Load(s.cfg.Auth.UsersFile)
	if err != nil {
		return err
	}
	s.users.Store(d)
	return nil
}

// Users is the users file as last loaded (at start or by ReloadUsers on
// SIGHUP); nil when none is configured. Any goroutine; the caller must not
// change it (auth.Directory hands out copies).
func (s *Server) Users() *auth.Directory { return s.users.Load() }

// listenerMembership is the groups of a client with no user entry.
func (s *Server) listenerMembership(ln *listener) *broker.Membership {
	g := s.cfg.TCP.Groups
	if ln.kind == ListenerTLS {
		g = s.cfg.TLS.Groups
	}
	if len(g) == 0 {
		g = []string{broker.Anon}
	}
	return s.broker.Membership(g, g)
}

// userMembership resolves a user name (certificate CN or <auth> name) to
// groups. gateway reports a user marked gateway in the users file, who may
// relay other devices' SAs (broker.Client.SetOwner). refuse is non-empty
// when the user may not connect.
func (s *Server) userMembership(ln *listener, name string) (m *broker.Membership, gateway bool, refuse string) {
	d := s.users.Load()
	if d == nil {
		return s.listenerMembership(ln), false, ""
	}
	u, ok := d.Lookup(name)
	switch {
	case ok && u.Disabled:
		return nil, false, "user disabled"
	case ok:
		return s.broker.Membership(u.In(), u.Out()), u.Gateway, ""
	case s.cfg.Auth.RequireKnownUser:
		return nil, false, "unknown user"
	}
	return s.listenerMembership(ln), false, ""
}

// Replaced implements broker.Replacer: a newer connection took the
// client's uid over. It runs on a shard; closeWith does not block.
func (ss *session) Replaced(by *broker.Client, uid string) {
	if ss.closeWith(ReasonReplaced) {
		ss.logger().Info().Uint64("by_conn", by.ID).Str("claimed_uid", uid).Msg("uid taken over by a newer connection; closing this one")
	}
}

// ReloadUsers re-reads the users file (SIGHUP) and applies changed group
// memberships to connected clients without reconnecting them. A disabled
// or (with require_known_user) removed user is disconnected.
func (s *Server) ReloadUsers() error {
	if s.cfg.Auth.UsersFile == "" {
		return nil
	}
	if err := s.loadUsers(); err != nil {
		s.log.Error().Err(err).Msg("users file reload failed; keeping the previous users")
		return err
	}
	changed, refused := 0, 0
	s.sessions.Range(func(_, v any) bool {
		ss := v.(*session)
		name := ss.userName.Load()
		if name == nil {
			return true // not identified yet: resolved when it is
		}
		m, _, refuse := s.membershipFor(ss.ln, *name)
		if refuse != "" {
			if ss.closeWith(ReasonAuthFailed) {
				ss.logger().Warn().Str("user", *name).Str("why", refuse).Msg("user no longer allowed; disconnecting")
				refused++
			}
			return true
		}
		s.broker.SetMembership(ss.client, m)
		changed++
		return true
	})
	s.log.Info().Int("clients_updated", changed).Int("clients_refused", refused).
		Int("users", s.users.Load().Len()).Msg("users file reloaded")
	return nil
}

// startAuth checks an <auth> document's password off the loop: bcrypt
// costs tens of milliseconds. Frames that follow wait in held until the
// answer comes back through Wake.
func (ss *session) startAuth(name, password string) {
	s := ss.srv
	d := s.users.Load()
	addr := hostOf(ss.remote)
	now := time.Now()
	if why, ok := s.authBegin(addr, name, now); !ok {
		s.stats.AuthThrottled[why].Inc()
		s.stats.Logins[LoginRefused].Inc()
		if ss.closeWith(ReasonAuthFailed) {
			ss.logger().Warn().Str("user", clipLog(name)).Str("why", why.String()).Msg("auth refused before the password check; closing")
		}
		return
	}
	ss.auth = authPending
	ss.authDeadline = now.UnixNano() + int64(s.cfg.TLS.HandshakeTimeout.Duration)
	ss.lp.wheel.schedule(&ss.tm, ss.nextDeadline())
	c := ss.c
	go func() {
		// At most GOMAXPROCS checks run at once, so a flood of logins costs
		// CPU in proportion to the cores, not to the attackers.
		s.authSlots <- struct{}{}
		if ss.authGone.Load() {
			// Closed while it waited: nobody wants the answer.
			<-s.authSlots
			s.stats.AuthThrottled[ThrottleCancelled].Inc()
			s.authEnd(addr, name, false, time.Now())
			return
		}
		res := &authResult{}
		u, ok := d.Lookup(name)
		if !ok {
			u = nil // still compared, so timing does not tell which names exist
		}
		if err := auth.CheckPassword(u, password); err != nil {
			res.err = err
		} else {
			res.user = u
		}
		<-s.authSlots
		s.authEnd(addr, name, res.err != nil, time.Now())
		ss.authDone.Store(res)
		_ = c.Wake(nil)
	}()
}

// finishAuth applies a password check's answer on the loop. It reports
// false when the connection is to close.
func (ss *session) finishAuth(res *authResult) bool {
	s := ss.srv
	ss.authDeadline = 0
	if res.err != nil {
		s.stats.Logins[LoginRefused].Inc()
		ss.reason.CompareAndSwap(uint32(reasonUnset), uint32(ReasonAuthFailed))
		ss.logger().Warn().Err(res.err).Int("held_frames", len(ss.held)).Msg("auth refused; closing without routing what the client sent")
		ss.held = nil
		return false
	}
	m, gw, refuse := s.membershipFor(ss.ln, res.user.Name)
	if refuse != "" {
		s.stats.Logins[LoginRefused].Inc()
		ss.reason.CompareAndSwap(uint32(reasonUnset), uint32(ReasonAuthFailed))
		ss.logger().Warn().Str("user", res.user.Name).Str("why", refuse).Msg("auth refused; closing")
		ss.held = nil
		return false
	}
	s.stats.Logins[LoginOK].Inc()
	ss.auth = authDone
	name := res.user.Name
	ss.userName.Store(&name)
	ss.client.SetOwner(name, gw)
	s.broker.SetMembership(ss.client, m)
	ss.logger().Info().Str("user", name).Strs("groups_in", m.In).Strs("groups_out", m.Out).Msg("auth accepted")
	held := ss.held
	ss.held = nil
	for _, doc := range held {
		err := ss.onDoc(doc)
		if errors.Is(err, errSwitchV1) {
			// The client asked for v1 and now waits for the answer: it
			// sent nothing after the request.
			ss.inputV1()
			continue
		}
		if err != nil {
			ss.reason.CompareAndSwap(uint32(reasonUnset), uint32(reasonFor(err)))
			return false
		}
	}
	return true
}

// hold keeps a copy of a document that arrived while <auth> is checked.
func (ss *session) hold(doc []byte) error {
	ss.heldBytes += len(doc)
	if ss.heldBytes > maxHeldBytes {
		return &errFrame{reason: ReasonAuthFailed, err: fmt.Errorf("%w: %d bytes sent before the login was checked", errHeldTooMuch, ss.heldBytes)}
	}
	ss.held = append(ss.held, append([]byte(nil), doc...))
	return nil
}

var errHeldTooMuch = errors.New("engine: too much data before auth completed")

// LoginResult classifies <auth> outcomes.
type LoginResult uint8

// The login results, counted in cotd_logins_total.
const (
	LoginOK LoginResult = iota
	LoginRefused
	numLoginResults
)

func (r LoginResult) String() string {
	if r == LoginOK {
		return "ok"
	}
	return "refused"
}
