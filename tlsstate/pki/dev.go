package pki

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Names EnsureDev uses.
const (
	DevCAName     = "cotd dev CA"
	DevClientName = "cotd-user-1"
)

// Dev is a development PKI kept in one directory.
type Dev struct {
	Dir        string
	CACert     string // Dir/ca.pem: trust anchor for client certificates
	ServerCert string // Dir/server.pem
	ServerKey  string // Dir/server.key
	// FirstClientPackage is Dir/cotd-user-1.zip, the data package of the
	// first client, or empty if that file is no longer there.
	FirstClientPackage string

	CA     *Bundle
	Server *Bundle
}

// EnsureDev returns the development PKI in dir, creating it on first use,
// for `cotd serve` when no certificates are configured. created reports
// whether this call made it.
//
// If dir holds ca.pem, ca.key, server.pem and server.key, they are loaded
// (and the server certificate checked against the CA); hosts and kt are then
// ignored. If it holds none of them, EnsureDev creates dir (0700), a CA
// (DevCAName), a first client DevClientName with its .pem, .key, .p12 and
// data package .zip, and a server certificate for hosts (nil or empty means
// DefaultHosts). The data package points at the first LAN IPv4 address in
// hosts, port DefaultStreamPort; make another with `cotd certs client` if the
// server listens elsewhere. Some but not all of the four files is
// ErrIncompleteDev: EnsureDev never overwrites a CA.
//
// Calling it again is safe; two processes creating the same dir at once are
// not.
func EnsureDev(dir string, hosts []string, kt KeyType) (*Dev, bool, error) {
	return ensureDev(dir, hosts, kt, "", time.Now())
}

// EnsureDevFor is EnsureDev with the address clients should use (a host
// name or IPv4 address, the server's advertise_host): on creation the first
// client's data package points at it and the server certificate covers it.
// An empty advertise picks as EnsureDev does (PackageHost).
func EnsureDevFor(dir string, hosts []string, kt KeyType, advertise string) (*Dev, bool, error) {
	return ensureDev(dir, hosts, kt, advertise, time.Now())
}

// PackageHost is the address EnsureDev puts in the first client's data
// package when none is given: the first non-loopback IPv4 address in hosts,
// else the first name other than localhost, else 127.0.0.1.
func PackageHost(hosts []string) string { return packageHost(hosts) }

func ensureDev(dir string, hosts []string, kt KeyType, advertise string, now time.Time) (*Dev, bool, error) {
	if dir == "" {
		return nil, false, fmt.Errorf("%w: empty directory", ErrName)
	}
	d := &Dev{Dir: dir}
	var caKey, srvKey string
	d.CACert, caKey = Paths(dir, CAName)
	d.ServerCert, srvKey = Paths(dir, ServerName)
	d.ServerKey = srvKey

	var missing []string
	for _, p := range []string{d.CACert, caKey, d.ServerCert, srvKey} {
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			missing = append(missing, filepath.Base(p))
		} else if err != nil {
			return nil, false, err
		}
	}
	switch len(missing) {
	case 0:
		if err := d.load(); err != nil {
			return nil, false, err
		}
		return d, false, nil
	case 4:
		if err := d.create(hosts, kt, advertise, now); err != nil {
			return nil, false, err
		}
		return d, true, nil
	}
	return nil, false, fmt.Errorf("%w: %s lacks %s (remove the directory to start over)",
		ErrIncompleteDev, dir, strings.Join(missing, ", "))
}

func (d *Dev) load() error {
	ca, err := LoadCA(d.Dir)
	if err != nil {
		return err
	}
	srv, err := Load(d.ServerCert, d.ServerKey)
	if err != nil {
		return err
	}
	if err := srv.Cert.CheckSignatureFrom(ca.Cert); err != nil {
		return fmt.Errorf("%w: %s by %s: %w", ErrNotIssued, d.ServerCert, d.CACert, err)
	}
	d.CA, d.Server = ca, srv
	if p := filepath.Join(d.Dir, DevClientName+".zip"); fileExists(p) {
		d.FirstClientPackage = p
	}
	return nil
}

// create writes the server pair last: its presence is what tells the next
// call that everything before it (CA, first client) is complete.
func (d *Dev) create(hosts []string, kt KeyType, advertise string, now time.Time) error {
	if len(hosts) == 0 {
		hosts = DefaultHosts()
	}
	if advertise == "" {
		advertise = packageHost(hosts)
	} else if !slices.Contains(hosts, advertise) {
		hosts = append(slices.Clone(hosts), advertise)
	}
	if err := os.MkdirAll(d.Dir, dirPerm); err != nil {
		return err
	}
	ca, err := createCA(d.Dir, DevCAName, kt, 0, now)
	if err != nil {
		return err
	}
	client, err := ca.issueClient(DevClientName, kt, 0, now)
	if err != nil {
		return err
	}
	files, err := SaveClient(d.Dir, DevClientName, client, ca, ClientOptions{
		PackageHost: advertise,
		Description: "cotd (development)",
	})
	if err != nil {
		return err
	}
	srv, err := ca.issueServer("", hosts, kt, 0, now)
	if err != nil {
		return err
	}
	if _, _, err := Save(d.Dir, ServerName, srv); err != nil {
		return err
	}
	d.CA, d.Server, d.FirstClientPackage = ca, srv, files.Package
	return nil
}

// DefaultHosts lists the names a development server certificate covers: the
// machine's hostname, localhost, 127.0.0.1, ::1 and the address of every
// up, non-loopback interface. IPv6 link-local addresses are left out: they
// are useless without a zone, which a certificate cannot carry.
func DefaultHosts() []string {
	seen := map[string]bool{}
	var hosts []string
	add := func(h string) {
		if h != "" && !seen[h] {
			seen[h] = true
			hosts = append(hosts, h)
		}
	}
	if name, err := os.Hostname(); err == nil {
		add(name)
	}
	add("localhost")
	add("127.0.0.1")
	add("::1")
	ifaces, err := net.Interfaces()
	if err != nil {
		return hosts
	}
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip := ipn.IP
			if ip.IsLoopback() || ip.IsUnspecified() || ip.IsMulticast() ||
				(ip.To4() == nil && ip.IsLinkLocalUnicast()) {
				continue
			}
			add(ip.String())
		}
	}
	return hosts
}

// packageHost picks the address a handset is most likely to reach: the first
// non-loopback IPv4 address, else the first name other than localhost, else
// 127.0.0.1 (an emulator on this machine). IPv6 cannot go in a TAK connect
// string.
func packageHost(hosts []string) string {
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil && ip.To4() != nil && !ip.IsLoopback() {
			return h
		}
	}
	for _, h := range hosts {
		if net.ParseIP(h) == nil && h != "localhost" && !strings.ContainsAny(h, ": ") {
			return h
		}
	}
	return "127.0.0.1"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
