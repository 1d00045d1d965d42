package web

import (
	"net/http"
	"strings"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/authz"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/policy"
	"github.com/airlockhq/airlock/internal/store"
)

// pendingPolicy is a proposed policy set with its diff against the one in
// force and whether the viewer may decide it.
type pendingPolicy struct {
	Version   *store.PolicyVersion
	Diff      string
	CanDecide bool
}

func (h *Handler) pendingPolicies(r *http.Request) ([]pendingPolicy, *store.PolicyVersion, error) {
	ctx := r.Context()
	p := identity.PrincipalFrom(ctx)
	if err := h.Authz.CanReadPolicy(ctx, p); err != nil {
		return nil, nil, err
	}
	active, err := h.Authz.GetPolicy(ctx, p, "active")
	if err != nil {
		return nil, nil, err
	}
	proposed, err := h.Authz.ListPolicies(ctx, p, store.PolicyProposed)
	if err != nil {
		return nil, nil, err
	}
	canManage := h.mayManagePolicy(r)
	var out []pendingPolicy
	for _, v := range proposed {
		full, err := h.Authz.GetPolicy(ctx, p, v.ID)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, pendingPolicy{Version: full, Diff: authz.DiffPolicies(active, full), CanDecide: canManage && full.AuthorID != p.UserID})
	}
	return out, active, nil
}

// mayManagePolicy asks quietly (no denial is audited: it only decides
// what a page offers).
func (h *Handler) mayManagePolicy(r *http.Request) bool {
	return h.Authz.Allowed(r.Context(), identity.PrincipalFrom(r.Context()), policy.ActionManagePolicy, policy.Resource{}, policy.Context{})
}

// policiesPage shows the policy in force, the proposals waiting for a
// second admin, and a form to propose a change.
func (h *Handler) policiesPage(w http.ResponseWriter, r *http.Request) {
	h.renderPolicies(w, r, http.StatusOK, "", "")
}

func (h *Handler) renderPolicies(w http.ResponseWriter, r *http.Request, status int, errMsg, draft string) {
	pending, active, err := h.pendingPolicies(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if draft == "" {
		draft = active.Text
	}
	canManage := h.mayManagePolicy(r)
	h.render(w, r, status, "policies", page{Title: "Policy", Error: errMsg,
		Data: map[string]any{"Active": active, "Pending": pending, "CanManage": canManage, "Draft": draft, "Description": r.PostFormValue("description")}})
}

func (h *Handler) proposePolicy(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	text := strings.ReplaceAll(r.PostFormValue("text"), "\r\n", "\n")
	if _, err := h.Authz.ProposePolicy(ctx, identity.PrincipalFrom(ctx), text, r.PostFormValue("description")); err != nil {
		if airlock.ErrorKind(err) != airlock.Invalid {
			h.fail(w, r, err)
			return
		}
		h.renderPolicies(w, r, http.StatusBadRequest, airlock.ErrorMessage(err), text)
		return
	}
	http.Redirect(w, r, "/policies", http.StatusSeeOther)
}

func (h *Handler) decidePolicy(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	decision := r.PostFormValue("decision")
	if decision != "approve" && decision != "reject" {
		h.fail(w, r, airlock.FieldError("decision", "expected approve or reject"))
		return
	}
	if _, err := h.Authz.DecidePolicy(ctx, identity.PrincipalFrom(ctx), r.PathValue("id"), decision, r.PostFormValue("digest"), r.PostFormValue("comment")); err != nil {
		h.renderPolicies(w, r, airlockStatus(err), airlock.ErrorMessage(err), "")
		return
	}
	http.Redirect(w, r, "/policies", http.StatusSeeOther)
}

// accountPage: one's password and API tokens.
func (h *Handler) accountPage(w http.ResponseWriter, r *http.Request) {
	h.renderAccount(w, r, http.StatusOK, "", "", "")
}

func (h *Handler) renderAccount(w http.ResponseWriter, r *http.Request, status int, errMsg, flash, newToken string) {
	ctx := r.Context()
	tokens, err := h.Identity.ListTokens(ctx, identity.PrincipalFrom(ctx))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.render(w, r, status, "account", page{Title: "Account", Error: errMsg, Flash: flash,
		Data: map[string]any{"Tokens": tokens, "NewToken": newToken, "Now": time.Now()}})
}

func (h *Handler) changePassword(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if r.PostFormValue("new") != r.PostFormValue("confirm") {
		h.renderAccount(w, r, http.StatusBadRequest, "new password: the two entries differ", "", "")
		return
	}
	p := identity.PrincipalFrom(ctx)
	if err := h.Identity.ChangePassword(ctx, p, r.PostFormValue("current"), r.PostFormValue("new")); err != nil {
		h.renderAccount(w, r, airlockStatus(err), airlock.ErrorMessage(err), "", "")
		return
	}
	p.MustChangePassword = false
	h.renderAccount(w, r, http.StatusOK, "", "Password changed.", "")
}

func (h *Handler) createToken(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ttl, err := time.ParseDuration(r.PostFormValue("ttl"))
	if err != nil || ttl <= 0 {
		h.renderAccount(w, r, http.StatusBadRequest, "expires in: expected a duration such as 720h", "", "")
		return
	}
	secret, _, err := h.Identity.CreateToken(ctx, identity.PrincipalFrom(ctx), r.PostFormValue("name"), ttl)
	if err != nil {
		h.renderAccount(w, r, airlockStatus(err), airlock.ErrorMessage(err), "", "")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	h.renderAccount(w, r, http.StatusOK, "", "Token created. Copy it now: it is not shown again.", secret)
}

func (h *Handler) revokeToken(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := h.Identity.RevokeToken(ctx, identity.PrincipalFrom(ctx), r.PathValue("id")); err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/account", http.StatusSeeOther)
}
