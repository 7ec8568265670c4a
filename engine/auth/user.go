package auth

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
)

// Anon is TAK Server's group for users with no group: they publish into it
// and receive from it.
const Anon = "__ANON__"

// User is one [[user]] entry of the users file.
type User struct {
	// Name is the certificate CN or the <auth> user name; matched exactly
	// (case-sensitive).
	Name string `toml:"name"`
	// PasswordHash is a bcrypt hash; empty means the user can log in only
	// with a client certificate.
	PasswordHash string `toml:"password_hash,omitempty"`
	// GroupsIn are the groups the user publishes into.
	GroupsIn []string `toml:"groups_in,omitempty"`
	// GroupsOut are the groups the user receives from.
	GroupsOut []string `toml:"groups_out,omitempty"`
	// Groups are in both directions.
	Groups []string `toml:"groups,omitempty"`
	// Disabled refuses the user whatever the credentials.
	Disabled bool `toml:"disabled,omitempty"`
	// Gateway lets the user's connections relay other devices' SAs (a
	// radio or mesh gateway): they may announce up to sa.max_per_gateway
	// uids, and a device connecting directly takes its uid from them.
	Gateway bool `toml:"gateway,omitempty"`
}

// In returns the groups u publishes into: the sorted, de-duplicated union of
// Groups and GroupsIn; [Anon] when u has no group at all; empty when u has
// only GroupsOut (a receive-only user).
func (u *User) In() []string { return u.direction(u.GroupsIn) }

// Out returns the groups u receives from: the sorted, de-duplicated union of
// Groups and GroupsOut; [Anon] when u has no group at all; empty when u has
// only GroupsIn (a publish-only user).
func (u *User) Out() []string { return u.direction(u.GroupsOut) }

func (u *User) direction(dir []string) []string {
	if len(u.Groups) == 0 && len(u.GroupsIn) == 0 && len(u.GroupsOut) == 0 {
		return []string{Anon}
	}
	if len(u.Groups)+len(dir) == 0 {
		return nil
	}
	out := make([]string, 0, len(u.Groups)+len(dir))
	out = append(out, u.Groups...)
	out = append(out, dir...)
	slices.Sort(out)
	return slices.Compact(out)
}

// clone returns a deep copy, so callers cannot reach a Directory's slices.
func (u *User) clone() User {
	c := *u
	c.GroupsIn = slices.Clone(u.GroupsIn)
	c.GroupsOut = slices.Clone(u.GroupsOut)
	c.Groups = slices.Clone(u.Groups)
	return c
}

// MaxHashCost is the highest bcrypt cost a users file may carry. Each cost
// step doubles the CPU time of a login; at 14 one check already takes about
// a second, and a file with cost 20+ would stall every <auth> login.
const MaxHashCost = 14

// bcryptHash matches the modular-crypt form of bcrypt: version, two-digit
// cost, 22 characters of salt and 31 of hash in bcrypt's base64 alphabet.
var bcryptHash = regexp.MustCompile(`^\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53}$`)

// validate reports every problem in users, each naming the entry.
func validate(users []User) []error {
	var errs []error
	first := make(map[string]int, len(users))
	for i := range users {
		u := &users[i]
		where := fmt.Sprintf("user[%d]", i+1)
		if u.Name != "" {
			where = fmt.Sprintf("user[%d] %q", i+1, u.Name)
		}
		bad := func(format string, a ...any) {
			errs = append(errs, fmt.Errorf("%s: %s", where, fmt.Sprintf(format, a...)))
		}
		if u.Name == "" {
			bad("name is empty")
		} else {
			if err := checkName(u.Name); err != nil {
				bad("name %v", err)
			}
			if j, dup := first[u.Name]; dup {
				bad("duplicate name (first at user[%d])", j+1)
			} else {
				first[u.Name] = i
			}
		}
		if u.PasswordHash != "" {
			if err := checkHash(u.PasswordHash); err != nil {
				bad("password_hash %v", err)
			}
		}
		for _, g := range []struct {
			key    string
			groups []string
		}{{"groups_in", u.GroupsIn}, {"groups_out", u.GroupsOut}, {"groups", u.Groups}} {
			for k, name := range g.groups {
				if name == "" {
					bad("%s[%d] is empty", g.key, k+1)
				} else if err := checkName(name); err != nil {
					bad("%s[%d] %q %v", g.key, k+1, name, err)
				}
			}
		}
	}
	return errs
}

// checkName refuses what would be invisible or ambiguous in logs, the
// `cotd users list` table and certificate CNs.
func checkName(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("is not valid UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("contains control character %U", r)
		}
	}
	if strings.TrimSpace(s) != s {
		return errors.New("has leading or trailing white space")
	}
	return nil
}

func checkHash(h string) error {
	if !bcryptHash.MatchString(h) {
		return errors.New(`is not a bcrypt hash ("$2a$10$" and 53 characters; make one with "cotd users hash")`)
	}
	cost, err := bcrypt.Cost([]byte(h))
	if err != nil {
		return fmt.Errorf("is not a valid bcrypt hash: %v", err)
	}
	if cost > MaxHashCost {
		return fmt.Errorf("has bcrypt cost %d, above %d: each login would take seconds of CPU", cost, MaxHashCost)
	}
	return nil
}
