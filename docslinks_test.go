package airlock_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDocsLinkOnlyInsideTheRepository: the README and docs/ are read in a
// clone, often offline; every link points at a file of the repository
// that exists (a link to the web, or to a file outside the repository,
// is refused).
func TestDocsLinkOnlyInsideTheRepository(t *testing.T) {
	files, _ := filepath.Glob("docs/*.md")
	files = append(files, "README.md", "CHANGELOG.md", "bench/README.md")
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	checked := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(string(b), -1) {
			target, _, _ := strings.Cut(m[1], "#")
			checked++
			switch {
			case strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:"):
				t.Errorf("%s links outside the repository: %s", f, m[1])
			case target == "":
				// an anchor in the same file
			default:
				path := filepath.Clean(filepath.Join(filepath.Dir(f), target))
				if strings.HasPrefix(path, "..") {
					t.Errorf("%s links outside the repository: %s", f, m[1])
				} else if _, err := os.Stat(path); err != nil {
					t.Errorf("%s links to %s, which does not exist", f, m[1])
				}
			}
		}
	}
	if checked < 20 {
		t.Fatalf("only %d links found: the pattern finds nothing", checked)
	}
}
