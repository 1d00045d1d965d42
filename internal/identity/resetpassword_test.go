package identity_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/store"
)

// TestResetPasswordUnderDualControl is the reset of a local user's
// password as an attack: bob, an admin, proposes resetting dana's
// password to sign in as her. He cannot approve it himself, never sees
// the one-time password, and bobby — an account linked to bob — can
// neither approve bob's reset nor, having been granted admins by bob,
// approve a reset of bob's own admin account. carol, a second admin,
// approves: the password goes to her, dana's sessions and tokens end,
// and dana must change it at her next sign-in.
func TestResetPasswordUnderDualControl(t *testing.T) {
	svc, s, _ := setup(t)
	ctx := context.Background()
	for _, n := range []string{"bob", "carol", "erin"} {
		if _, err := svc.CreateUser(ctx, audit.System, identity.CreateUserParams{Username: n, Password: n + "-password-123", Groups: []string{"admins"}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := svc.CreateUser(ctx, audit.System, identity.CreateUserParams{Username: "dana", Password: "dana-password-123", Groups: []string{"ops"}}); err != nil {
		t.Fatal(err)
	}
	bob, carol, erin := principalOf(t, s, "bob"), principalOf(t, s, "carol"), principalOf(t, s, "erin")
	// bobby: created by bob in admins, approved by carol.
	res, err := svc.ProposeUserChange(ctx, bob, identity.UserChangeParams{Kind: store.UserChangeCreate, Username: "bobby", Groups: []string{"admins"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.DecideUserChange(ctx, carol, res.Change.ID, "approve", ""); err != nil {
		t.Fatal(err)
	}
	bobby := principalOf(t, s, "bobby")

	// dana signed in, with an API token.
	dana, err := s.UserGetByUsername(ctx, "dana")
	if err != nil {
		t.Fatal(err)
	}
	session, _, err := svc.NewSession(ctx, dana, "password", "")
	if err != nil {
		t.Fatal(err)
	}
	danaP, err := svc.Authenticate(ctx, session)
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := svc.CreateToken(ctx, danaP, "laptop", time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	res, err = svc.ProposeUserChange(ctx, bob, identity.UserChangeParams{Kind: store.UserChangeResetPassword, Username: "dana"})
	if err != nil {
		t.Fatal(err)
	}
	c := res.Change
	if c.Status != store.UserChangePending || res.OneTimePassword != "" {
		t.Fatalf("the reset is %s at once (password given to its author: %v)", c.Status, res.OneTimePassword != "")
	}
	if identity.Describe(c) != "reset the password of dana" {
		t.Fatalf("described as %q", identity.Describe(c))
	}
	if _, err := svc.PasswordLogin(ctx, "dana", "dana-password-123"); err != nil {
		t.Fatalf("the old password stopped working before approval: %v", err)
	}
	// The author approves: refused, audited.
	if _, err := svc.DecideUserChange(ctx, bob, c.ID, "approve", ""); airlock.ErrorKind(err) != airlock.Forbidden {
		t.Fatalf("bob approves his own reset: %v", err)
	}
	// bobby, who counts as bob: refused.
	if _, err := svc.DecideUserChange(ctx, bobby, c.ID, "approve", ""); airlock.ErrorKind(err) != airlock.Forbidden || !strings.Contains(err.Error(), "created by bob") {
		t.Fatalf("bobby approves bob's reset: %v", err)
	}
	if n := len(events(t, s, audit.UserChangeDenied)); n != 2 {
		t.Fatalf("%d refusals audited, want 2", n)
	}
	if _, err := svc.PasswordLogin(ctx, "dana", "dana-password-123"); err != nil {
		t.Fatalf("a refused approval reset the password: %v", err)
	}

	res, err = svc.DecideUserChange(ctx, carol, c.ID, "approve", "dana asked by phone")
	if err != nil || res.OneTimePassword == "" || res.Change.Status != store.UserChangeApproved {
		t.Fatalf("carol approves: %+v %v", res, err)
	}
	otp := res.OneTimePassword
	if _, err := svc.PasswordLogin(ctx, "dana", "dana-password-123"); err == nil {
		t.Fatal("the old password still works")
	}
	if u, err := svc.PasswordLogin(ctx, "dana", otp); err != nil || !u.MustChangePassword {
		t.Fatalf("dana signs in with the one-time password (must change: %v): %v", u != nil && u.MustChangePassword, err)
	}
	if _, err := svc.Authenticate(ctx, session); err == nil {
		t.Fatal("dana's session outlived the reset")
	}
	if _, err := svc.Authenticate(ctx, token); err == nil {
		t.Fatal("dana's API token outlived the reset")
	}
	// The author never saw it: not in what the change returns to anyone
	// later, nor in the audit log.
	got, err := svc.GetUserChange(ctx, bob, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(got.DecisionComment+got.DisplayName+got.Email, otp) {
		t.Fatal("the stored change carries the password")
	}
	all, _ := s.AuditList(ctx, store.AuditListParams{After: -1, Limit: 10000})
	for _, e := range all {
		if strings.Contains(string(e.Details), otp) {
			t.Fatalf("event %s %s carries the one-time password", e.Type, e.ID)
		}
	}
	var update *store.AuditEvent
	for _, e := range events(t, s, audit.UserUpdate) {
		if strings.Contains(string(e.Details), `"password_reset":true`) {
			update = e
		}
	}
	if update == nil || update.ActorName != "carol" || !strings.Contains(string(update.Details), `"proposed_by":"bob"`) ||
		!strings.Contains(string(update.Details), `"tokens_revoked":1`) {
		t.Fatalf("the reset is not audited as carol's act proposed by bob: %+v", update)
	}
	// carol held dana's password: dana counts as carol now.
	if link, _ := identity.Linked(ctx, s, danaP.UserID, carol.UserID); !strings.Contains(link, "as approver carol") {
		t.Fatalf("the approver is not linked to the reset account: %q", link)
	}

	// A reset of an admin's account by one linked to it: erin proposes
	// resetting bob's password; bobby (created by bob) may not approve it.
	res, err = svc.ProposeUserChange(ctx, erin, identity.UserChangeParams{Kind: store.UserChangeResetPassword, Username: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.DecideUserChange(ctx, bobby, res.Change.ID, "approve", ""); airlock.ErrorKind(err) != airlock.Forbidden || !strings.Contains(err.Error(), "counts as bob's") {
		t.Fatalf("bobby approves a reset of bob's admin account: %v", err)
	}
	if _, err := svc.PasswordLogin(ctx, "bob", "bob-password-123"); err != nil {
		t.Fatalf("the refused reset changed bob's password: %v", err)
	}

	// Not one's own, not a service account, not an SSO user.
	if _, err := svc.ProposeUserChange(ctx, bob, identity.UserChangeParams{Kind: store.UserChangeResetPassword, Username: "bob"}); airlock.ErrorKind(err) != airlock.Invalid {
		t.Fatalf("a reset of one's own password: %v", err)
	}
	res, err = svc.ProposeUserChange(ctx, bob, identity.UserChangeParams{Kind: store.UserChangeCreate, Username: "deployer", AccountKind: store.AccountService, OwnerTeam: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.DecideUserChange(ctx, erin, res.Change.ID, "approve", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.ProposeUserChange(ctx, bob, identity.UserChangeParams{Kind: store.UserChangeResetPassword, Username: "deployer"}); airlock.ErrorKind(err) != airlock.Invalid || !strings.Contains(err.Error(), "service account") {
		t.Fatalf("a reset of a service account: %v", err)
	}
	if _, err := svc.SSOLogin(ctx, identity.SSOUser{Issuer: "https://idp.example", Subject: "sam-1", Username: "sam"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.ProposeUserChange(ctx, bob, identity.UserChangeParams{Kind: store.UserChangeResetPassword, Username: "sam"}); airlock.ErrorKind(err) != airlock.Invalid || !strings.Contains(err.Error(), "single sign-on") {
		t.Fatalf("a reset of an SSO user: %v", err)
	}
}
