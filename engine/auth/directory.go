package auth

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// ErrUsersFile wraps every problem with a users file's content or access;
// errors.Is(err, ErrUsersFile).
var ErrUsersFile = errors.New("auth: bad users file")

// Directory is a loaded users file. It is immutable once built and safe for
// concurrent use; the nil *Directory is an empty one, so the engine can run
// without a users file.
type Directory struct {
	byName map[string]*User
	sorted []*User // by name
}

// file is the document shape of the users file.
type file struct {
	User []User `toml:"user"`
}

// Load reads and parses the users file at path. Errors wrap ErrUsersFile and
// name path.
func Load(path string) (*Directory, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUsersFile, err)
	}
	d, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return d, nil
}

// Parse decodes a users file strictly: an unknown key, a wrong type and
// every failed check (empty or duplicate names, a password_hash that is not
// bcrypt, empty group names, control characters) are reported together,
// wrapped in ErrUsersFile.
func Parse(data []byte) (*Directory, error) {
	users, err := decode(data)
	if err != nil {
		return nil, err
	}
	return newDirectory(users), nil
}

func decode(data []byte) ([]User, error) {
	var f file
	md, err := toml.Decode(string(data), &f)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUsersFile, err)
	}
	var errs []error
	for _, k := range md.Undecoded() {
		errs = append(errs, fmt.Errorf("unknown key %q", k.String()))
	}
	errs = append(errs, validate(f.User)...)
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrUsersFile, errors.Join(errs...))
	}
	return f.User, nil
}

// newDirectory takes ownership of users, which must have passed validate.
func newDirectory(users []User) *Directory {
	d := &Directory{byName: make(map[string]*User, len(users)), sorted: make([]*User, len(users))}
	for i := range users {
		u := &users[i]
		d.byName[u.Name] = u
		d.sorted[i] = u
	}
	slices.SortFunc(d.sorted, func(a, b *User) int { return strings.Compare(a.Name, b.Name) })
	return d
}

// Lookup returns a copy of the user called name (exact, case-sensitive
// match). Changing it does not change d.
func (d *Directory) Lookup(name string) (*User, bool) {
	if d == nil {
		return nil, false
	}
	u, ok := d.byName[name]
	if !ok {
		return nil, false
	}
	c := u.clone()
	return &c, true
}

// Users returns a copy of every user, sorted by name.
func (d *Directory) Users() []User {
	if d == nil {
		return nil
	}
	out := make([]User, len(d.sorted))
	for i, u := range d.sorted {
		out[i] = u.clone()
	}
	return out
}

// Len returns the number of users.
func (d *Directory) Len() int {
	if d == nil {
		return 0
	}
	return len(d.sorted)
}
