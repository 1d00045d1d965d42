package api_test

import (
	"strings"
	"testing"

	"github.com/airlockhq/airlock/internal/api"
)

// TestVersionJSONShowsNotifyRules: the API's version carries the notify
// rules in its definition and in the YAML reviewers read, and a proposal
// with a bad rule is refused at its line and column.
func TestVersionJSONShowsNotifyRules(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.token("alice", e.user("alice", "dev", "payments"))
	bob := e.token("bob", e.user("bob", "ops"))
	src := strings.Replace(restartV1, "steps:", "notify:\n  - kinds: [run_finished]\n    email: [payments-oncall@example.com]\n    slack: C0123ABCDEF\nsteps:", 1)

	code, out, _ := e.call("POST", "/api/v1/versions", alice, api.ProposeRequest{Source: src, File: "ops/restart.yaml"})
	if code != 201 {
		t.Fatalf("propose: %d %v", code, out)
	}
	id := out["version"].(map[string]any)["id"].(string)
	code, out, _ = e.call("GET", "/api/v1/versions/"+id, bob, nil)
	if code != 200 {
		t.Fatalf("get version: %d %v", code, out)
	}
	rules, _ := out["definition"].(map[string]any)["notify"].([]any)
	if len(rules) != 1 {
		t.Fatalf("definition.notify: %v", out["definition"])
	}
	r := rules[0].(map[string]any)
	if r["slack"] != "C0123ABCDEF" || r["email"].([]any)[0] != "payments-oncall@example.com" || r["kinds"].([]any)[0] != "run_finished" {
		t.Fatalf("rule: %v", r)
	}
	if y, _ := out["yaml"].(string); !strings.Contains(y, "notify:\n  - kinds:\n      - run_finished\n    email:\n      - payments-oncall@example.com\n    slack: C0123ABCDEF\n") {
		t.Fatalf("yaml lacks the rules:\n%s", y)
	}

	bad := strings.Replace(src, "C0123ABCDEF", "'#payments'", 1)
	code, out, _ = e.call("POST", "/api/v1/versions", alice, api.ProposeRequest{Source: bad, File: "ops/restart.yaml"})
	if msg, _ := out["error"].(map[string]any)["message"].(string); code != 400 || !strings.Contains(msg, `ops/restart.yaml:10:12: notify[0].slack: expected a Slack channel ID`) {
		t.Fatalf("bad rule: %d %v", code, out)
	}
}
