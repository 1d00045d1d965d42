package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/procedure"
	"github.com/airlockhq/airlock/internal/review"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/strictyaml"
)

// VersionJSON is a procedure version.
type VersionJSON struct {
	ID         string          `json:"id"`
	Procedure  string          `json:"procedure"`
	Number     int             `json:"number"`
	Digest     string          `json:"digest"`
	Risk       string          `json:"risk"`
	Status     string          `json:"status"`
	Author     string          `json:"author"`
	SourceFile string          `json:"source_file,omitempty"`
	CreatedAt  time.Time       `json:"created_at"`
	DecidedAt  time.Time       `json:"decided_at,omitzero"`
	Definition json.RawMessage `json:"definition,omitempty"`
	YAML       string          `json:"yaml,omitempty"`
	Reviews    []ReviewJSON    `json:"reviews,omitempty"`
	Quorum     []string        `json:"quorum,omitempty"`
	// RiskChange is set when the version is reviewed under a higher risk
	// than it declares: that of the version in service.
	RiskChange string   `json:"risk_change,omitempty"`
	Missing    []string `json:"missing,omitempty"`
}

// ReviewJSON is one review.
type ReviewJSON struct {
	ID        string    `json:"id"`
	Reviewer  string    `json:"reviewer"`
	Decision  string    `json:"decision"`
	Comment   string    `json:"comment,omitempty"`
	Digest    string    `json:"digest"`
	Groups    []string  `json:"groups"`
	CreatedAt time.Time `json:"created_at"`
}

// ProcedureJSON is a procedure with its active version.
type ProcedureJSON struct {
	ID          string         `json:"id"`
	Name        string         `json:"name"`
	Title       string         `json:"title,omitempty"`
	Description string         `json:"description,omitempty"`
	Owner       string         `json:"owner"`
	Risk        string         `json:"risk,omitempty"`
	State       string         `json:"state"` // active | retired | proposed
	RetiredAt   time.Time      `json:"retired_at,omitzero"`
	Active      *VersionJSON   `json:"active,omitempty"`
	Pending     []*VersionJSON `json:"pending"`
}

func versionJSON(v *store.ProcedureVersion, full bool) *VersionJSON {
	j := &VersionJSON{ID: v.ID, Procedure: v.ProcedureName, Number: v.Number, Digest: v.Digest, Risk: v.Risk, Status: v.Status,
		Author: v.AuthorName, SourceFile: v.SourceFile, CreatedAt: v.CreatedAt, DecidedAt: v.DecidedAt}
	if full {
		j.Definition = json.RawMessage(v.Definition)
		if p, err := procedure.FromCanonical(v.Definition); err == nil {
			j.YAML = p.YAML()
		}
	}
	return j
}

func statusJSON(st *review.Status) *VersionJSON {
	j := versionJSON(st.Version, true)
	j.Quorum, j.Missing, j.RiskChange = st.Quorum, st.Missing, st.RiskChange
	for _, r := range st.Reviews {
		j.Reviews = append(j.Reviews, ReviewJSON{ID: r.ID, Reviewer: r.ReviewerName, Decision: r.Decision, Comment: r.Comment,
			Digest: r.Digest, Groups: r.ReviewerGroups, CreatedAt: r.CreatedAt})
	}
	return j
}

func (h *Handler) procedureJSON(ctx context.Context, p *store.Procedure, full bool) (*ProcedureJSON, error) {
	out := &ProcedureJSON{ID: p.ID, Name: p.Name, Owner: p.Owner, RetiredAt: p.RetiredAt, Pending: []*VersionJSON{}}
	// The caller may view p: the service returned it.
	versions, err := h.Store.ProcedureVersionList(ctx, store.ProcedureVersionListParams{ProcedureID: p.ID})
	if err != nil {
		return nil, err
	}
	for _, v := range versions {
		switch {
		case v.ID == p.ActiveVersionID:
			out.Active = versionJSON(v, full)
			if def, err := procedure.FromCanonical(v.Definition); err == nil {
				out.Title, out.Description, out.Risk = def.Title, def.Description, def.Risk
			}
		case v.Status == store.VersionProposed:
			out.Pending = append(out.Pending, versionJSON(v, false))
			if out.Risk == "" {
				out.Risk = v.Risk
			}
		}
	}
	switch {
	case !p.RetiredAt.IsZero():
		out.State = "retired"
	case out.Active != nil:
		out.State = "active"
	default:
		out.State = "proposed"
	}
	return out, nil
}

func (h *Handler) listProcedures(w http.ResponseWriter, r *http.Request) {
	ps, err := h.Review.Procedures(r.Context(), identity.PrincipalFrom(r.Context()))
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	out := ListResponse[*ProcedureJSON]{Items: []*ProcedureJSON{}}
	for _, p := range ps {
		j, err := h.procedureJSON(r.Context(), p, false)
		if err != nil {
			writeError(w, r, h.Log, err)
			return
		}
		out.Items = append(out.Items, j)
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) getProcedure(w http.ResponseWriter, r *http.Request) {
	p, err := h.Review.Procedure(r.Context(), identity.PrincipalFrom(r.Context()), r.PathValue("name"))
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	j, err := h.procedureJSON(r.Context(), p, true)
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, j)
}

func (h *Handler) procedureHistory(w http.ResponseWriter, r *http.Request) {
	_, vs, err := h.Review.Versions(r.Context(), identity.PrincipalFrom(r.Context()), r.PathValue("name"))
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	out := ListResponse[*VersionJSON]{Items: []*VersionJSON{}}
	for _, v := range vs {
		st, err := h.Review.StatusOf(r.Context(), v)
		if err != nil {
			writeError(w, r, h.Log, err)
			return
		}
		j := statusJSON(st)
		j.Definition, j.YAML = nil, ""
		out.Items = append(out.Items, j)
	}
	writeJSON(w, http.StatusOK, out)
}

// findVersion resolves a version reference the caller may view: an ID
// (pv_…) or NAME@NUMBER.
func (h *Handler) findVersion(ctx context.Context, ref string) (*store.ProcedureVersion, error) {
	name, num, ok := strings.Cut(ref, "@")
	if !ok {
		return h.Review.Version(ctx, identity.PrincipalFrom(ctx), ref)
	}
	n, err := strconv.Atoi(num)
	if err != nil {
		return nil, airlock.Errorf(airlock.Invalid, "expected a version ID or NAME@NUMBER, got %q", ref)
	}
	return h.versionByNumber(ctx, name, n)
}

func (h *Handler) versionByNumber(ctx context.Context, name string, n int) (*store.ProcedureVersion, error) {
	_, vs, err := h.Review.Versions(ctx, identity.PrincipalFrom(ctx), name)
	if err != nil {
		return nil, err
	}
	for _, v := range vs {
		if v.Number == n {
			return v, nil
		}
	}
	return nil, airlock.Errorf(airlock.NotFound, "%s has no version %d", name, n)
}

// DiffResponse is a unified diff between two versions.
type DiffResponse struct {
	From *VersionJSON `json:"from"`
	To   *VersionJSON `json:"to"`
	Diff string       `json:"diff"`
}

// procedureDiff diffs ?from=N against ?to=M. By default: the active
// version against the newest version (the pending proposal, if any).
func (h *Handler) procedureDiff(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	p, vs, err := h.Review.Versions(ctx, identity.PrincipalFrom(ctx), r.PathValue("name"))
	if err == nil && len(vs) == 0 {
		err = airlock.Errorf(airlock.NotFound, "%s has no versions", p.Name)
	}
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	pick := func(param string, def *store.ProcedureVersion) (*store.ProcedureVersion, error) {
		s := r.URL.Query().Get(param)
		if s == "" {
			return def, nil
		}
		n, err := strconv.Atoi(strings.TrimPrefix(s, "v"))
		if err != nil {
			return nil, airlock.FieldError(param, "expected a version number, got %q", s)
		}
		return h.versionByNumber(ctx, p.Name, n)
	}
	newest := vs[len(vs)-1]
	from := vs[0]
	for _, v := range vs {
		if v.ID == p.ActiveVersionID {
			from = v
		}
	}
	if from.ID == newest.ID && len(vs) > 1 {
		from = vs[len(vs)-2]
	}
	if from, err = pick("from", from); err == nil {
		newest, err = pick("to", newest)
	}
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	d, err := review.Diff(from, newest)
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, DiffResponse{From: versionJSON(from, false), To: versionJSON(newest, false), Diff: d})
}

// RetireRequest retires a procedure.
type RetireRequest struct {
	Reason string `json:"reason"`
}

func (h *Handler) retireProcedure(w http.ResponseWriter, r *http.Request) {
	var req RetireRequest
	if err := readJSON(r, &req); err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	p, err := h.Review.Retire(r.Context(), identity.PrincipalFrom(r.Context()), r.PathValue("name"), req.Reason)
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	j, err := h.procedureJSON(r.Context(), p, false)
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, j)
}

// ProposeRequest proposes one procedure definition.
type ProposeRequest struct {
	// Source is one YAML procedure document.
	Source string `json:"source"`
	// File is where it lives in the author's repository, for reference.
	File string `json:"file,omitempty"`
}

// ProposeResponse tells what a proposal did.
type ProposeResponse struct {
	Status    string         `json:"status"` // proposed | unchanged
	Version   *VersionJSON   `json:"version"`
	Withdrawn []*VersionJSON `json:"withdrawn,omitempty"`
}

// ValidationError is the 400 body for a definition that does not
// validate: every problem with its position.
type ValidationError struct {
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Path    string `json:"path,omitempty"`
	Message string `json:"message"`
}

func (h *Handler) proposeVersion(w http.ResponseWriter, r *http.Request) {
	var req ProposeRequest
	if err := readJSON(r, &req); err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	file := req.File
	if file == "" {
		file = "source"
	}
	srcs, err := procedure.Parse(file, []byte(req.Source))
	if err != nil {
		var es strictyaml.Errors
		errors.As(err, &es)
		var msgs []string
		for _, e := range es {
			msgs = append(msgs, e.Error())
		}
		writeError(w, r, h.Log, &airlock.Error{Kind: airlock.Invalid, Field: "source", Message: strings.Join(msgs, "\n")})
		return
	}
	if len(srcs) != 1 {
		writeError(w, r, h.Log, airlock.FieldError("source", "expected exactly one procedure document, got %d", len(srcs)))
		return
	}
	res, err := h.Review.Propose(r.Context(), identity.PrincipalFrom(r.Context()), srcs[0])
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	out := ProposeResponse{Status: res.Status, Version: versionJSON(res.Version, false)}
	for _, v := range res.Withdrawn {
		out.Withdrawn = append(out.Withdrawn, versionJSON(v, false))
	}
	code := http.StatusOK
	if res.Status == "proposed" {
		code = http.StatusCreated
	}
	writeJSON(w, code, out)
}

// listVersions lists versions by ?status=; ?reviewable=true keeps those
// the caller could review now (proposed, not theirs, not yet reviewed by
// them, their groups eligible): the review inbox.
func (h *Handler) listVersions(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := r.URL.Query()
	status := q.Get("status")
	reviewable := q.Get("reviewable") == "true"
	if reviewable {
		status = store.VersionProposed
	}
	p := identity.PrincipalFrom(ctx)
	vs, err := h.Review.VersionsByStatus(ctx, p, status)
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	out := ListResponse[*VersionJSON]{Items: []*VersionJSON{}}
	for _, v := range vs {
		st, err := h.Review.StatusOf(ctx, v)
		if err != nil {
			writeError(w, r, h.Log, err)
			return
		}
		if reviewable && !h.Review.CanReview(p, st) {
			continue
		}
		j := statusJSON(st)
		j.Definition, j.YAML = nil, ""
		out.Items = append(out.Items, j)
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) getVersion(w http.ResponseWriter, r *http.Request) {
	v, err := h.findVersion(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	st, err := h.Review.StatusOf(r.Context(), v)
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, statusJSON(st))
}

func (h *Handler) withdrawVersion(w http.ResponseWriter, r *http.Request) {
	v, err := h.findVersion(r.Context(), r.PathValue("id"))
	if err == nil {
		v, err = h.Review.Withdraw(r.Context(), identity.PrincipalFrom(r.Context()), v.ID)
	}
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, versionJSON(v, false))
}

// ReviewRequest approves or rejects a version.
type ReviewRequest struct {
	Decision string `json:"decision"` // approve | reject
	// Digest is the digest the reviewer read; the review is refused if
	// the version's is different.
	Digest  string `json:"digest"`
	Comment string `json:"comment,omitempty"`
}

// ReviewResponse tells what a review did.
type ReviewResponse struct {
	Review     ReviewJSON   `json:"review"`
	Version    *VersionJSON `json:"version"`
	Activated  bool         `json:"activated"`
	Superseded *VersionJSON `json:"superseded,omitempty"`
	Missing    []string     `json:"missing,omitempty"`
}

func (h *Handler) reviewVersion(w http.ResponseWriter, r *http.Request) {
	var req ReviewRequest
	if err := readJSON(r, &req); err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	if req.Digest == "" {
		writeError(w, r, h.Log, airlock.FieldError("digest", "is required: the digest of the version you reviewed"))
		return
	}
	v, err := h.findVersion(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	res, err := h.Review.Review(r.Context(), identity.PrincipalFrom(r.Context()), v.ID, req.Digest, req.Decision, req.Comment)
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	rv := res.Review
	out := ReviewResponse{Review: ReviewJSON{ID: rv.ID, Reviewer: rv.ReviewerName, Decision: rv.Decision, Comment: rv.Comment,
		Digest: rv.Digest, Groups: rv.ReviewerGroups, CreatedAt: rv.CreatedAt}, Version: versionJSON(res.Version, false),
		Activated: res.Activated, Missing: res.Missing}
	if res.Superseded != nil {
		out.Superseded = versionJSON(res.Superseded, false)
	}
	writeJSON(w, http.StatusCreated, out)
}

func (h *Handler) listReviews(w http.ResponseWriter, r *http.Request) {
	v, err := h.findVersion(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	st, err := h.Review.StatusOf(r.Context(), v)
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	j := statusJSON(st)
	out := ListResponse[ReviewJSON]{Items: j.Reviews}
	if out.Items == nil {
		out.Items = []ReviewJSON{}
	}
	writeJSON(w, http.StatusOK, out)
}
