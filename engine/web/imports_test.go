package web

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestSeesTheEngineOnlyThroughDirectory: of the engine, the console may
// use engine/directory and nothing else (ARCHITECTURE.md §10), which the
// tree-wide rule in engine/deps_test.go cannot say (it works on top-level
// trees).
func TestSeesTheEngineOnlyThroughDirectory(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	allowed := []string{"cotd/cot", "cotd/configs", "cotd/engine/directory"}
	checked := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, imp := range af.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(p, "cotd/") && !slices.Contains(allowed, p) {
				t.Errorf("%s imports %s; the console may use only %v of cotd", f, p, allowed)
			}
		}
	}
	if checked < 3 {
		t.Fatalf("only %d files checked", checked)
	}
}
