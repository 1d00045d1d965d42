package identity

import (
	"context"
	"time"

	"github.com/airlockhq/airlock/internal/store"
)

// ThrottleConfig bounds failed logins.
type ThrottleConfig struct {
	// MaxAccountFailures failed logins for one username within Window
	// throttle further attempts on that username.
	MaxAccountFailures int
	// MaxAddressFailures failed logins from one source address within
	// Window throttle further attempts from that address.
	MaxAddressFailures int
	Window             time.Duration
}

// DefaultThrottleConfig returns the documented defaults.
func DefaultThrottleConfig() ThrottleConfig {
	return ThrottleConfig{MaxAccountFailures: 5, MaxAddressFailures: 20, Window: 15 * time.Minute}
}

// throttled reports whether failed logins for account, or from addr,
// within the window have reached their limit. Failures are counted in the
// store, so every replica throttles alike: an attacker gains nothing by
// spreading attempts over them.
func (s *Service) throttled(ctx context.Context, now time.Time, account, addr string) (bool, error) {
	t := s.cfg.Throttle
	if t.MaxAccountFailures <= 0 && t.MaxAddressFailures <= 0 {
		return false, nil
	}
	byAccount, byAddr, err := s.store.LoginFailureCounts(ctx, account, addr, now.Add(-t.Window))
	if err != nil {
		return false, err
	}
	return (t.MaxAccountFailures > 0 && byAccount >= t.MaxAccountFailures) ||
		(addr != "" && t.MaxAddressFailures > 0 && byAddr >= t.MaxAddressFailures), nil
}

// countFailure records a failed login with its audit event; failures
// older than the window are forgotten on the way. A successful password
// login clears the account's failures (NewSession, IssueLoginToken); the
// address keeps its count, so that one good password does not reset a
// spray across accounts.
func (s *Service) countFailure(ctx context.Context, now time.Time, account, addr string) func(store.Tx) error {
	return func(tx store.Tx) error {
		return tx.LoginFailureAdd(ctx, account, addr, now, now.Add(-s.cfg.Throttle.Window))
	}
}
