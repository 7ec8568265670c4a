package auth

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// A real bcrypt hash at MinCost (4), so tests stay fast; the password is
// "secret".
const testHash = "$2a$04$hr7ZWoZ7nabrgElF9E1EjeKzG41PxwM8BeF2WgbpHeCwZHNbf5Fn."

const sampleFile = `
[[user]]
name = "bob"
groups = ["HQ"]
disabled = true

[[user]]
name = "alice"
password_hash = "` + testHash + `"
groups_in = ["Blue"]
groups_out = ["Red"]
groups = ["HQ"]

[[user]]
name = "carol"
`

func TestParse(t *testing.T) {
	d, err := Parse([]byte(sampleFile))
	if err != nil {
		t.Fatal(err)
	}
	if d.Len() != 3 {
		t.Errorf("Len() = %d", d.Len())
	}
	var names []string
	for _, u := range d.Users() {
		names = append(names, u.Name)
	}
	if !slices.Equal(names, []string{"alice", "bob", "carol"}) {
		t.Errorf("Users() names %q, want sorted", names)
	}
	a, ok := d.Lookup("alice")
	if !ok {
		t.Fatal("alice not found")
	}
	if a.PasswordHash != testHash || !slices.Equal(a.In(), []string{"Blue", "HQ"}) || !slices.Equal(a.Out(), []string{"HQ", "Red"}) {
		t.Errorf("alice = %+v", a)
	}
	if b, _ := d.Lookup("bob"); !b.Disabled {
		t.Error("bob not disabled")
	}
	if c, _ := d.Lookup("carol"); !slices.Equal(c.In(), []string{Anon}) {
		t.Errorf("carol In() = %q", c.In())
	}
	if _, ok := d.Lookup("Alice"); ok {
		t.Error("Lookup is case-insensitive")
	}
}

func TestDirectoryIsImmutable(t *testing.T) {
	d, err := Parse([]byte(sampleFile))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := d.Lookup("alice")
	a.Groups[0] = "changed"
	a.Disabled = true
	users := d.Users()
	users[0].GroupsIn[0] = "changed"
	again, _ := d.Lookup("alice")
	if again.Groups[0] != "HQ" || again.GroupsIn[0] != "Blue" || again.Disabled {
		t.Errorf("directory changed through a copy: %+v", again)
	}
}

func TestNilDirectory(t *testing.T) {
	var d *Directory
	if _, ok := d.Lookup("alice"); ok || d.Len() != 0 || d.Users() != nil {
		t.Error("nil Directory is not empty")
	}
}

func TestParseEmpty(t *testing.T) {
	d, err := Parse(nil)
	if err != nil || d.Len() != 0 {
		t.Errorf("Parse(nil) = %v, %v", d, err)
	}
}

func TestParseStrict(t *testing.T) {
	tests := []struct {
		name, data string
		want       []string
	}{
		{"unknown user key", "[[user]]\nname = \"a\"\npasword_hash = \"x\"\n", []string{`unknown key "user.pasword_hash"`}},
		{"unknown top-level key", "users_file = \"x\"\n[[user]]\nname = \"a\"\n", []string{`unknown key "users_file"`}},
		{"unknown table", "[[users]]\nname = \"a\"\n", []string{`unknown key "users.name"`}},
		{"two unknown keys", "[[user]]\nname = \"a\"\nin = []\nout = []\n", []string{`"user.in"`, `"user.out"`}},
		{"wrong type", "[[user]]\nname = \"a\"\ngroups = \"HQ\"\n", []string{"groups"}},
		{"syntax", "[[user]\nname = \"a\"\n", []string{"line"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.data))
			if !errors.Is(err, ErrUsersFile) {
				t.Fatalf("err = %v, want ErrUsersFile", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	data := `
[[user]]
name = ""

[[user]]
name = "alice"
password_hash = "plaintext"

[[user]]
name = "alice"
groups = ["HQ", ""]

[[user]]
name = "bell\u0007"
groups_in = ["tab\there"]

[[user]]
name = "slow"
password_hash = "$2a$20$hr7ZWoZ7nabrgElF9E1EjeKzG41PxwM8BeF2WgbpHeCwZHNbf5Fn."

[[user]]
name = " padded"
groups_out = ["Red "]
surname = "x"
`
	_, err := Parse([]byte(data))
	if !errors.Is(err, ErrUsersFile) {
		t.Fatalf("err = %v, want ErrUsersFile", err)
	}
	for _, want := range []string{
		`unknown key "user.surname"`,
		`user[1]: name is empty`,
		`user[2] "alice": password_hash is not a bcrypt hash`,
		`user[3] "alice": duplicate name (first at user[2])`,
		`user[3] "alice": groups[2] is empty`,
		`user[4] "bell\a": name contains control character U+0007`,
		`user[4] "bell\a": groups_in[1] "tab\there" contains control character U+0009`,
		`user[5] "slow": password_hash has bcrypt cost 20`,
		`user[6] " padded": name has leading or trailing white space`,
		`user[6] " padded": groups_out[1] "Red " has leading or trailing white space`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not contain %q:\n%v", want, err)
		}
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != 10 {
		t.Errorf("%d problems reported, want 10:\n%v", n, err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "users.toml")
	if err := os.WriteFile(path, []byte(sampleFile), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := Load(path)
	if err != nil || d.Len() != 3 {
		t.Fatalf("Load = %v, %v", d, err)
	}

	if err := os.WriteFile(path, []byte("[[user]]\nname = \"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(path)
	if !errors.Is(err, ErrUsersFile) || !strings.Contains(err.Error(), path) {
		t.Errorf("bad file: %v; want ErrUsersFile naming %s", err, path)
	}

	_, err = Load(filepath.Join(dir, "missing.toml"))
	if !errors.Is(err, ErrUsersFile) || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "missing.toml") {
		t.Errorf("missing file: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(sampleFile))
	f.Add([]byte("[[user]]\nname = \"a\"\ngroups = [\"x\", \"x\"]\n"))
	f.Add([]byte("[[user]]\nname = \"\\u0000\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrUsersFile) {
				t.Fatalf("error does not wrap ErrUsersFile: %v", err)
			}
			return
		}
		// What loads must save and load back the same.
		out, err := encode(d.Users())
		if err != nil {
			t.Fatalf("encode of a loaded directory: %v", err)
		}
		d2, err := Parse(out)
		if err != nil {
			t.Fatalf("re-parse: %v\n%s", err, out)
		}
		if !sameUsers(d.Users(), d2.Users()) {
			t.Fatalf("round trip changed users:\n%+v\n%+v", d.Users(), d2.Users())
		}
	})
}

// sameUsers compares users treating nil and empty group lists alike, as the
// file format does.
func sameUsers(a, b []User) bool {
	return slices.EqualFunc(a, b, func(x, y User) bool {
		return x.Name == y.Name && x.PasswordHash == y.PasswordHash && x.Disabled == y.Disabled &&
			slices.Equal(x.Groups, y.Groups) && slices.Equal(x.GroupsIn, y.GroupsIn) && slices.Equal(x.GroupsOut, y.GroupsOut)
	})
}
