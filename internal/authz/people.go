package authz

import (
	"context"

	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/policy"
	"github.com/airlockhq/airlock/internal/store"
)

// People calls fn with every enabled person (not service accounts,
// which never approve or review) as a principal, in username order: for
// questions such as who may approve a run, asked to tell those people
// about it.
func People(ctx context.Context, r store.Reader, fn func(*identity.Principal) error) error {
	users, err := r.UserList(ctx)
	if err != nil {
		return err
	}
	for _, u := range users {
		if u.Disabled || u.Kind == store.AccountService {
			continue
		}
		gs, err := GroupsOf(ctx, r, u.ID)
		if err != nil {
			return err
		}
		if err := fn(&identity.Principal{UserID: u.ID, Username: u.Username, Groups: gs}); err != nil {
			return err
		}
	}
	return nil
}

// PermittedUsers lists the enabled people the policy in force permits a
// system action (managePolicy, manageUsers), without auditing anything.
func (a *Authorizer) PermittedUsers(ctx context.Context, action string) ([]string, error) {
	var out []string
	err := People(ctx, a.store, func(p *identity.Principal) error {
		if a.Allowed(ctx, p, action, policy.Resource{}, policy.Context{}) {
			out = append(out, p.Username)
		}
		return nil
	})
	return out, err
}
