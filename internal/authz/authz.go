// Package authz is Airlock's one authorizer. It keeps the active policy
// set (from the store, refreshed so that every replica follows an
// approved change within seconds), builds Cedar requests from Airlock's
// objects, decides, and audits denials with the policies that determined
// them. Callers are told what they asked and that no policy (or their
// token's scope) allows it, never which policies exist or who else may;
// an object the caller may not even see is "not found", so IDs leak
// nothing.
//
// It also runs the policy lifecycle under dual control (policies.go) and
// answers explain, what-if and the access review (review.go).
package authz

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/policy"
	"github.com/airlockhq/airlock/internal/procedure"
	"github.com/airlockhq/airlock/internal/store"
)

// Authorizer decides every request.
type Authorizer struct {
	store        store.Store
	log          *slog.Logger
	now          func() time.Time
	environments []string
	refresh      time.Duration

	mu     sync.Mutex
	cur    *loaded
	loadAt time.Time
}

type loaded struct {
	version *store.PolicyVersion
	set     *policy.Set
}

// New returns an Authorizer. environments are the environments the
// access review covers.
func New(s store.Store, environments []string, log *slog.Logger, now func() time.Time) *Authorizer {
	if now == nil {
		now = time.Now
	}
	return &Authorizer{store: s, log: log, now: now, environments: environments, refresh: 2 * time.Second}
}

// Environments are the configured environments.
func (a *Authorizer) Environments() []string { return a.environments }

// active returns the policy set in force, reloading it when another
// replica may have changed it.
func (a *Authorizer) active(ctx context.Context) (*loaded, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cur != nil && a.now().Sub(a.loadAt) < a.refresh {
		return a.cur, nil
	}
	vs, err := a.store.PolicyVersionList(ctx, store.PolicyActive)
	if err != nil {
		return nil, err
	}
	if len(vs) == 0 {
		return nil, airlock.Errorf(airlock.Unavailable, "no policy is in force")
	}
	if a.cur == nil || a.cur.version.ID != vs[0].ID {
		set, err := policy.Load(fmt.Sprintf("policy v%d", vs[0].Number), vs[0].Text)
		if err != nil {
			return nil, fmt.Errorf("load active policy v%d: %w", vs[0].Number, err)
		}
		a.cur = &loaded{version: vs[0], set: set}
	}
	a.loadAt = a.now()
	return a.cur, nil
}

// invalidate makes the next decision reload the policy.
func (a *Authorizer) invalidate() {
	a.mu.Lock()
	a.loadAt = time.Time{}
	a.mu.Unlock()
}

// PrincipalOf converts an authenticated principal.
func PrincipalOf(p *identity.Principal) policy.Principal {
	return policy.Principal{Username: p.Username, Groups: p.Groups}
}

// Decide answers a request under the policy in force.
func (a *Authorizer) Decide(ctx context.Context, req policy.Request) (policy.Decision, error) {
	cur, err := a.active(ctx)
	if err != nil {
		return policy.Decision{}, err
	}
	return cur.set.Decide(req), nil
}

// Allowed reports whether p may do action on res; no audit. For filtering
// lists.
func (a *Authorizer) Allowed(ctx context.Context, p *identity.Principal, action string, res policy.Resource, c policy.Context) bool {
	d, err := a.Decide(ctx, policy.Request{Principal: PrincipalOf(p), Action: action, Resource: res, Context: c})
	if err != nil {
		a.log.ErrorContext(ctx, "authorize", "action", action, "err", err)
		return false
	}
	return d.Allowed && inScope(p, action, res, c)
}

// DecideFor is Decide for p, with p's token scope, if any, narrowing an
// allowed decision to a denied one (without policies: the scope, not a
// policy, refused).
func (a *Authorizer) DecideFor(ctx context.Context, p *identity.Principal, req policy.Request) (policy.Decision, error) {
	d, err := a.Decide(ctx, req)
	if err == nil && d.Allowed && !inScope(p, req.Action, req.Resource, req.Context) {
		d = policy.Decision{}
	}
	return d, err
}

// inScope reports whether p's token scope, if any, covers action on res
// in c's environment. Policy decides first; a scope only narrows.
func inScope(p *identity.Principal, action string, res policy.Resource, c policy.Context) bool {
	if p.Scope == nil {
		return true
	}
	procedure, env := "", c.Environment
	switch {
	case res.Run != nil:
		procedure, env = res.Run.Procedure.Name, res.Run.Environment
	case res.Version != nil:
		procedure = res.Version.Procedure.Name
	case res.Procedure != nil:
		procedure = res.Procedure.Name
	}
	for _, e := range p.Scope {
		if e.Permits(action, procedure, env) {
			return true
		}
	}
	return false
}

// AllowedSystem reports whether p may do a system action, without
// auditing a denial.
func (a *Authorizer) AllowedSystem(ctx context.Context, p *identity.Principal, action string) bool {
	return a.Allowed(ctx, p, action, policy.Resource{}, policy.Context{})
}

// actionWords says what an action is, for refusals.
var actionWords = map[string]string{
	policy.ActionView: "see", policy.ActionRun: "run", policy.ActionRequest: "run or request",
	policy.ActionApproveRun: "approve runs of", policy.ActionCancelRun: "cancel runs of", policy.ActionViewRun: "see runs of",
	policy.ActionPropose: "propose versions of", policy.ActionReview: "review versions of", policy.ActionRetire: "retire",
	policy.ActionReadAudit: "read the audit log", policy.ActionExportEvidence: "export evidence",
	policy.ActionManagePolicy: "manage policy", policy.ActionManageNodes: "manage nodes",
	policy.ActionManageSecrets: "manage secrets", policy.ActionManageUsers: "manage users",
	policy.ActionTry: "try unreviewed versions of",
}

// notPermitted says why a check refused, in terms of what the caller
// asked (the action, the procedure they named, the environment) and
// never of what they may not see: which policies exist, who else may.
func notPermitted(action string, res policy.Resource, c policy.Context, scope bool) error {
	what := actionWords[action]
	if what == "" {
		what = action
	}
	var on, env string
	switch {
	case res.Run != nil:
		on, env = res.Run.Procedure.Name, res.Run.Environment
	case res.Version != nil:
		on = res.Version.Procedure.Name
	case res.Procedure != nil:
		on, env = res.Procedure.Name, c.Environment
	}
	if on != "" {
		what += " " + on
	}
	if env != "" {
		what += " in " + env
	}
	if scope {
		return airlock.Errorf(airlock.Forbidden, "not permitted: your token's scope does not let it %s", what)
	}
	return airlock.Errorf(airlock.Forbidden, "not permitted: no policy lets you %s", what)
}

// Check decides and, when denied, audits the decision with the policies
// that determined it and returns a Forbidden error saying what was
// refused (notPermitted).
func (a *Authorizer) Check(ctx context.Context, p *identity.Principal, action string, res policy.Resource, c policy.Context) error {
	req := policy.Request{Principal: PrincipalOf(p), Action: action, Resource: res, Context: c}
	d, err := a.Decide(ctx, req)
	if err != nil {
		return err
	}
	if d.Allowed && !inScope(p, action, res, c) {
		// Policy allows the owner; the token's scope does not.
		a.recordDenialReason(ctx, p, req, "outside the token's scope", d.Policies)
		return notPermitted(action, res, c, true)
	}
	if d.Allowed {
		return nil
	}
	a.recordDenial(ctx, p, req, d)
	return notPermitted(action, res, c, false)
}

// CheckSystem checks a system-wide action (readAudit, manageUsers, …).
func (a *Authorizer) CheckSystem(ctx context.Context, p *identity.Principal, action string) error {
	return a.Check(ctx, p, action, policy.Resource{}, policy.Context{})
}

// CheckObject checks action on an object that the caller must first be
// able to see (view for procedures and versions, viewRun for runs). When
// they may not see it, the answer is "not found", as for an object that
// does not exist.
func (a *Authorizer) CheckObject(ctx context.Context, p *identity.Principal, action string, res policy.Resource, c policy.Context, what string) error {
	see := policy.ActionView
	if res.Run != nil {
		see = policy.ActionViewRun
	}
	req := policy.Request{Principal: PrincipalOf(p), Action: see, Resource: res, Context: c}
	d, err := a.Decide(ctx, req)
	if err != nil {
		return err
	}
	if !d.Allowed {
		a.recordDenial(ctx, p, req, d)
		return airlock.Errorf(airlock.NotFound, "%s not found", what)
	}
	if !inScope(p, see, res, c) {
		a.recordDenialReason(ctx, p, req, "outside the token's scope", d.Policies)
		return airlock.Errorf(airlock.NotFound, "%s not found", what)
	}
	if action == see {
		return nil
	}
	return a.Check(ctx, p, action, res, c)
}

func describe(res policy.Resource) string {
	switch {
	case res.Run != nil:
		return `Run::"` + res.Run.ID + `"`
	case res.Version != nil:
		return `ProcedureVersion::"` + res.Version.ID + `"`
	case res.Procedure != nil:
		return `Procedure::"` + res.Procedure.Name + `"`
	}
	return `System::"airlock"`
}

func (a *Authorizer) recordDenial(ctx context.Context, p *identity.Principal, req policy.Request, d policy.Decision) {
	a.recordDenialReason(ctx, p, req, d.Reason(), d.Policies)
}

func (a *Authorizer) recordDenialReason(ctx context.Context, p *identity.Principal, req policy.Request, reason string, policies []string) {
	details := map[string]any{"action": req.Action, "resource": describe(req.Resource), "reason": reason, "policies": policies}
	if req.Context.Environment != "" {
		details["environment"] = req.Context.Environment
	}
	if cur, err := a.active(ctx); err == nil {
		details["policy_version"] = cur.version.Number
	}
	err := a.store.Update(ctx, func(tx store.Tx) error {
		return tx.AuditAppend(ctx, audit.New(ctx, a.now(), audit.AuthzDeny, p.Actor(), describe(req.Resource), audit.Denied, details))
	})
	if err != nil {
		a.log.ErrorContext(ctx, "audit denial", "err", err)
	}
}

// ProcedureOf describes a stored procedure for policies: its owner, its
// risk (of the active version, else of the newest), whether retired.
func ProcedureOf(ctx context.Context, r store.Reader, p *store.Procedure) (policy.Procedure, error) {
	out := policy.Procedure{Name: p.Name, Owner: p.Owner, Retired: !p.RetiredAt.IsZero()}
	if p.ActiveVersionID != "" {
		v, err := r.ProcedureVersionGet(ctx, p.ActiveVersionID)
		if err != nil {
			return out, err
		}
		return ActiveProcedureOf(p, v), nil
	}
	vs, err := r.ProcedureVersionList(ctx, store.ProcedureVersionListParams{ProcedureID: p.ID})
	if err != nil {
		return out, err
	}
	if len(vs) > 0 {
		out.Risk = vs[len(vs)-1].Risk
	}
	return out, nil
}

// ActiveProcedureOf is ProcedureOf for a procedure whose active version
// the caller has read (v, whose ID is p.ActiveVersionID).
func ActiveProcedureOf(p *store.Procedure, v *store.ProcedureVersion) policy.Procedure {
	return policy.Procedure{Name: p.Name, Owner: p.Owner, Retired: !p.RetiredAt.IsZero(), Risk: v.Risk}
}

// ParamTypes derives the types of context.params from every parameter
// the catalog's active and proposed versions declare. A name declared
// with different types by different procedures is left out (a policy
// cannot safely compare it), and so are secrets, which never reach
// policies.
func ParamTypes(ctx context.Context, r store.Reader) (policy.ParamTypes, error) {
	out := policy.ParamTypes{}
	conflict := map[string]bool{}
	for _, status := range []string{store.VersionApproved, store.VersionProposed} {
		vs, err := r.ProcedureVersionList(ctx, store.ProcedureVersionListParams{Status: status})
		if err != nil {
			return nil, err
		}
		for _, v := range vs {
			def, err := procedure.FromCanonical(v.Definition)
			if err != nil {
				return nil, err
			}
			for _, prm := range def.Parameters {
				t := cedarType(prm.Type)
				if t == "" {
					continue
				}
				if have, ok := out[prm.Name]; ok && have != t {
					conflict[prm.Name] = true
				}
				out[prm.Name] = t
			}
		}
	}
	for n := range conflict {
		delete(out, n)
	}
	return out, nil
}

func cedarType(t string) string {
	switch t {
	case procedure.TypeInt:
		return "Long"
	case procedure.TypeBool:
		return "Bool"
	case procedure.TypeString, procedure.TypeEnum:
		return "String"
	case procedure.TypeMultiEnum:
		return "Set<String>"
	}
	return "" // secrets never reach policies
}
