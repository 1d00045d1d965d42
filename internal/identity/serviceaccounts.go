package identity

import (
	"context"
	"fmt"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/store"
)

// A service account is a non-human principal owned by a team: created
// under the same dual control as a user (a create_user change of kind
// service), in groups like a user, and acting only through API tokens
// that a member of its owner team or an admin makes for it. It never
// signs in (password, single sign-on, the CLI's login), never holds a
// session, and never approves or reviews anything, whatever policy says
// (PeopleOnly).
//
// Whoever makes a token for it held its credential: like the approver
// who receives a person's one-time password, they count as the account
// for separation of duties (Linked), so nobody approves a run they
// requested through a service account's token.

// serviceAccount returns the service account named username for p to
// manage its tokens: p must be a person in its owner team, or permitted
// manageUsers. Anyone else is refused as policy refuses them (audited),
// whether the account exists or not.
func (s *Service) serviceAccount(ctx context.Context, p *Principal, username string) (*store.User, error) {
	if p.Service {
		return nil, airlock.Errorf(airlock.Forbidden, "a service account cannot manage another's tokens")
	}
	if p.Scope != nil {
		return nil, airlock.Errorf(airlock.Forbidden, "a token with a scope cannot manage a service account's tokens; sign in or use an unscoped token")
	}
	u, err := s.store.UserGetByUsername(ctx, username)
	if err != nil && airlock.ErrorKind(err) != airlock.NotFound {
		return nil, err
	}
	isService := u != nil && u.Kind == store.AccountService
	if !isService || u.OwnerTeam == "" || !p.InGroup(u.OwnerTeam) {
		if err := s.checkManageUsers(ctx, p); err != nil {
			return nil, err
		}
	}
	if !isService {
		return nil, &airlock.Error{Kind: airlock.NotFound, Field: "username", Message: fmt.Sprintf("no service account %q", username)}
	}
	return u, nil
}

// CreateServiceToken makes an API token for the service account named
// username and returns its secret, shown once. p is a member of the
// account's owner team or permitted manageUsers, and from now on counts
// as the account for separation of duties. The audit event's subject is
// the account; its actor, p.
func (s *Service) CreateServiceToken(ctx context.Context, p *Principal, username, name string, ttl time.Duration, scope []string) (string, *store.Token, error) {
	u, err := s.serviceAccount(ctx, p, username)
	if err != nil {
		return "", nil, err
	}
	tok, secret, err := s.newToken(p, u.ID, name, ttl, scope)
	if err != nil {
		return "", nil, err
	}
	now := tok.CreatedAt
	err = s.update(ctx, func(tx store.Tx) error {
		cur, err := tx.UserGetByID(ctx, u.ID)
		if err != nil {
			return err
		}
		if cur.Disabled {
			return airlock.Errorf(airlock.Conflict, "service account %s is disabled", cur.Username)
		}
		if err := tx.TokenInsert(ctx, tok); err != nil {
			return err
		}
		e := audit.New(ctx, now, audit.TokenCreate, p.Actor(), u.ID, audit.Success,
			map[string]any{"token_id": tok.ID, "name": tok.Name, "user_id": u.ID, "username": u.Username, "service_account": true,
				"owner_team": u.OwnerTeam, "expires_at": tok.ExpiresAt, "scope": scope})
		if err := tx.AuditAppend(ctx, e); err != nil {
			return err
		}
		return linkTo(ctx, tx, p.Actor(), u, "given an API token ("+tok.Name+") by "+p.Username, e, now)
	})
	if err != nil {
		return "", nil, err
	}
	return secret, tok, nil
}

// ServiceTokens lists the tokens of the service account named username,
// for a member of its owner team or an admin.
func (s *Service) ServiceTokens(ctx context.Context, p *Principal, username string) ([]*store.Token, error) {
	u, err := s.serviceAccount(ctx, p, username)
	if err != nil {
		return nil, err
	}
	return s.store.TokenListForUser(ctx, u.ID)
}

// RevokeServiceToken revokes token id of the service account named
// username, for a member of its owner team or an admin.
func (s *Service) RevokeServiceToken(ctx context.Context, p *Principal, username, id string) error {
	u, err := s.serviceAccount(ctx, p, username)
	if err != nil {
		return err
	}
	tok, err := s.store.TokenGetByID(ctx, id)
	if err != nil {
		return err
	}
	if tok.UserID != u.ID {
		return airlock.Errorf(airlock.NotFound, "token not found")
	}
	now := s.now()
	return s.update(ctx, func(tx store.Tx) error {
		if err := tx.TokenRevoke(ctx, id, now); err != nil {
			return err
		}
		return tx.AuditAppend(ctx, audit.New(ctx, now, audit.TokenRevoke, p.Actor(), id, audit.Success,
			map[string]any{"name": tok.Name, "owner_id": tok.UserID, "username": u.Username, "service_account": true}))
	})
}
