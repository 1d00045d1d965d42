package airlock_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestNoFixedDateBesideWallClock fails when a test file (or a package
// that exists only for tests) writes a fixed date and also reads the
// wall clock: such a test compares times it made with today's and
// passes only on some days. A test that needs both injects a clock, or
// keeps its wall-clock part in a file of its own that derives every
// time from one base (see internal/store/storetest/anyday.go).
func TestNoFixedDateBesideWallClock(t *testing.T) {
	fixed := regexp.MustCompile(`time\.Date\(\s*\d{4}\s*,`)
	wall := regexp.MustCompile(`time\.(Now|Since|Until)\(`)
	testOnly := []string{"internal/store/storetest/", "internal/testenv/"}
	checked := 0
	filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") {
			return nil
		}
		isTest := strings.HasSuffix(p, "_test.go")
		for _, dir := range testOnly {
			isTest = isTest || strings.HasPrefix(filepath.ToSlash(p), dir)
		}
		if !isTest {
			return nil
		}
		checked++
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if f, w := fixed.FindIndex(b), wall.FindIndex(b); f != nil && w != nil {
			t.Errorf("%s:%d writes a fixed date and %s:%d reads the wall clock; derive every time from one base or inject a clock",
				p, line(b, f[0]), p, line(b, w[0]))
		}
		return nil
	})
	if checked < 50 {
		t.Fatalf("checked only %d test files; is the walk rooted at the module?", checked)
	}
}

func line(b []byte, off int) int { return 1 + strings.Count(string(b[:off]), "\n") }
