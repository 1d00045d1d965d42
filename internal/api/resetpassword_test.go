package api_test

import (
	"testing"

	"github.com/airlockhq/airlock/internal/api"
)

// TestResetPasswordByAPI: bob proposes a one-time password for alice
// (202, no password for him); he cannot approve it; carol approves and
// alone receives it; alice's token stops working and she must change the
// password at her next sign-in.
func TestResetPasswordByAPI(t *testing.T) {
	d := newDemoEnv(t, nil)
	code, out, _ := d.call("POST", "/api/v1/users/alice/reset-password", d.tok["bob"], nil)
	if code != 202 || out["one_time_password"] != nil {
		t.Fatalf("bob proposes: %d %v", code, out)
	}
	ch := out["change"].(map[string]any)
	if ch["kind"] != "reset_password" || ch["summary"] != "reset the password of alice" {
		t.Fatalf("change: %v", ch)
	}
	id := ch["id"].(string)
	if code, out, _ := d.call("POST", "/api/v1/user-changes/"+id+"/approve", d.tok["bob"], api.UserChangeDecisionRequest{}); code != 403 || out["one_time_password"] != nil {
		t.Fatalf("bob approves his own reset: %d %v", code, out)
	}
	if code, _, _ := d.call("GET", "/api/v1/me", d.tok["alice"], nil); code != 200 {
		t.Fatalf("alice's token before the reset: %d", code)
	}
	code, out, _ = d.call("POST", "/api/v1/user-changes/"+id+"/approve", d.tok["carol"], api.UserChangeDecisionRequest{Comment: "alice asked"})
	otp, _ := out["one_time_password"].(string)
	if code != 200 || otp == "" {
		t.Fatalf("carol approves: %d %v", code, out)
	}
	if code, _, _ := d.call("GET", "/api/v1/me", d.tok["alice"], nil); code != 401 {
		t.Fatalf("alice's token after the reset: %d", code)
	}
	if _, me, _ := d.call("GET", "/api/v1/me", d.token("alice", otp), nil); me["must_change_password"] != true {
		t.Fatalf("alice after the reset: %v", me)
	}
	if code, out, _ := d.call("POST", "/api/v1/users/erin/reset-password", d.tok["dana"], nil); code != 403 {
		t.Fatalf("a non-admin proposes a reset: %d %v", code, out)
	}
}
