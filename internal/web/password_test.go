package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/store"
)

// TestPasswordChangeOffersToRevokeTokens: the account page offers, with
// the count, to revoke one's API tokens along with the password; ticked,
// the change revokes them all and the audit event says how many.
func TestPasswordChangeOffersToRevokeTokens(t *testing.T) {
	s := startServer(t)
	ctx := t.Context()
	u, err := s.srv.Store.UserGetByUsername(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	p := &identity.Principal{UserID: u.ID, Username: u.Username}
	var secrets []string
	for _, name := range []string{"laptop", "ci"} {
		secret, _, err := s.srv.Identity.CreateToken(ctx, p, name, 0)
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, secret)
	}
	alice := s.visitor(t, "alice")
	if _, body := alice.get("/account"); !strings.Contains(body, `name="revoke_tokens"`) || !strings.Contains(body, "Also revoke my 2 API tokens") {
		t.Fatalf("the account page does not offer to revoke the 2 tokens: %.2000s", body)
	}
	next := "a-brand-new-passphrase-1"
	code, body := alice.post("/account/password", url.Values{"csrf_token": {alice.csrf()}, "current": {s.pw["alice"]},
		"new": {next}, "confirm": {next}, "revoke_tokens": {"on"}})
	if code != http.StatusOK || !strings.Contains(body, "Password changed") || !strings.Contains(body, "2 API token(s) revoked") {
		t.Fatalf("change with revoke: %d %.600s", code, body)
	}
	for i, secret := range secrets {
		if _, err := s.srv.Identity.Authenticate(ctx, secret); err == nil {
			t.Errorf("token %d still works after the password change that revoked it", i)
		}
	}
	evs, err := s.srv.Store.AuditList(ctx, store.AuditListParams{After: -1, Type: audit.UserPasswordChange})
	if err != nil || len(evs) == 0 || !strings.Contains(string(evs[len(evs)-1].Details), `"tokens_revoked":2`) {
		t.Fatalf("password change event: %v %v", evs, err)
	}
	if _, body := alice.get("/account"); strings.Contains(body, `name="revoke_tokens"`) {
		t.Fatal("offered to revoke tokens when none is left")
	}
	// Unticked, tokens stay.
	secret, _, err := s.srv.Identity.CreateToken(ctx, p, "kept", 0)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := alice.post("/account/password", url.Values{"csrf_token": {alice.csrf()}, "current": {next},
		"new": {next + "x"}, "confirm": {next + "x"}}); code != http.StatusOK || strings.Contains(body, "revoked.") {
		t.Fatalf("change without revoke: %d %.600s", code, body)
	}
	if _, err := s.srv.Identity.Authenticate(ctx, secret); err != nil {
		t.Fatalf("a token was revoked without being asked: %v", err)
	}
}
