package auth

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/BurntSushi/toml"

	"cotd/internal/flock"
)

// ErrLocked: another Update held the users file's lock for longer than the
// lock timeout.
var ErrLocked = errors.New("auth: users file is locked by another update")

// lockTimeout bounds how long Update waits for another Update; a variable
// for tests.
var lockTimeout = 30 * time.Second

const fileHeader = "# cotd users file: one [[user]] per user. Edit with `cotd users`, or by hand\n" +
	"# while no `cotd users` command runs. Keys: name, password_hash (bcrypt),\n" +
	"# groups_in, groups_out, groups (both directions), disabled.\n\n"

// Save writes users, sorted by name, to path so that path always holds
// either the old or the new content: the TOML goes to a temporary file in
// the same directory, which is synced, renamed over path, and the directory
// synced. An existing file keeps its mode and, where permitted, its owner;
// a new file gets 0600 (it holds password hashes). A symbolic link at path
// is followed and its target replaced. users is validated first, with the
// same checks as Parse; nothing is written when it fails.
func Save(path string, users []User) error {
	data, err := encode(users)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := writeAtomic(resolve(path), data); err != nil {
		return fmt.Errorf("%w: %w", ErrUsersFile, err)
	}
	return nil
}

func encode(users []User) ([]byte, error) {
	if errs := validate(users); len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrUsersFile, errors.Join(errs...))
	}
	sorted := slices.Clone(users)
	slices.SortFunc(sorted, func(a, b User) int { return strings.Compare(a.Name, b.Name) })
	var buf bytes.Buffer
	buf.WriteString(fileHeader)
	enc := toml.NewEncoder(&buf)
	enc.Indent = ""
	if err := enc.Encode(file{User: sorted}); err != nil {
		return nil, fmt.Errorf("%w: encoding: %w", ErrUsersFile, err)
	}
	return buf.Bytes(), nil
}

// resolve follows a symbolic link at path so that the rename replaces the
// link's target rather than the link. Errors leave path as it is: the write
// reports them.
func resolve(path string) string {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		if target, err := filepath.EvalSymlinks(path); err == nil {
			return target
		}
	}
	return path
}

func writeAtomic(path string, data []byte) (err error) {
	mode := fs.FileMode(0o600)
	uid, gid := -1, -1
	switch fi, err := os.Stat(path); {
	case err == nil:
		mode = fi.Mode().Perm()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(st.Uid), int(st.Gid)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}

	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		return err
	}
	renamed := false
	defer func() {
		if !renamed {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		return err
	}
	if uid >= 0 {
		// Keeps a root-run `cotd users` from handing the server's file to
		// root. Failing is fine: an unprivileged caller owns the file anyway.
		_ = tmp.Chown(uid, gid)
	}
	// The data must be on disk before the rename makes it visible, or a
	// crash could leave path naming an empty file.
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	renamed = true
	// The rename itself is durable only once the directory is synced.
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Update applies fn to the users in path and saves the result, holding an
// advisory lock (flock on path+".lock", created next to path and left there)
// so that concurrent Updates, from goroutines or from separate `cotd users`
// runs, apply one after another and never lose an edit. A missing file is
// an empty list; a file that does not load is an error, fn is not called.
// An error from fn is returned as it is and nothing is written. Readers
// need no lock: Save replaces the file atomically.
func Update(path string, fn func(users []User) ([]User, error)) error {
	path = resolve(path)
	unlock, err := lock(path+".lock", lockTimeout)
	if err != nil {
		return err
	}
	defer unlock()

	var users []User
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		users, err = decode(data)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: %w", ErrUsersFile, err)
	}
	users, err = fn(users)
	if err != nil {
		return err
	}
	return Save(path, users)
}

// lock takes the users file's lock (internal/flock) and says, with this
// package's errors, why it could not.
func lock(name string, timeout time.Duration) (unlock func(), err error) {
	unlock, err = flock.Lock(name, timeout)
	switch {
	case errors.Is(err, flock.ErrTimeout):
		return nil, fmt.Errorf("%w: %s held for more than %v", ErrLocked, name, timeout)
	case err != nil:
		return nil, fmt.Errorf("%w: lock: %w", ErrUsersFile, err)
	}
	return unlock, nil
}
