package run

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/authz"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/policy"
	"github.com/airlockhq/airlock/internal/store"
)

// countApprovals counts approvals of distinct people other than the
// requester that bind to the run as it is.
func countApprovals(r *store.Run, as []*store.RunApproval) int {
	seen := map[string]bool{}
	for _, a := range as {
		if a.Decision == "approve" && a.Binding == r.Binding && a.ApproverID != r.RequesterID {
			seen[a.ApproverID] = true
		}
	}
	return len(seen)
}

// Decide approves or denies a pending run. binding is what the approver
// saw (the run's binding); an approval of another run, or of the run as
// it was before a change, does not bind. The requester can never approve
// or deny their own run, whatever policy says.
func (s *Service) Decide(ctx context.Context, p *identity.Principal, id, decision, seen, comment string) (*store.Run, error) {
	if decision != "approve" && decision != "deny" {
		return nil, airlock.FieldError("decision", "expected approve or deny")
	}
	if decision == "deny" && strings.TrimSpace(comment) == "" {
		return nil, airlock.FieldError("comment", "say why the run is denied")
	}
	r, err := s.Get(ctx, p, id)
	if err != nil {
		return nil, err
	}
	now := s.now().UTC()
	var denied *airlock.Error
	refused := func() {
		_ = s.store.Update(ctx, func(tx store.Tx) error {
			return tx.AuditAppend(ctx, audit.New(ctx, now, audit.RunApproveDenied, p.Actor(), id, audit.Denied,
				map[string]any{"decision": decision, "reason": denied.Message}))
		})
	}
	// Said before policy's answer: the requester learns why, whatever
	// policy would say about them.
	if r.RequesterID == p.UserID {
		denied = airlock.Errorf(airlock.Forbidden, "you requested this run; someone else must approve it")
		refused()
		return nil, denied
	}
	proposerID, _, err := triggerProposer(ctx, s.store, r)
	if err != nil {
		return nil, err
	}
	if proposerID != "" && proposerID == p.UserID {
		denied = airlock.Errorf(airlock.Forbidden, "you proposed the trigger that requested this run (you hold its secret); someone else must approve it")
		refused()
		return nil, denied
	}
	res, c, err := s.resource(ctx, r, p)
	if err != nil {
		return nil, err
	}
	if err := s.authz.Check(ctx, p, policy.ActionApproveRun, res, c); err != nil {
		return nil, err
	}
	err = s.store.Update(ctx, func(tx store.Tx) error {
		denied = nil // Update may run this again
		var err error
		if r, err = tx.RunGet(ctx, id); err != nil {
			return err
		}
		if r.Status != store.RunPending {
			return airlock.Errorf(airlock.Conflict, "run %s is %s; only runs pending approval can be approved or denied", r.ID, r.Status)
		}
		if denied, err = identity.PeopleOnly(ctx, tx, p, "approve or deny runs"); err != nil {
			return err
		} else if denied != nil {
			return denied
		}
		if decision == "approve" {
			if denied, err = superseded(ctx, tx, r); err != nil {
				return err
			} else if denied != nil {
				return denied
			}
		}
		switch {
		case r.RequesterID == p.UserID:
			denied = airlock.Errorf(airlock.Forbidden, "you requested this run; someone else must approve it")
		case seen != r.Binding:
			denied = &airlock.Error{Kind: airlock.Conflict, Field: "binding",
				Message: fmt.Sprintf("this approval is for %q, but the run's binding is %s: look at the run again", seen, r.Binding)}
		case !r.ExpiresAt.IsZero() && now.After(r.ExpiresAt):
			denied = airlock.Errorf(airlock.Conflict, "the request expired at %s", r.ExpiresAt.Format("2006-01-02 15:04 UTC"))
		}
		if denied != nil {
			return denied
		}
		as, err := tx.RunApprovalList(ctx, r.ID)
		if err != nil {
			return err
		}
		for _, a := range as {
			if a.ApproverID == p.UserID {
				denied = airlock.Errorf(airlock.Conflict, "you already decided on this run; a person counts once")
				return denied
			}
		}
		if decision == "approve" {
			// An account the requester (or a fellow approver) created or
			// granted a group counts as that person.
			others := []string{r.RequesterID}
			if proposerID != "" {
				others = append(others, proposerID)
			}
			for _, a := range as {
				if a.Decision == "approve" {
					others = append(others, a.ApproverID)
				}
			}
			if denied, err = identity.OnePerson(ctx, tx, p.UserID, others); err != nil {
				return err
			} else if denied != nil {
				return denied
			}
		}
		a := &store.RunApproval{ID: airlock.NewID(airlock.PrefixRunApproval, now), RunID: r.ID, ApproverID: p.UserID, ApproverName: p.Username,
			Decision: decision, Comment: comment, Binding: r.Binding, CreatedAt: now}
		if err := tx.RunApprovalInsert(ctx, a); err != nil {
			return err
		}
		if decision == "deny" {
			r.Status, r.FinishedAt, r.SecretParams, r.Error = store.RunDenied, now, nil, "denied by "+p.Username+": "+comment
			if err := tx.RunUpdate(ctx, r); err != nil {
				return err
			}
			return tx.AuditAppend(ctx, audit.New(ctx, now, audit.RunDeny, p.Actor(), r.ID, audit.Success,
				map[string]any{"procedure": r.ProcedureName, "binding": r.Binding, "comment": comment, "requester": r.RequesterName}))
		}
		if err := tx.AuditAppend(ctx, audit.New(ctx, now, audit.RunApprove, p.Actor(), r.ID, audit.Success,
			map[string]any{"procedure": r.ProcedureName, "binding": r.Binding, "digest": r.Digest, "comment": comment, "requester": r.RequesterName})); err != nil {
			return err
		}
		if got := countApprovals(r, append(as, a)); got >= r.ApprovalsRequired {
			r.Status, r.QueuedAt = store.RunQueued, now
			if err := tx.RunUpdate(ctx, r); err != nil {
				return err
			}
			return tx.AuditAppend(ctx, audit.New(ctx, now, audit.RunQueue, audit.System, r.ID, audit.Success,
				map[string]any{"approvals": got, "required": r.ApprovalsRequired}))
		}
		return nil
	})
	if denied != nil {
		refused()
	}
	if err != nil {
		return nil, err
	}
	s.broker.notify(r.ID)
	switch r.Status {
	case store.RunQueued:
		s.cfg.Observer.RunQueued(r)
		s.WakeReplicas()
	case store.RunDenied:
		s.cfg.Observer.RunFinished(r)
	}
	return r, nil
}

// superseded refuses the approval of a run whose version is no longer
// the one in service (or whose procedure was retired): approved, it
// would be refused at start. Nothing is carried over to the version in
// service; the requester requests again.
func superseded(ctx context.Context, r store.Reader, run *store.Run) (*airlock.Error, error) {
	if run.Try {
		return nil, nil // a try run is of a proposed version, and needs no approval
	}
	proc, err := r.ProcedureGetByID(ctx, run.ProcedureID)
	if err != nil {
		return nil, err
	}
	if !proc.RetiredAt.IsZero() {
		return airlock.Errorf(airlock.Conflict, "%s was retired after this request; it cannot run", proc.Name), nil
	}
	if proc.ActiveVersionID == run.VersionID {
		return nil, nil
	}
	v, err := r.ProcedureVersionGet(ctx, run.VersionID)
	if err != nil {
		return nil, err
	}
	cur, err := r.ProcedureVersionGet(ctx, proc.ActiveVersionID)
	if err != nil {
		return nil, err
	}
	return airlock.Errorf(airlock.Conflict, "this run is bound to version %d of %s, superseded by version %d since it was requested: "+
		"approved, it would not start; deny it, and the requester requests it again on version %d", v.Number, proc.Name, cur.Number, cur.Number), nil
}

// Superseded reports, for pages, why a pending run can no longer be
// approved: its version was superseded or its procedure retired ("" when
// it can).
func (s *Service) Superseded(ctx context.Context, r *store.Run) string {
	e, err := superseded(ctx, s.store, r)
	if err != nil || e == nil {
		return ""
	}
	return e.Message
}

// Cancel stops a run: a pending or queued one at once; a running one by
// telling its worker (on whichever replica) to kill it.
func (s *Service) Cancel(ctx context.Context, p *identity.Principal, id string) (*store.Run, error) {
	r, err := s.Get(ctx, p, id)
	if err != nil {
		return nil, err
	}
	res, c, err := s.resource(ctx, r, p)
	if err != nil {
		return nil, err
	}
	if err := s.authz.Check(ctx, p, policy.ActionCancelRun, res, c); err != nil {
		return nil, err
	}
	now := s.now().UTC()
	err = s.store.Update(ctx, func(tx store.Tx) error {
		var err error
		if r, err = tx.RunGet(ctx, id); err != nil {
			return err
		}
		switch r.Status {
		case store.RunPending, store.RunQueued:
			r.Status, r.FinishedAt, r.SecretParams, r.Error = store.RunCanceled, now, nil, "canceled by "+p.Username+" before it started"
		case store.RunRunning:
			if r.CancelRequested {
				return airlock.Errorf(airlock.Conflict, "run %s is already being canceled", r.ID)
			}
			r.CancelRequested, r.Error = true, "canceled by "+p.Username
			if s.workerGone(r, now) {
				// Nothing executes it any more: waiting for its worker
				// would wait for ever, so it ends here.
				if err := tx.AuditAppend(ctx, audit.New(ctx, now, audit.RunCancel, p.Actor(), r.ID, audit.Success,
					map[string]any{"procedure": r.ProcedureName, "status": r.Status})); err != nil {
					return err
				}
				return endLost(ctx, tx, r, now, store.RunCanceled, fmt.Sprintf("canceled by %s; its worker %s had stopped heartbeating at %s during attempt %d",
					p.Username, r.WorkerID, r.HeartbeatAt.Format(time.RFC3339), r.Attempt))
			}
		default:
			return airlock.Errorf(airlock.Conflict, "run %s is %s already", r.ID, r.Status)
		}
		if err := tx.RunUpdate(ctx, r); err != nil {
			return err
		}
		return tx.AuditAppend(ctx, audit.New(ctx, now, audit.RunCancel, p.Actor(), r.ID, audit.Success,
			map[string]any{"procedure": r.ProcedureName, "status": r.Status}))
	})
	if err != nil {
		return nil, err
	}
	s.cancelLocal(r.ID, errCanceled)
	s.broker.notify(r.ID)
	if r.Status == store.RunCanceled {
		s.cfg.Observer.RunFinished(r)
	}
	return r, nil
}

// workerGone reports whether a running run's worker stopped
// heartbeating long enough ago to be reaped, and it is not executing
// here.
func (s *Service) workerGone(r *store.Run, now time.Time) bool {
	return !s.executing(r.ID) && r.HeartbeatAt.Before(now.Add(-s.cfg.HeartbeatTimeout))
}

// executing reports whether an attempt of the run executes here.
func (s *Service) executing(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.attempts {
		if k.run == id {
			return true
		}
	}
	return false
}

func (s *Service) cancelLocal(id string, cause error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, a := range s.attempts {
		if k.run == id {
			a.cancel(cause)
		}
	}
}

// Approvers lists the people who could approve r: permitted by the
// policy in force, and neither the requester nor an account that counts
// as the requester. For telling them; Decide still decides.
func (s *Service) Approvers(ctx context.Context, r *store.Run) ([]string, error) {
	res, c, err := s.resource(ctx, r, nil)
	if err != nil {
		return nil, err
	}
	proposerID, _, err := triggerProposer(ctx, s.store, r)
	if err != nil {
		return nil, err
	}
	others := []string{r.RequesterID}
	if proposerID != "" {
		others = append(others, proposerID)
	}
	var out []string
	err = authz.People(ctx, s.store, func(p *identity.Principal) error {
		// Those who may approve it and see it: a notification shows
		// nobody a run they could not open.
		if p.UserID == r.RequesterID || p.UserID == proposerID || !s.authz.Allowed(ctx, p, policy.ActionApproveRun, res, c) ||
			!s.authz.Allowed(ctx, p, policy.ActionViewRun, res, c) {
			return nil
		}
		if denied, err := identity.OnePerson(ctx, s.store, p.UserID, others); err != nil || denied != nil {
			return err
		}
		out = append(out, p.Username)
		return nil
	})
	return out, err
}
