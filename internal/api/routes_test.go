package api_test

import (
	"context"
	"strings"
	"testing"

	"github.com/airlockhq/airlock/internal/api"
	"github.com/airlockhq/airlock/internal/config"
	"github.com/airlockhq/airlock/internal/secret"
	"github.com/airlockhq/airlock/internal/store"
)

// strictEnv is a server whose policy grants a user without groups nothing,
// with one procedure, one proposed version, one proposed policy and a
// token of another user to aim at.
type strictEnv struct {
	*env
	ids map[string]string // path parameter -> an existing object's ID
}

func newStrictEnv(t *testing.T) *strictEnv {
	e := newEnv(t, func(c *config.Config) { c.PolicyFile = "testdata/strict.cedar" })
	alice := e.token("alice", e.user("alice", "staff", "payments"))
	bob := e.token("bob", e.user("bob", "staff", "ops"))
	carol := e.token("carol", e.user("carol", "staff", "admins"))
	code, out, _ := e.call("POST", "/api/v1/versions", alice, api.ProposeRequest{Source: restartV1})
	if code != 201 {
		t.Fatalf("seed proposal: %d %v", code, out)
	}
	vid := out["version"].(map[string]any)["id"].(string)
	code, out, _ = e.call("POST", "/api/v1/policies", carol, api.ProposePolicyRequest{Text: "@id(\"x\")\npermit (principal, action == Action::\"view\", resource);\n", Description: "seed"})
	if code != 201 {
		t.Fatalf("seed policy proposal: %d %v", code, out)
	}
	pid := out["id"].(string)
	_, out, _ = e.call("POST", "/api/v1/tokens", bob, api.CreateTokenRequest{Name: "bob's"})
	tid := out["info"].(map[string]any)["id"].(string)
	// A low-risk procedure bob approves, and a run of it.
	flush := strings.NewReplacer("restart-api", "flush-cache", "risk: medium", "risk: low", "[systemctl, restart, api]", "[echo, flushed]").Replace(restartV1)
	_, out, _ = e.call("POST", "/api/v1/versions", alice, api.ProposeRequest{Source: flush})
	fv := out["version"].(map[string]any)
	if code, out, _ := e.call("POST", "/api/v1/versions/"+fv["id"].(string)+"/reviews", bob, api.ReviewRequest{Decision: "approve", Digest: fv["digest"].(string)}); code != 201 {
		t.Fatalf("seed approval: %d %v", code, out)
	}
	code, out, _ = e.call("POST", "/api/v1/runs", bob, api.RunRequest{Procedure: "flush-cache", Environment: "staging"})
	if code != 201 {
		t.Fatalf("seed run: %d %v", code, out)
	}
	rid := out["id"].(string)
	e.waitRun(t, bob, rid)
	// A user change awaiting a second admin.
	code, out, _ = e.call("POST", "/api/v1/users", carol, api.CreateUserRequest{Username: "frank", Groups: []string{"admins"}})
	if code != 202 {
		t.Fatalf("seed user change: %d %v", code, out)
	}
	ucid := out["change"].(map[string]any)["id"].(string)
	return &strictEnv{env: e, ids: map[string]string{"{name}": "restart-api", "{id}": vid, "{group}": "ops",
		"{username}": "bob", "policy:{id}": pid, "token:{id}": tid, "run:{id}": rid, "{name...}": "payments/db",
		"uc:{id}": ucid}}
}

func (e *strictEnv) path(rt api.Route) string {
	p := rt.Path
	switch {
	case strings.HasPrefix(p, "/api/v1/policies/"):
		p = strings.Replace(p, "{id}", e.ids["policy:{id}"], 1)
	case strings.HasPrefix(p, "/api/v1/tokens/"):
		p = strings.Replace(p, "{id}", e.ids["token:{id}"], 1)
	case strings.HasPrefix(p, "/api/v1/user-changes/"):
		p = strings.Replace(p, "{id}", e.ids["uc:{id}"], 1)
	case strings.HasPrefix(p, "/api/v1/runs/"):
		p = strings.Replace(p, "{id}", e.ids["run:{id}"], 1)
	case strings.HasPrefix(p, "/api/v1/nodes/"):
		p = strings.Replace(p, "{name}", "web-1", 1)
	}
	for k, v := range e.ids {
		p = strings.Replace(p, k, v, 1)
	}
	return p
}

// bodies are well-formed requests, so that a refusal cannot come from
// validation before authorization.
var bodies = map[string]any{
	"POST /api/v1/users":                               api.CreateUserRequest{Username: "eve", Groups: []string{"admins"}},
	"POST /api/v1/groups/{group}/members":              api.MemberRequest{Username: "nobody"},
	"POST /api/v1/user-changes/{id}/approve":           api.UserChangeDecisionRequest{Comment: "ok"},
	"POST /api/v1/user-changes/{id}/reject":            api.UserChangeDecisionRequest{Comment: "no"},
	"POST /api/v1/procedures/{name}/retire":            api.RetireRequest{Reason: "no longer needed"},
	"POST /api/v1/versions":                            api.ProposeRequest{Source: restartV1},
	"POST /api/v1/versions/{id}/reviews":               api.ReviewRequest{Decision: "approve", Digest: "sha256:x", Comment: "ok"},
	"POST /api/v1/policies":                            api.ProposePolicyRequest{Text: "@id(\"all\")\npermit (principal, action, resource);\n", Description: "take over"},
	"POST /api/v1/policies/{id}/approve":               api.PolicyDecisionRequest{Comment: "ok"},
	"POST /api/v1/policies/{id}/reject":                api.PolicyDecisionRequest{Comment: "no"},
	"POST /api/v1/policy/explain":                      map[string]any{"username": "alice", "action": "view", "procedure": "restart-api"},
	"DELETE /api/v1/groups/{group}/members/{username}": nil,
	"POST /api/v1/procedures/{name}/plan":              api.RunRequest{Environment: "staging"},
	"POST /api/v1/runs":                                api.RunRequest{Procedure: "flush-cache", Environment: "staging"},
	"POST /api/v1/runs/{id}/approve":                   api.DecisionRequest{Binding: "sha256:x", Comment: "ok"},
	"POST /api/v1/runs/{id}/deny":                      api.DecisionRequest{Comment: "no"},
	"PUT /api/v1/nodes/{name}":                         map[string]any{"name": "web-1", "environment": "staging", "transport": "local"},
	"PUT /api/v1/secrets/{name...}":                    api.SecretRequest{Value: "hunter2-hunter2"},
	"PATCH /api/v1/secrets/{name...}":                  api.SecretScopeRequest{Scope: secret.Scope{Teams: []string{"payments"}}},
	"POST /api/v1/evidence":                            api.EvidenceRequest{From: "2026-01-01", To: "2030-01-01"},
	"POST /api/v1/schedules":                           api.ScheduleRequest{Name: "nightly", Procedure: "flush-cache", Environment: "staging", Params: map[string]any{"cache": "sessions"}, Cron: "@daily"},
	"POST /api/v1/schedules/{name}/approve":            api.DecisionRequest{Binding: "sha256:x", Comment: "ok"},
	"POST /api/v1/schedules/{name}/deny":               api.DecisionRequest{Comment: "no"},
}

// stateCounts summarizes what a refused request must not change.
func stateCounts(t *testing.T, s store.Store) map[string]int {
	ctx := context.Background()
	users, _ := s.UserList(ctx)
	procs, _ := s.ProcedureList(ctx)
	vs, _ := s.ProcedureVersionList(ctx, store.ProcedureVersionListParams{})
	pols, _ := s.PolicyVersionList(ctx, "")
	runs, _ := s.RunList(ctx, store.RunListParams{Limit: 1000})
	nodes, _ := s.NodeList(ctx)
	secrets, _ := s.SecretList(ctx)
	out := map[string]int{"users": len(users), "procedures": len(procs), "versions": len(vs), "policies": len(pols),
		"runs": len(runs), "nodes": len(nodes), "secrets": len(secrets)}
	for _, r := range runs {
		out["run:"+r.Status]++
		if r.CancelRequested {
			out["cancel requests"]++
		}
	}
	for _, v := range vs {
		out["version:"+v.Status]++
		rs, _ := s.ReviewList(ctx, v.ID)
		out["reviews"] += len(rs)
	}
	for _, p := range pols {
		out["policy:"+p.Status]++
	}
	ucs, _ := s.UserChangeList(ctx, "")
	for _, c := range ucs {
		out["user change:"+c.Status]++
	}
	for _, u := range users {
		gs, _ := s.GroupListForUser(ctx, u.ID)
		out["memberships"] += len(gs)
		toks, _ := s.TokenListForUser(ctx, u.ID)
		for _, tk := range toks {
			if tk.RevokedAt.IsZero() {
				out["live tokens"]++
			}
		}
	}
	return out
}

// TestEveryRouteDeniesWithoutGrants walks the route table: a caller whom
// policy grants nothing gets 403 or 404 from every route guarded by a
// policy action (an empty list from list routes), and nothing changes
// but the audit trail of the denials. A new route is covered by being
// added to the table.
func TestEveryRouteDeniesWithoutGrants(t *testing.T) {
	e := newStrictEnv(t)
	nobody := e.token("nobody", e.user("nobody"))
	before := stateCounts(t, e.srv.Store)
	auditBefore, _ := e.srv.Store.AuditSize(context.Background())
	checked := 0
	for _, rt := range api.Routes() {
		if rt.Public || rt.Action == "self" {
			continue
		}
		checked++
		key := rt.Method + " " + rt.Path
		body, ok := bodies[key]
		if !ok && rt.Method != "GET" {
			body = map[string]any{}
		}
		code, out, _ := e.call(rt.Method, e.path(rt), nobody, body)
		switch {
		case rt.List:
			if code != 200 || len(out["items"].([]any)) != 0 {
				t.Errorf("%s (list) for a caller without grants: %d %v; want 200 and no items", key, code, out)
			}
		case code != 403 && code != 404:
			t.Errorf("%s for a caller without grants: %d %v; want 403 or 404", key, code, out)
		}
	}
	if checked < 20 {
		t.Fatalf("only %d routes checked", checked)
	}
	after := stateCounts(t, e.srv.Store)
	for k, v := range before {
		if after[k] != v {
			t.Errorf("refused requests changed %s: %d -> %d", k, v, after[k])
		}
	}
	evs, _ := e.srv.Store.AuditList(context.Background(), store.AuditListParams{After: auditBefore - 1, Limit: 1000})
	for _, ev := range evs {
		if ev.Outcome != "denied" {
			t.Errorf("refused requests left a %s event with outcome %q", ev.Type, ev.Outcome)
		}
	}
	if len(evs) == 0 {
		t.Error("no denial was audited")
	}
}

// TestSelfRoutesTouchOnlyOwnThings: the routes every user may call act
// only on the caller's own credentials.
func TestSelfRoutesTouchOnlyOwnThings(t *testing.T) {
	e := newStrictEnv(t)
	nobody := e.token("nobody", e.user("nobody"))
	if code, _, _ := e.call("DELETE", "/api/v1/tokens/"+e.ids["token:{id}"], nobody, nil); code != 404 {
		t.Fatalf("revoking another user's token: %d, want 404", code)
	}
	_, out, _ := e.call("GET", "/api/v1/tokens", nobody, nil)
	if items := out["items"].([]any); len(items) != 1 || items[0].(map[string]any)["name"] != "cli" {
		t.Fatalf("token list shows others' tokens: %v", out)
	}
	// Explaining one's own access is allowed, but reveals nothing one
	// cannot see: a hidden procedure is answered as one that does not
	// exist; someone else's access, or for another requester, is refused.
	code, out, _ := e.call("POST", "/api/v1/policy/explain", nobody, map[string]any{"username": "nobody", "action": "view", "procedure": "restart-api"})
	_, none, _ := e.call("POST", "/api/v1/policy/explain", nobody, map[string]any{"username": "nobody", "action": "view", "procedure": "no-such-procedure"})
	msg := func(m map[string]any) string {
		e, _ := m["error"].(map[string]any)
		s, _ := e["message"].(string)
		return s
	}
	if code != 400 || msg(out) != strings.Replace(msg(none), "no-such-procedure", "restart-api", 1) {
		t.Fatalf("explain self about a hidden procedure: %d %v; for a missing one: %v", code, out, none)
	}
	if code, out, _ := e.call("POST", "/api/v1/policy/explain", nobody, map[string]any{"username": "nobody", "action": "run", "requester": "alice", "procedure": "restart-api"}); code != 403 {
		t.Fatalf("explain for another requester: %d %v", code, out)
	}
}

// TestInvisibleObjectsAreNotFound: what a caller may not view is 404,
// exactly like what does not exist.
func TestInvisibleObjectsAreNotFound(t *testing.T) {
	e := newStrictEnv(t)
	nobody := e.token("nobody", e.user("nobody"))
	for _, path := range []string{"/api/v1/procedures/restart-api", "/api/v1/procedures/restart-api/versions",
		"/api/v1/versions/" + e.ids["{id}"], "/api/v1/versions/restart-api@1"} {
		code, out, _ := e.call("GET", path, nobody, nil)
		missing := strings.Replace(path, "restart-api", "no-such-procedure", 1)
		missing = strings.Replace(missing, e.ids["{id}"], "pv_nosuchversion", 1)
		code2, out2, _ := e.call("GET", missing, nobody, nil)
		if code != 404 || code2 != 404 || errCode(out) != errCode(out2) {
			t.Errorf("%s: %d %v; a missing object: %d %v", path, code, out, code2, out2)
		}
	}
}
