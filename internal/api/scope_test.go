package api_test

import (
	"strings"
	"testing"

	"github.com/airlockhq/airlock/internal/api"
)

// scoped makes a token of user's limited to scope.
func (d *demoEnv) scoped(t *testing.T, user string, scope ...string) string {
	t.Helper()
	code, out, _ := d.call("POST", "/api/v1/tokens", d.tok[user], api.CreateTokenRequest{Name: "scoped", Scope: scope})
	if code != 201 {
		t.Fatalf("scoped token %v: %d %v", scope, code, out)
	}
	return out["token"].(string)
}

// TestScopedTokens: a token limited to proposing proposes and does
// nothing else its owner could; one limited to running a procedure in an
// environment runs exactly that (and sees those runs); neither creates a
// token; a refusal names the scope in the audit log.
func TestScopedTokens(t *testing.T) {
	d := newDemoEnv(t, nil)
	if code, out, _ := d.call("POST", "/api/v1/tokens", d.tok["alice"], api.CreateTokenRequest{Name: "x", Scope: []string{"deploy:everything"}}); code != 400 ||
		out["error"].(map[string]any)["field"] != "scope" {
		t.Fatalf("a bad scope: %d %v", code, out)
	}
	ci := d.scoped(t, "alice", "propose")
	src := strings.Replace(echoProc, "name: echo-params", "name: echo-ci", 1)
	if code, out, _ := d.call("POST", "/api/v1/versions", ci, api.ProposeRequest{Source: src}); code != 201 {
		t.Fatalf("the CI token proposes: %d %v", code, out)
	}
	if code, _, _ := d.call("GET", "/api/v1/procedures/flush-cache", ci, nil); code != 200 {
		t.Fatalf("the CI token reads a procedure it may propose to: %d", code)
	}
	if code, _ := d.request(t, "alice", api.RunRequest{Procedure: "flush-cache", Environment: "staging", Params: map[string]any{"cache": "sessions"}}); code != 201 {
		t.Fatalf("alice herself runs: %d", code)
	}
	if code, out, _ := d.call("POST", "/api/v1/runs", ci, api.RunRequest{Procedure: "flush-cache", Environment: "staging", Params: map[string]any{"cache": "sessions"}}); code != 403 {
		t.Fatalf("the CI token runs: %d %v", code, out)
	}
	if _, out, _ := d.call("GET", "/api/v1/runs", ci, nil); len(out["items"].([]any)) != 0 {
		t.Fatalf("the CI token lists runs: %v", out["items"])
	}
	if code, _, _ := d.call("POST", "/api/v1/tokens", ci, api.CreateTokenRequest{Name: "wider"}); code != 403 {
		t.Fatalf("the CI token makes an unscoped token: %d", code)
	}
	// It revokes itself, no other token of alice's.
	_, toks, _ := d.call("GET", "/api/v1/tokens", d.tok["alice"], nil)
	other := toks["items"].([]any)[0].(map[string]any)["id"].(string)
	if code, _, _ := d.call("DELETE", "/api/v1/tokens/"+other, ci, nil); code != 403 {
		t.Fatalf("the CI token revokes another token: %d", code)
	}
	// Nor a way around its scope through chat, where a linked account
	// acts with alice's full rights.
	if code, _, _ := d.call("POST", "/api/v1/me/chat-links/code", ci, nil); code != 403 {
		t.Fatalf("the CI token asks for a chat link code: %d", code)
	}
	runner := d.scoped(t, "alice", "run:flush-cache@staging")
	code, r, _ := d.call("POST", "/api/v1/runs", runner, api.RunRequest{Procedure: "flush-cache", Environment: "staging", Params: map[string]any{"cache": "sessions"}})
	if code != 201 {
		t.Fatalf("the run token runs in staging: %d %v", code, r)
	}
	if code, _, _ := d.call("GET", "/api/v1/runs/"+r["id"].(string), runner, nil); code != 200 {
		t.Fatalf("the run token follows its run: %d", code)
	}
	for _, rr := range []api.RunRequest{
		{Procedure: "flush-cache", Environment: "production", Params: map[string]any{"cache": "sessions"}},
		{Procedure: "rotate-logs", Environment: "staging"},
	} {
		// 404 where the token may not even see the procedure.
		if code, out, _ := d.call("POST", "/api/v1/runs", runner, rr); code != 403 && code != 404 {
			t.Errorf("the run token runs %s in %s: %d %v", rr.Procedure, rr.Environment, code, out)
		}
	}
	if code, _, _ := d.call("POST", "/api/v1/versions", runner, api.ProposeRequest{Source: src}); code != 403 && code != 404 {
		t.Fatalf("the run token proposes: %d", code)
	}
	found := false
	for _, e := range d.events("authz.deny") {
		found = found || strings.Contains(string(e.Details), "outside the token's scope")
	}
	if !found {
		t.Fatal("no refusal names the token's scope")
	}
	_, toks, _ = d.call("GET", "/api/v1/tokens", d.tok["alice"], nil)
	if !strings.Contains(toJSON(toks), `"scope":["run:flush-cache@staging"]`) {
		t.Fatalf("tokens list: %v", toks)
	}
}
