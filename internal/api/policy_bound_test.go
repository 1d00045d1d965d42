package api_test

import (
	"strings"
	"testing"
)

// TestWhatIfPolicyTextIsBounded: any signed-in user could send policy
// text deep enough to crash the server. Now only those who may manage
// policy send policy text at all, and theirs is refused past the bounds,
// with the server still serving.
func TestWhatIfPolicyTextIsBounded(t *testing.T) {
	d := newDemoEnv(t, nil)
	deep := "@id(\"x\")\npermit (principal, action, resource) when { " + strings.Repeat("(", 520000) + "true" + strings.Repeat(")", 520000) + " };"
	q := map[string]any{"username": "alice", "action": "view", "procedure": "flush-cache", "policy_text": deep}
	if code, out, _ := d.call("POST", "/api/v1/policy/explain", d.tok["alice"], q); code != 403 {
		t.Fatalf("policy text from a user who may not manage policy: %d %v", code, out)
	}
	code, out, _ := d.call("POST", "/api/v1/policy/explain", d.tok["bob"], q)
	if code != 400 || !strings.Contains(strings.ToLower(out["error"].(map[string]any)["message"].(string)), "nested deeper than 64") {
		t.Fatalf("deeply nested policy text from an admin: %d %v", code, out)
	}
	if code, out, _ := d.call("POST", "/api/v1/policy/explain", d.tok["alice"], map[string]any{"username": "alice", "action": "view", "procedure": "flush-cache"}); code != 200 {
		t.Fatalf("the server after the attempts: %d %v", code, out)
	}
}
