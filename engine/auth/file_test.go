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
	"sync"
	"syscall"
	"testing"
	"time"
)

func someUsers(n int, group string) []User {
	users := make([]User, n)
	for i := range users {
		users[i] = User{
			Name:      fmt.Sprintf("user-%05d", i),
			GroupsIn:  []string{group + "-in"},
			GroupsOut: []string{group + "-out", "Red"},
			Groups:    []string{"HQ"},
			Disabled:  i%7 == 0,
		}
		if i%3 == 0 {
			users[i].PasswordHash = testHash
		}
	}
	return users
}

// dirNames lists dir, to find leftover temporary files.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestSaveLoadRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.toml")
	in := []User{
		{Name: "zed"},
		{Name: "alice", PasswordHash: testHash, GroupsIn: []string{"Blue"}, GroupsOut: []string{"Red"}, Groups: []string{"HQ"}},
		{Name: "bob", Groups: []string{"HQ", "Ops"}, Disabled: true},
		{Name: `q"uote\ and ünïcode`, GroupsOut: []string{"a b"}},
	}
	if err := Save(path, in); err != nil {
		t.Fatal(err)
	}
	d, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(in)
	slices.SortFunc(want, func(a, b User) int { return strings.Compare(a.Name, b.Name) })
	if !sameUsers(d.Users(), want) {
		t.Errorf("round trip:\n got %+v\nwant %+v", d.Users(), want)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("new file mode %v, want 0600", fi.Mode().Perm())
	}
	// The caller's slice is not reordered.
	if in[0].Name != "zed" {
		t.Error("Save sorted the caller's slice")
	}
}

func TestSaveOutputIsReadable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.toml")
	if err := Save(path, []User{{Name: "alice", Groups: []string{"HQ"}}, {Name: "carol"}}); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	want := fileHeader + "[[user]]\nname = \"alice\"\ngroups = [\"HQ\"]\n\n[[user]]\nname = \"carol\"\n"
	if string(got) != want {
		t.Errorf("file:\n%s\nwant:\n%s", got, want)
	}
}

func TestSaveKeepsMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.toml")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := Save(path, someUsers(2, "a")); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640 kept", fi.Mode().Perm())
	}
}

func TestSaveFollowsSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "real.toml")
	link := filepath.Join(dir, "users.toml")
	if err := Save(target, someUsers(1, "a")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real.toml", link); err != nil {
		t.Fatal(err)
	}
	if err := Save(link, someUsers(2, "a")); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Lstat(link); fi.Mode()&fs.ModeSymlink == 0 {
		t.Error("the link was replaced by a file")
	}
	if d, err := Load(target); err != nil || d.Len() != 2 {
		t.Errorf("target: %v, %v", d, err)
	}
}

func TestSaveInvalidWritesNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "users.toml")
	if err := Save(path, someUsers(3, "a")); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	err := Save(path, []User{{Name: "x"}, {Name: "x"}, {Name: "y", PasswordHash: "nope"}})
	if !errors.Is(err, ErrUsersFile) || !strings.Contains(err.Error(), "duplicate") || !strings.Contains(err.Error(), "bcrypt") {
		t.Errorf("err = %v", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Error("file changed")
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{"users.toml"}) {
		t.Errorf("directory holds %q", names)
	}
}

func TestSaveReadOnlyDir(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "users.toml")
	if err := Save(path, someUsers(3, "a")); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(dir, 0o700) })
	if f, err := os.Create(filepath.Join(dir, "probe")); err == nil {
		f.Close()
		t.Skip("directory permissions are not enforced (running as root); TestSaveWriteFails covers the failure path")
	}
	err := Save(path, someUsers(5, "b"))
	if !errors.Is(err, ErrUsersFile) || !errors.Is(err, fs.ErrPermission) {
		t.Errorf("err = %v, want ErrUsersFile and permission denied", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Error("file changed")
	}
}

// TestSaveWriteFails makes the kernel refuse the write part-way through
// (RLIMIT_FSIZE: the file grows past the limit), as a full disk or a crash
// would leave it: the old file must be intact and the temporary file gone.
// It works as root, unlike a read-only directory.
func TestSaveWriteFails(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "users.toml")
	if err := Save(path, someUsers(3, "a")); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)

	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Skip(err)
	}
	lim := old
	lim.Cur = 4096
	// The Go runtime ignores SIGXFSZ, so the write returns EFBIG instead
	// of killing the test binary. No other test runs meanwhile (none is
	// parallel), so lowering the process-wide limit is safe.
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Skip(err)
	}
	err := Save(path, someUsers(500, "b"))
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(err, ErrUsersFile) || !errors.Is(err, syscall.EFBIG) {
		t.Errorf("err = %v, want ErrUsersFile and EFBIG", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Error("file changed")
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{"users.toml"}) {
		t.Errorf("temporary file left behind: %q", names)
	}
}

// TestSaveNeverPartial reads the file in a loop while it is rewritten
// between two large contents: every read must be one or the other, whole.
func TestSaveNeverPartial(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.toml")
	lists := [2][]User{someUsers(3000, "first"), someUsers(2000, "second")}
	var want [2][]byte
	for i, l := range lists {
		b, err := encode(l)
		if err != nil {
			t.Fatal(err)
		}
		want[i] = b
	}
	if err := Save(path, lists[0]); err != nil {
		t.Fatal(err)
	}

	done := make(chan struct{})
	var reads, partial int
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			got, err := os.ReadFile(path)
			if err != nil {
				partial++ // the path must never be missing either
				continue
			}
			reads++
			if !bytes.Equal(got, want[0]) && !bytes.Equal(got, want[1]) {
				partial++
			}
		}
	})
	for i := range 20 {
		if err := Save(path, lists[(i+1)%2]); err != nil {
			t.Error(err)
		}
	}
	close(done)
	wg.Wait()
	if partial > 0 {
		t.Errorf("%d of %d reads saw a missing or partial file", partial, reads+partial)
	}
	if reads == 0 {
		t.Error("the reader never ran")
	}
}

func TestUpdateConcurrent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "users.toml")
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			errs <- Update(path, func(users []User) ([]User, error) {
				return append(users, User{Name: fmt.Sprintf("u%02d", i), Groups: []string{"HQ"}}), nil
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	d, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if d.Len() != n {
		t.Errorf("%d users, want %d: an update was lost", d.Len(), n)
	}
	for i := range n {
		if _, ok := d.Lookup(fmt.Sprintf("u%02d", i)); !ok {
			t.Errorf("u%02d missing", i)
		}
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{"users.toml", "users.toml.lock"}) {
		t.Errorf("directory holds %q", names)
	}
}

func TestUpdate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "users.toml")

	// A missing file is an empty list.
	err := Update(path, func(users []User) ([]User, error) {
		if len(users) != 0 {
			t.Errorf("missing file gave %d users", len(users))
		}
		return []User{{Name: "alice"}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)

	// An error from fn is returned as it is; nothing is written.
	errStop := errors.New("stop")
	if err := Update(path, func(users []User) ([]User, error) { return nil, errStop }); err != errStop {
		t.Errorf("fn error: %v", err)
	}
	// An invalid result is refused by Save.
	err = Update(path, func(users []User) ([]User, error) { return append(users, User{Name: "alice"}), nil })
	if !errors.Is(err, ErrUsersFile) || !strings.Contains(err.Error(), "duplicate") {
		t.Errorf("duplicate: %v", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("file changed")
	}

	// A file that does not load is not handed to fn.
	if err := os.WriteFile(path, []byte("[[user]]\nnom = \"x\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	called := false
	err = Update(path, func(users []User) ([]User, error) { called = true; return users, nil })
	if called || !errors.Is(err, ErrUsersFile) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "user.nom") {
		t.Errorf("bad file: called %v, err %v", called, err)
	}
}

func TestUpdateLockTimeout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.toml")
	unlock, err := lock(path+".lock", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	saved := lockTimeout
	lockTimeout = 50 * time.Millisecond
	defer func() { lockTimeout = saved }()
	err = Update(path, func(users []User) ([]User, error) {
		t.Error("fn called without the lock")
		return users, nil
	})
	if !errors.Is(err, ErrLocked) {
		t.Errorf("err = %v, want ErrLocked", err)
	}
}
