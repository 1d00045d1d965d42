package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlockhq/airlock/internal/authz"
)

func TestPolicyDualControlFromTheCLI(t *testing.T) {
	as := inProcess(t)
	alice, root1, root2 := as("alice"), as("root1"), as("root2")
	// Anyone may ask about themselves; a missing procedure is named.
	if code, _, stderr := alice.run("policy", "explain", "--user", "alice", "--action", "run", "--procedure", "flush-cache", "--env", "staging"); code != 1 || !strings.Contains(stderr, `no procedure "flush-cache"`) {
		t.Fatalf("explain a missing procedure: %d %s", code, stderr)
	}
	if code, out, _ := alice.run("policy", "explain", "--user", "alice", "--action", "readAudit"); code != 0 || !strings.Contains(out, "DENY: alice may readAudit? no policy permits it (default deny)") {
		t.Fatalf("explain readAudit: %d %s", code, out)
	}
	if code, out, _ := root1.run("policy", "show"); code != 0 || !strings.Contains(out, `@id("admins-administer")`) {
		t.Fatalf("show: %d %s", code, out)
	}
	text := authz.DefaultPolicy("admins", []string{"ops", "security"}) + "\n@id(\"ops-runs-everything\")\npermit (principal in Group::\"ops\", action in [Action::\"run\", Action::\"request\", Action::\"approveRun\"], resource);\n"
	file := filepath.Join(t.TempDir(), "policy.cedar")
	os.WriteFile(file, []byte(text), 0o600)
	code, out, stderr := root1.run("policy", "propose", file, "-m", "ops runs everything")
	if code != 0 || !strings.Contains(out, "Proposed policy v2") {
		t.Fatalf("propose: %d %s %s", code, out, stderr)
	}
	id := strings.Fields(out[strings.Index(out, "(")+1:])[0]
	id = strings.TrimSuffix(id, ").")
	if code, _, stderr := root1.run("policy", "approve", id); code != 1 || !strings.Contains(stderr, "nobody approves their own policy change") {
		t.Fatalf("self approval: %d %s", code, stderr)
	}
	if code, out, _ := root1.run("policy", "diff", id); code != 0 || !strings.Contains(out, `+@id("ops-runs-everything")`) {
		t.Fatalf("diff: %d %s", code, out)
	}
	if code, out, stderr := root2.run("policy", "approve", id, "-m", "ok"); code != 0 || !strings.Contains(out, "is now active") {
		t.Fatalf("second admin approves: %d %s %s", code, out, stderr)
	}
	if code, out, _ := root2.run("policy", "list", "-o", "json"); code != 0 || strings.Count(out, `"status": "active"`) != 1 {
		t.Fatalf("list: %s", out)
	}
	// Not an admin: no policy reading.
	if code, _, _ := alice.run("policy", "access-review"); code != 1 {
		t.Fatalf("alice's access review: %d", code)
	}
	if code, _, _ := alice.run("policy", "explain", "--action", "run"); code != 2 {
		t.Fatalf("missing --user is a usage error: %d", code)
	}
}

// TestExplainLeadsWithTheOutcome: explain's first line is what the
// person asking cares about — who can run or request it, and who can
// approve it — before the deciding policies.
func TestExplainLeadsWithTheOutcome(t *testing.T) {
	as := demoInProcess(t)
	for _, tc := range []struct{ user, env, want string }{
		{"alice", "production", "alice can request flush-cache in production; it waits for approval (policy allows only a request). bob can approve it."},
		{"alice", "staging", "alice can run flush-cache in staging; it runs at once."},
		{"dana", "staging", "dana can neither run nor request flush-cache in staging."},
	} {
		code, out, stderr := as("bob").run("policy", "explain", "--user", tc.user, "--action", "run", "--procedure", "flush-cache", "--env", tc.env, "-p", "cache=sessions")
		if first, _, _ := strings.Cut(out, "\n"); code != 0 || first != tc.want {
			t.Errorf("explain %s in %s: %d %q %s\nwant first line %q", tc.user, tc.env, code, out, stderr, tc.want)
		}
	}
}
