package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cotd/configs"
	et "cotd/engine/enginetest"
	"cotd/tlsstate/pki"
)

func runMain(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"serve", "--help"}, {"serve", "-h"}, {"clients", "--help"},
		{"send", "--help"}, {"listen", "-h"}, {"config", "--help"}, {"--help"}} {
		if code, _, stderr := runMain(t, args...); code != 0 {
			t.Errorf("%v: exit %d, want 0 (%s)", args, code, stderr)
		}
	}
	for _, args := range [][]string{{"--version"}, {"version"}} {
		code, stdout, _ := runMain(t, args...)
		if code != 0 || !strings.HasPrefix(stdout, "cotd ") {
			t.Errorf("%v: exit %d, %q", args, code, stdout)
		}
	}
	code, _, stderr := runMain(t, "config")
	if code != 2 || !strings.Contains(stderr, "missing subcommand") || !strings.Contains(stderr, "usage:") {
		t.Errorf("config alone: exit %d, %q", code, stderr)
	}
	if code, _, _ := runMain(t, "serve", "--nope"); code != 2 {
		t.Errorf("serve --nope: exit %d, want 2", code)
	}
}

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// config check lists every problem, one a line, loading certificates and
// keys as serve would, and warns about what is valid but probably unmeant.
func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	a := et.NewPKI(t, pki.KeyECDSAP256)
	b := et.NewPKI(t, pki.KeyECDSAP256)
	good := writeFile(t, dir, "good.toml", `[tcp]
addr = "127.0.0.1:0"
[tls]
addr = "127.0.0.1:0"
cert = "`+a.CertPath+`"
key = "`+a.KeyPath+`"
ca = "`+a.CAPath+`"
`)
	if code, stdout, stderr := runMain(t, "config", "check", good); code != 0 || !strings.Contains(stdout, "ok") || stderr != "" {
		t.Fatalf("good file: exit %d, %q %q", code, stdout, stderr)
	}

	cases := []struct {
		name, body string
		want       []string
	}{
		{"four bad durations", `[tls]
handshake_timeout = "10"
[limits]
idle_timeout = "soon"
write_timeout = "60"
drain_timeout = "5 s"
`, []string{"tls.handshake_timeout:", "limits.idle_timeout:", "limits.write_timeout:", "limits.drain_timeout:", "4 problem(s)"}},
		{"mismatched certificate and key", `[tls]
cert = "` + a.CertPath + `"
key = "` + b.KeyPath + `"
ca = "` + a.CAPath + `"
`, []string{"tls.cert/tls.key", "does not match", "1 problem(s)"}},
		{"a TOML file as the certificate", `[tls]
cert = "` + good + `"
key = "` + a.KeyPath + `"
ca = "` + a.CAPath + `"
`, []string{"tls.cert/tls.key", "PEM", "1 problem(s)"}},
		{"a bad duration and a mismatched key together", `[limits]
idle_timeout = "90"
[tls]
cert = "` + a.CertPath + `"
key = "` + b.KeyPath + `"
ca = "` + a.CAPath + `"
`, []string{"limits.idle_timeout:", "does not match", "2 problem(s)"}},
	}
	for _, tc := range cases {
		p := writeFile(t, dir, "case.toml", tc.body)
		code, stdout, stderr := runMain(t, "config", "check", p)
		if code != 1 || strings.Contains(stdout, "ok") {
			t.Errorf("%s: exit %d, stdout %q", tc.name, code, stdout)
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%s: output does not say %q:\n%s", tc.name, w, stderr)
			}
		}
	}

	warn := writeFile(t, dir, "warn.toml", "[admin]\naddr = \"0.0.0.0:8088\"\n[tls]\ndev_certs = false\n")
	code, stdout, stderr := runMain(t, "config", "check", warn)
	if code != 0 || !strings.Contains(stdout, "ok") {
		t.Errorf("warnings only: exit %d, %q %q", code, stdout, stderr)
	}
	if strings.Count(stderr, "warning:") != 2 || !strings.Contains(stderr, "no authentication") || !strings.Contains(stderr, "TLS is off") {
		t.Errorf("want two warnings (admin without auth, TLS off):\n%s", stderr)
	}
}

// The log is JSON when it does not go to a terminal, console text when it
// does (format auto), and durations carry their unit.
func TestLoggerFormat(t *testing.T) {
	var buf bytes.Buffer
	log := newLogger(configs.Log{Level: "info", Format: configs.LogAuto}, &buf)
	log.Info().Dur("age", 1500*time.Millisecond).Msg("hello")
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("auto to a pipe is not JSON: %v: %q", err, buf.String())
	}
	if line["age"] != "1.5s" {
		t.Errorf("duration logged as %v, want \"1.5s\"", line["age"])
	}

	master, slave := openPTY(t)
	log = newLogger(configs.Log{Level: "info", Format: configs.LogAuto}, slave)
	log.Info().Msg("hello terminal")
	if _, err := slave.Write([]byte("END-OF-TEST\n")); err != nil {
		t.Fatal(err)
	}
	var shown []byte
	b := make([]byte, 4096)
	for !bytes.Contains(shown, []byte("END-OF-TEST")) {
		n, err := master.Read(b)
		if err != nil {
			t.Fatal(err)
		}
		shown = append(shown, b[:n]...)
	}
	if !bytes.Contains(shown, []byte("hello terminal")) || bytes.Contains(shown, []byte(`"message"`)) {
		t.Errorf("auto on a terminal is not console output: %q", shown)
	}

	buf.Reset()
	log = newLogger(configs.Log{Level: "info", Format: configs.LogConsole}, &buf)
	log.Info().Msg("x")
	if json.Valid(bytes.TrimSpace(buf.Bytes())) {
		t.Errorf("console format wrote JSON: %q", buf.String())
	}
}
