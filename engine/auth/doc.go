// Package auth is the users directory of cotd: who may connect, with which
// password, and which TAK Server groups they publish into (IN) and receive
// from (OUT).
//
// The users file is TOML, one [[user]] table per user:
//
//	[[user]]
//	name = "alice"               # certificate CN or <auth> user name
//	password_hash = "$2a$10$..." # bcrypt; only for <auth> logins
//	groups_in = ["Blue"]         # groups alice publishes into
//	groups_out = ["Red"]         # groups alice receives from
//	groups = ["HQ"]              # both directions
//	disabled = false
//
// A user with no group at all is in the special group [Anon] in both
// directions, as on TAK Server. A message from S reaches R when some group
// is in S.In() and in R.Out().
//
// A loaded [Directory] is immutable, so the engine swaps a whole new one in
// on reload and readers never lock. [Save] and [Update] are for the
// `cotd users` command: Save replaces the file atomically, Update serialises
// concurrent read-modify-write cycles with an advisory lock.
//
// The package depends only on the standard library, BurntSushi/toml,
// x/crypto/bcrypt and the project's file lock (internal/flock).
package auth
