package api

import (
	"net/http"
	"time"

	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/store"
)

// UserChangeJSON is a proposed change to users or group membership,
// in force once another admin approves it.
type UserChangeJSON struct {
	ID          string   `json:"id"`
	Kind        string   `json:"kind"`
	Summary     string   `json:"summary"`
	Username    string   `json:"username"`
	Group       string   `json:"group,omitempty"`
	DisplayName string   `json:"display_name,omitempty"`
	Email       string   `json:"email,omitempty"`
	Groups      []string `json:"groups,omitempty"`
	// AccountKind and OwnerTeam: a create_user change of a service
	// account.
	AccountKind     string    `json:"account_kind,omitempty"`
	OwnerTeam       string    `json:"owner_team,omitempty"`
	Status          string    `json:"status"`
	Author          string    `json:"author"`
	DecidedBy       string    `json:"decided_by,omitempty"`
	DecisionComment string    `json:"decision_comment,omitempty"`
	CreatedAt       time.Time `json:"created_at"`
	DecidedAt       time.Time `json:"decided_at,omitzero"`
}

func userChangeJSON(c *store.UserChange) *UserChangeJSON {
	return &UserChangeJSON{ID: c.ID, Kind: c.Kind, Summary: identity.Describe(c), Username: c.Username, Group: c.Group,
		DisplayName: c.DisplayName, Email: c.Email, Groups: c.Groups, AccountKind: accountKind(c), OwnerTeam: c.OwnerTeam, Status: c.Status, Author: c.AuthorName,
		DecidedBy: c.DecidedByName, DecisionComment: c.DecisionComment, CreatedAt: c.CreatedAt, DecidedAt: c.DecidedAt}
}

// UserChangeDecisionRequest approves or rejects a change; a rejection
// needs a comment.
type UserChangeDecisionRequest struct {
	Comment string `json:"comment,omitempty"`
}

// UserChangeResponse is a proposed or decided change. The change that
// created a user — its approval, or a proposal in force at once because
// no other admin could approve it — returns the user's one-time
// password, once: hand it to the user, who must change it at first
// sign-in.
type UserChangeResponse struct {
	Change          *UserChangeJSON `json:"change"`
	OneTimePassword string          `json:"one_time_password,omitempty"`
}

func (h *Handler) proposeUserChange(w http.ResponseWriter, r *http.Request, in identity.UserChangeParams) {
	res, err := h.Identity.ProposeUserChange(r.Context(), identity.PrincipalFrom(r.Context()), in)
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	w.Header().Set("Location", "/api/v1/user-changes/"+res.Change.ID)
	code := http.StatusAccepted
	if res.Change.Status == store.UserChangeApproved {
		code = http.StatusOK
	}
	writeJSON(w, code, UserChangeResponse{Change: userChangeJSON(res.Change), OneTimePassword: res.OneTimePassword})
}

func (h *Handler) listUserChanges(w http.ResponseWriter, r *http.Request) {
	cs, err := h.Identity.ListUserChanges(r.Context(), identity.PrincipalFrom(r.Context()), r.URL.Query().Get("status"))
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	out := ListResponse[*UserChangeJSON]{Items: []*UserChangeJSON{}}
	for _, c := range cs {
		out.Items = append(out.Items, userChangeJSON(c))
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) getUserChange(w http.ResponseWriter, r *http.Request) {
	c, err := h.Identity.GetUserChange(r.Context(), identity.PrincipalFrom(r.Context()), r.PathValue("id"))
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, userChangeJSON(c))
}

func decideUserChange(decision string) func(h *Handler, w http.ResponseWriter, r *http.Request) {
	return func(h *Handler, w http.ResponseWriter, r *http.Request) {
		var req UserChangeDecisionRequest
		if err := readJSON(r, &req); err != nil {
			writeError(w, r, h.Log, err)
			return
		}
		res, err := h.Identity.DecideUserChange(r.Context(), identity.PrincipalFrom(r.Context()), r.PathValue("id"), decision, req.Comment)
		if err != nil {
			writeError(w, r, h.Log, err)
			return
		}
		writeJSON(w, http.StatusOK, UserChangeResponse{Change: userChangeJSON(res.Change), OneTimePassword: res.OneTimePassword})
	}
}

func (h *Handler) withdrawUserChange(w http.ResponseWriter, r *http.Request) {
	c, err := h.Identity.WithdrawUserChange(r.Context(), identity.PrincipalFrom(r.Context()), r.PathValue("id"))
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, userChangeJSON(c))
}

// accountKind is the kind of account a create_user change makes; empty
// for other changes.
func accountKind(c *store.UserChange) string {
	switch {
	case c.Kind != store.UserChangeCreate:
		return ""
	case c.AccountKind == "":
		return store.AccountPerson
	}
	return c.AccountKind
}
