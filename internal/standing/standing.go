// Package standing owns standing requests: schedules and event
// triggers. A standing request is proposed by someone who may request
// such a run and approved once by others, under the same rules as a run
// approval (never the proposer or an account that counts as them;
// bound to the procedure's version digest and, for a schedule, its
// parameters and targets). While it is active it starts runs unattended.
// When what was approved no longer holds — a new version of the
// procedure, changed targets, a policy that no longer permits it, its
// proposer or service account disabled — Airlock suspends it until it
// is approved again.
//
// The kinds differ in what they bind and how they start runs: a
// schedule's ticks start runs on the standing approval (schedule.go);
// a trigger's deliveries request runs as its service account, through
// policy (package trigger), which registers its check here.
package standing

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/authz"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/policy"
	"github.com/airlockhq/airlock/internal/run"
	"github.com/airlockhq/airlock/internal/store"
)

// Config tunes the scheduler.
type Config struct {
	// Interval is how often each replica looks for due ticks and checks
	// that active standing requests still hold.
	Interval time.Duration
	// Grace: a tick first seen later than this after its time (the
	// server was down, or the clock jumped) is missed, and the
	// schedule's missed-tick rule applies.
	Grace time.Duration
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config { return Config{Interval: 5 * time.Second, Grace: 5 * time.Minute} }

// Fresh is a standing request as it would be approved now.
type Fresh struct {
	VersionID string
	Digest    string
	Binding   string
	Targets   []string
	Approvals int
	// Why is set when what was approved no longer holds.
	Why string
	// Blocked: Why is not fixed by approving it again (its proposer or
	// account cannot act, policy refuses, the procedure cannot run).
	Blocked bool
}

// Checker replans a standing request of one kind as of now.
type Checker func(ctx context.Context, st *store.Standing) (*Fresh, error)

// Service manages standing requests.
type Service struct {
	store    store.Store
	authz    *authz.Authorizer
	runs     *run.Service
	log      *slog.Logger
	now      func() time.Time
	cfg      Config
	checkers map[string]Checker
}

// New returns a Service. now may be nil for time.Now.
func New(s store.Store, az *authz.Authorizer, runs *run.Service, cfg Config, log *slog.Logger, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultConfig().Interval
	}
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultConfig().Grace
	}
	svc := &Service{store: s, authz: az, runs: runs, log: log, now: now, cfg: cfg, checkers: map[string]Checker{}}
	svc.checkers[store.StandingSchedule] = svc.checkSchedule
	return svc
}

// SetChecker installs the check of a kind (the trigger package's).
func (s *Service) SetChecker(kind string, c Checker) { s.checkers[kind] = c }

// Runs is the run service standing requests start runs with.
func (s *Service) Runs() *run.Service { return s.runs }

// Now is the service's clock.
func (s *Service) Now() time.Time { return s.now() }

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// ValidName checks a standing request's name.
func ValidName(name string) error {
	if !nameRE.MatchString(name) {
		return airlock.FieldError("name", "expected lower-case letters, digits and '-', at most 63, got %q", name)
	}
	return nil
}

// What names a kind in messages.
func What(kind string) string {
	if kind == store.StandingTrigger {
		return "trigger"
	}
	return "schedule"
}

// Insert stores a new standing request proposed by p with its audit
// event (kind.propose) carrying details.
func (s *Service) Insert(ctx context.Context, p *identity.Principal, st *store.Standing, details map[string]any) error {
	now := s.now().UTC()
	st.Status, st.ProposerID, st.ProposerName = store.StandingPending, p.UserID, p.Username
	st.ProposedAt, st.CreatedAt, st.UpdatedAt = now, now, now
	if details == nil {
		details = map[string]any{}
	}
	details["name"], details["procedure"], details["environment"] = st.Name, st.ProcedureName, st.Environment
	details["digest"], details["binding"], details["approvals_required"] = st.Digest, st.Binding, st.ApprovalsRequired
	err := s.store.Update(ctx, func(tx store.Tx) error {
		if err := tx.StandingInsert(ctx, st); err != nil {
			if airlock.ErrorKind(err) == airlock.Conflict {
				return airlock.FieldError("name", "a %s named %q exists already", What(st.Kind), st.Name)
			}
			return err
		}
		return tx.AuditAppend(ctx, audit.New(ctx, now, st.Kind+".propose", p.Actor(), st.ID, audit.Success, details))
	})
	return err
}

// Get returns a standing request p may see (they may view its
// procedure); others are not found.
func (s *Service) Get(ctx context.Context, p *identity.Principal, kind, name string) (*store.Standing, error) {
	st, err := s.store.StandingGetByName(ctx, kind, name)
	if err != nil {
		return nil, err
	}
	if !s.visible(ctx, p, st) {
		return nil, airlock.Errorf(airlock.NotFound, "%s %q not found", What(kind), name)
	}
	return st, nil
}

func (s *Service) visible(ctx context.Context, p *identity.Principal, st *store.Standing) bool {
	proc, err := s.store.ProcedureGetByID(ctx, st.ProcedureID)
	if err != nil {
		return false
	}
	pr, err := authz.ProcedureOf(ctx, s.store, proc)
	if err != nil {
		return false
	}
	return s.authz.Allowed(ctx, p, policy.ActionView, policy.Resource{Procedure: &pr}, policy.Context{})
}

// List lists the standing requests of a kind p may see, deleted ones
// only when status asks for them.
func (s *Service) List(ctx context.Context, p *identity.Principal, kind, status string) ([]*store.Standing, error) {
	all, err := s.store.StandingList(ctx, kind, status)
	if err != nil {
		return nil, err
	}
	var out []*store.Standing
	for _, st := range all {
		if (status == "" && st.Status == store.StandingDeleted) || !s.visible(ctx, p, st) {
			continue
		}
		out = append(out, st)
	}
	return out, nil
}

// Approvals lists a standing request's decisions.
func (s *Service) Approvals(ctx context.Context, st *store.Standing) ([]*store.StandingApproval, error) {
	return s.store.StandingApprovalList(ctx, st.ID)
}

// Events lists what a standing request did, newest first.
func (s *Service) Events(ctx context.Context, st *store.Standing, limit int) ([]*store.StandingEvent, error) {
	return s.store.StandingEventList(ctx, st.ID, limit)
}

// counted returns the approvals that count now: approve, bound to the
// current binding, made since the (last) proposal, one per person.
func counted(st *store.Standing, as []*store.StandingApproval) []*store.StandingApproval {
	seen := map[string]bool{}
	var out []*store.StandingApproval
	for _, a := range as {
		if a.Decision == "approve" && a.Binding == st.Binding && !a.CreatedAt.Before(st.ProposedAt) &&
			a.ApproverID != st.ProposerID && !seen[a.ApproverID] {
			seen[a.ApproverID] = true
			out = append(out, a)
		}
	}
	return out
}

// InForce returns the approvals a standing request is active under.
func (s *Service) InForce(ctx context.Context, st *store.Standing) ([]*store.StandingApproval, error) {
	as, err := s.store.StandingApprovalList(ctx, st.ID)
	if err != nil {
		return nil, err
	}
	return counted(st, as), nil
}

// requester is who a standing request's runs are requested as, for
// policies: its service account (trigger) or its proposer (schedule).
func requester(st *store.Standing) (id, name string) {
	if st.AccountID != "" {
		return st.AccountID, st.AccountName
	}
	return st.ProposerID, st.ProposerName
}

// resource describes a standing request to policies as the run it
// starts, pending approval.
func (s *Service) resource(ctx context.Context, st *store.Standing) (policy.Resource, policy.Context, error) {
	proc, err := s.store.ProcedureGetByID(ctx, st.ProcedureID)
	if err != nil {
		return policy.Resource{}, policy.Context{}, err
	}
	pr, err := authz.ProcedureOf(ctx, s.store, proc)
	if err != nil {
		return policy.Resource{}, policy.Context{}, err
	}
	params, err := run.PolicyParams(orObject(st.Params))
	if err != nil {
		return policy.Resource{}, policy.Context{}, err
	}
	id, name := requester(st)
	groups, err := authz.GroupsOf(ctx, s.store, id)
	if err != nil {
		return policy.Resource{}, policy.Context{}, err
	}
	return policy.Resource{Run: &policy.RunInfo{ID: st.ID, Requester: name, RequesterGroups: groups, Environment: st.Environment,
			Status: store.RunPending, Procedure: pr}},
		policy.Context{Environment: st.Environment, Params: params, Targets: st.Targets}, nil
}

func orObject(b []byte) []byte {
	if len(b) == 0 {
		return []byte("{}")
	}
	return b
}

// MayApprove reports, without auditing, whether p could approve st now
// (for showing buttons and telling approvers; Decide decides).
func (s *Service) MayApprove(ctx context.Context, p *identity.Principal, st *store.Standing) bool {
	if p.UserID == st.ProposerID || st.Status != store.StandingPending {
		return false
	}
	res, c, err := s.resource(ctx, st)
	return err == nil && s.authz.Allowed(ctx, p, policy.ActionApproveRun, res, c)
}

// Approvers lists the people who could approve a proposed standing
// request: policy lets them approve such a run, they are not its
// proposer or service account nor count as either, and are persons.
// For telling them; Decide decides.
func (s *Service) Approvers(ctx context.Context, st *store.Standing) ([]string, error) {
	res, c, err := s.resource(ctx, st)
	if err != nil {
		return nil, err
	}
	var out []string
	err = authz.People(ctx, s.store, func(p *identity.Principal) error {
		if p.UserID == st.ProposerID || p.UserID == st.AccountID || !s.authz.Allowed(ctx, p, policy.ActionApproveRun, res, c) {
			return nil
		}
		if svc, err := isService(ctx, s.store, p.UserID); err != nil || svc {
			return err
		}
		others := []string{st.ProposerID}
		if st.AccountID != "" {
			others = append(others, st.AccountID)
		}
		if denied, err := identity.OnePerson(ctx, s.store, p.UserID, others); err != nil || denied != nil {
			return err
		}
		out = append(out, p.Username)
		return nil
	})
	return out, err
}

// isService reports whether userID is a service account.
func isService(ctx context.Context, r store.Reader, userID string) (bool, error) {
	u, err := r.UserGetByID(ctx, userID)
	if err != nil {
		if airlock.ErrorKind(err) == airlock.NotFound {
			return false, nil
		}
		return false, err
	}
	return u.Kind == store.AccountService, nil
}

// Decide approves or denies a proposed standing request. seen is the
// binding the decider looked at. The approval that completes the quorum
// makes it active; a denial ends it.
func (s *Service) Decide(ctx context.Context, p *identity.Principal, kind, name, decision, seen, comment string) (*store.Standing, error) {
	if decision != "approve" && decision != "deny" {
		return nil, airlock.FieldError("decision", "expected approve or deny")
	}
	if decision == "deny" && strings.TrimSpace(comment) == "" {
		return nil, airlock.FieldError("comment", "say why it is denied")
	}
	if len(comment) > 2000 {
		return nil, airlock.FieldError("comment", "at most 2000 characters")
	}
	st, err := s.Get(ctx, p, kind, name)
	if err != nil {
		return nil, err
	}
	what := What(kind)
	now := s.now().UTC()
	var denied *airlock.Error
	refuse := func(e *airlock.Error) (*store.Standing, error) {
		_ = s.store.Update(ctx, func(tx store.Tx) error {
			return tx.AuditAppend(ctx, audit.New(ctx, now, kind+".approve_denied", p.Actor(), st.ID, audit.Denied,
				map[string]any{"name": st.Name, "decision": decision, "reason": e.Message}))
		})
		return nil, e
	}
	if svc, err := isService(ctx, s.store, p.UserID); err != nil {
		return nil, err
	} else if svc {
		return refuse(airlock.Errorf(airlock.Forbidden, "a service account cannot approve or deny a %s", what))
	}
	switch p.UserID {
	case st.ProposerID:
		return refuse(airlock.Errorf(airlock.Forbidden, "you proposed this %s; someone else must approve it", what))
	case st.AccountID:
		return refuse(airlock.Errorf(airlock.Forbidden, "this %s runs as you; someone else must approve it", what))
	}
	res, c, err := s.resource(ctx, st)
	if err != nil {
		return nil, err
	}
	if err := s.authz.Check(ctx, p, policy.ActionApproveRun, res, c); err != nil {
		return nil, err
	}
	err = s.store.Update(ctx, func(tx store.Tx) error {
		denied = nil
		var err error
		if st, err = tx.StandingGet(ctx, st.ID); err != nil {
			return err
		}
		switch {
		case st.Status != store.StandingPending:
			return airlock.Errorf(airlock.Conflict, "%s %s is %s; only one pending approval can be approved or denied", what, st.Name, st.Status)
		case st.ProposerID == p.UserID:
			denied = airlock.Errorf(airlock.Forbidden, "you proposed this %s; someone else must approve it", what)
		case st.AccountID == p.UserID:
			denied = airlock.Errorf(airlock.Forbidden, "this %s runs as you; someone else must approve it", what)
		case seen != st.Binding:
			denied = &airlock.Error{Kind: airlock.Conflict, Field: "binding",
				Message: fmt.Sprintf("this approval is for %q, but the %s's binding is %s: look at it again", seen, what, st.Binding)}
		}
		if denied != nil {
			return denied
		}
		as, err := tx.StandingApprovalList(ctx, st.ID)
		if err != nil {
			return err
		}
		others := []string{st.ProposerID}
		if st.AccountID != "" {
			others = append(others, st.AccountID)
		}
		for _, a := range as {
			if a.CreatedAt.Before(st.ProposedAt) {
				continue
			}
			if a.ApproverID == p.UserID {
				denied = airlock.Errorf(airlock.Conflict, "you already decided on this %s; a person counts once", what)
				return denied
			}
			if a.Decision == "approve" {
				others = append(others, a.ApproverID)
			}
		}
		if decision == "approve" {
			if denied, err = identity.OnePerson(ctx, tx, p.UserID, others); err != nil {
				return err
			} else if denied != nil {
				return denied
			}
		}
		a := &store.StandingApproval{ID: airlock.NewID(airlock.PrefixStandingApproval, now), StandingID: st.ID, ApproverID: p.UserID,
			ApproverName: p.Username, Decision: decision, Comment: comment, Binding: st.Binding, CreatedAt: now}
		if err := tx.StandingApprovalInsert(ctx, a); err != nil {
			return err
		}
		if err := tx.AuditAppend(ctx, audit.New(ctx, now, kind+"."+decision, p.Actor(), st.ID, audit.Success, map[string]any{
			"name": st.Name, "procedure": st.ProcedureName, "environment": st.Environment, "digest": st.Digest,
			"binding": st.Binding, "comment": comment, "proposer": st.ProposerName})); err != nil {
			return err
		}
		if decision == "deny" {
			st.Status, st.StatusReason, st.UpdatedAt = store.StandingDenied, "denied by "+p.Username+": "+comment, now
			return tx.StandingUpdate(ctx, st)
		}
		got := counted(st, append(as, a))
		if len(got) < st.ApprovalsRequired {
			return nil
		}
		st.Status, st.StatusReason, st.Cursor, st.UpdatedAt = store.StandingActive, "", now, now
		if err := tx.StandingUpdate(ctx, st); err != nil {
			return err
		}
		names := make([]string, len(got))
		for i, a := range got {
			names[i] = a.ApproverName
		}
		return tx.AuditAppend(ctx, audit.New(ctx, now, kind+".activate", audit.System, st.ID, audit.Success,
			map[string]any{"name": st.Name, "approvers": names, "required": st.ApprovalsRequired, "binding": st.Binding}))
	})
	if denied != nil {
		return refuse(denied)
	}
	if err != nil {
		return nil, err
	}
	return st, nil
}

// mayManage: the proposer, anyone policy lets approve it, and policy
// admins may pause, resume and delete a standing request.
// A token's scope narrows this too: its owner's token may manage only
// what the scope lets it request, run or approve.
func (s *Service) mayManage(ctx context.Context, p *identity.Principal, st *store.Standing, act string) error {
	if p.UserID == st.ProposerID && scopeAllows(p, st) || s.authz.AllowedSystem(ctx, p, policy.ActionManagePolicy) {
		return nil
	}
	res, c, err := s.resource(ctx, st)
	if err != nil {
		return err
	}
	if s.authz.Allowed(ctx, p, policy.ActionApproveRun, res, c) {
		return nil
	}
	return s.authz.Check(ctx, p, policy.ActionApproveRun, res, c)
}

func scopeAllows(p *identity.Principal, st *store.Standing) bool {
	if p.Scope == nil {
		return true
	}
	for _, e := range p.Scope {
		for _, a := range []string{policy.ActionRun, policy.ActionRequest, policy.ActionApproveRun} {
			if e.Permits(a, st.ProcedureName, st.Environment) {
				return true
			}
		}
	}
	return false
}

// Pause stops an active standing request from starting runs until it
// is resumed.
func (s *Service) Pause(ctx context.Context, p *identity.Principal, kind, name, comment string) (*store.Standing, error) {
	return s.change(ctx, p, kind, name, "pause", comment, func(st *store.Standing, f *Fresh) error {
		if st.Status != store.StandingActive {
			return airlock.Errorf(airlock.Conflict, "%s %s is %s; only an active one can be paused", What(kind), st.Name, st.Status)
		}
		st.Status, st.StatusReason = store.StandingPaused, "paused by "+p.Username
		return nil
	})
}

// Resume makes a paused standing request active again when what was
// approved still holds, and proposes a suspended one (or a paused one
// that no longer holds) again: it waits for new approvals, bound to
// what is in service now.
func (s *Service) Resume(ctx context.Context, p *identity.Principal, kind, name, comment string) (*store.Standing, error) {
	return s.change(ctx, p, kind, name, "resume", comment, func(st *store.Standing, f *Fresh) error {
		if st.Status != store.StandingPaused && st.Status != store.StandingSuspended {
			return airlock.Errorf(airlock.Conflict, "%s %s is %s; only a paused or suspended one can be resumed", What(kind), st.Name, st.Status)
		}
		if f.Blocked {
			return airlock.Errorf(airlock.Conflict, "%s %s cannot be resumed: %s", What(kind), st.Name, f.Why)
		}
		now := s.now().UTC()
		if st.Status == store.StandingPaused && f.Why == "" {
			// Ticks while it was paused are not missed ones.
			st.Status, st.StatusReason, st.Cursor = store.StandingActive, "", now
			return nil
		}
		st.VersionID, st.Digest, st.Binding, st.Targets = f.VersionID, f.Digest, f.Binding, f.Targets
		st.ApprovalsRequired = max(1, f.Approvals)
		st.Status, st.StatusReason, st.ProposedAt = store.StandingPending, "proposed again by "+p.Username, now
		return nil
	})
}

// Delete ends a standing request for good; its history stays.
func (s *Service) Delete(ctx context.Context, p *identity.Principal, kind, name, comment string) (*store.Standing, error) {
	return s.change(ctx, p, kind, name, "delete", comment, func(st *store.Standing, f *Fresh) error {
		st.Status, st.StatusReason = store.StandingDeleted, "deleted by "+p.Username
		return nil
	})
}

func (s *Service) change(ctx context.Context, p *identity.Principal, kind, name, verb, comment string, fn func(*store.Standing, *Fresh) error) (*store.Standing, error) {
	if len(comment) > 2000 {
		return nil, airlock.FieldError("comment", "at most 2000 characters")
	}
	st, err := s.Get(ctx, p, kind, name)
	if err != nil {
		return nil, err
	}
	if err := s.mayManage(ctx, p, st, verb); err != nil {
		return nil, err
	}
	var f *Fresh
	if verb == "resume" {
		if f, err = s.checkers[kind](ctx, st); err != nil {
			return nil, err
		}
	}
	now := s.now().UTC()
	err = s.store.Update(ctx, func(tx store.Tx) error {
		cur, err := tx.StandingGet(ctx, st.ID)
		if err != nil {
			return err
		}
		from := cur.Status
		if err := fn(cur, f); err != nil {
			return err
		}
		cur.UpdatedAt = now
		if err := tx.StandingUpdate(ctx, cur); err != nil {
			return err
		}
		st = cur
		return tx.AuditAppend(ctx, audit.New(ctx, now, kind+"."+verb, p.Actor(), cur.ID, audit.Success, map[string]any{
			"name": cur.Name, "from": from, "status": cur.Status, "comment": comment, "binding": cur.Binding, "digest": cur.Digest}))
	})
	if err != nil {
		return nil, err
	}
	return st, nil
}

// Suspend stops an active standing request whose approval no longer
// holds, saying why (Airlock's own act, audited as kind.suspend).
func (s *Service) Suspend(ctx context.Context, st *store.Standing, why string) error {
	now := s.now().UTC()
	err := s.store.Update(ctx, func(tx store.Tx) error {
		cur, err := tx.StandingGet(ctx, st.ID)
		if err != nil {
			return err
		}
		if cur.Status != store.StandingActive {
			return nil
		}
		cur.Status, cur.StatusReason, cur.UpdatedAt = store.StandingSuspended, why, now
		if err := tx.StandingUpdate(ctx, cur); err != nil {
			return err
		}
		return tx.AuditAppend(ctx, audit.New(ctx, now, cur.Kind+".suspend", audit.System, cur.ID, audit.Success, map[string]any{
			"name": cur.Name, "procedure": cur.ProcedureName, "environment": cur.Environment, "reason": why,
			"proposer": cur.ProposerName, "digest": cur.Digest}))
	})
	if err == nil {
		s.log.Warn("standing request suspended", "kind", st.Kind, "name", st.Name, "reason", why)
	}
	return err
}

// Check returns what a standing request would be approved as now.
func (s *Service) Check(ctx context.Context, st *store.Standing) (*Fresh, error) {
	c, ok := s.checkers[st.Kind]
	if !ok {
		return nil, fmt.Errorf("standing: no check for kind %q", st.Kind)
	}
	return c(ctx, st)
}

// PrincipalOf loads a standing request's proposer or service account
// as they are now; nil with a reason when they cannot act any more.
func PrincipalOf(ctx context.Context, r store.Reader, userID string) (*identity.Principal, string, error) {
	u, err := r.UserGetByID(ctx, userID)
	if err != nil {
		if airlock.ErrorKind(err) == airlock.NotFound {
			return nil, "its proposer's account is gone", nil
		}
		return nil, "", err
	}
	if u.Disabled {
		return nil, fmt.Sprintf("%s's account is disabled", u.Username), nil
	}
	gs, err := authz.GroupsOf(ctx, r, u.ID)
	if err != nil {
		return nil, "", err
	}
	return &identity.Principal{UserID: u.ID, Username: u.Username, Groups: gs}, "", nil
}
