package engine_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// rule says what the non-test files of a package tree may import: project
// trees (by their paths under cotd/, each with what lies below it) and
// modules outside the standard library (by path prefix; nil means any).
type rule struct {
	project  []string
	external []string
	// isolated: the package may not use the rest of its own tree (the
	// engine's narrow interfaces import nothing of the engine).
	isolated bool
	// deny: project trees it may not import even where project allows.
	deny []string
}

// rules, by package directory; the longest matching prefix applies. Arrows
// point one way: cmd -> engine -> {cot, tlsstate, configs}; bench -> {cot,
// tlsstate, configs}; takclient (cotd send/listen) -> cot and the standard
// library only; the leaves import no project package, and nothing imports
// cmd.
var rules = map[string]rule{
	"cot":          {external: []string{"google.golang.org/protobuf/encoding/protowire"}},
	"cot/takproto": {project: []string{"cot"}, external: []string{"google.golang.org/protobuf/encoding/protowire"}},
	"tlsstate":     {external: []string{"github.com/refraction-networking/utls"}},
	"tlsstate/pki": {external: []string{"software.sslmate.com/src/go-pkcs12"}},
	"configs":      {external: []string{"github.com/BurntSushi/toml"}},
	"engine/auth":  {project: []string{"internal/flock"}, external: []string{"github.com/BurntSushi/toml", "golang.org/x/crypto/bcrypt"}},
	"engine/store": {project: []string{"engine", "cot", "configs"}, external: []string{"github.com/jackc/pgx/v5", "github.com/rs/zerolog", "modernc.org/sqlite"}},
	"engine":       {project: []string{"engine", "cot", "tlsstate", "configs"}},
	// The store feed sees the engine only through Directory.
	"engine/storefeed": {project: []string{"engine/directory", "engine/store", "cot", "configs"},
		external: []string{"github.com/rs/zerolog"}, isolated: true},
	// The one interface between the engine and its peers (ARCHITECTURE.md §10).
	"engine/directory": {project: []string{"cot"}, external: []string{}, isolated: true},
	// Enrollment: a peer of the engine, reaching it only through directory.
	"engine/enroll": {project: []string{"tlsstate", "configs", "engine/auth", "engine/directory", "engine/metrics", "engine/store", "internal/netlimit", "internal/flock"},
		external: []string{"github.com/rs/zerolog", "github.com/skip2/go-qrcode"}, isolated: true},
	// A peer of the engine (ARCHITECTURE.md §10): the Directory, the users
	// file, the store and the metrics writer, nothing of the reactor.
	"engine/marti": {project: []string{"engine/directory", "engine/auth", "engine/metrics", "engine/store", "cot", "tlsstate", "configs", "internal/netlimit"},
		external: []string{"github.com/rs/zerolog"}, isolated: true, deny: []string{"cot/takproto"}},
	// The admin API sees the engine only through Directory.
	"engine/admin": {project: []string{"engine/directory", "configs", "cot"}, external: []string{"github.com/rs/zerolog"},
		isolated: true, deny: []string{"cot/takproto"}},
	// The non-blocking log writer: the standard library only.
	"engine/logsink": {external: []string{}, isolated: true},

	// The cluster link sees the engine only through Directory and Remote.
	"engine/cluster": {project: []string{"engine/directory", "engine/metrics", "configs", "cot"},
		external: []string{"github.com/rs/zerolog", "github.com/nats-io/nats-server/v2", "github.com/nats-io/nats.go"},
		isolated: true, deny: []string{"cot/takproto"}},
	// The broker routes bytes: the engine hands it the wire encoders.
	"engine/broker": {project: []string{"engine", "cot"}, external: []string{"github.com/rs/zerolog"}, deny: []string{"cot/takproto"}},
	// The web console sees the engine only through Directory.
	"engine/web": {project: []string{"engine/directory", "configs", "cot"},
		external: []string{"github.com/coder/websocket", "github.com/rs/zerolog"}, isolated: true, deny: []string{"cot/takproto"}},
	"bench": {project: []string{"bench", "cot", "tlsstate", "configs"}},
	"cmd":   {project: []string{"engine", "bench", "takclient", "cot", "tlsstate", "configs"}},

	// cotd send / cotd listen: a small client on cot and the standard library.
	"takclient": {project: []string{"cot"}, external: []string{}},
	// The one poll helper for tests: the standard library only, so that the
	// packages enginetest depends on can use it too.
	"internal/poll": {external: []string{}},
	// The connection limiter shared by the HTTPS peers (enroll, marti): a
	// leaf on the standard library.
	"internal/netlimit": {external: []string{}},
	// The file lock shared by the users file (auth) and the enrollment
	// state file: a leaf on the standard library and x/sys/unix.
	"internal/flock": {external: []string{"golang.org/x/sys/unix"}},
	// The test harness may use the project's test helpers.
	"engine/enginetest": {project: []string{"engine", "cot", "tlsstate", "configs", "internal"}},
}

func ruleFor(dir string) (rule, bool) {
	best, found := "", false
	for prefix := range rules {
		if (dir == prefix || strings.HasPrefix(dir, prefix+"/")) && len(prefix) >= len(best) {
			best, found = prefix, true
		}
	}
	return rules[best], found
}

func TestImportsPointOneWay(t *testing.T) {
	root := ".."
	fset := token.NewFileSet()
	checked := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); name != ".." && (strings.HasPrefix(name, ".") || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		dir := filepath.ToSlash(filepath.Dir(rel))
		r, ok := ruleFor(dir)
		if !ok {
			t.Errorf("%s: directory %q has no import rule", rel, dir)
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		checked++
		isTest := strings.HasSuffix(path, "_test.go")
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			first := strings.SplitN(p, "/", 2)[0]
			switch {
			case first == "cotd":
				target := strings.SplitN(strings.TrimPrefix(p, "cotd/"), "/", 2)[0]
				if target == "cmd" {
					t.Errorf("%s imports %s: nothing imports cmd", rel, p)
					continue
				}
				if !isTest && under(r.deny, strings.TrimPrefix(p, "cotd/")) {
					t.Errorf("%s imports %s: %s may not import %v", rel, p, dir, r.deny)
					continue
				}
				if isTest || target == strings.SplitN(dir, "/", 2)[0] && r.project != nil && !r.isolated {
					continue // tests may use any harness; a tree may use itself
				}
				if !under(r.project, strings.TrimPrefix(p, "cotd/")) {
					t.Errorf("%s imports %s: %s may import only %v of the project", rel, p, dir, r.project)
				}
			case strings.Contains(first, "."):
				if isTest || r.external == nil {
					continue
				}
				allowed := false
				for _, e := range r.external {
					allowed = allowed || p == e || strings.HasPrefix(p, e+"/")
				}
				if !allowed {
					t.Errorf("%s imports %s: %s may import only %v outside the standard library", rel, p, dir, r.external)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 50 {
		t.Fatalf("only %d files checked: the walk is not seeing the tree", checked)
	}
}

// under reports whether the project path p is one of trees or below one.
func under(trees []string, p string) bool {
	for _, t := range trees {
		if p == t || strings.HasPrefix(p, t+"/") {
			return true
		}
	}
	return false
}
