package airlock_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPackagesHaveDocs fails when a package has no package doc comment:
// each says what it owns and what it must not import.
func TestPackagesHaveDocs(t *testing.T) {
	dirs := map[string]bool{}
	filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
			dirs[filepath.Dir(p)] = true
		}
		return nil
	})
	for dir := range dirs {
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		documented, name := false, ""
		for _, path := range files {
			if strings.HasSuffix(path, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ParseComments|parser.PackageClauseOnly)
			if err != nil {
				t.Fatal(err)
			}
			name = f.Name.Name
			if f.Doc != nil && strings.HasPrefix(f.Doc.Text(), "Package "+name+" ") || f.Doc != nil && name == "main" && strings.HasPrefix(f.Doc.Text(), "Command ") {
				documented = true
			}
		}
		if !documented {
			t.Errorf("package %s (%s) has no doc comment", name, dir)
		}
	}
}

// TestPurePackages keeps the security-critical packages free of I/O.
func TestPurePackages(t *testing.T) {
	banned := []string{`"net/http"`, `"database/sql"`, `"os/exec"`}
	for _, dir := range []string{"internal/audit", "internal/procedure", "internal/review", "internal/policy", "internal/secret"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, _ := os.ReadFile(f)
			for _, imp := range banned {
				if strings.Contains(string(b), imp) {
					t.Errorf("%s imports %s; the package must stay pure", f, imp)
				}
			}
		}
	}
}
