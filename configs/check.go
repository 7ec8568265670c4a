package configs

import (
	"fmt"
	"net"
	"os"
)

// Check reads and decodes the file at path for `cotd config check`: it
// returns every problem Load would report, one error each, and the
// configuration whenever the file decodes (problems or not), so that the
// caller can go on to load the files it names. c is nil when the file cannot
// be read or is not TOML.
func Check(path string) (c *Config, problems []error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, []error{fmt.Errorf("%w: %w", ErrInvalid, err)}
	}
	return decode(data)
}

// Warnings lists settings that are valid but probably not meant: serve
// logs each at start and `cotd config check` prints them.
func (c *Config) Warnings() []string {
	var w []string
	if c.Admin.Addr != "" && !loopback(c.Admin.Addr) && c.Admin.BasicUser == "" && c.Admin.ClientCA == "" {
		w = append(w, fmt.Sprintf("admin.addr %q is reachable from other machines and has no authentication: "+
			"anyone who reaches it can read the client list and metrics%s; keep it on 127.0.0.1, or set "+
			"admin.basic_user and admin.basic_password_hash, or admin.client_ca", c.Admin.Addr, pprofNote(c.Admin.Pprof)))
	}
	if c.TLS.Addr != "" && !c.TLSEnabled() {
		w = append(w, fmt.Sprintf("tls.addr is %q but TLS is off: tls.cert and tls.key are empty and tls.dev_certs = false; "+
			"set tls.cert, tls.key and tls.ca, turn tls.dev_certs on, or set tls.addr = \"\" to say TLS is off on purpose", c.TLS.Addr))
	}
	return w
}

func pprofNote(on bool) string {
	if on {
		return " and profile the process (admin.pprof is on)"
	}
	return ""
}

// loopback reports whether addr's host only accepts connections from this
// machine. An empty host, 0.0.0.0 and :: listen on every interface.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
