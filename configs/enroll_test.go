package configs

import (
	"errors"
	"strings"
	"testing"
)

func TestEnrollConfig(t *testing.T) {
	c := Default()
	if c.Enroll.Addr != "0.0.0.0:8446" || c.Enroll.Validity.Hours() != 365*24 || !c.Enroll.RevokeOnDisable || c.Enroll.MinRSABits != 2048 {
		t.Errorf("defaults %+v", c.Enroll)
	}
	if c.EnrollEnabled() {
		t.Error("enrollment on without a users file")
	}
	_, err := Parse([]byte(`[enroll]
addr = "0.0.0.0:8443"
validity = "0s"
min_rsa_bits = 1024
cert = "x.pem"
free_failures = 0
failure_delay = "10s"
max_failure_delay = "1s"
`))
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad [enroll]: %v", err)
	}
	for _, want := range []string{"enroll.addr and marti.https_addr share port 8443", "enroll.validity must be positive",
		"enroll.min_rsa_bits", "enroll.cert and enroll.key go together", "enroll.free_failures",
		"enroll.max_failure_delay"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// The paths enrollment and revocation use follow the development PKI
// unless configured.
func TestEnrollPaths(t *testing.T) {
	c := Default()
	c.TLS.DevDir = "/d"
	if c.CAKeyPath() != "/d/ca.key" || c.CAPath() != "/d/ca.pem" || c.CRLPath() != "/d/crl.pem" {
		t.Errorf("dev paths %q %q %q", c.CAKeyPath(), c.CAPath(), c.CRLPath())
	}
	c.TLS.Cert, c.TLS.Key, c.TLS.CA = "/s.pem", "/s.key", "/ca.pem"
	if c.CAKeyPath() != "" || c.CAPath() != "/ca.pem" || c.CRLPath() != "" {
		t.Errorf("configured, no key: %q %q %q", c.CAKeyPath(), c.CAPath(), c.CRLPath())
	}
	c.Auth.UsersFile = "/etc/cotd/users.toml"
	if c.EnrollStatePath() != "/etc/cotd/enrollment.json" || !c.EnrollEnabled() {
		t.Errorf("state %q, enabled %v", c.EnrollStatePath(), c.EnrollEnabled())
	}
}
