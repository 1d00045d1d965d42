package identity

import (
	"context"
	"errors"
	"time"

	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/store"
)

// recordLoginFailure audits a failed or throttled sign-in without
// letting a flood of them flood the audit log. The first from a source
// address in a window (ThrottleConfig.AuditWindow) is an event at once,
// so that an alert fires promptly; the rest of the window are counted in
// the store (cross-replica) and recorded as one user.login_failures event
// with their count when the window closes: at the source's next attempt
// after it, or at the sweep (FlushLoginReports), whichever comes first.
// So a source gets at most two events per window, and every attempt is
// in the log in the end, in its own event or in a count.
//
// failure says the attempt counts for the throttle (a wrong password
// does; a throttled attempt or a refused single sign-on does not).
func (s *Service) recordLoginFailure(ctx context.Context, now time.Time, typ, outcome string, u *store.User, username, reason string, failure bool) {
	addr := audit.MetaFrom(ctx).SourceAddr
	window, prune := s.cfg.Throttle.AuditWindow, now.Add(-s.cfg.Throttle.Window)
	if window > 0 {
		counted, err := s.store.LoginFailureTally(ctx, store.LoginTally{Addr: addr, Username: username, At: now,
			OpenSince: now.Add(-window), Throttled: typ == audit.UserLoginThrottled, Failure: failure, PruneBefore: prune})
		if err == nil && counted {
			return
		}
		if err != nil { // audited by itself below instead
			s.log.Error("count failed login", "err", err)
		}
	}
	actor := audit.Actor{Name: username}
	subject := ""
	if u != nil {
		actor.ID, subject = u.ID, u.ID
	}
	err := s.update(ctx, func(tx store.Tx) error {
		if window > 0 {
			r, err := tx.LoginReportRestart(ctx, addr, now, now.Add(-window))
			if err != nil {
				return err
			}
			if r != nil {
				if err := tx.AuditAppend(ctx, loginReportEvent(ctx, now, r)); err != nil {
					return err
				}
			}
		}
		if failure {
			if err := tx.LoginFailureAdd(ctx, username, addr, now, prune); err != nil {
				return err
			}
		}
		return tx.AuditAppend(ctx, audit.New(ctx, now, typ, actor, subject, outcome, map[string]any{"username": username, "reason": reason}))
	})
	if err != nil {
		s.log.Error("audit login event", "type", typ, "err", err)
	}
}

// loginReportEvent is the user.login_failures event that records what a
// source's closed window counted.
func loginReportEvent(ctx context.Context, now time.Time, r *store.LoginReport) *store.AuditEvent {
	ctx = audit.WithMeta(ctx, audit.Meta{SourceAddr: r.Addr})
	names := r.Usernames
	if names == nil {
		names = []string{}
	}
	return audit.New(ctx, now, audit.UserLoginFailures, audit.Actor{}, "", audit.Failure, map[string]any{
		"source_addr": r.Addr, "attempts": r.Failed + r.Throttled, "failed": r.Failed, "throttled": r.Throttled,
		"usernames": names, "more_usernames": r.MoreNames,
		"window_start": r.WindowStart, "first_at": r.FirstAt, "last_at": r.LastAt,
	})
}

// FlushLoginReports records the windows that have closed with attempts
// counted, one user.login_failures event each, and forgets the empty
// ones. The server calls it periodically (RunLoginReports); any replica
// may, and each report is recorded once.
func (s *Service) FlushLoginReports(ctx context.Context) error {
	window := s.cfg.Throttle.AuditWindow
	if window <= 0 {
		return nil
	}
	now := s.now()
	addrs, err := s.store.LoginReportsClosed(ctx, now.Add(-window))
	if err != nil {
		return err
	}
	var errs []error
	for _, addr := range addrs {
		errs = append(errs, s.update(ctx, func(tx store.Tx) error {
			r, err := tx.LoginReportTake(ctx, addr, now.Add(-window))
			if err != nil || r == nil {
				return err
			}
			return tx.AuditAppend(ctx, loginReportEvent(ctx, now, r))
		}))
	}
	return errors.Join(errs...)
}

// RunLoginReports flushes closed login reports every interval until ctx
// ends.
func (s *Service) RunLoginReports(ctx context.Context, interval time.Duration) {
	if s.cfg.Throttle.AuditWindow <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.FlushLoginReports(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("record failed-login reports", "err", err)
			}
		}
	}
}
