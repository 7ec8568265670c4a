package engine_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"cotd/configs"
	"cotd/engine/auth"
	et "cotd/engine/enginetest"
)

// dialFrom connects to addr from the loopback address from (any of
// 127/8), so that one test can play clients at several addresses.
func dialFrom(t *testing.T, from, addr string) *et.Client {
	t.Helper()
	d := net.Dialer{Timeout: et.Wait, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", from, err)
	}
	return et.Wrap(t, conn)
}

func authDocFor(user, pw string) string {
	return fmt.Sprintf(`<?xml version="1.0"?><auth><cot username="%s" password="%s" uid="ANDROID-x"/></auth>`, user, pw)
}

func startWithAlice(t *testing.T) *et.Harness {
	t.Helper()
	hash, err := auth.HashPassword("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	users := filepath.Join(t.TempDir(), "users.toml")
	if err := os.WriteFile(users, fmt.Appendf(nil, "[[user]]\nname = \"alice\"\npassword_hash = %q\n", hash), 0o600); err != nil {
		t.Fatal(err)
	}
	return et.Start(t, func(c *configs.Config) {
		c.Auth.UsersFile = users
		// Long enough to hold through the test.
		c.Auth.FailureBackoff = configs.Duration{Duration: time.Hour}
		c.Auth.MaxFailureBackoff = configs.Duration{Duration: time.Hour}
	})
}

// A failed login backs its address off (even a right password from there
// is refused, unchecked), while the real user from another address logs
// in at once.
func TestAuthFailureBacksOffTheAddressNotTheUser(t *testing.T) {
	h := startWithAlice(t)
	evil := dialFrom(t, "127.0.0.2", h.TCPAddr())
	evil.Send(authDocFor("alice", "wrong"))
	evil.Closed()
	again := dialFrom(t, "127.0.0.2", h.TCPAddr())
	again.Send(authDocFor("alice", "s3cret"))
	again.Closed()
	h.WaitSample(t, `cotd_auth_throttled_total{reason="backoff_address"}`, 1)

	observer := et.Dial(t, h.TCPAddr())
	alice := dialFrom(t, "127.0.0.1", h.TCPAddr())
	h.Joined(t, 2)
	alice.Send(authDocFor("alice", "s3cret") + et.Marker("alice-here"))
	observer.Expect("the real alice's marker", et.UID("alice-here"))
	h.WaitSample(t, `cotd_logins_total{result="ok"}`, 1)
}

// Twenty logins at once from one address cost at most
// auth.max_pending_per_address password checks: the rest are refused
// while those wait, or by the backoff once one failed.
func TestAuthPendingChecksBoundedPerAddress(t *testing.T) {
	h := startWithAlice(t)
	const n = 20
	cs := make([]*et.Client, n)
	for i := range cs {
		cs[i] = dialFrom(t, "127.0.0.4", h.TCPAddr())
	}
	for _, c := range cs {
		c.Send(authDocFor("alice", "wrong"))
	}
	for _, c := range cs {
		c.Closed()
	}
	h.WaitSample(t, `cotd_logins_total{result="refused"}`, n)
	m := h.Metrics(t)
	p, _ := et.Sample(m, `cotd_auth_throttled_total{reason="pending_address"}`)
	b, _ := et.Sample(m, `cotd_auth_throttled_total{reason="backoff_address"}`)
	if checked := n - int(p+b); checked > h.Cfg.Auth.MaxPendingPerAddress {
		t.Errorf("%d password checks ran for one address, want at most %d (pending_address %v, backoff_address %v)",
			checked, h.Cfg.Auth.MaxPendingPerAddress, p, b)
	}
}
