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

func (h *Handler) mayManagePolicy(r *http.Request) bool {
	return h.allowedQuietly(r, policy.ActionManagePolicy)
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
		h.renderPolicies(w, r, http.StatusBadRequest, userMessage(err), text)
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
		h.renderPolicies(w, r, airlockStatus(err), userMessage(err), "")
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
		h.renderAccount(w, r, airlockStatus(err), userMessage(err), "", "")
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
		h.renderAccount(w, r, airlockStatus(err), userMessage(err), "", "")
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

// allowedQuietly reports whether p may do a system action, without
// auditing a denial (it only decides what a page offers).
func (h *Handler) allowedQuietly(r *http.Request, action string) bool {
	return h.Authz.Allowed(r.Context(), identity.PrincipalFrom(r.Context()), action, policy.Resource{}, policy.Context{})
}

// adminPage gathers what the viewer may administer or inspect: the access
// review, nodes, secrets (names only) and users. A section the viewer may
// not see is left out; with none, the page is a 404 like any other.
func (h *Handler) adminPage(w http.ResponseWriter, r *http.Request) {
	h.renderAdmin(w, r, http.StatusOK, "", "")
}

func (h *Handler) renderAdmin(w http.ResponseWriter, r *http.Request, status int, errMsg, flash string) {
	ctx := r.Context()
	p := identity.PrincipalFrom(ctx)
	data := map[string]any{}
	if h.allowedQuietly(r, policy.ActionManagePolicy) || h.allowedQuietly(r, policy.ActionReadAudit) {
		rep, err := h.Authz.AccessReview(ctx, p, "")
		if err != nil {
			h.fail(w, r, err)
			return
		}
		data["Access"] = rep
	}
	if h.allowedQuietly(r, policy.ActionManageNodes) {
		nodes, err := h.Nodes.List(ctx, p)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		data["Nodes"] = nodes
	}
	if h.allowedQuietly(r, policy.ActionManageSecrets) {
		secrets, err := h.Secrets.List(ctx, p)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		data["Secrets"], data["SecretsAllowed"] = secrets, true
	}
	if h.allowedQuietly(r, policy.ActionManageUsers) {
		users, groups, err := h.Identity.ListUsers(ctx, p)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		data["Users"], data["Groups"] = users, groups
	}
	if len(data) == 0 {
		h.fail(w, r, airlock.Errorf(airlock.NotFound, "no such page"))
		return
	}
	h.render(w, r, status, "admin", page{Title: "Administration", Error: errMsg, Flash: flash, Data: data})
}

// putSecret creates or replaces a secret. The value is never sent back.
func (h *Handler) putSecret(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	name, value := strings.TrimSpace(r.PostFormValue("name")), strings.ReplaceAll(r.PostFormValue("value"), "\r\n", "\n")
	if _, err := h.Secrets.Put(ctx, identity.PrincipalFrom(ctx), name, []byte(value)); err != nil {
		if airlock.ErrorKind(err) != airlock.Invalid {
			h.fail(w, r, err)
			return
		}
		h.renderAdmin(w, r, http.StatusBadRequest, userMessage(err), "")
		return
	}
	h.renderAdmin(w, r, http.StatusOK, "", "Secret "+name+" stored.")
}
