package identity_test

import (
	"context"
	"strings"
	"testing"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/store"
)

func principalOf(t *testing.T, s store.Store, name string) *identity.Principal {
	t.Helper()
	ctx := context.Background()
	u, err := s.UserGetByUsername(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	gs, _ := s.GroupListForUser(ctx, u.ID)
	p := &identity.Principal{UserID: u.ID, Username: u.Username}
	for _, g := range gs {
		p.Groups = append(p.Groups, g.Name)
	}
	return p
}

// TestUserChangesUnderDualControl is issue 14's third finding as an
// attack: bob, an admin, creates bobby in security and admins and signs
// in as bobby to approve his own changes. Each step fails on b98c677,
// where bob's create took effect at once.
func TestUserChangesUnderDualControl(t *testing.T) {
	svc, s, _ := setup(t)
	ctx := context.Background()
	for _, n := range []string{"bob", "carol"} {
		if _, err := svc.CreateUser(ctx, audit.System, identity.CreateUserParams{Username: n, Password: n + "-password-123", Groups: []string{"admins"}}); err != nil {
			t.Fatal(err)
		}
	}
	svc.CreateUser(ctx, audit.System, identity.CreateUserParams{Username: "gone", Password: "gone-password-123"})
	bob, carol := principalOf(t, s, "bob"), principalOf(t, s, "carol")

	res, err := svc.ProposeUserChange(ctx, bob, identity.UserChangeParams{Kind: store.UserChangeCreate, Username: "bobby", Groups: []string{"security", "admins"}})
	if err != nil {
		t.Fatal(err)
	}
	c := res.Change
	if c.Status != store.UserChangePending || res.OneTimePassword != "" {
		t.Fatalf("a second admin exists, yet the change is %s (password given to the author: %v)", c.Status, res.OneTimePassword != "")
	}
	if _, err := s.UserGetByUsername(ctx, "bobby"); airlock.ErrorKind(err) != airlock.NotFound {
		t.Fatalf("bobby exists before approval: %v", err)
	}
	if _, err := svc.ProposeUserChange(ctx, bob, identity.UserChangeParams{Kind: store.UserChangeCreate, Username: "bobby"}); airlock.ErrorKind(err) != airlock.Conflict {
		t.Fatalf("a second proposal for bobby: %v", err)
	}
	// bob approves his own change: refused, audited.
	if _, err := svc.DecideUserChange(ctx, bob, c.ID, "approve", ""); airlock.ErrorKind(err) != airlock.Forbidden {
		t.Fatalf("bob approves his own change: %v", err)
	}
	if evs := events(t, s, audit.UserChangeDenied); len(evs) != 1 || evs[0].ActorName != "bob" {
		t.Fatalf("refusal audited: %+v", evs)
	}
	// carol approves: bobby exists, and the password goes to carol.
	res, err = svc.DecideUserChange(ctx, carol, c.ID, "approve", "checked with HR")
	if err != nil || res.OneTimePassword == "" || res.Change.Status != store.UserChangeApproved {
		t.Fatalf("carol approves: %+v %v", res, err)
	}
	if _, err := svc.DecideUserChange(ctx, carol, c.ID, "approve", ""); airlock.ErrorKind(err) != airlock.Conflict {
		t.Fatalf("deciding twice: %v", err)
	}
	if u, err := svc.PasswordLogin(ctx, "bobby", res.OneTimePassword); err != nil || !u.MustChangePassword {
		t.Fatalf("bobby signs in with the one-time password: %v", err)
	}
	bobby := principalOf(t, s, "bobby")
	if link, _ := identity.Linked(ctx, s, bobby.UserID, bob.UserID); !strings.Contains(link, "created by bob") {
		t.Fatalf("bobby and bob are not linked: %q", link)
	}
	// carol received bobby's one-time password: bobby counts as her too.
	if link, _ := identity.Linked(ctx, s, bobby.UserID, carol.UserID); !strings.Contains(link, "one-time password as approver carol") {
		t.Fatalf("the approver, who holds the password, is not linked to the account: %q", link)
	}

	// bob proposes enabling a disabled account; bobby, an admin linked
	// to bob, may not approve it; carol may.
	svc.Disable(ctx, carol, "gone")
	res, err = svc.ProposeUserChange(ctx, bob, identity.UserChangeParams{Kind: store.UserChangeEnable, Username: "gone"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = svc.DecideUserChange(ctx, bobby, res.Change.ID, "approve", "")
	if airlock.ErrorKind(err) != airlock.Forbidden || !strings.Contains(err.Error(), "created by bob") {
		t.Fatalf("bobby approves bob's change: %v", err)
	}
	if u, _ := s.UserGetByUsername(ctx, "gone"); !u.Disabled {
		t.Fatal("the refused approval enabled the user")
	}
	// A rejection needs a comment; the author withdraws, others reject.
	if _, err := svc.DecideUserChange(ctx, carol, res.Change.ID, "reject", " "); airlock.ErrorKind(err) != airlock.Invalid {
		t.Fatalf("reject without a comment: %v", err)
	}
	if _, err := svc.WithdrawUserChange(ctx, carol, res.Change.ID); airlock.ErrorKind(err) != airlock.Forbidden {
		t.Fatalf("carol withdraws bob's change: %v", err)
	}
	if c, err := svc.WithdrawUserChange(ctx, bob, res.Change.ID); err != nil || c.Status != store.UserChangeWithdrawn {
		t.Fatalf("bob withdraws: %v", err)
	}

	// Group membership: proposed, then in force after approval.
	res, err = svc.ProposeUserChange(ctx, bob, identity.UserChangeParams{Kind: store.UserChangeAddMember, Username: "gone", Group: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	if len(principalOf(t, s, "gone").Groups) != 0 {
		t.Fatal("the membership is in force before approval")
	}
	if _, err := svc.DecideUserChange(ctx, carol, res.Change.ID, "approve", ""); err != nil {
		t.Fatal(err)
	}
	if g := principalOf(t, s, "gone").Groups; len(g) != 1 || g[0] != "ops" {
		t.Fatalf("gone's groups: %v", g)
	}
	if link, _ := identity.Linked(ctx, s, principalOf(t, s, "gone").UserID, bob.UserID); !strings.Contains(link, "granted ops by bob") {
		t.Fatalf("a granted account is not linked to its granter: %q", link)
	}
	// carol may not approve her own promotion, which bob proposed.
	res, err = svc.ProposeUserChange(ctx, bob, identity.UserChangeParams{Kind: store.UserChangeAddMember, Username: "carol", Group: "security"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.DecideUserChange(ctx, carol, res.Change.ID, "approve", ""); airlock.ErrorKind(err) != airlock.Forbidden || !strings.Contains(err.Error(), "own account") {
		t.Fatalf("carol approves adding herself to security: %v", err)
	}
	// Non-admins propose nothing.
	if _, err := svc.ProposeUserChange(ctx, principalOf(t, s, "gone"), identity.UserChangeParams{Kind: store.UserChangeAddMember, Username: "gone", Group: "admins"}); airlock.ErrorKind(err) != airlock.Forbidden {
		t.Fatalf("a non-admin proposes: %v", err)
	}
}

// TestSoleAdminSetsUp: the first admin alone creates the second at once
// (nobody else could approve), audited as such and linking nobody; from
// the first change a second admin approves, dual control never lapses,
// even when the other admins are gone.
func TestSoleAdminSetsUp(t *testing.T) {
	svc, s, _ := setup(t)
	ctx := context.Background()
	svc.CreateUser(ctx, audit.System, identity.CreateUserParams{Username: "root", Password: "root-password-123", Groups: []string{"admins"}})
	root := principalOf(t, s, "root")
	res, err := svc.ProposeUserChange(ctx, root, identity.UserChangeParams{Kind: store.UserChangeCreate, Username: "carol", Groups: []string{"admins"}})
	if err != nil || res.Change.Status != store.UserChangeApproved || res.OneTimePassword == "" {
		t.Fatalf("the sole admin creates the second: %+v %v", res, err)
	}
	if evs := events(t, s, audit.UserChangeApprove); len(evs) != 1 || !strings.Contains(string(evs[0].Details), `"sole_admin":true`) {
		t.Fatalf("not audited as done alone: %+v", evs)
	}
	carol := principalOf(t, s, "carol")
	if link, _ := identity.Linked(ctx, s, carol.UserID, root.UserID); link != "" {
		t.Fatalf("setting up linked carol to root: %q", link)
	}
	// Now there are two: root's next change waits for carol.
	res, err = svc.ProposeUserChange(ctx, root, identity.UserChangeParams{Kind: store.UserChangeCreate, Username: "dave"})
	if err != nil || res.Change.Status != store.UserChangePending {
		t.Fatalf("with two admins: %+v %v", res, err)
	}
	if _, err := svc.DecideUserChange(ctx, carol, res.Change.ID, "approve", ""); err != nil {
		t.Fatal(err)
	}
	// root disables carol and is alone again: still dual control.
	if err := svc.Disable(ctx, root, "carol"); err != nil {
		t.Fatal(err)
	}
	res, err = svc.ProposeUserChange(ctx, root, identity.UserChangeParams{Kind: store.UserChangeCreate, Username: "puppet", Groups: []string{"admins"}})
	if err != nil || res.Change.Status != store.UserChangePending || res.OneTimePassword != "" {
		t.Fatalf("an admin left alone after dual control began: %+v %v", res, err)
	}
}

// TestSoleAdminCannotCreateServiceAccountAlone: setting up alone makes
// the second admin, never a service account: its creation waits for a
// second admin even on a fresh install, and gives nobody a password.
func TestSoleAdminCannotCreateServiceAccountAlone(t *testing.T) {
	svc, s, _ := setup(t)
	ctx := context.Background()
	svc.CreateUser(ctx, audit.System, identity.CreateUserParams{Username: "root", Password: "root-password-123", Groups: []string{"admins"}})
	root := principalOf(t, s, "root")
	res, err := svc.ProposeUserChange(ctx, root, identity.UserChangeParams{Kind: store.UserChangeCreate, Username: "ci",
		AccountKind: store.AccountService, OwnerTeam: "admins", Groups: []string{"admins"}})
	if err != nil || res.Change.Status != store.UserChangePending || res.OneTimePassword != "" {
		t.Fatalf("the sole admin creates a service account: %+v %v", res, err)
	}
	if _, err := svc.DecideUserChange(ctx, root, res.Change.ID, "approve", ""); airlock.ErrorKind(err) != airlock.Forbidden {
		t.Fatalf("root approves his own service account: %v", err)
	}
	if _, err := s.UserGetByUsername(ctx, "ci"); airlock.ErrorKind(err) != airlock.NotFound {
		t.Fatalf("ci exists: %v", err)
	}
	// The setting up itself goes on: root still creates the second admin.
	if res, err := svc.ProposeUserChange(ctx, root, identity.UserChangeParams{Kind: store.UserChangeCreate, Username: "carol", Groups: []string{"admins"}}); err != nil || res.Change.Status != store.UserChangeApproved {
		t.Fatalf("the sole admin creates the second: %+v %v", res, err)
	}
	carol := principalOf(t, s, "carol")
	res, err = svc.DecideUserChange(ctx, carol, res.Change.ID, "approve", "")
	if err != nil || res.OneTimePassword != "" || res.User.Kind != store.AccountService || res.User.PasswordHash != "" {
		t.Fatalf("carol approves the service account: %+v %v", res, err)
	}
	// Its principal says what it is, and it can sign in nowhere.
	if _, err := svc.PasswordLogin(ctx, "ci", ""); airlock.ErrorKind(err) != airlock.Unauthenticated {
		t.Fatalf("ci logs in: %v", err)
	}
	if _, _, err := svc.NewSession(ctx, res.User, "sso", ""); airlock.ErrorKind(err) != airlock.Unauthenticated {
		t.Fatalf("a session for ci: %v", err)
	}
	if _, _, err := svc.IssueLoginToken(ctx, res.User, "cli"); airlock.ErrorKind(err) != airlock.Unauthenticated {
		t.Fatalf("a login token for ci: %v", err)
	}
}
