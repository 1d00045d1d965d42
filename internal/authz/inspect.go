package authz

import (
	"context"
	"fmt"
	"slices"
	"sort"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/policy"
	"github.com/airlockhq/airlock/internal/procedure"
	"github.com/airlockhq/airlock/internal/store"
)

// Question is what explain and what-if are asked.
type Question struct {
	Username    string            `json:"username"`
	Action      string            `json:"action"`
	Procedure   string            `json:"procedure,omitempty"`
	Environment string            `json:"environment,omitempty"`
	Params      map[string]string `json:"params,omitempty"`
	// Requester of the hypothetical run, for approveRun, cancelRun and
	// viewRun; default: the user asked about.
	Requester string `json:"requester,omitempty"`
	// PolicyVersion (an ID) or PolicyText answers against a policy other
	// than the one in force: the what-if.
	PolicyVersion string `json:"policy_version,omitempty"`
	PolicyText    string `json:"policy_text,omitempty"`
}

// DecidingPolicy is one policy that determined a decision.
type DecidingPolicy struct {
	ID     string `json:"id"`
	Effect string `json:"effect"`
	Text   string `json:"text"`
}

// Answer is explain's and what-if's reply.
type Answer struct {
	Question Question         `json:"question"`
	Policy   string           `json:"policy"` // which policy set answered
	Allowed  bool             `json:"allowed"`
	Reason   string           `json:"reason"`
	Policies []DecidingPolicy `json:"policies"`
	Errors   []string         `json:"errors,omitempty"`
	// For run and request: what would happen to such a run, and who could
	// approve it (never the requester).
	Outcome   string   `json:"outcome,omitempty"`
	Approvers []string `json:"approvers,omitempty"`
}

// Explain answers q with the policy in force, or, when q names another
// policy version or text, with that one (what-if). Anyone may ask about
// themselves; asking about others needs managePolicy or readAudit.
func (a *Authorizer) Explain(ctx context.Context, caller *identity.Principal, q Question) (*Answer, error) {
	if q.Username != caller.Username || (q.Requester != "" && q.Requester != caller.Username) {
		if err := a.CanReadPolicy(ctx, caller); err != nil {
			return nil, err
		}
	}
	// Those who may not read policy learn only about what they can see:
	// a procedure hidden from them is "no procedure", as one that does
	// not exist.
	privileged := a.Allowed(ctx, caller, policy.ActionManagePolicy, policy.Resource{}, policy.Context{}) ||
		a.Allowed(ctx, caller, policy.ActionReadAudit, policy.Resource{}, policy.Context{})
	if !slices.Contains(policy.Actions, q.Action) {
		return nil, airlock.FieldError("action", "expected one of %v, got %q", policy.Actions, q.Action)
	}
	set, label, err := a.setFor(ctx, caller, q)
	if err != nil {
		return nil, err
	}
	principal, err := a.principalByName(ctx, q.Username)
	if err != nil {
		return nil, err
	}
	req := policy.Request{Principal: principal, Action: q.Action, Context: policy.Context{Environment: q.Environment}}
	var def *procedure.Procedure
	if q.Procedure != "" {
		sp, err := a.store.ProcedureGetByName(ctx, q.Procedure)
		if err != nil {
			return nil, airlock.FieldError("procedure", "no procedure %q", q.Procedure)
		}
		pr, err := ProcedureOf(ctx, a.store, sp)
		if err != nil {
			return nil, err
		}
		if !privileged && !a.Allowed(ctx, caller, policy.ActionView, policy.Resource{Procedure: &pr}, policy.Context{}) {
			return nil, airlock.FieldError("procedure", "no procedure %q", q.Procedure)
		}
		if def, err = activeDefinition(ctx, a.store, sp); err != nil {
			return nil, err
		}
		if req.Context.Params, err = coerceParams(def, q.Params); err != nil {
			return nil, err
		}
		requester := q.Requester
		if requester == "" {
			requester = q.Username
		}
		var rgroups []string
		if q.Action == policy.ActionApproveRun || q.Action == policy.ActionCancelRun || q.Action == policy.ActionViewRun || q.Action == policy.ActionReview {
			rp, err := a.principalByName(ctx, requester)
			if err != nil {
				return nil, airlock.FieldError("requester", "no user %q", requester)
			}
			rgroups = rp.Groups
		}
		switch q.Action {
		case policy.ActionApproveRun, policy.ActionCancelRun, policy.ActionViewRun:
			req.Resource.Run = &policy.RunInfo{ID: "what-if", Requester: requester, RequesterGroups: rgroups, Environment: q.Environment, Procedure: pr}
		case policy.ActionReview:
			req.Resource.Version = &policy.Version{ID: "what-if", Risk: pr.Risk, Status: store.VersionProposed, Procedure: pr, Author: requester, AuthorGroups: rgroups}
		default:
			req.Resource.Procedure = &pr
		}
	} else if needsProcedure(q.Action) {
		return nil, airlock.FieldError("procedure", "action %s is about a procedure: name one", q.Action)
	}
	d := set.Decide(req)
	ans := &Answer{Question: q, Policy: label, Allowed: d.Allowed, Reason: d.Reason(), Policies: []DecidingPolicy{}, Errors: d.Errors}
	for _, id := range d.Policies {
		effect, text, _ := set.Policy(id)
		ans.Policies = append(ans.Policies, DecidingPolicy{ID: id, Effect: effect, Text: text})
	}
	if (q.Action == policy.ActionRun || q.Action == policy.ActionRequest) && req.Resource.Procedure != nil {
		ans.Outcome, ans.Approvers, err = a.outcome(ctx, set, req, def)
		if err != nil {
			return nil, err
		}
	}
	return ans, nil
}

func needsProcedure(action string) bool {
	switch action {
	case policy.ActionReadAudit, policy.ActionExportEvidence, policy.ActionManagePolicy, policy.ActionManageNodes,
		policy.ActionManageSecrets, policy.ActionManageUsers:
		return false
	}
	return true
}

// outcome says what a run of req's procedure by req's principal would do
// under set, and who could approve it.
func (a *Authorizer) outcome(ctx context.Context, set *policy.Set, req policy.Request, def *procedure.Procedure) (string, []string, error) {
	runReq, reqReq := req, req
	runReq.Action, reqReq.Action = policy.ActionRun, policy.ActionRequest
	canRun, canRequest := set.Decide(runReq).Allowed, set.Decide(reqReq).Allowed
	approvalNeeded := NeedsApproval(def, req.Context.Environment)
	var outcome string
	switch {
	case canRun && !approvalNeeded:
		return "runs at once", nil, nil
	case canRun:
		outcome = "waits for approval (the procedure requires it here)"
	case canRequest:
		outcome = "waits for approval (policy allows only a request)"
	default:
		return "refused", nil, nil
	}
	users, err := a.store.UserList(ctx)
	if err != nil {
		return "", nil, err
	}
	var approvers []string
	for _, u := range users {
		if u.Username == req.Principal.Username || u.Disabled || u.Kind == store.AccountService {
			continue // nobody approves their own run; a service account, none
		}
		p, err := a.principalByName(ctx, u.Username)
		if err != nil {
			return "", nil, err
		}
		ar := policy.Request{Principal: p, Action: policy.ActionApproveRun, Context: req.Context,
			Resource: policy.Resource{Run: &policy.RunInfo{ID: "what-if", Requester: req.Principal.Username,
				RequesterGroups: req.Principal.Groups, Environment: req.Context.Environment, Procedure: *req.Resource.Procedure}}}
		if set.Decide(ar).Allowed {
			approvers = append(approvers, u.Username)
		}
	}
	return outcome, approvers, nil
}

// AccessChange is a row of the access review that a policy change
// alters.
type AccessChange struct {
	Before AccessRow `json:"before"`
	After  AccessRow `json:"after"`
}

// AccessChanges compares two access reviews (before and after a change)
// row by row and returns the rows whose access or need for approval
// differs, in the reports' order.
func AccessChanges(before, after *AccessReport) []AccessChange {
	key := func(r AccessRow) string { return r.User + "\x00" + r.Procedure + "\x00" + r.Environment }
	old := map[string]AccessRow{}
	for _, r := range before.Rows {
		old[key(r)] = r
	}
	out := []AccessChange{}
	for _, r := range after.Rows {
		b, ok := old[key(r)]
		if !ok {
			b = AccessRow{User: r.User, Procedure: r.Procedure, Environment: r.Environment, Access: string(policy.AccessNone)}
		}
		if b.Access != r.Access || b.NeedsApproval != r.NeedsApproval {
			out = append(out, AccessChange{Before: b, After: r})
		}
	}
	return out
}

// NeedsApproval reports whether the definition demands an approval for
// runs in env.
func NeedsApproval(def *procedure.Procedure, env string) bool {
	if def == nil || def.Approval == nil {
		return false
	}
	return len(def.Approval.Environments) == 0 || slices.Contains(def.Approval.Environments, env)
}

func (a *Authorizer) setFor(ctx context.Context, caller *identity.Principal, q Question) (*policy.Set, string, error) {
	switch {
	case q.PolicyText != "":
		// Policy text is parsed: only those who may manage policy send it.
		if err := a.CheckSystem(ctx, caller, policy.ActionManagePolicy); err != nil {
			return nil, "", err
		}
		set, err := a.compile(ctx, a.store, "what-if policy", q.PolicyText)
		return set, "what-if text", err
	case q.PolicyVersion != "":
		v, err := a.GetPolicy(ctx, caller, q.PolicyVersion)
		if err != nil {
			return nil, "", err
		}
		set, err := a.compile(ctx, a.store, fmt.Sprintf("policy v%d", v.Number), v.Text)
		return set, fmt.Sprintf("v%d (%s)", v.Number, v.Status), err
	}
	cur, err := a.active(ctx)
	if err != nil {
		return nil, "", err
	}
	return cur.set, fmt.Sprintf("v%d (active)", cur.version.Number), nil
}

func (a *Authorizer) principalByName(ctx context.Context, username string) (policy.Principal, error) {
	u, err := a.store.UserGetByUsername(ctx, username)
	if err != nil {
		return policy.Principal{}, airlock.FieldError("username", "no user %q", username)
	}
	gs, err := GroupsOf(ctx, a.store, u.ID)
	return policy.Principal{Username: u.Username, Groups: gs}, err
}

// GroupsOf lists the names of a user's groups, for policy requests that
// speak of a user other than the principal (a run's requester, a
// version's author).
func GroupsOf(ctx context.Context, r store.Reader, userID string) ([]string, error) {
	gs, err := r.GroupListForUser(ctx, userID)
	if err != nil {
		return nil, err
	}
	names := []string{}
	for _, g := range gs {
		names = append(names, g.Name)
	}
	return names, nil
}

// activeDefinition returns the active definition of a procedure, or its
// newest one when none is active yet.
func activeDefinition(ctx context.Context, r store.Reader, p *store.Procedure) (*procedure.Procedure, error) {
	id := p.ActiveVersionID
	if id == "" {
		vs, err := r.ProcedureVersionList(ctx, store.ProcedureVersionListParams{ProcedureID: p.ID})
		if err != nil || len(vs) == 0 {
			return nil, err
		}
		id = vs[len(vs)-1].ID
	}
	v, err := r.ProcedureVersionGet(ctx, id)
	if err != nil {
		return nil, err
	}
	return procedure.FromCanonical(v.Definition)
}

// coerceParams types raw parameter strings by the definition; secrets are
// refused (they never reach policies).
func coerceParams(def *procedure.Procedure, raw map[string]string) (map[string]any, error) {
	out := map[string]any{}
	for name, val := range raw {
		var prm *procedure.Parameter
		for i := range def.Parameters {
			if def.Parameters[i].Name == name {
				prm = &def.Parameters[i]
			}
		}
		switch {
		case prm == nil:
			return nil, airlock.FieldError("params."+name, "%s has no parameter %q", def.Name, name)
		case prm.Type == procedure.TypeSecret:
			return nil, airlock.FieldError("params."+name, "secret parameters never reach policies")
		}
		v, err := prm.Coerce(val)
		if err != nil {
			return nil, airlock.FieldError("params."+name, "%v", err)
		}
		out[name] = v
	}
	return out, nil
}

// AccessRow is one line of the access review.
type AccessRow struct {
	User        string   `json:"user"`
	Groups      []string `json:"groups"`
	Procedure   string   `json:"procedure"`
	Risk        string   `json:"risk"`
	Environment string   `json:"environment"`
	Access      string   `json:"access"` // run | request | none
	// NeedsApproval: such a run waits for someone else's approval, either
	// because policy allows only a request or because the procedure
	// demands approvals in this environment. access=run with
	// needs_approval=false is who can act alone.
	NeedsApproval bool     `json:"needs_approval"`
	Policies      []string `json:"policies"`
}

// AccessReport is the access review.
type AccessReport struct {
	Policy       string      `json:"policy"`
	Environments []string    `json:"environments"`
	Rows         []AccessRow `json:"rows"`
}

// AccessReview lists every user × active procedure × environment with
// the access policy gives (run, request or none) and the deciding
// policies, evaluated with no parameters: under the policy in force, or
// the version or text q names (the what-if of a whole policy set).
// Admins and auditors only.
func (a *Authorizer) AccessReview(ctx context.Context, caller *identity.Principal, q Question) (*AccessReport, error) {
	if err := a.CanReadPolicy(ctx, caller); err != nil {
		return nil, err
	}
	set, label, err := a.setFor(ctx, caller, Question{PolicyVersion: q.PolicyVersion, PolicyText: q.PolicyText})
	if err != nil {
		return nil, err
	}
	users, err := a.store.UserList(ctx)
	if err != nil {
		return nil, err
	}
	procs, err := a.store.ProcedureList(ctx)
	if err != nil {
		return nil, err
	}
	type procInfo struct {
		p   policy.Procedure
		def *procedure.Procedure
	}
	var infos []procInfo
	for _, sp := range procs {
		if sp.ActiveVersionID == "" || !sp.RetiredAt.IsZero() {
			continue
		}
		pr, err := ProcedureOf(ctx, a.store, sp)
		if err != nil {
			return nil, err
		}
		def, err := activeDefinition(ctx, a.store, sp)
		if err != nil {
			return nil, err
		}
		infos = append(infos, procInfo{pr, def})
	}
	rep := &AccessReport{Policy: label, Environments: a.environments, Rows: []AccessRow{}}
	for _, u := range users {
		if u.Disabled {
			continue
		}
		p, err := a.principalByName(ctx, u.Username)
		if err != nil {
			return nil, err
		}
		for _, info := range infos {
			for _, env := range a.environments {
				access, pols := set.AccessFor(p, info.p, env)
				if pols == nil {
					pols = []string{}
				}
				rep.Rows = append(rep.Rows, AccessRow{User: u.Username, Groups: p.Groups, Procedure: info.p.Name, Risk: info.p.Risk,
					Environment: env, Access: string(access), NeedsApproval: access == policy.AccessRequest || (access == policy.AccessRun && NeedsApproval(info.def, env)),
					Policies: pols})
			}
		}
	}
	sort.SliceStable(rep.Rows, func(i, j int) bool {
		a, b := rep.Rows[i], rep.Rows[j]
		if a.User != b.User {
			return a.User < b.User
		}
		if a.Procedure != b.Procedure {
			return a.Procedure < b.Procedure
		}
		return slices.Index(rep.Environments, a.Environment) < slices.Index(rep.Environments, b.Environment)
	})
	return rep, nil
}
