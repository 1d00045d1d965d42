package policy

import (
	"slices"
	"sort"

	cedar "github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
)

// Principal is the user a request is for.
type Principal struct {
	Username string
	Groups   []string
}

// Procedure describes a procedure as policies see it.
type Procedure struct {
	Name    string
	Owner   string
	Risk    string
	Retired bool
}

// Version describes a procedure version as policies see it.
type Version struct {
	ID     string
	Number int
	Risk   string
	Status string
	Author string // username
	// AuthorGroups are the author's groups, so that policies can ask
	// "resource.author in Group::…".
	AuthorGroups []string
	Procedure    Procedure
}

// RunInfo describes a run as policies see it.
type RunInfo struct {
	ID        string
	Requester string // username
	// RequesterGroups are the requester's groups, so that policies can
	// ask "resource.requester in Group::…".
	RequesterGroups []string
	Environment     string
	Status          string
	Procedure       Procedure
}

// Resource is what a request is about: exactly one field is set, or
// none for the System.
type Resource struct {
	Procedure *Procedure
	Version   *Version
	Run       *RunInfo
}

// Context carries the run's environment, parameters and targets for
// run, request and the run actions.
type Context struct {
	Environment string
	// Params holds typed values: string, int64, bool or []string.
	// Secret parameters must never be put here.
	Params  map[string]any
	Targets []string
}

// Request is one authorization question.
type Request struct {
	Principal Principal
	Action    string
	Resource  Resource
	Context   Context
}

// Decision is the answer, with the policies that determined it: the
// forbids that matched when denied by a forbid, the permits that matched
// when allowed, none when denied by default.
type Decision struct {
	Allowed  bool     `json:"allowed"`
	Policies []string `json:"policies"`
	// Errors are policies that failed to evaluate (they count as not
	// matching).
	Errors []string `json:"errors,omitempty"`
}

// Reason says in words why.
func (d Decision) Reason() string {
	switch {
	case d.Allowed:
		return "permitted"
	case len(d.Policies) > 0:
		return "forbidden"
	default:
		return "no policy permits it (default deny)"
	}
}

func uid(typ, id string) types.EntityUID {
	return types.NewEntityUID(types.EntityType(typ), types.String(id))
}

func strSet(ss []string) types.Set {
	vals := make([]types.Value, len(ss))
	for i, s := range ss {
		vals[i] = types.String(s)
	}
	return types.NewSet(vals...)
}

func procedureEntity(ents types.EntityMap, p *Procedure) types.EntityUID {
	id := uid("Procedure", p.Name)
	ents[id] = types.Entity{UID: id, Parents: types.NewEntityUIDSet(uid("Team", p.Owner)),
		Attributes: types.NewRecord(types.RecordMap{"name": types.String(p.Name), "owner": types.String(p.Owner),
			"risk": types.String(p.Risk), "retired": types.Boolean(p.Retired)})}
	ents[uid("Team", p.Owner)] = types.Entity{UID: uid("Team", p.Owner)}
	return id
}

func userEntity(ents types.EntityMap, username string, groups []string) types.EntityUID {
	id := uid("User", username)
	parents := make([]types.EntityUID, len(groups))
	for i, g := range groups {
		parents[i] = uid("Group", g)
		ents[parents[i]] = types.Entity{UID: parents[i]}
	}
	ents[id] = types.Entity{UID: id, Parents: types.NewEntityUIDSet(parents...),
		Attributes: types.NewRecord(types.RecordMap{"username": types.String(username), "groups": strSet(groups)})}
	return id
}

func (r Request) cedar() (cedar.Request, types.EntityMap) {
	ents := types.EntityMap{}
	principal := userEntity(ents, r.Principal.Username, r.Principal.Groups)
	var resource types.EntityUID
	switch res := r.Resource; {
	case res.Run != nil:
		proc := procedureEntity(ents, &res.Run.Procedure)
		requester := uid("User", res.Run.Requester)
		if res.Run.Requester != r.Principal.Username {
			userEntity(ents, res.Run.Requester, res.Run.RequesterGroups)
		}
		resource = uid("Run", res.Run.ID)
		ents[resource] = types.Entity{UID: resource, Parents: types.NewEntityUIDSet(proc),
			Attributes: types.NewRecord(types.RecordMap{"procedure": types.String(res.Run.Procedure.Name), "requester": requester,
				"environment": types.String(res.Run.Environment), "status": types.String(res.Run.Status)})}
	case res.Version != nil:
		proc := procedureEntity(ents, &res.Version.Procedure)
		author := uid("User", res.Version.Author)
		if res.Version.Author != r.Principal.Username {
			userEntity(ents, res.Version.Author, res.Version.AuthorGroups)
		}
		resource = uid("ProcedureVersion", res.Version.ID)
		ents[resource] = types.Entity{UID: resource, Parents: types.NewEntityUIDSet(proc),
			Attributes: types.NewRecord(types.RecordMap{"procedure": types.String(res.Version.Procedure.Name),
				"number": types.Long(res.Version.Number), "risk": types.String(res.Version.Risk),
				"status": types.String(res.Version.Status), "author": author})}
	case res.Procedure != nil:
		resource = procedureEntity(ents, res.Procedure)
	default:
		resource = uid("System", "airlock")
		ents[resource] = types.Entity{UID: resource}
	}
	ctx := types.RecordMap{}
	switch r.Action {
	case ActionRun, ActionRequest, ActionApproveRun, ActionCancelRun, ActionViewRun, ActionTry:
		params := types.RecordMap{}
		for k, v := range r.Context.Params {
			switch x := v.(type) {
			case string:
				params[types.String(k)] = types.String(x)
			case int64:
				params[types.String(k)] = types.Long(x)
			case bool:
				params[types.String(k)] = types.Boolean(x)
			case []string:
				params[types.String(k)] = strSet(x)
			}
		}
		ctx["environment"] = types.String(r.Context.Environment)
		ctx["params"] = types.NewRecord(params)
		ctx["targets"] = strSet(r.Context.Targets)
	}
	return cedar.Request{Principal: principal, Action: uid("Action", r.Action), Resource: resource, Context: types.NewRecord(ctx)}, ents
}

// Decide answers a request under the set.
func (s *Set) Decide(r Request) Decision {
	req, ents := r.cedar()
	d, diag := cedar.Authorize(s.ps, ents, req)
	out := Decision{Allowed: d == cedar.Allow, Policies: []string{}}
	for _, reason := range diag.Reasons {
		out.Policies = append(out.Policies, string(reason.PolicyID))
	}
	for _, e := range diag.Errors {
		out.Errors = append(out.Errors, e.Message)
	}
	sort.Strings(out.Policies)
	return out
}

// Access is what a principal may do with a procedure in an environment.
type Access string

// Access levels.
const (
	AccessRun     Access = "run"
	AccessRequest Access = "request"
	AccessNone    Access = "none"
)

// AccessFor decides run, else request, for a principal on a procedure in
// an environment (with no parameters), and returns the policies that
// decided.
func (s *Set) AccessFor(p Principal, proc Procedure, env string) (Access, []string) {
	c := Context{Environment: env}
	run := s.Decide(Request{Principal: p, Action: ActionRun, Resource: Resource{Procedure: &proc}, Context: c})
	if run.Allowed {
		return AccessRun, run.Policies
	}
	req := s.Decide(Request{Principal: p, Action: ActionRequest, Resource: Resource{Procedure: &proc}, Context: c})
	if req.Allowed {
		return AccessRequest, req.Policies
	}
	// Name the forbids that blocked either, if any.
	return AccessNone, slices.Compact(append(run.Policies, req.Policies...))
}
