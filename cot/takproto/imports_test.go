package takproto

import (
	"go/parser"
	gotoken "go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImports keeps the package's dependencies to the standard library, protowire and
// cotd/cot (tests may use more of google.golang.org/protobuf to cross-check the codec).
func TestImports(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := gotoken.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			first, _, _ := strings.Cut(path, "/")
			switch {
			case path == "cotd/cot", path == "google.golang.org/protobuf/encoding/protowire":
			case strings.Contains(first, "."), first == "cotd":
				t.Errorf("%s imports %q: takproto may import only the standard library, protowire and cotd/cot", name, path)
			}
		}
	}
}
