package auth

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImports keeps auth a leaf: the standard library and its own three
// third-party needs, no other cotd package.
func TestImports(t *testing.T) {
	allowed := map[string]bool{
		"github.com/BurntSushi/toml": true,
		"golang.org/x/crypto/bcrypt": true,
		"golang.org/x/sys/unix":      true,
	}
	files, err := filepath.Glob("*.go")
	if err != nil || len(files) == 0 {
		t.Fatal(files, err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			stdlib := !strings.Contains(strings.Split(p, "/")[0], ".") && p != "cotd" && !strings.HasPrefix(p, "cotd/")
			if !stdlib && !allowed[p] {
				t.Errorf("%s imports %s", name, p)
			}
		}
	}
}
