package api_test

import (
	"testing"

	"github.com/airlockhq/airlock/internal/api"
)

// TestRedTeamSoleAdminReentry: on an install with several admins where
// no user change has yet been approved by a second admin (every install
// upgraded to migration 10, and the demo), one admin disables the others
// — an immediate act — and is "the sole admin" again: his user changes
// take effect at once, link nobody, and the puppet account approves his
// production run. He then re-enables the others, alone too.
func TestRedTeamSoleAdminReentry(t *testing.T) {
	d := newDemoEnv(t, nil)
	for _, u := range []string{"carol", "admin"} {
		if code, out, _ := d.call("POST", "/api/v1/users/"+u+"/disable", d.tok["bob"], nil); code != 204 {
			t.Fatalf("bob disables %s: %d %v", u, code, out)
		}
	}
	code, out, _ := d.call("POST", "/api/v1/users", d.tok["bob"], api.CreateUserRequest{Username: "bobby", Groups: []string{"ops"}})
	if code != 202 && code != 200 {
		t.Fatalf("bob proposes bobby: %d %v", code, out)
	}
	if st := out["change"].(map[string]any)["status"]; st != "pending" {
		otp, _ := out["one_time_password"].(string)
		// Show the consequence: bobby, unlinked, approves bob's run.
		bobby := d.token("bobby", otp)
		d.call("POST", "/api/v1/auth/password", bobby, api.PasswordRequest{CurrentPassword: otp, NewPassword: "bobby-chosen-password"})
		_, run := d.request(t, "bob", api.RunRequest{Procedure: "restart-service", Environment: "production", Params: map[string]any{"service": "worker"}})
		c2, o2, _ := d.call("POST", "/api/v1/runs/"+run["id"].(string)+"/approve", bobby, api.DecisionRequest{Binding: run["binding"].(string)})
		// and bob puts carol back, alone as well
		c3, o3, _ := d.call("POST", "/api/v1/users/carol/enable", d.tok["bob"], nil)
		t.Fatalf("after disabling the other admins, bob's change is %v (one-time password to bob: %v); bobby approves bob's production run: %d %v; bob re-enables carol: %d %v",
			st, otp != "", c2, o2["status"], c3, o3["change"].(map[string]any)["status"])
	}
}

// TestRedTeamSoleAdminReentryByRemoval: the same through removing the
// other admins from the admin group (also immediate).
func TestRedTeamSoleAdminReentryByRemoval(t *testing.T) {
	d := newDemoEnv(t, nil)
	for _, u := range []string{"carol", "admin"} {
		if code, out, _ := d.call("DELETE", "/api/v1/groups/admins/members/"+u, d.tok["bob"], nil); code != 204 {
			t.Fatalf("bob removes %s from admins: %d %v", u, code, out)
		}
	}
	code, out, _ := d.call("POST", "/api/v1/users", d.tok["bob"], api.CreateUserRequest{Username: "bobby", Groups: []string{"admins"}})
	if code != 202 && code != 200 {
		t.Fatalf("bob proposes bobby: %d %v", code, out)
	}
	if st := out["change"].(map[string]any)["status"]; st != "pending" {
		t.Fatalf("after removing the other admins from admins, bob's change is %v, one-time password to bob: %v", st, out["one_time_password"] != nil)
	}
}

// TestRedTeamApproverGetsUnlinkedAccount: the one-time password of a new
// user goes to the approver, but the account is linked only to the
// author. carol (honest) proposes a new hire; bob approves, receives the
// password, and holds an account that does not count as him: it
// approves bob's production run, and the evidence report sees nothing.
func TestRedTeamApproverGetsUnlinkedAccount(t *testing.T) {
	d := newDemoEnv(t, nil)
	code, out, _ := d.call("POST", "/api/v1/users", d.tok["carol"], api.CreateUserRequest{Username: "frank", Groups: []string{"ops"}})
	if code != 202 {
		t.Fatalf("carol proposes frank: %d %v", code, out)
	}
	frank := d.approveUser(t, "bob", out["change"].(map[string]any)["id"].(string), "frank")
	_, run := d.request(t, "bob", api.RunRequest{Procedure: "restart-service", Environment: "production", Params: map[string]any{"service": "worker"}})
	if run["status"] != "pending_approval" {
		t.Fatalf("bob's production run: %v", run)
	}
	code, out, _ = d.call("POST", "/api/v1/runs/"+run["id"].(string)+"/approve", frank, api.DecisionRequest{Binding: run["binding"].(string)})
	if code != 403 {
		t.Fatalf("frank, whose one-time password bob received, approves bob's production run: %d %v", code, out["status"])
	}
}

// TestRedTeamOneTimePasswordTokenOutlivesFirstChange: whoever held a
// new user's one-time password (the approver) mints an API token with it
// before handing it over; the user's first password change leaves that
// token working, so the approver keeps acting as the user.
func TestRedTeamOneTimePasswordTokenOutlivesFirstChange(t *testing.T) {
	d := newDemoEnv(t, nil)
	code, out, _ := d.call("POST", "/api/v1/users", d.tok["bob"], api.CreateUserRequest{Username: "frank", Groups: []string{"ops"}})
	if code != 202 {
		t.Fatalf("bob proposes frank: %d %v", code, out)
	}
	code, out, _ = d.call("POST", "/api/v1/user-changes/"+out["change"].(map[string]any)["id"].(string)+"/approve", d.tok["carol"], api.UserChangeDecisionRequest{})
	otp, _ := out["one_time_password"].(string)
	if code != 200 || otp == "" {
		t.Fatalf("carol approves: %d %v", code, out)
	}
	kept := d.token("frank", otp) // carol's, before she hands the password over
	franks := d.token("frank", otp)
	if code, out, _ := d.call("POST", "/api/v1/auth/password", franks, api.PasswordRequest{CurrentPassword: otp, NewPassword: "franks-own-password"}); code != 204 {
		t.Fatalf("frank sets his password: %d %v", code, out)
	}
	if code, me, _ := d.call("GET", "/api/v1/runs", kept, nil); code == 200 {
		t.Fatalf("a token minted with the one-time password still works after frank chose his own: %d %v", code, me != nil)
	}
}
