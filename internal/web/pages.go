package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/authz"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/policy"
	"github.com/airlockhq/airlock/internal/procedure"
	"github.com/airlockhq/airlock/internal/review"
	"github.com/airlockhq/airlock/internal/run"
	"github.com/airlockhq/airlock/internal/store"
)

// envAccess is what the user may do in one environment: run at once
// ("runs now") or only ask ("needs approval").
type envAccess struct {
	Env string
	// Now: the run starts without anyone's approval.
	Now bool
}

type catalogItem struct {
	Name, Title, Risk string
	Access            []envAccess
	// LastRun is the newest run of the procedure the user may see.
	LastRun *store.Run
	// Proposed is a version waiting for review (nil when none).
	Proposed *store.ProcedureVersion
}

type team struct {
	Team  string
	Items []catalogItem
}

// access is what p may do with a procedure in each environment, asked
// of the authorizer without auditing (it only decides what a page
// offers; the request itself is checked again). Environments where p may
// neither run nor request are left out.
func (h *Handler) access(ctx context.Context, p *identity.Principal, sp *store.Procedure, def *procedure.Procedure) []envAccess {
	pr, err := authz.ProcedureOf(ctx, h.Store, sp)
	if err != nil {
		return nil
	}
	var out []envAccess
	for _, env := range h.Authz.Environments() {
		c := policy.Context{Environment: env}
		switch {
		case h.Authz.Allowed(ctx, p, policy.ActionRun, policy.Resource{Procedure: &pr}, c):
			out = append(out, envAccess{Env: env, Now: !authz.NeedsApproval(def, env)})
		case h.Authz.Allowed(ctx, p, policy.ActionRequest, policy.Resource{Procedure: &pr}, c):
			out = append(out, envAccess{Env: env})
		}
	}
	return out
}

// catalog lists the procedures the user may run or request, by team,
// with what they may do in each environment, the risk, the last run they
// may see and a version waiting for review.
func (h *Handler) catalog(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	p := identity.PrincipalFrom(ctx)
	q := strings.ToLower(strings.TrimSpace(r.URL.Query().Get("q")))
	procs, err := h.Review.Procedures(ctx, p)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	proposed := map[string]*store.ProcedureVersion{}
	if vs, err := h.Review.VersionsByStatus(ctx, p, store.VersionProposed); err == nil {
		for _, v := range vs {
			if cur := proposed[v.ProcedureID]; cur == nil || v.Number > cur.Number {
				proposed[v.ProcedureID] = v
			}
		}
	}
	teams := map[string][]catalogItem{}
	for _, sp := range procs {
		if sp.ActiveVersionID == "" || !sp.RetiredAt.IsZero() {
			continue
		}
		v, err := h.Store.ProcedureVersionGet(ctx, sp.ActiveVersionID)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		def, err := procedure.FromCanonical(v.Definition)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		if q != "" && !strings.Contains(strings.ToLower(def.Name+" "+def.Title+" "+def.Description), q) {
			continue
		}
		item := catalogItem{Name: def.Name, Title: def.Title, Risk: def.Risk, Access: h.access(ctx, p, sp, def), Proposed: proposed[sp.ID]}
		if len(item.Access) == 0 {
			continue
		}
		// The newest visible run: the list is filtered after its limit,
		// so ask for a few.
		if runs, err := h.Runs.List(ctx, p, store.RunListParams{ProcedureName: def.Name, Limit: 20}); err == nil && len(runs) > 0 {
			item.LastRun = runs[0]
		}
		teams[def.Owner] = append(teams[def.Owner], item)
	}
	var out []team
	for _, t := range sortedKeys(teams) {
		out = append(out, team{Team: t, Items: teams[t]})
	}
	pg := page{Title: "Catalog", Data: map[string]any{"Teams": out, "Query": r.URL.Query().Get("q")}}
	if name := r.URL.Query().Get("retired"); name != "" {
		// After retiring from the procedure page; said only when true.
		if sp, err := h.Store.ProcedureGetByName(ctx, name); err == nil && !sp.RetiredAt.IsZero() {
			pg.Flash = name + " is retired: no new runs start from it. An approved new version brings it back."
		}
	}
	h.render(w, r, http.StatusOK, "catalog", pg)
}

type paramField struct {
	procedure.Parameter
	// Rules is the JSON of the parameter's checks and messages, for
	// form.js.
	Rules    string
	Value    string
	Selected map[string]bool
	Error    string
}

type procedureData struct {
	Def          *procedure.Procedure
	Version      *store.ProcedureVersion
	Environments []string
	Params       []paramField
	Values       map[string]string
	Plan         *run.Plan
	Runs         []*store.Run
	Versions     []*review.Status
	// CanRetire shows the retire form (policy's retire on the procedure).
	CanRetire bool
	// Access is where the user may run or request it; without any, the
	// page shows no run form.
	Access []envAccess
}

// EnvOption is an environment of the run form: offered when the user may
// run or request there, said which.
type EnvOption struct {
	Env, Note string
	Allowed   bool
}

// EnvOptions are the run form's environments, each with what a run there
// does ("runs now", "needs approval") or "not permitted".
func (d *procedureData) EnvOptions() []EnvOption {
	var out []EnvOption
	for _, env := range d.Environments {
		o := EnvOption{Env: env, Note: "not permitted"}
		for _, a := range d.Access {
			if a.Env == env {
				o.Allowed, o.Note = true, "needs approval"
				if a.Now {
					o.Note = "runs now"
				}
			}
		}
		out = append(out, o)
	}
	return out
}

func (h *Handler) procedureData(r *http.Request, name string) (*procedureData, error) {
	ctx := r.Context()
	p := identity.PrincipalFrom(ctx)
	proc, vs, err := h.Review.Versions(ctx, p, name)
	if err != nil {
		return nil, err
	}
	if proc.ActiveVersionID == "" {
		return nil, airlock.Errorf(airlock.NotFound, "%s has no approved version yet", name)
	}
	var active *store.ProcedureVersion
	for _, v := range vs {
		if v.ID == proc.ActiveVersionID {
			active = v
		}
	}
	if active == nil {
		return nil, errNoActive
	}
	def, err := procedure.FromCanonical(active.Definition)
	if err != nil {
		return nil, err
	}
	runs, err := h.Runs.List(ctx, p, store.RunListParams{ProcedureName: name, Limit: 10})
	if err != nil {
		return nil, err
	}
	d := &procedureData{Def: def, Version: active, Environments: h.Authz.Environments(), Runs: runs,
		Values: map[string]string{"environment": h.Authz.Environments()[0]}, Access: h.access(ctx, p, proc, def)}
	if len(d.Access) > 0 {
		d.Values["environment"] = d.Access[0].Env
	}
	if pr, err := authz.ProcedureOf(ctx, h.Store, proc); err == nil {
		d.CanRetire = h.Authz.Allowed(ctx, p, policy.ActionRetire, policy.Resource{Procedure: &pr}, policy.Context{})
	}
	for _, v := range vs {
		st, err := h.Review.StatusOf(ctx, v)
		if err != nil {
			return nil, err
		}
		d.Versions = append(d.Versions, st)
	}
	for _, prm := range def.Parameters {
		rules, err := json.Marshal(prm.Rules())
		if err != nil {
			return nil, err
		}
		f := paramField{Parameter: prm, Rules: string(rules), Selected: map[string]bool{}}
		if prm.Default != nil {
			f.Value = fmt.Sprint(prm.Default.V)
			if list, ok := prm.Default.V.([]string); ok {
				for _, v := range list {
					f.Selected[v] = true
				}
			}
		}
		d.Params = append(d.Params, f)
	}
	return d, nil
}

// checkParams leads a form refused for a parameter's value; form.js
// shows the same.
const checkParams = "Check the highlighted parameter."

// CheckParams is checkParams, for the template.
func (*procedureData) CheckParams() string { return checkParams }

func (h *Handler) procedurePage(w http.ResponseWriter, r *http.Request) {
	d, err := h.procedureData(r, r.PathValue("name"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.render(w, r, http.StatusOK, "procedure", page{Title: d.Def.Name, Data: d, Script: "form.js"})
}

// requestRun takes the form: it shows the targets first when asked, and
// otherwise requests the run; a refused value is shown next to its field
// with the server's message, and nothing is stored.
func (h *Handler) requestRun(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	name := r.PathValue("name")
	d, err := h.procedureData(r, name)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	_ = r.ParseForm()
	d.Values["environment"] = r.PostFormValue("environment")
	d.Values["reason"] = r.PostFormValue("reason")
	d.Values["ticket"] = r.PostFormValue("ticket")
	params := readParams(r, d.Params)
	p := identity.PrincipalFrom(ctx)
	rp := run.RequestParams{Procedure: name, Environment: d.Values["environment"], Params: params, Reason: d.Values["reason"], Ticket: d.Values["ticket"]}
	var runID string
	if r.PostFormValue("plan") != "" {
		d.Plan, err = h.Runs.Plan(ctx, p, rp)
	} else {
		var rr *store.Run
		if rr, err = h.Runs.Request(ctx, p, rp); err == nil {
			runID = rr.ID
		}
	}
	if err != nil {
		pg := page{Title: name, Data: d, Script: "form.js", Error: airlock.ErrorMessage(err)}
		if placeParamError(d.Params, err) {
			pg.Error = checkParams
		}
		status := http.StatusBadRequest
		if airlock.ErrorKind(err) == airlock.Forbidden {
			status = http.StatusForbidden
		}
		h.render(w, r, status, "procedure", pg)
		return
	}
	if runID == "" {
		h.render(w, r, http.StatusOK, "procedure", page{Title: name, Data: d, Script: "form.js"})
		return
	}
	http.Redirect(w, r, "/runs/"+runID, http.StatusSeeOther)
}

// readParams reads a form's parameter values (p.NAME) as a run request
// takes them, and keeps what was entered in the fields to show it again
// (never a secret's value).
func readParams(r *http.Request, fields []paramField) map[string]any {
	params := map[string]any{}
	for i := range fields {
		f := &fields[i]
		vals := r.PostForm["p."+f.Name]
		f.Selected = map[string]bool{}
		switch f.Type {
		case procedure.TypeMultiEnum:
			list := []any{}
			for _, v := range vals {
				list = append(list, v)
				f.Selected[v] = true
			}
			params[f.Name] = list
		case procedure.TypeBool:
			params[f.Name] = len(vals) > 0 && vals[0] == "true"
			f.Value = fmt.Sprint(params[f.Name])
		default:
			if len(vals) > 0 && vals[0] != "" {
				params[f.Name] = vals[0]
				if f.Type != procedure.TypeSecret {
					f.Value = vals[0]
				}
			} else {
				f.Value = ""
			}
		}
	}
	return params
}

// placeParamError shows an error about a parameter's value next to its
// field, and reports whether it was one.
func placeParamError(fields []paramField, err error) bool {
	field := airlock.ErrorField(err)
	for i := range fields {
		if field == "params."+fields[i].Name {
			fields[i].Error = airlock.ErrorMessage(err)
			return true
		}
	}
	return false
}

// runStatuses are the statuses the runs page filters by.
var runStatuses = []string{store.RunPending, store.RunQueued, store.RunRunning, store.RunSucceeded, store.RunFailed,
	store.RunCanceled, store.RunTimedOut, store.RunDenied, store.RunExpired}

// runsPage lists the runs the user may see, newest first, filtered by
// status, procedure and "mine" (as the API's list).
func (h *Handler) runsPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p := identity.PrincipalFrom(r.Context())
	f := store.RunListParams{Status: q.Get("status"), ProcedureName: strings.TrimSpace(q.Get("procedure")), Limit: 100}
	if f.Status != "" && !slices.Contains(runStatuses, f.Status) {
		h.fail(w, r, airlock.FieldError("status", "expected one of %s, got %q", strings.Join(runStatuses, ", "), f.Status))
		return
	}
	if q.Get("mine") != "" {
		f.RequesterID = p.UserID
	}
	runs, err := h.Runs.List(r.Context(), p, f)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.render(w, r, http.StatusOK, "runs", page{Title: "Runs", Data: map[string]any{"Runs": runs, "Statuses": runStatuses,
		"Status": f.Status, "Procedure": f.ProcedureName, "Mine": f.RequesterID != ""}})
}

// nodeRows is a row per target node, in target order, with its progress
// so far ("waiting" before the node starts); run.js keeps them current.
func nodeRows(rr *store.Run, nodes []*store.RunNode) []*store.RunNode {
	byName := map[string]*store.RunNode{}
	for _, n := range nodes {
		byName[n.Node] = n
	}
	var rows []*store.RunNode
	for _, t := range rr.Targets {
		if n := byName[t]; n != nil {
			rows = append(rows, n)
			delete(byName, t)
		} else {
			rows = append(rows, &store.RunNode{RunID: rr.ID, Node: t, Status: "waiting"})
		}
	}
	for _, n := range nodes { // nodes not among the targets (the local executor)
		if byName[n.Node] != nil {
			rows = append(rows, n)
		}
	}
	return rows
}

// retireProcedure takes a procedure out of service (the review service
// checks policy's retire and audits it); a missing reason is shown on the
// procedure page.
func (h *Handler) retireProcedure(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	name := r.PathValue("name")
	// Asked first, when there is a reason to act on and the viewer may.
	if strings.TrimSpace(r.PostFormValue("reason")) != "" && r.PostFormValue("confirm") != "yes" {
		if d, err := h.procedureData(r, name); err == nil && d.CanRetire && !h.confirmed(w, r, confirmation{Title: "Retire " + name + "?",
			Effect: name + " leaves the catalog at once: nobody can run or request it, and runs waiting for approval can no longer start. Bringing it back takes a new version and its review.",
			Button: "Retire " + name, Back: "/procedures/" + url.PathEscape(name)}) {
			return
		}
	}
	if _, err := h.Review.Retire(ctx, identity.PrincipalFrom(ctx), name, r.PostFormValue("reason")); err != nil {
		d, derr := h.procedureData(r, name)
		if derr != nil || airlock.ErrorKind(err) != airlock.Invalid {
			h.fail(w, r, err)
			return
		}
		h.render(w, r, http.StatusBadRequest, "procedure", page{Title: name, Data: d, Script: "form.js", Error: userMessage(err)})
		return
	}
	http.Redirect(w, r, "/?retired="+url.QueryEscape(name), http.StatusSeeOther)
}

func (h *Handler) decideRun(decision string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		binding := r.PostFormValue("binding")
		id := r.PathValue("id")
		if _, err := h.Runs.Decide(r.Context(), identity.PrincipalFrom(r.Context()), id, decision, binding, r.PostFormValue("comment")); err != nil {
			h.fail(w, r, err)
			return
		}
		next := "/runs/" + id
		if r.PostFormValue("return") == "/inbox" { // decided from the inbox: back there
			next = "/inbox"
		}
		http.Redirect(w, r, next, http.StatusSeeOther)
	}
}

func (h *Handler) cancelRun(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := h.Runs.Cancel(r.Context(), identity.PrincipalFrom(r.Context()), id); err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/runs/"+id, http.StatusSeeOther)
}

func (h *Handler) inboxItems(r *http.Request) ([]*store.Run, []*store.ProcedureVersion, error) {
	ctx := r.Context()
	p := identity.PrincipalFrom(ctx)
	pending, err := h.Runs.List(ctx, p, store.RunListParams{Status: store.RunPending, Limit: 200})
	if err != nil {
		return nil, nil, err
	}
	var runs []*store.Run
	for _, rr := range pending {
		if rr.RequesterID != p.UserID && h.Runs.Allowed(ctx, p, rr, policy.ActionApproveRun) {
			runs = append(runs, rr)
		}
	}
	vs, err := h.Review.VersionsByStatus(ctx, p, store.VersionProposed)
	if err != nil {
		return nil, nil, err
	}
	var versions []*store.ProcedureVersion
	for _, v := range vs {
		st, err := h.Review.StatusOf(ctx, v)
		if err == nil && h.Review.CanReview(p, st) {
			versions = append(versions, v)
		}
	}
	return runs, versions, nil
}

func (h *Handler) inbox(w http.ResponseWriter, r *http.Request) {
	runs, versions, err := h.inboxItems(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	// Policy proposals a second admin must decide (none for those who
	// may not read policies).
	var policies []pendingPolicy
	if h.mayManagePolicy(r) {
		all, _, err := h.pendingPolicies(r)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		for _, pp := range all {
			if pp.CanDecide {
				policies = append(policies, pp)
			}
		}
	}
	// Each run with what an approver must see: what runs where, with
	// which parameters, under which version, and who approved already.
	type pendingRun struct {
		*store.Run
		Approvals []*store.RunApproval
		// Superseded says why the run can no longer be approved.
		Superseded string
	}
	var pending []pendingRun
	for _, rr := range runs {
		d, err := h.Runs.Details(r.Context(), rr)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		pending = append(pending, pendingRun{Run: rr, Approvals: d.Approvals, Superseded: h.Runs.Superseded(r.Context(), rr)})
	}
	h.render(w, r, http.StatusOK, "inbox", page{Title: "Inbox", InboxCount: len(runs) + len(versions),
		Data: map[string]any{"Runs": pending, "Versions": versions, "Policies": policies}})
}

func (h *Handler) versionData(r *http.Request) (map[string]any, error) {
	ctx := r.Context()
	p := identity.PrincipalFrom(ctx)
	id, err := h.versionID(r)
	if err != nil {
		return nil, err
	}
	st, err := h.Review.VersionStatus(ctx, p, id)
	if err != nil {
		return nil, err
	}
	v := st.Version
	base, err := h.diffBase(r, v)
	if err != nil {
		return nil, err
	}
	diff, against := "", ""
	if base != nil {
		if diff, err = review.Diff(base, v); err != nil {
			return nil, err
		}
		against = fmt.Sprintf("v%d", base.Number)
	}
	def, err := procedure.FromCanonical(v.Definition)
	if err != nil {
		return nil, err
	}
	return map[string]any{"Version": v, "Reviews": st.Reviews, "Quorum": st.Quorum, "Missing": st.Missing, "RiskChange": st.RiskChange, "Diff": diff, "Against": against,
		"YAML": def.YAML(), "CanReview": h.Review.CanReview(p, st)}, nil
}

// versionID is the version a page's {id} names: an ID (pv_…) or
// NAME@NUMBER, as the CLI and the API take it. One the caller may not
// view is "not found".
func (h *Handler) versionID(r *http.Request) (string, error) {
	ref := r.PathValue("id")
	name, num, ok := strings.Cut(ref, "@")
	if !ok {
		return ref, nil
	}
	n, err := strconv.Atoi(num)
	if err != nil || n <= 0 {
		return "", airlock.Errorf(airlock.NotFound, "expected a version ID or NAME@NUMBER, got %q", ref)
	}
	_, vs, err := h.Review.Versions(r.Context(), identity.PrincipalFrom(r.Context()), name)
	if err != nil {
		return "", err
	}
	for _, v := range vs {
		if v.Number == n {
			return v.ID, nil
		}
	}
	return "", airlock.Errorf(airlock.NotFound, "%s has no version %d", name, n)
}

// diffBase is what a version is compared with: the version in service
// while it is proposed; once decided, the approved version before it.
// Nil for a procedure's first version.
func (h *Handler) diffBase(r *http.Request, v *store.ProcedureVersion) (*store.ProcedureVersion, error) {
	ctx := r.Context()
	proc, err := h.Store.ProcedureGetByID(ctx, v.ProcedureID)
	if err != nil {
		return nil, err
	}
	if v.Status == store.VersionProposed && proc.ActiveVersionID != "" {
		return h.Store.ProcedureVersionGet(ctx, proc.ActiveVersionID)
	}
	all, err := h.Store.ProcedureVersionList(ctx, store.ProcedureVersionListParams{ProcedureID: v.ProcedureID})
	if err != nil {
		return nil, err
	}
	var base *store.ProcedureVersion
	for _, o := range all {
		if o.Number < v.Number && o.Status != store.VersionProposed && o.Status != store.VersionRejected && (base == nil || o.Number > base.Number) {
			base = o
		}
	}
	return base, nil
}

func (h *Handler) versionPage(w http.ResponseWriter, r *http.Request) {
	d, err := h.versionData(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.render(w, r, http.StatusOK, "version", page{Title: "Review", Data: d})
}

func (h *Handler) reviewVersion(w http.ResponseWriter, r *http.Request) {
	id, err := h.versionID(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	_, err = h.Review.Review(r.Context(), identity.PrincipalFrom(r.Context()), id, r.PostFormValue("digest"),
		r.PostFormValue("decision"), r.PostFormValue("comment"))
	if err != nil {
		d, derr := h.versionData(r)
		if derr != nil {
			h.fail(w, r, err)
			return
		}
		h.render(w, r, http.StatusBadRequest, "version", page{Title: "Review", Error: airlock.ErrorMessage(err), Data: d})
		return
	}
	http.Redirect(w, r, "/versions/"+id, http.StatusSeeOther)
}
