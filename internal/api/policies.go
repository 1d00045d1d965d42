package api

import (
	"encoding/csv"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/authz"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/policy"
	"github.com/airlockhq/airlock/internal/store"
)

// PolicyJSON is a policy version.
type PolicyJSON struct {
	ID              string    `json:"id"`
	Number          int       `json:"number"`
	Digest          string    `json:"digest"`
	Status          string    `json:"status"`
	Description     string    `json:"description"`
	Author          string    `json:"author"`
	DecidedBy       string    `json:"decided_by,omitempty"`
	DecisionComment string    `json:"decision_comment,omitempty"`
	CreatedAt       time.Time `json:"created_at"`
	DecidedAt       time.Time `json:"decided_at,omitzero"`
	Text            string    `json:"text,omitempty"`
}

func policyJSON(v *store.PolicyVersion, withText bool) *PolicyJSON {
	j := &PolicyJSON{ID: v.ID, Number: v.Number, Digest: v.Digest, Status: v.Status, Description: v.Description, Author: v.AuthorName,
		DecidedBy: v.DecidedByName, DecisionComment: v.DecisionComment, CreatedAt: v.CreatedAt, DecidedAt: v.DecidedAt}
	if withText {
		j.Text = v.Text
	}
	return j
}

func (h *Handler) listPolicies(w http.ResponseWriter, r *http.Request) {
	vs, err := h.Authz.ListPolicies(r.Context(), identity.PrincipalFrom(r.Context()), r.URL.Query().Get("status"))
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	out := ListResponse[*PolicyJSON]{Items: []*PolicyJSON{}}
	for _, v := range vs {
		out.Items = append(out.Items, policyJSON(v, false))
	}
	writeJSON(w, http.StatusOK, out)
}

// ProposePolicyRequest proposes a complete policy set.
type ProposePolicyRequest struct {
	Text        string `json:"text"`
	Description string `json:"description"`
}

func (h *Handler) proposePolicy(w http.ResponseWriter, r *http.Request) {
	var req ProposePolicyRequest
	if err := readJSON(r, &req); err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	v, err := h.Authz.ProposePolicy(r.Context(), identity.PrincipalFrom(r.Context()), req.Text, req.Description)
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	writeJSON(w, http.StatusCreated, policyJSON(v, true))
}

func (h *Handler) getPolicy(w http.ResponseWriter, r *http.Request) {
	v, err := h.Authz.GetPolicy(r.Context(), identity.PrincipalFrom(r.Context()), r.PathValue("id"))
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, policyJSON(v, true))
}

// PolicyDiffResponse is a unified diff between two policy versions.
type PolicyDiffResponse struct {
	From *PolicyJSON `json:"from"`
	To   *PolicyJSON `json:"to"`
	Diff string      `json:"diff"`
}

// diffPolicy diffs {id} against ?against= (default: the active policy).
func (h *Handler) diffPolicy(w http.ResponseWriter, r *http.Request) {
	ctx, p := r.Context(), identity.PrincipalFrom(r.Context())
	against := r.URL.Query().Get("against")
	if against == "" {
		against = "active"
	}
	to, err := h.Authz.GetPolicy(ctx, p, r.PathValue("id"))
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	from, err := h.Authz.GetPolicy(ctx, p, against)
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, PolicyDiffResponse{From: policyJSON(from, false), To: policyJSON(to, false), Diff: authz.DiffPolicies(from, to)})
}

// PolicyDecisionRequest approves or rejects a proposed policy.
type PolicyDecisionRequest struct {
	Digest  string `json:"digest,omitempty"`
	Comment string `json:"comment,omitempty"`
}

func decidePolicy(decision string) func(h *Handler, w http.ResponseWriter, r *http.Request) {
	return func(h *Handler, w http.ResponseWriter, r *http.Request) {
		var req PolicyDecisionRequest
		if err := readJSON(r, &req); err != nil {
			writeError(w, r, h.Log, err)
			return
		}
		v, err := h.Authz.DecidePolicy(r.Context(), identity.PrincipalFrom(r.Context()), r.PathValue("id"), decision, req.Digest, req.Comment)
		if err != nil {
			writeError(w, r, h.Log, err)
			return
		}
		writeJSON(w, http.StatusOK, policyJSON(v, false))
	}
}

func (h *Handler) withdrawPolicy(w http.ResponseWriter, r *http.Request) {
	v, err := h.Authz.WithdrawPolicy(r.Context(), identity.PrincipalFrom(r.Context()), r.PathValue("id"))
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, policyJSON(v, false))
}

func (h *Handler) explain(w http.ResponseWriter, r *http.Request) {
	var q authz.Question
	if err := readJSON(r, &q); err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	ans, err := h.Authz.Explain(r.Context(), identity.PrincipalFrom(r.Context()), q)
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, ans)
}

// accessReview serves the access review as JSON, or as CSV with
// ?format=csv.
func (h *Handler) accessReview(w http.ResponseWriter, r *http.Request) {
	rep, err := h.Authz.AccessReview(r.Context(), identity.PrincipalFrom(r.Context()), authz.Question{PolicyVersion: r.URL.Query().Get("policy_version")})
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	switch r.URL.Query().Get("format") {
	case "csv":
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="airlock-access-review.csv"`)
		_ = WriteAccessCSV(w, rep)
	case "", "json":
		writeJSON(w, http.StatusOK, rep)
	default:
		writeError(w, r, h.Log, airlock.FieldError("format", "expected json or csv"))
	}
}

// WriteAccessCSV writes the access review as CSV.
func WriteAccessCSV(w interface{ Write([]byte) (int, error) }, rep *authz.AccessReport) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"user", "groups", "procedure", "risk", "environment", "access", "needs_approval", "policies"})
	for _, row := range rep.Rows {
		_ = cw.Write([]string{row.User, strings.Join(row.Groups, " "), row.Procedure, row.Risk, row.Environment, row.Access,
			strconv.FormatBool(row.NeedsApproval), strings.Join(row.Policies, " ")})
	}
	cw.Flush()
	return cw.Error()
}

// SchemaResponse carries the Cedar schema policies are validated against.
type SchemaResponse struct {
	Schema  string   `json:"schema"`
	Actions []string `json:"actions"`
}

func (h *Handler) policySchema(w http.ResponseWriter, r *http.Request) {
	if err := h.Authz.CanReadPolicy(r.Context(), identity.PrincipalFrom(r.Context())); err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	params, err := authz.ParamTypes(r.Context(), h.Store)
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, SchemaResponse{Schema: policy.SchemaText(params), Actions: policy.Actions})
}
