// Package trigger owns event triggers: an inbound webhook per trigger,
// authenticated by a Standard Webhooks signature or a bearer secret,
// whose payload (a generic JSON document, a Prometheus Alertmanager or
// a PagerDuty webhook) is mapped to a procedure's parameters with RFC
// 9535 JSONPath expressions, and whose runs are requested as the
// trigger's service account, through policy: queued where policy lets
// the account run the procedure without an approval, pending a human
// approval where the procedure or policy requires one.
//
// A trigger is a standing request (package standing): proposed by a
// person who may request the procedure and who owns the service
// account, approved once by others, bound to the version digest, the
// environment, its spec and its account, and suspended when what was
// approved no longer holds. Its secret is made at proposal, shown once
// and stored sealed; nothing reads it back but the delivery check.
//
// The package does not import net/http: the API reads the request and
// hands a Delivery over.
package trigger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/authz"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/policy"
	"github.com/airlockhq/airlock/internal/procedure"
	"github.com/airlockhq/airlock/internal/run"
	"github.com/airlockhq/airlock/internal/secret"
	"github.com/airlockhq/airlock/internal/standing"
	"github.com/airlockhq/airlock/internal/store"
)

// Service proposes triggers and takes their deliveries.
type Service struct {
	standing *standing.Service
	store    store.Store
	authz    *authz.Authorizer
	keyring  *secret.Keyring
	log      *slog.Logger
	now      func() time.Time
	refused  *refusals
	// busy serializes a trigger's deliveries on this replica, from the
	// rate check to the last run requested, so that deliveries arriving
	// at once cannot all pass the rate before any is recorded.
	mu   sync.Mutex
	busy map[string]*sync.Mutex
}

// serialize holds the trigger id's delivery lock; call the returned
// function to release it.
func (s *Service) serialize(id string) func() {
	s.mu.Lock()
	if s.busy == nil {
		s.busy = map[string]*sync.Mutex{}
	}
	m := s.busy[id]
	if m == nil {
		m = &sync.Mutex{}
		s.busy[id] = m
	}
	s.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// New returns a Service and registers the triggers' check with the
// standing requests' service. now may be nil for time.Now.
func New(sv *standing.Service, s store.Store, az *authz.Authorizer, kr *secret.Keyring, log *slog.Logger, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	t := &Service{standing: sv, store: s, authz: az, keyring: kr, log: log, now: now, refused: newRefusals(s, log, now)}
	sv.SetChecker(store.StandingTrigger, t.Check)
	return t
}

// Request proposes a trigger.
type Request struct {
	Name        string
	Procedure   string
	Environment string
	// Account is the service account the trigger's runs are requested
	// as.
	Account string
	Reason  string
	Spec
}

// Propose validates and stores a trigger proposed by p, and returns it
// with its secret — the only time the secret is shown. p must be a
// person who may request the procedure in the environment and who is in
// the service account's owner team (or may manage users).
func (s *Service) Propose(ctx context.Context, p *identity.Principal, req Request) (*store.Standing, string, error) {
	// Who may propose first, so that a caller without rights learns
	// nothing from validation.
	if u, err := s.store.UserGetByID(ctx, p.UserID); err != nil {
		return nil, "", err
	} else if u.Kind == store.AccountService {
		return nil, "", airlock.Errorf(airlock.Forbidden, "a service account cannot propose a trigger; a person proposes it")
	}
	proc, err := s.store.ProcedureGetByName(ctx, req.Procedure)
	if err != nil {
		return nil, "", err
	}
	pr, err := authz.ProcedureOf(ctx, s.store, proc)
	if err != nil {
		return nil, "", err
	}
	if err := s.authz.CheckObject(ctx, p, policy.ActionView, policy.Resource{Procedure: &pr}, policy.Context{}, "procedure"); err != nil {
		return nil, "", err
	}
	if !slices.Contains(s.authz.Environments(), req.Environment) {
		return nil, "", airlock.FieldError("environment", "expected one of %v, got %q", s.authz.Environments(), req.Environment)
	}
	c := policy.Context{Environment: req.Environment}
	res := policy.Resource{Procedure: &pr}
	if !s.authz.Allowed(ctx, p, policy.ActionRun, res, c) && !s.authz.Allowed(ctx, p, policy.ActionRequest, res, c) {
		if err := s.authz.Check(ctx, p, policy.ActionRequest, res, c); err != nil {
			return nil, "", err
		}
	}
	acct, err := s.account(ctx, p, req.Account)
	if err != nil {
		return nil, "", err
	}
	if err := standing.ValidName(req.Name); err != nil {
		return nil, "", err
	}
	if len(req.Reason) > 2000 {
		return nil, "", airlock.FieldError("reason", "at most 2000 characters")
	}
	if err := req.Spec.Normalize(); err != nil {
		return nil, "", err
	}
	v, def, err := s.active(ctx, proc)
	if err != nil {
		return nil, "", err
	}
	if err := req.Spec.check(def); err != nil {
		return nil, "", err
	}
	ap, why, err := standing.PrincipalOf(ctx, s.store, acct.ID)
	if err != nil {
		return nil, "", err
	} else if why != "" {
		return nil, "", airlock.FieldError("account", "%s", why)
	}
	if !s.mayAsk(ctx, ap, res, c) {
		return nil, "", airlock.FieldError("account", "no policy lets %s run or request %s in %s: a trigger as it could never start a run", acct.Username, proc.Name, req.Environment)
	}
	secretText, err := NewSecret()
	if err != nil {
		return nil, "", err
	}
	now := s.now()
	st := &store.Standing{ID: airlock.NewID(airlock.PrefixTrigger, now), Kind: store.StandingTrigger, Name: req.Name,
		ProcedureID: proc.ID, ProcedureName: proc.Name, Environment: req.Environment, VersionID: v.ID, Digest: v.Digest,
		Binding: Binding(v.Digest, req.Environment, req.Spec, acct.ID), ApprovalsRequired: approvals(def, req.Environment),
		AccountID: acct.ID, AccountName: acct.Username}
	st.Spec, _ = json.Marshal(req.Spec)
	if st.Secret, err = s.keyring.Seal([]byte(secretText), []byte(st.ID)); err != nil {
		return nil, "", err
	}
	err = s.standing.Insert(ctx, p, st, map[string]any{"account": acct.Username, "preset": req.Preset, "auth": req.Auth,
		"mapping": req.Mapping, "dedup_key": req.DedupKey, "on_resolved": req.OnResolved, "rate_per_minute": req.RatePerMinute,
		"reason": req.Reason, "version_id": v.ID})
	if err != nil {
		return nil, "", err
	}
	return st, secretText, nil
}

// account returns the service account named name, for p to propose a
// trigger as: p must be in its owner team or may manage users.
func (s *Service) account(ctx context.Context, p *identity.Principal, name string) (*store.User, error) {
	u, err := s.store.UserGetByUsername(ctx, name)
	if err != nil && airlock.ErrorKind(err) != airlock.NotFound {
		return nil, err
	}
	isService := u != nil && u.Kind == store.AccountService
	if !isService || u.OwnerTeam == "" || !p.InGroup(u.OwnerTeam) {
		if err := s.authz.CheckSystem(ctx, p, policy.ActionManageUsers); err != nil {
			return nil, err
		}
	}
	switch {
	case !isService:
		return nil, airlock.FieldError("account", "no service account %q", name)
	case u.Disabled:
		return nil, airlock.FieldError("account", "service account %s is disabled", name)
	}
	return u, nil
}

// mayAsk reports whether p may run or request the procedure in c.
func (s *Service) mayAsk(ctx context.Context, p *identity.Principal, res policy.Resource, c policy.Context) bool {
	return s.authz.Allowed(ctx, p, policy.ActionRun, res, c) || s.authz.Allowed(ctx, p, policy.ActionRequest, res, c)
}

// active returns a procedure's version in service and its definition.
func (s *Service) active(ctx context.Context, proc *store.Procedure) (*store.ProcedureVersion, *procedure.Procedure, error) {
	if !proc.RetiredAt.IsZero() {
		return nil, nil, airlock.Errorf(airlock.Conflict, "%s is retired: no new runs start", proc.Name)
	}
	if proc.ActiveVersionID == "" {
		return nil, nil, airlock.Errorf(airlock.Conflict, "%s has no approved version yet", proc.Name)
	}
	v, err := s.store.ProcedureVersionGet(ctx, proc.ActiveVersionID)
	if err != nil {
		return nil, nil, err
	}
	def, err := procedure.FromCanonical(v.Definition)
	if err != nil {
		return nil, nil, err
	}
	return v, def, nil
}

// approvals is how many people approve a trigger: as many as a run of
// the procedure needs in env where it needs any, and at least one.
func approvals(def *procedure.Procedure, env string) int {
	if authz.NeedsApproval(def, env) && def.Approval.Count > 1 {
		return def.Approval.Count
	}
	return 1
}

// Check replans a trigger as of now (the standing requests' Checker):
// Why is set when its approval no longer holds — another version in
// service, a changed spec binding, more approvals needed — and Blocked
// when approving it again would not help: its proposer or service
// account cannot act, the procedure is retired or cannot take the
// mapping, or policy does not let the account run or request it.
func (s *Service) Check(ctx context.Context, st *store.Standing) (*standing.Fresh, error) {
	blocked := func(format string, args ...any) (*standing.Fresh, error) {
		return &standing.Fresh{Why: fmt.Sprintf(format, args...), Blocked: true}, nil
	}
	spec, err := SpecOf(st)
	if err != nil {
		return nil, err
	}
	if _, why, err := standing.PrincipalOf(ctx, s.store, st.ProposerID); err != nil || why != "" {
		return &standing.Fresh{Why: why, Blocked: true}, err
	}
	u, err := s.store.UserGetByID(ctx, st.AccountID)
	if err != nil {
		if airlock.ErrorKind(err) == airlock.NotFound {
			return blocked("its service account is gone")
		}
		return nil, err
	}
	if u.Kind != store.AccountService {
		return blocked("%s is not a service account", u.Username)
	}
	ap, why, err := standing.PrincipalOf(ctx, s.store, u.ID)
	if err != nil || why != "" {
		return &standing.Fresh{Why: why, Blocked: true}, err
	}
	proc, err := s.store.ProcedureGetByID(ctx, st.ProcedureID)
	if err != nil {
		return nil, err
	}
	v, def, err := s.active(ctx, proc)
	if err != nil {
		var e *airlock.Error
		if errors.As(err, &e) {
			return blocked("%s", e.Message)
		}
		return nil, err
	}
	if err := spec.check(def); err != nil {
		return blocked("version %d of %s cannot take its mapping: %s", v.Number, proc.Name, airlock.ErrorMessage(err))
	}
	pr, err := authz.ProcedureOf(ctx, s.store, proc)
	if err != nil {
		return nil, err
	}
	if !s.mayAsk(ctx, ap, policy.Resource{Procedure: &pr}, policy.Context{Environment: st.Environment}) {
		return blocked("no policy in force lets %s run or request %s in %s any more", u.Username, proc.Name, st.Environment)
	}
	f := &standing.Fresh{VersionID: v.ID, Digest: v.Digest, Binding: Binding(v.Digest, st.Environment, spec, u.ID),
		Approvals: approvals(def, st.Environment)}
	switch {
	case v.Digest != st.Digest:
		f.Why = fmt.Sprintf("version %d of %s (%s) is in service now, not the approved %s", v.Number, proc.Name, v.Digest, st.Digest)
	case f.Binding != st.Binding:
		f.Why = "what the trigger binds (its spec, environment or account) is not what was approved"
	case f.Approvals > st.ApprovalsRequired:
		f.Why = fmt.Sprintf("%s now needs %d approvals in %s, it had %d", proc.Name, f.Approvals, st.Environment, st.ApprovalsRequired)
	}
	return f, nil
}

// Item is what one alert or event of a delivery did.
type Item struct {
	// Key is the item's dedup key.
	Key string `json:"key"`
	// Outcome: started (queued), requested (pending approval),
	// duplicate (the key was seen before: its run, if any), ignored
	// (a resolved alert, another event type), refused (policy did not
	// let the account ask), rate_limited (not looked at).
	Outcome   string `json:"outcome"`
	RunID     string `json:"run_id,omitempty"`
	RunStatus string `json:"run_status,omitempty"`
	Detail    string `json:"detail,omitempty"`
}

// Result is what a delivery did.
type Result struct {
	Trigger string `json:"trigger"`
	Items   []Item `json:"items"`
}

// RateLimited is the error of a delivery over its trigger's rate.
type RateLimited struct {
	Err        *airlock.Error
	RetryAfter time.Duration
}

func (e *RateLimited) Error() string { return e.Err.Error() }

// Unwrap lets airlock.ErrorKind see the kind.
func (e *RateLimited) Unwrap() error { return e.Err }

var errNotFound = airlock.Errorf(airlock.NotFound, "no such trigger")

// maxAudited caps attacker-supplied text before it is audited.
const maxAudited = 300

func capped(s string) string {
	if len(s) > maxAudited {
		return s[:maxAudited] + "…"
	}
	return s
}

// Deliver takes one delivery for the trigger named name: it checks
// the authentication, that the trigger is active and still holds, the
// rate, and the payload (every item mapped and its parameters valid
// before anything is stored), then requests a run per new item as the
// trigger's service account. Refusals are audited (aggregated);
// accepted items are recorded as the trigger's events and audited as
// trigger.fire.
func (s *Service) Deliver(ctx context.Context, name string, d Delivery) (*Result, error) {
	st, err := s.store.StandingGetByName(ctx, store.StandingTrigger, name)
	if err != nil {
		if airlock.ErrorKind(err) == airlock.NotFound {
			return nil, errNotFound
		}
		return nil, err
	}
	spec, err := SpecOf(st)
	if err != nil {
		return nil, err
	}
	refuse := func(reason string, e error, details map[string]any) (*Result, error) {
		if details == nil {
			details = map[string]any{}
		}
		details["message"] = capped(airlock.ErrorMessage(e))
		s.refused.record(ctx, st.ID, st.Name, reason, details)
		return nil, e
	}
	sec, err := s.keyring.Open(st.Secret, []byte(st.ID))
	if err != nil {
		return nil, fmt.Errorf("trigger %s: open its secret: %w", st.Name, err)
	}
	if spec.Auth == AuthBearer {
		err = VerifyBearer(string(sec), d)
	} else {
		err = VerifyHMAC(string(sec), d, s.now())
	}
	if err != nil {
		var ae *AuthError
		reason := "bad_auth"
		if errors.As(err, &ae) {
			reason = ae.Reason
		}
		return refuse(reason, airlock.Errorf(airlock.Unauthenticated, "%s", err.Error()), nil)
	}
	if st.Status != store.StandingActive {
		return refuse("not_active", airlock.Errorf(airlock.Conflict, "trigger %s is %s, not active", st.Name, st.Status), nil)
	}
	f, err := s.Check(ctx, st)
	if err != nil {
		return nil, err
	}
	if f.Why != "" {
		if err := s.standing.Suspend(ctx, st, f.Why); err != nil {
			return nil, err
		}
		return refuse("not_active", airlock.Errorf(airlock.Conflict, "trigger %s is suspended: %s", st.Name, f.Why), nil)
	}
	defer s.serialize(st.ID)()
	now := s.now()
	n, err := s.store.StandingEventCount(ctx, st.ID, now.Add(-time.Minute))
	if err != nil {
		return nil, err
	}
	if n >= spec.RatePerMinute {
		return refuse("rate_limited", s.rateLimited(ctx, st, spec, now), map[string]any{"rate_per_minute": spec.RatePerMinute})
	}
	body, err := decode(d.Body)
	if err != nil {
		return refuse("bad_payload", err, nil)
	}
	its, err := items(spec, body, d.ID)
	if err != nil {
		return refuse("bad_payload", err, nil)
	}
	ap, why, err := standing.PrincipalOf(ctx, s.store, st.AccountID)
	if err != nil {
		return nil, err
	} else if why != "" {
		return refuse("not_active", airlock.Errorf(airlock.Conflict, "trigger %s cannot act: %s", st.Name, why), nil)
	}
	// Every item mapped and validated before anything is stored.
	raws := make([]map[string]any, len(its))
	for i, it := range its {
		if it.Ignore != "" {
			continue
		}
		raw, err := params(spec, it)
		if err == nil {
			_, err = s.standing.Runs().Plan(ctx, ap, run.RequestParams{Procedure: st.ProcedureName, Environment: st.Environment, Params: raw})
		}
		if err != nil {
			if airlock.ErrorKind(err) == airlock.Invalid {
				err = &airlock.Error{Kind: airlock.Invalid, Field: airlock.ErrorField(err), Message: it.where(spec.Preset) + airlock.ErrorMessage(err)}
			}
			return refuse("bad_payload", err, nil)
		}
		raws[i] = raw
	}
	out := &Result{Trigger: st.Name}
	for i, it := range its {
		if n >= spec.RatePerMinute {
			out.Items = append(out.Items, Item{Key: shortKey(it.Key), Outcome: "rate_limited", Detail: "over the trigger's rate; send it again later"})
			continue
		}
		res, err := s.fire(ctx, st, ap, it, raws[i])
		if err != nil {
			return nil, err
		}
		if res.Outcome != "duplicate" {
			n++
		}
		out.Items = append(out.Items, *res)
	}
	return out, nil
}

// rateLimited is the refusal of a delivery over the rate: when the
// oldest delivery of the last minute leaves the window, one more fits.
func (s *Service) rateLimited(ctx context.Context, st *store.Standing, spec Spec, now time.Time) error {
	retry := time.Minute
	if evs, err := s.store.StandingEventList(ctx, st.ID, spec.RatePerMinute); err == nil && len(evs) > 0 {
		if d := evs[len(evs)-1].At.Add(time.Minute).Sub(now); d > 0 && d < retry {
			retry = d
		}
	}
	return &RateLimited{Err: airlock.Errorf(airlock.TooManyRequests, "trigger %s takes at most %d deliveries a minute", st.Name, spec.RatePerMinute), RetryAfter: retry}
}

// fire deals with one item: a key seen before names its run again; an
// ignored item is recorded; a new one requests a run as the account.
func (s *Service) fire(ctx context.Context, st *store.Standing, ap *identity.Principal, it item, raw map[string]any) (*Item, error) {
	key := shortKey(it.Key)
	idem := idempotencyKey(st.ID, it.Key)
	res := &Item{Key: key}
	if r, err := s.store.RunGetByIdempotencyKey(ctx, ap.UserID, idem); err == nil {
		res.Outcome, res.RunID, res.RunStatus = "duplicate", r.ID, r.Status
		return res, nil
	} else if airlock.ErrorKind(err) != airlock.NotFound {
		return nil, err
	}
	ev := &store.StandingEvent{StandingID: st.ID, Key: key}
	if it.Ignore != "" {
		res.Outcome, res.Detail = "ignored", it.Ignore
	} else {
		r, err := s.standing.Runs().Request(ctx, ap, run.RequestParams{Procedure: st.ProcedureName, Environment: st.Environment,
			Params: raw, Reason: "event trigger " + st.Name, IdempotencyKey: idem, StandingID: st.ID})
		switch {
		case err == nil:
			res.RunID, res.RunStatus, res.Outcome = r.ID, r.Status, "started"
			if r.Status == store.RunPending {
				res.Outcome = "requested"
			}
		case airlock.ErrorKind(err) == airlock.Forbidden:
			res.Outcome, res.Detail = "refused", fmt.Sprintf("policy does not let %s run or request %s in %s", ap.Username, st.ProcedureName, st.Environment)
		default:
			return nil, err
		}
	}
	ev.Outcome, ev.RunID, ev.Detail = res.Outcome, res.RunID, res.Detail
	now := s.now().UTC()
	ev.At = now
	err := s.store.Update(ctx, func(tx store.Tx) error {
		if err := tx.StandingEventInsert(ctx, ev); err != nil {
			return err
		}
		d := map[string]any{"name": st.Name, "key": key, "outcome": res.Outcome, "run_id": res.RunID, "account": st.AccountName}
		if res.Detail != "" {
			d["detail"] = res.Detail
		}
		outcome := audit.Success
		if res.Outcome == "refused" {
			outcome = audit.Denied
		}
		return tx.AuditAppend(ctx, audit.New(ctx, now, audit.TriggerFire, audit.Actor{ID: st.AccountID, Name: st.AccountName}, st.ID, outcome, d))
	})
	if airlock.ErrorKind(err) == airlock.Conflict {
		// The same key, delivered twice at once: the other delivery
		// recorded it (and the run's idempotency key gave both one run).
		res.Outcome = "duplicate"
		return res, nil
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

// Start sweeps the refusal counts until ctx ends, so a closed window's
// count is audited even when no refusal follows it.
func (s *Service) Start(ctx context.Context) {
	t := time.NewTicker(refusalWindow / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.refused.flush(ctx, true)
			return
		case <-t.C:
			s.refused.flush(ctx, false)
		}
	}
}

// Flush audits every open count of refusals now (at shutdown, and in
// tests).
func (s *Service) Flush(ctx context.Context) { s.refused.flush(ctx, true) }

// Secretless copies a trigger without its sealed secret, for views.
func Secretless(st *store.Standing) *store.Standing {
	c := *st
	c.Secret = nil
	return &c
}
