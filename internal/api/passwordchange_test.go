package api_test

import (
	"encoding/json"
	"testing"

	"github.com/airlockhq/airlock/internal/api"
	"github.com/airlockhq/airlock/internal/audit"
)

// TestPasswordChangeCanRevokeTokens: with revoke_tokens, a password
// change revokes every API token of the caller, the one the request came
// with included (the answer still says it worked), and the event counts
// them; without it, tokens stay.
func TestPasswordChangeCanRevokeTokens(t *testing.T) {
	e := newEnv(t, nil)
	pw := e.user("bob", "ops")
	a, b := e.token("bob", pw), e.token("bob", pw)
	next := "bob-second-password-1"
	if code, out, _ := e.call("POST", "/api/v1/auth/password", a, api.PasswordRequest{CurrentPassword: pw, NewPassword: next}); code != 204 {
		t.Fatalf("change: %d %v", code, out)
	}
	if code, _, _ := e.call("GET", "/api/v1/me", b, nil); code != 200 {
		t.Fatalf("a token was revoked without revoke_tokens: %d", code)
	}
	c := e.token("bob", next)
	code, out, _ := e.call("POST", "/api/v1/auth/password", a, api.PasswordRequest{CurrentPassword: next, NewPassword: "bob-third-password-1", RevokeTokens: true})
	if code != 204 {
		t.Fatalf("change with revoke_tokens: %d %v", code, out)
	}
	for name, tok := range map[string]string{"the request's": a, "another": b, "the newest": c} {
		if code, _, _ := e.call("GET", "/api/v1/me", tok, nil); code != 401 {
			t.Errorf("%s token after revoke_tokens: %d, want 401", name, code)
		}
	}
	evs := e.events(audit.UserPasswordChange)
	var d map[string]any
	if err := json.Unmarshal(evs[len(evs)-1].Details, &d); err != nil || d["tokens_revoked"] != 3.0 {
		t.Fatalf("password change event: %s %v", evs[len(evs)-1].Details, err)
	}
}
