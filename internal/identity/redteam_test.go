package identity_test

import (
	"context"
	"testing"

	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/store"
)

// TestRedTeamSetupEndsWithTheSecondAdmin: root creates carol as second
// admin alone (setting up). They work together on runs and policy but
// never approve a user change. root takes carol out of admins (at once)
// and is "alone" again: his puppet takes effect at once and links nobody.
func TestRedTeamSetupEndsWithTheSecondAdmin(t *testing.T) {
	for _, how := range []string{"remove", "disable"} {
		t.Run(how, func(t *testing.T) {
			svc, s, _ := setup(t)
			ctx := context.Background()
			svc.CreateUser(ctx, audit.System, identity.CreateUserParams{Username: "root", Password: "root-password-123", Groups: []string{"admins"}})
			root := principalOf(t, s, "root")
			if res, err := svc.ProposeUserChange(ctx, root, identity.UserChangeParams{Kind: store.UserChangeCreate, Username: "carol", Groups: []string{"admins"}}); err != nil || res.Change.Status != store.UserChangeApproved {
				t.Fatalf("setting up: %+v %v", res, err)
			}
			var err error
			if how == "remove" {
				err = svc.RemoveMember(ctx, root, "admins", "carol")
			} else {
				err = svc.Disable(ctx, root, "carol")
			}
			if err != nil {
				t.Fatal(err)
			}
			res, err := svc.ProposeUserChange(ctx, root, identity.UserChangeParams{Kind: store.UserChangeCreate, Username: "puppet", Groups: []string{"ops"}})
			if err != nil || res.Change.Status != store.UserChangePending || res.OneTimePassword != "" {
				t.Fatalf("root, having had a second admin, acts alone again: %s (password to root: %v) %v", res.Change.Status, res.OneTimePassword != "", err)
			}
		})
	}
}
