package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStoreMigrate(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "data", "cotd.db")
	cfg := filepath.Join(dir, "cotd.toml")
	if err := os.WriteFile(cfg, []byte("[store]\npath = \""+db+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"store", "migrate", "--config", cfg}, &out, &errOut); code != 0 {
		t.Fatalf("first migrate: %d %s", code, errOut.String())
	}
	if want := db + ": applied migrations 1; schema at version 1\n"; out.String() != want {
		t.Errorf("first migrate said %q, want %q", out.String(), want)
	}
	out.Reset()
	if code := run([]string{"store", "migrate", "--config", cfg}, &out, &errOut); code != 0 {
		t.Fatalf("second migrate: %d %s", code, errOut.String())
	}
	if want := db + ": schema already at version 1\n"; out.String() != want {
		t.Errorf("second migrate said %q, want %q", out.String(), want)
	}
	// A file that is not a database is refused with its name.
	junk := filepath.Join(dir, "junk.db")
	if err := os.WriteFile(junk, []byte("not a database"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte("[store]\npath = \""+junk+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	errOut.Reset()
	if code := run([]string{"store", "migrate", "--config", cfg}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), junk) {
		t.Errorf("junk file: %d %q", code, errOut.String())
	}
	if code := run([]string{"store"}, &out, &errOut); code != 2 {
		t.Errorf("bare store: %d", code)
	}
}
