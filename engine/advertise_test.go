package engine_test

import (
	"archive/zip"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"cotd/configs"
	"cotd/engine"
	et "cotd/engine/enginetest"
)

// devPackageConnect returns the connect string in the development data
// package's preferences.
func devPackageConnect(t *testing.T, dir string) string {
	t.Helper()
	zr, err := zip.OpenReader(filepath.Join(dir, "cotd-user-1.zip"))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	for _, f := range zr.File {
		if !strings.HasSuffix(f.Name, ".pref") {
			continue
		}
		r, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(r)
		_ = r.Close()
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		if i := strings.Index(s, `"connectString0"`); i >= 0 {
			s = s[i:]
			s = s[strings.Index(s, ">")+1:]
			return s[:strings.Index(s, "<")]
		}
	}
	t.Fatal("no connectString0 in the package")
	return ""
}

// server.advertise_host goes into the development data package and the
// start-up log; without it the log names the chosen address and the key
// that changes it.
func TestAdvertiseHost(t *testing.T) {
	for _, advertise := range []string{"tak.example.test", ""} {
		dir := filepath.Join(t.TempDir(), "dev")
		h := et.Start(t, func(c *configs.Config) {
			c.TLS.Addr = "127.0.0.1:0"
			c.TLS.DevCerts, c.TLS.DevDir = true, dir
			c.Server.AdvertiseHost = advertise
		})
		logs := h.Logs.String()
		tlsPort := h.Srv.Addr(engine.ListenerTLS).(*net.TCPAddr).Port
		if advertise != "" {
			if got := devPackageConnect(t, dir); got != advertise+":8089:ssl" {
				t.Errorf("data package connects to %q, want %s:8089:ssl", got, advertise)
			}
			if !strings.Contains(logs, advertise+":"+strconv.Itoa(tlsPort)+":ssl") {
				t.Errorf("start-up log does not name %s with the TLS port:\n%s", advertise, logs)
			}
			if strings.Contains(logs, "chosen automatically:") {
				t.Errorf("a configured address is called automatic:\n%s", logs)
			}
			continue
		}
		host := strings.Split(devPackageConnect(t, dir), ":")[0]
		if !strings.Contains(logs, `"advertise_host":"`+host+`"`) || !strings.Contains(logs, "set advertise_host in the [server] section") {
			t.Errorf("start-up log does not name the chosen %s and how to change it:\n%s", host, logs)
		}
	}
}
