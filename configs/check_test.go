package configs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWarnings(t *testing.T) {
	cases := []struct {
		name, in string
		want     []string // substrings, one warning each; empty: none
	}{
		{"defaults", "", nil},
		{"admin on every interface without auth", "[admin]\naddr = \"0.0.0.0:8088\"\n", []string{"admin.addr \"0.0.0.0:8088\""}},
		{"admin with basic auth", "[admin]\naddr = \"0.0.0.0:8088\"\nbasic_user = \"ops\"\nbasic_password_hash = \"$2a$10$x\"\n", nil},
		{"admin on localhost", "[admin]\naddr = \"localhost:8088\"\n", nil},
		{"tls silently off", "[tls]\ndev_certs = false\n", []string{"TLS is off"}},
		{"tls off on purpose", "[tls]\naddr = \"\"\ndev_certs = false\n", nil},
	}
	for _, tc := range cases {
		c, err := Parse([]byte(tc.in))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got := c.Warnings()
		if len(got) != len(tc.want) {
			t.Errorf("%s: warnings %q, want %d", tc.name, got, len(tc.want))
			continue
		}
		for i, w := range tc.want {
			if !strings.Contains(got[i], w) {
				t.Errorf("%s: warning %q does not say %q", tc.name, got[i], w)
			}
		}
	}
}

// Check returns the configuration along with its problems, so that the
// files it names can still be loaded, and one error per problem.
func TestCheckReturnsConfigAndEveryProblem(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.toml")
	in := "[tcp]\naddr = \"nonsense\"\n[limits]\nidle_timeout = \"90\"\n[tls]\ncert = \"/nowhere/s.pem\"\nkey = \"/nowhere/s.key\"\nca = \"/nowhere/ca.pem\"\n"
	if err := os.WriteFile(p, []byte(in), 0o600); err != nil {
		t.Fatal(err)
	}
	c, problems := Check(p)
	if c == nil || c.TLS.Cert != "/nowhere/s.pem" {
		t.Fatalf("no configuration returned: %+v", c)
	}
	if len(problems) != 5 { // tcp.addr, idle_timeout, three missing files
		t.Errorf("%d problems, want 5: %q", len(problems), problems)
	}
	if c, problems := Check(filepath.Join(t.TempDir(), "missing.toml")); c != nil || len(problems) != 1 {
		t.Errorf("missing file: %v %q", c, problems)
	}
}
