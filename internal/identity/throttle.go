package identity

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/store"
)

// ThrottleConfig bounds failed logins. Failures are counted per account
// and source address (the pair), per source and per account, within
// Window. A count past its allowance does not lock anything: it delays
// the next attempt until a time after the latest failure that doubles
// with every further failure (1s, 2s, 4s, …, at most MaxDelay). So a
// stranger's failures slow only the stranger: the owner, signing in from
// another address, is not held up by them.
type ThrottleConfig struct {
	// PairFailures failed logins on one account from one address are
	// answered at once; after that the address waits before its next
	// attempt on that account.
	PairFailures int
	// MaxAddressFailures failed logins from one address, on any
	// accounts, before the address waits before every attempt (a
	// password spray).
	MaxAddressFailures int
	// MaxAccountFailures failed logins on one account, from any
	// addresses, mark it as under a distributed guess: every address
	// then waits after its first failure on that account instead of
	// after PairFailures. An address without a failure on the account
	// is never held up, so the owner is slowed at most, never locked out.
	MaxAccountFailures int
	// MaxDelay caps a delay.
	MaxDelay time.Duration
	Window   time.Duration
	// AuditWindow: failed and throttled sign-ins from one address after
	// the first in this window are audited together, as one event with
	// their count (see recordLoginFailure); 0 audits each.
	AuditWindow time.Duration
}

// DefaultThrottleConfig returns the documented defaults.
func DefaultThrottleConfig() ThrottleConfig {
	return ThrottleConfig{PairFailures: 3, MaxAddressFailures: 20, MaxAccountFailures: 100,
		MaxDelay: 15 * time.Minute, Window: 24 * time.Hour, AuditWindow: time.Minute}
}

// throttleBaseDelay is the first delay; each further failure doubles it.
const throttleBaseDelay = time.Second

// delay is how long after the latest of n failures the next attempt
// waits, when free of them are let through without one.
func (t ThrottleConfig) delay(n, free int) time.Duration {
	if free <= 0 || n < free {
		return 0
	}
	d := throttleBaseDelay
	for i := free; i < n && d < t.MaxDelay; i++ {
		d *= 2
	}
	return min(d, t.MaxDelay)
}

// throttled returns how long an attempt on account from addr must still
// wait (0: it may go ahead). Failures are counted in the store, so every
// replica throttles alike: an attacker gains nothing by spreading
// attempts over them.
func (s *Service) throttled(ctx context.Context, now time.Time, account, addr string) (time.Duration, error) {
	t := s.cfg.Throttle
	if t.PairFailures <= 0 && t.MaxAddressFailures <= 0 {
		return 0, nil
	}
	st, err := s.store.LoginFailureStats(ctx, account, addr, now.Add(-t.Window))
	if err != nil {
		return 0, err
	}
	free := t.PairFailures
	if t.MaxAccountFailures > 0 && st.Account >= t.MaxAccountFailures {
		free = min(free, 1)
	}
	until := st.PairLast.Add(t.delay(st.Pair, free))
	if addr != "" {
		if u := st.SourceLast.Add(t.delay(st.Source, t.MaxAddressFailures)); u.After(until) {
			until = u
		}
	}
	return max(until.Sub(now), 0), nil
}

// countFailure records a failed login with its audit event; failures
// older than the window are forgotten on the way. A successful password
// login clears the failures on the account from its own source
// (NewSession, IssueLoginToken): a stranger's failures elsewhere stay,
// and so do the address's on other accounts, so that one good password
// resets neither a guess nor a spray.
func (s *Service) countFailure(ctx context.Context, now time.Time, account, addr string) func(store.Tx) error {
	return func(tx store.Tx) error {
		return tx.LoginFailureAdd(ctx, account, addr, now, now.Add(-s.cfg.Throttle.Window))
	}
}

// retryAfter is the cause of a throttled login's error: how long to wait.
type retryAfter time.Duration

func (r retryAfter) Error() string { return fmt.Sprintf("retry after %s", time.Duration(r)) }

// errThrottledFor is the error of an attempt that must wait d.
func errThrottledFor(d time.Duration) error {
	return &airlock.Error{Kind: airlock.TooManyRequests, Message: errThrottled.Message, Err: retryAfter(d)}
}

// RetryAfterHeader is the Retry-After value for a refused sign-in: whole
// seconds, rounded up; 60 when err does not say.
func RetryAfterHeader(err error) string {
	retry := int64(60)
	if d := RetryAfter(err); d > 0 {
		retry = int64((d + time.Second - 1) / time.Second)
	}
	return strconv.FormatInt(retry, 10)
}

// RetryAfter returns how long the caller refused with err should wait
// before trying again (a throttled login), or 0.
func RetryAfter(err error) time.Duration {
	var r retryAfter
	if errors.As(err, &r) {
		return time.Duration(r)
	}
	return 0
}
