package main

import (
	"fmt"
	"io"

	"cotd/configs"
	"cotd/engine"
	"cotd/engine/cluster"
)

// configCmd implements `cotd config`. Exit codes: 0 ok, 1 problems, 2 usage.
func configCmd(args []string, stdout, stderr io.Writer) int {
	switch {
	case len(args) == 0:
		fmt.Fprintf(stderr, "cotd config: missing subcommand: check FILE or default\n%s", usage)
		return 2
	case len(args) == 1 && (args[0] == "help" || args[0] == "-h" || args[0] == "--help"):
		fmt.Fprint(stdout, usage)
		return 0
	case len(args) == 2 && args[0] == "check":
		return configCheck(args[1], stdout, stderr)
	case len(args) == 1 && args[0] == "default":
		_, _ = stdout.Write(configs.DefaultTOML())
		return 0
	}
	fmt.Fprintf(stderr, "cotd config: unknown use %q: check FILE or default\n%s", args, usage)
	return 2
}

// configCheck prints every problem of the file at path, one a line: the
// configuration's own, then those of the files it names (certificate, key,
// CA, CRL, users), loaded as serve would load them; and its warnings.
func configCheck(path string, stdout, stderr io.Writer) int {
	cfg, problems := configs.Check(path)
	if cfg != nil {
		problems = append(problems, engine.CheckFiles(cfg)...)
		problems = append(problems, cluster.CheckFiles(cfg.Cluster)...)
		for _, w := range cfg.Warnings() {
			fmt.Fprintf(stderr, "%s: warning: %s\n", path, w)
		}
	}
	for _, p := range problems {
		fmt.Fprintf(stderr, "%s: %v\n", path, p)
	}
	if len(problems) > 0 {
		fmt.Fprintf(stderr, "%s: %d problem(s)\n", path, len(problems))
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok\n", path)
	return 0
}
