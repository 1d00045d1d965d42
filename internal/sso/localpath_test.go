package sso_test

import (
	"testing"

	"github.com/airlockhq/airlock/internal/sso"
)

// TestLocalPathRefusesOtherSites: where to go after signing in is a path
// of this site or "/", whatever a browser would make of the value.
func TestLocalPathRefusesOtherSites(t *testing.T) {
	for _, next := range []string{"//evil.example", `/\evil.example`, "https://evil.example/", "/\t/evil.example",
		"/\n/evil.example", "/\r/evil.example", "/\x00/x", "/\x7f/x", "evil.example", ""} {
		if got := sso.LocalPath(next); got != "/" {
			t.Errorf("LocalPath(%q) = %q, want /", next, got)
		}
	}
	for _, next := range []string{"/runs/run_1?tab=output", "/", "/catalog#top"} {
		if got := sso.LocalPath(next); got != next {
			t.Errorf("LocalPath(%q) = %q, want it kept", next, got)
		}
	}
}
