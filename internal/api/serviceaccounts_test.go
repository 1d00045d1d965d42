package api_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/airlockhq/airlock/internal/api"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/config"
	"github.com/airlockhq/airlock/internal/demo"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/testenv"
)

// newServiceAccount has bob propose the service account name owned by
// payments, in groups, and carol approve it; it returns the change.
func (d *demoEnv) newServiceAccount(t *testing.T, name string, groups ...string) map[string]any {
	t.Helper()
	code, out, _ := d.call("POST", "/api/v1/users", d.tok["bob"], api.CreateUserRequest{Username: name, Kind: "service", OwnerTeam: "payments", Groups: groups})
	if code != 202 || out["one_time_password"] != nil {
		t.Fatalf("bob proposes service account %s: %d %v", name, code, out)
	}
	id := out["change"].(map[string]any)["id"].(string)
	code, out, _ = d.call("POST", "/api/v1/user-changes/"+id+"/approve", d.tok["carol"], api.UserChangeDecisionRequest{Comment: "CI"})
	if code != 200 || out["one_time_password"] != nil {
		t.Fatalf("carol approves service account %s: %d %v (want no one-time password)", name, code, out)
	}
	return out["change"].(map[string]any)
}

// serviceToken has who make a token for the service account svc.
func (d *demoEnv) serviceToken(t *testing.T, who, svc string, scope ...string) (string, string) {
	t.Helper()
	code, out, _ := d.call("POST", "/api/v1/users/"+svc+"/tokens", d.tok[who], api.CreateTokenRequest{Name: "ci", TTL: "720h", Scope: scope})
	if code != 201 {
		t.Fatalf("%s makes a token for %s: %d %v", who, svc, code, out)
	}
	return out["token"].(string), out["info"].(map[string]any)["id"].(string)
}

// TestServiceAccountIsCreatedUnderDualControl: a service account is a
// create_user change like any other — one admin proposes, another
// approves, nobody approves their own — with an existing owner team and
// no password for anyone; it is listed with its kind and owner.
func TestServiceAccountIsCreatedUnderDualControl(t *testing.T) {
	d := newDemoEnv(t, nil)
	for _, c := range []struct {
		req   api.CreateUserRequest
		field string
	}{
		{api.CreateUserRequest{Username: "ci", Kind: "service", OwnerTeam: "no-such-team"}, "owner_team"},
		{api.CreateUserRequest{Username: "ci", Kind: "service"}, "owner_team"},
		{api.CreateUserRequest{Username: "ci", OwnerTeam: "payments"}, "owner_team"},
		{api.CreateUserRequest{Username: "ci", Kind: "robot", OwnerTeam: "payments"}, "kind"},
	} {
		code, out, _ := d.call("POST", "/api/v1/users", d.tok["bob"], c.req)
		if code != 400 || out["error"].(map[string]any)["field"] != c.field {
			t.Errorf("%+v: %d %v, want 400 naming %s", c.req, code, out, c.field)
		}
	}
	code, out, _ := d.call("POST", "/api/v1/users", d.tok["bob"], api.CreateUserRequest{Username: "payments-ci", Kind: "service", OwnerTeam: "payments", Groups: []string{"payments"}})
	ch, _ := out["change"].(map[string]any)
	if code != 202 || ch["status"] != "pending" || ch["account_kind"] != "service" || ch["owner_team"] != "payments" ||
		!strings.Contains(ch["summary"].(string), "service account payments-ci owned by payments") {
		t.Fatalf("bob proposes a service account: %d %v", code, out)
	}
	id := ch["id"].(string)
	if code, out, _ := d.call("POST", "/api/v1/user-changes/"+id+"/approve", d.tok["bob"], api.UserChangeDecisionRequest{}); code != 403 {
		t.Fatalf("bob approves his own service account: %d %v", code, out)
	}
	if u, err := d.srv.Store.UserGetByUsername(context.Background(), "payments-ci"); err == nil {
		t.Fatalf("the account exists before a second admin approved it: %+v", u)
	}
	code, out, _ = d.call("POST", "/api/v1/user-changes/"+id+"/approve", d.tok["carol"], api.UserChangeDecisionRequest{Comment: "CI"})
	if code != 200 || out["one_time_password"] != nil || out["change"].(map[string]any)["status"] != "approved" {
		t.Fatalf("carol approves: %d %v", code, out)
	}
	u, err := d.srv.Store.UserGetByUsername(context.Background(), "payments-ci")
	if err != nil || u.Kind != store.AccountService || u.OwnerTeam != "payments" || u.PasswordHash != "" || u.MustChangePassword {
		t.Fatalf("stored account: %+v %v", u, err)
	}
	_, list, _ := d.call("GET", "/api/v1/users", d.tok["bob"], nil)
	var kinds []string
	for _, it := range list["items"].([]any) {
		m := it.(map[string]any)
		kinds = append(kinds, m["username"].(string)+":"+m["kind"].(string)+":"+str(m["owner_team"]))
	}
	if !slices.Contains(kinds, "payments-ci:service:payments") || !slices.Contains(kinds, "alice:person:") {
		t.Fatalf("users list: %v", kinds)
	}
	// In groups like users: membership is a change too.
	code, out, _ = d.call("POST", "/api/v1/groups/dev/members", d.tok["carol"], api.MemberRequest{Username: "payments-ci"})
	if code != 202 {
		t.Fatalf("carol proposes payments-ci in dev: %d %v", code, out)
	}
	mid := out["change"].(map[string]any)["id"].(string)
	if code, out, _ := d.call("POST", "/api/v1/user-changes/"+mid+"/approve", d.tok["bob"], api.UserChangeDecisionRequest{}); code != 200 {
		t.Fatalf("bob approves: %d %v", code, out)
	}
	tok, _ := d.serviceToken(t, "alice", "payments-ci")
	if _, me, _ := d.call("GET", "/api/v1/me", tok, nil); me["kind"] != "service" || !slices.Contains(toStrings(me["groups"]), "dev") {
		t.Fatalf("me as payments-ci: %v", me)
	}
}

func str(v any) string { s, _ := v.(string); return s }

func detailsOf(e *store.AuditEvent) map[string]any {
	var m map[string]any
	_ = json.Unmarshal(e.Details, &m)
	return m
}

// TestServiceAccountCannotSignIn: no password, API or CLI login as a
// service account, with any password; the caller learns what a wrong
// password tells, and each attempt is audited as a failed login.
func TestServiceAccountCannotSignIn(t *testing.T) {
	d := newDemoEnv(t, func(c *config.Config) { c.Login.AuditWindow = 0 })
	d.newServiceAccount(t, "payments-ci", "payments")
	_, wrong, _ := d.call("POST", "/api/v1/auth/login", "", api.LoginRequest{Username: "alice", Password: "not-her-password"})
	for _, try := range []struct{ path, pw string }{
		{"/api/v1/auth/login", ""}, {"/api/v1/auth/login", "anything-at-all"}, {"/api/v1/auth/token", "anything-at-all"},
	} {
		code, out, resp := d.call("POST", try.path, "", api.LoginRequest{Username: "payments-ci", Password: try.pw})
		if code != 401 || errMessage(out) != errMessage(wrong) || errCode(out) != errCode(wrong) || len(resp.Cookies()) != 0 {
			t.Errorf("%s as payments-ci with %q: %d %v, want what a wrong password gets: %v", try.path, try.pw, code, out, wrong)
		}
	}
	n := 0
	for _, e := range d.events(audit.UserLoginFailed) {
		if detailsOf(e)["username"] == "payments-ci" && detailsOf(e)["reason"] == "service account" {
			n++
		}
	}
	if n != 3 {
		t.Fatalf("%d failed logins audited as a service account's, want 3", n)
	}
}

// TestServiceAccountTokens: the owner team and admins make a service
// account's tokens — nobody else, not the account itself, not a scoped
// token — audited with the account as subject; the maker counts as the
// account for separation of duties; the same people revoke them.
func TestServiceAccountTokens(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			d := newDemoEnv(t, testenv.UseDriver(t, driver))
			// carol proposes, bob approves: neither counts as the account
			// yet (no password was handed to anyone).
			code, out, _ := d.call("POST", "/api/v1/users", d.tok["carol"], api.CreateUserRequest{Username: "payments-ci", Kind: "service", OwnerTeam: "payments", Groups: []string{"payments", "ops"}})
			if code != 202 {
				t.Fatalf("carol proposes: %d %v", code, out)
			}
			if code, out, _ := d.call("POST", "/api/v1/user-changes/"+out["change"].(map[string]any)["id"].(string)+"/approve", d.tok["bob"], api.UserChangeDecisionRequest{}); code != 200 {
				t.Fatalf("bob approves: %d %v", code, out)
			}
			req := api.CreateTokenRequest{Name: "ci", TTL: "720h", Scope: []string{"propose"}}
			if code, out, _ := d.call("POST", "/api/v1/users/payments-ci/tokens", d.tok["erin"], req); code != 403 {
				t.Fatalf("erin, neither in payments nor an admin, makes a token: %d %v", code, out)
			}
			if code, out, _ := d.call("POST", "/api/v1/users/bob/tokens", d.tok["alice"], req); code != 403 {
				t.Fatalf("alice makes a token for bob, a person: %d %v", code, out)
			}
			if code, out, _ := d.call("POST", "/api/v1/users/alice/tokens", d.tok["bob"], req); code != 404 {
				t.Fatalf("bob, an admin, makes a token for alice, a person: %d %v", code, out)
			}
			aliceScoped := d.scoped(t, "alice", "propose")
			if code, out, _ := d.call("POST", "/api/v1/users/payments-ci/tokens", aliceScoped, req); code != 403 {
				t.Fatalf("alice's scoped token makes a token: %d %v", code, out)
			}
			ci, ciID := d.serviceToken(t, "alice", "payments-ci", "propose")
			var made *store.AuditEvent
			for _, e := range d.events(audit.TokenCreate) {
				if detailsOf(e)["token_id"] == ciID {
					made = e
				}
			}
			u, _ := d.srv.Store.UserGetByUsername(context.Background(), "payments-ci")
			if made == nil || made.Subject != u.ID || made.ActorName != "alice" {
				t.Fatalf("token.create: %+v", made)
			}
			if code, out, _ := d.call("POST", "/api/v1/tokens", ci, api.CreateTokenRequest{Name: "more"}); code != 403 {
				t.Fatalf("the service account makes itself a token: %d %v", code, out)
			}
			full, _ := d.serviceToken(t, "alice", "payments-ci")
			if code, out, _ := d.call("POST", "/api/v1/tokens", full, api.CreateTokenRequest{Name: "more"}); code != 403 {
				t.Fatalf("the service account's unscoped token makes a token: %d %v", code, out)
			}
			if code, out, _ := d.call("GET", "/api/v1/users/payments-ci/tokens", d.tok["alice"], nil); code != 200 || len(out["items"].([]any)) != 2 {
				t.Fatalf("alice lists its tokens: %d %v", code, out)
			}
			if code, _, _ := d.call("GET", "/api/v1/users/payments-ci/tokens", d.tok["erin"], nil); code != 403 {
				t.Fatalf("erin lists its tokens: %d", code)
			}
			// bob approves the account's production restart; once he has
			// made a token for it, he counts as the account and cannot
			// approve a run he could have requested through it.
			restart := api.RunRequest{Procedure: "restart-service", Environment: "production", Params: map[string]any{"service": "worker"}}
			decide := func() (int, map[string]any) {
				t.Helper()
				code, out, _ := d.call("POST", "/api/v1/runs", full, restart)
				if code != 201 || out["status"] != "pending_approval" {
					t.Fatalf("payments-ci requests a production restart: %d %v", code, out)
				}
				code, out, _ = d.call("POST", "/api/v1/runs/"+out["id"].(string)+"/approve", d.tok["bob"], api.DecisionRequest{Binding: out["binding"].(string)})
				return code, out
			}
			if code, out := decide(); code != 200 {
				t.Fatalf("bob approves payments-ci's run: %d %v", code, out)
			}
			d.serviceToken(t, "bob", "payments-ci")
			if code, out := decide(); code != 403 || !strings.Contains(errMessage(out), "given an API token (ci) by bob") {
				t.Fatalf("bob approves payments-ci's run after making its token: %d %v", code, out)
			}
			// Revoking: the same people, through the same family.
			if code, _, _ := d.call("DELETE", "/api/v1/users/payments-ci/tokens/"+ciID, d.tok["erin"], nil); code != 403 {
				t.Fatalf("erin revokes: %d", code)
			}
			if code, _, _ := d.call("DELETE", "/api/v1/users/payments-ci/tokens/"+ciID, d.tok["alice"], nil); code != 204 {
				t.Fatalf("alice revokes: %d", code)
			}
			if code, _, _ := d.call("GET", "/api/v1/me", ci, nil); code != 401 {
				t.Fatalf("a revoked token still works: %d", code)
			}
		})
	}
}

// TestServiceAccountNeverApproves: a service account whose groups policy
// lets approve runs, review, and administer policy and users, holding an
// unscoped token, approves and rejects nothing; each refusal says why and
// is audited; nobody asks it to approve or review.
func TestServiceAccountNeverApproves(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			d := newDemoEnv(t, testenv.UseDriver(t, driver))
			d.newServiceAccount(t, "payments-ci", "payments", "ops", "security", "compliance", "admins")
			svc, _ := d.serviceToken(t, "carol", "payments-ci")
			ctx := context.Background()

			// A run awaiting approval.
			_, run := d.request(t, "alice", api.RunRequest{Procedure: "flush-cache", Environment: "production", Params: map[string]any{"cache": "sessions"}})
			if run["status"] != "pending_approval" {
				t.Fatalf("alice's production flush: %v", run)
			}
			for _, verb := range []string{"approve", "deny"} {
				code, out, _ := d.call("POST", "/api/v1/runs/"+run["id"].(string)+"/"+verb, svc, api.DecisionRequest{Binding: run["binding"].(string), Comment: "ok"})
				if code != 403 || !strings.Contains(errMessage(out), "a service account cannot approve or deny runs") {
					t.Fatalf("payments-ci %ss a run: %d %v", verb, code, out)
				}
			}
			sr, _ := d.srv.Store.RunGet(ctx, run["id"].(string))
			if approvers, err := d.srv.Runs.Approvers(ctx, sr); err != nil || slices.Contains(approvers, "payments-ci") || !slices.Contains(approvers, "bob") {
				t.Fatalf("approvers told of the run: %v %v", approvers, err)
			}

			// A version awaiting review.
			src := strings.Replace(echoProc, "name: echo-params", "name: echo-ci", 1)
			code, out, _ := d.call("POST", "/api/v1/versions", d.tok["alice"], api.ProposeRequest{Source: src})
			if code != 201 {
				t.Fatalf("alice proposes: %d %v", code, out)
			}
			v := out["version"].(map[string]any)
			for _, dec := range []string{"approve", "reject"} {
				code, out, _ = d.call("POST", "/api/v1/versions/"+v["id"].(string)+"/reviews", svc, api.ReviewRequest{Decision: dec, Digest: v["digest"].(string), Comment: "ok"})
				if code != 403 || !strings.Contains(errMessage(out), "a service account cannot review") {
					t.Fatalf("payments-ci reviews (%s): %d %v", dec, code, out)
				}
			}
			sv, _ := d.srv.Store.ProcedureVersionGet(ctx, v["id"].(string))
			if reviewers, err := d.srv.Review.Reviewers(ctx, sv); err != nil || slices.Contains(reviewers, "payments-ci") || len(reviewers) == 0 {
				t.Fatalf("reviewers told of the version: %v %v", reviewers, err)
			}

			// A policy change awaiting a second admin.
			code, out, _ = d.call("POST", "/api/v1/policies", d.tok["bob"], api.ProposePolicyRequest{Text: demo.Policy + "\n// reworded\n", Description: "a comment"})
			if code != 201 {
				t.Fatalf("bob proposes a policy: %d %v", code, out)
			}
			pid := out["id"].(string)
			for _, verb := range []string{"approve", "reject"} {
				code, out, _ = d.call("POST", "/api/v1/policies/"+pid+"/"+verb, svc, api.PolicyDecisionRequest{Comment: "ok"})
				if code != 403 || !strings.Contains(errMessage(out), "a service account cannot approve or reject policy changes") {
					t.Fatalf("payments-ci %ss a policy: %d %v", verb, code, out)
				}
			}
			if admins, err := d.srv.Authz.PermittedUsers(ctx, "managePolicy"); err != nil || slices.Contains(admins, "payments-ci") {
				t.Fatalf("admins told of the policy: %v %v", admins, err)
			}

			// A user change awaiting a second admin.
			code, out, _ = d.call("POST", "/api/v1/users", d.tok["bob"], api.CreateUserRequest{Username: "frank", Groups: []string{"dev"}})
			if code != 202 {
				t.Fatalf("bob proposes frank: %d %v", code, out)
			}
			ucid := out["change"].(map[string]any)["id"].(string)
			for _, verb := range []string{"approve", "reject"} {
				code, out, _ = d.call("POST", "/api/v1/user-changes/"+ucid+"/"+verb, svc, api.UserChangeDecisionRequest{Comment: "ok"})
				if code != 403 || !strings.Contains(errMessage(out), "a service account cannot approve or reject user changes") {
					t.Fatalf("payments-ci %ss a user change: %d %v", verb, code, out)
				}
			}

			// Nor through chat, where people approve.
			if code, _, _ := d.call("POST", "/api/v1/me/chat-links/code", svc, nil); code != 403 {
				t.Fatalf("payments-ci links a chat account: %d", code)
			}

			// Everything still waits, and each refusal is in the log.
			if r, _ := d.srv.Store.RunGet(ctx, run["id"].(string)); r.Status != store.RunPending {
				t.Errorf("run: %s", r.Status)
			}
			if v, _ := d.srv.Store.ProcedureVersionGet(ctx, v["id"].(string)); v.Status != store.VersionProposed {
				t.Errorf("version: %s", v.Status)
			}
			if p, _ := d.srv.Store.PolicyVersionGet(ctx, pid); p.Status != store.PolicyProposed {
				t.Errorf("policy: %s", p.Status)
			}
			if c, _ := d.srv.Store.UserChangeGet(ctx, ucid); c.Status != store.UserChangePending {
				t.Errorf("user change: %s", c.Status)
			}
			for _, typ := range []string{audit.RunApproveDenied, audit.ProcedureVersionReviewDenied, audit.PolicyDenied, audit.UserChangeDenied} {
				n := 0
				for _, e := range d.events(typ) {
					if e.ActorName == "payments-ci" && strings.Contains(str(detailsOf(e)["reason"]), "a service account cannot") {
						n++
					}
				}
				if n != 2 {
					t.Errorf("%d %s events for payments-ci's refusals, want 2", n, typ)
				}
			}
		})
	}
}

// TestServiceAccountCITokenOnlyProposes: the CI token of a service
// account, scoped to propose, proposes a version of its team's procedure
// and does nothing else its groups would allow.
func TestServiceAccountCITokenOnlyProposes(t *testing.T) {
	d := newDemoEnv(t, nil)
	d.newServiceAccount(t, "payments-ci", "payments", "dev", "auditors")
	ci, _ := d.serviceToken(t, "alice", "payments-ci", "propose")
	src := strings.Replace(echoProc, "name: echo-params", "name: echo-ci", 1)
	if code, out, _ := d.call("POST", "/api/v1/versions", ci, api.ProposeRequest{Source: src}); code != 201 || out["version"].(map[string]any)["author"] != "payments-ci" {
		t.Fatalf("the CI token proposes: %d %v", code, out)
	}
	if code, out, _ := d.call("POST", "/api/v1/runs", ci, api.RunRequest{Procedure: "flush-cache", Environment: "staging", Params: map[string]any{"cache": "sessions"}}); code != 403 {
		t.Fatalf("the CI token runs: %d %v", code, out)
	}
	if code, out, _ := d.call("GET", "/api/v1/audit/events", ci, nil); code != 403 {
		t.Fatalf("the CI token reads the audit log: %d %v", code, out)
	}
	if code, out, _ := d.call("POST", "/api/v1/users/payments-ci/tokens", ci, api.CreateTokenRequest{Name: "wider"}); code != 403 {
		t.Fatalf("the CI token makes a token: %d %v", code, out)
	}
	// Its groups allow both to a full token: the scope stopped them.
	full, _ := d.serviceToken(t, "alice", "payments-ci")
	if code, out, _ := d.call("GET", "/api/v1/audit/events", full, nil); code != 200 {
		t.Fatalf("an unscoped token of the auditor account reads the audit log: %d %v", code, out)
	}
}
