package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/rs/zerolog"

	"cotd/engine/store"
)

// storeCmd is `cotd store migrate`: bring the configured database's schema
// up to date by hand (cotd serve does the same at start).
func storeCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "migrate" {
		fmt.Fprint(stderr, usage)
		return 2
	}
	fs := flag.NewFlagSet("store migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (TOML); empty means the embedded defaults")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		fmt.Fprintln(stderr, "cotd:", err)
		return 1
	}
	where := cfg.Store.Path
	if cfg.Store.URL != "" {
		where = store.MaskURL(cfg.Store.URL)
	}
	applied, err := store.Migrate(context.Background(), cfg.Store, zerolog.Nop())
	if err != nil {
		fmt.Fprintln(stderr, "cotd store migrate:", err)
		return 1
	}
	if len(applied) == 0 {
		fmt.Fprintf(stdout, "%s: schema already at version %d\n", where, store.SchemaVersion())
		return 0
	}
	fmt.Fprintf(stdout, "%s: applied migrations %s; schema at version %d\n", where,
		strings.Trim(fmt.Sprint(applied), "[]"), store.SchemaVersion())
	return 0
}
