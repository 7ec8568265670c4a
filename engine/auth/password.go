package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"

	"golang.org/x/crypto/bcrypt"
)

// Password errors.
var (
	ErrNoPassword       = errors.New("auth: user has no password (certificate login only)")
	ErrBadPassword      = errors.New("auth: wrong user name or password")
	ErrDisabled         = errors.New("auth: user is disabled")
	ErrEmptyPassword    = errors.New("auth: password is empty")
	ErrPasswordTooLong  = fmt.Errorf("auth: password is longer than %d bytes (bcrypt's limit)", maxPasswordBytes)
	errUnusableUserHash = errors.New("auth: user's password hash is unusable")
)

// maxPasswordBytes is bcrypt's input limit; bytes past it would be ignored.
const maxPasswordBytes = 72

// dummyHash is compared when there is no real hash to compare, so that an
// unknown user, a certificate-only user and a wrong password all cost the
// same time. Its cost equals bcrypt.DefaultCost, what HashPassword uses.
const dummyHash = "$2a$10$955LK4hDb5HWSvu3ozvE3OkelcoyQAK/llyleC4he.SzAcL0QK9Ga"

// CheckPassword verifies an <auth> login. It returns nil when password
// matches u's hash, or:
//   - ErrDisabled when u is disabled, whatever the password;
//   - ErrNoPassword when u has no hash (certificate-only user);
//   - ErrBadPassword when the password is wrong, longer than bcrypt's 72
//     bytes, or u is nil (unknown user).
//
// Every outcome runs exactly one bcrypt comparison, so timing does not tell
// an unknown user from a wrong password. That comparison costs tens of
// milliseconds of CPU (bcrypt.DefaultCost): never call CheckPassword on an
// event loop; run it on a worker goroutine and post the result back. Tell
// the client the same thing for every error.
func CheckPassword(u *User, password string) error {
	hash := dummyHash
	if u != nil && u.PasswordHash != "" {
		hash = u.PasswordHash
	}
	err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(password))
	switch {
	case u == nil:
		return ErrBadPassword
	case u.Disabled:
		return ErrDisabled
	case u.PasswordHash == "":
		return ErrNoPassword
	case len(password) > maxPasswordBytes:
		// bcrypt reads only the first 72 bytes; a longer password that
		// shares them must not pass.
		return ErrBadPassword
	case errors.Is(err, bcrypt.ErrMismatchedHashAndPassword):
		return ErrBadPassword
	case err != nil:
		// Only reachable with a User not loaded through this package.
		return fmt.Errorf("%w: %v", errUnusableUserHash, err)
	}
	return nil
}

// HashPassword returns a bcrypt hash of password at bcrypt.DefaultCost, for
// User.PasswordHash or admin.basic_password_hash. It refuses an empty
// password (ErrEmptyPassword) and one longer than 72 bytes
// (ErrPasswordTooLong), which bcrypt would silently truncate.
func HashPassword(password string) (string, error) {
	if password == "" {
		return "", ErrEmptyPassword
	}
	if len(password) > maxPasswordBytes {
		return "", ErrPasswordTooLong
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("auth: hashing password: %w", err)
	}
	return string(h), nil
}

// BasicChecker checks HTTP basic credentials against one account (the
// admin API's admin.basic_user and its bcrypt hash). The user name is
// compared in constant time on digests (so its length does not leak
// either), and the password is checked whatever the name was, so a wrong
// name takes as long as a wrong password; CheckPassword also refuses a
// password longer than the 72 bytes bcrypt reads.
func BasicChecker(user, hash string) func(user, password string) bool {
	wantUser := sha256.Sum256([]byte(user))
	account := &User{Name: user, PasswordHash: hash}
	return func(u, p string) bool {
		gotUser := sha256.Sum256([]byte(u))
		userOK := subtle.ConstantTimeCompare(gotUser[:], wantUser[:]) == 1
		passOK := CheckPassword(account, p) == nil
		return userOK && passOK
	}
}
