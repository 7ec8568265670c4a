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

// allowed lists, for each top-level package tree, which project trees it
// may import. Arrows point one way: cmd -> engine -> {tlsstate, cot,
// configs}; bench -> {cot, tlsstate}; nothing imports cmd.
var allowed = map[string][]string{
	"cot":      {},
	"tlsstate": {},
	"configs":  {},
	"engine":   {"engine", "cot", "tlsstate", "configs"},
	"bench":    {"bench", "cot", "tlsstate", "configs"},
	"cmd":      {"engine", "bench", "cot", "tlsstate", "configs"},
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
		top := strings.Split(filepath.ToSlash(rel), "/")[0]
		rules, ok := allowed[top]
		if !ok {
			t.Errorf("%s: top-level directory %q has no import rule", rel, top)
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
			if p != "cotd" && !strings.HasPrefix(p, "cotd/") {
				continue
			}
			target := strings.Split(strings.TrimPrefix(p, "cotd/"), "/")[0]
			if target == top && top != "cmd" {
				continue
			}
			if isTest && top == "engine" && target == "engine" {
				continue
			}
			ok := false
			for _, a := range rules {
				ok = ok || a == target
			}
			if !ok {
				t.Errorf("%s imports %s: %s may import only %v", rel, p, top, rules)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 10 {
		t.Fatalf("only %d files checked: the walk is not seeing the tree", checked)
	}
}
