package identity

import (
	"context"
	"time"

	"github.com/airlockhq/airlock/internal/store"
)

// PasswordChange is a change of one's own password.
type PasswordChange struct {
	Current, New string
	// RevokeTokens also revokes every live API token of the user: a
	// password thought stolen may have been used to make some.
	RevokeTokens bool
}

// PasswordChanged says what a password change revoked.
type PasswordChanged struct {
	SessionsRevoked int64
	TokensRevoked   int
}

// LiveTokens counts the principal's API tokens that still work: what a
// password change with RevokeTokens would revoke.
func (s *Service) LiveTokens(ctx context.Context, p *Principal) (int, error) {
	toks, err := s.store.TokenListForUser(ctx, p.UserID)
	if err != nil {
		return 0, err
	}
	now, n := s.now(), 0
	for _, t := range toks {
		if tokenLive(t, now) {
			n++
		}
	}
	return n, nil
}

func tokenLive(t *store.Token, now time.Time) bool {
	return t.RevokedAt.IsZero() && (t.ExpiresAt.IsZero() || !now.After(t.ExpiresAt))
}

// revokeLiveTokens revokes, in tx, the user's tokens that still work and
// returns how many.
func revokeLiveTokens(ctx context.Context, tx store.Tx, userID string, now time.Time) (int, error) {
	return revokeLiveTokensExcept(ctx, tx, userID, "", now)
}

// revokeLiveTokensExcept is revokeLiveTokens sparing the token exceptID.
func revokeLiveTokensExcept(ctx context.Context, tx store.Tx, userID, exceptID string, now time.Time) (int, error) {
	toks, err := tx.TokenListForUser(ctx, userID)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, t := range toks {
		if t.ID != exceptID && tokenLive(t, now) {
			if err := tx.TokenRevoke(ctx, t.ID, now); err != nil {
				return 0, err
			}
			n++
		}
	}
	return n, nil
}
