package main

import (
	"strings"
	"testing"

	"github.com/airlockhq/airlock/internal/testenv"
)

// TestLoginSaysWhichProfileIsCurrent: logging in as erin with --profile
// erin after alice says that erin's profile is now the current one and
// how to switch back; `profiles list` marks the current profile and
// `profiles use` switches, after which commands act as that user; an
// unknown profile is a usage error naming the ones there are.
func TestLoginSaysWhichProfileIsCurrent(t *testing.T) {
	d := testenv.DemoServer(t)
	url := d.Serve(t)
	t.Setenv("AIRLOCK_CONFIG_DIR", t.TempDir())
	t.Setenv("AIRLOCK_SERVER", "")
	t.Setenv("AIRLOCK_TOKEN", "")
	login := func(profile, user string) string {
		t.Helper()
		code, out, stderr := runCLI(t, d.Passwords[user]+"\n", "--profile", profile, "login", "--server", url, "--username", user, "--password-stdin")
		if code != 0 {
			t.Fatalf("login %s: %d %s %s", user, code, out, stderr)
		}
		return out
	}
	if out := login("alice", "alice"); !strings.Contains(out, `Profile "alice" is the current one: commands without --profile act as alice.`) {
		t.Fatalf("first login: %q", out)
	}
	out := login("erin", "erin")
	if !strings.Contains(out, `Profile "erin" is now the current one (it was "alice"): commands without --profile act as erin. Switch back with: airlock profiles use alice`) {
		t.Fatalf("second login: %q", out)
	}
	if code, out, _ := runCLI(t, "", "whoami"); code != 0 || !strings.Contains(out, "erin") {
		t.Fatalf("whoami after erin's login: %d %q", code, out)
	}
	code, out, _ := runCLI(t, "", "profiles", "list")
	if code != 0 || !strings.Contains(out, "*  erin") || strings.Contains(out, "*  alice") {
		t.Fatalf("profiles list: %d\n%s", code, out)
	}
	if code, out, _ := runCLI(t, "", "profiles", "use", "alice"); code != 0 || !strings.Contains(out, `Profile "alice" is now the current one`) {
		t.Fatalf("profiles use: %d %q", code, out)
	}
	if code, out, _ := runCLI(t, "", "whoami"); code != 0 || !strings.Contains(out, "alice") {
		t.Fatalf("whoami after profiles use alice: %d %q", code, out)
	}
	if code, _, stderr := runCLI(t, "", "profiles", "use", "mallory"); code != 2 || !strings.Contains(stderr, "alice, erin") {
		t.Fatalf("profiles use mallory: %d %q", code, stderr)
	}
}
