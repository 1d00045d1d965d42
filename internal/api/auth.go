package api

import (
	"encoding/base64"
	"net/http"
	"strings"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/sso"
	"github.com/airlockhq/airlock/internal/store"
)

// UserJSON is a user as the API shows it.
type UserJSON struct {
	ID          string `json:"id"`
	Username    string `json:"username"`
	DisplayName string `json:"display_name,omitempty"`
	Email       string `json:"email,omitempty"`
	// Kind is person or service; a service account's OwnerTeam is the
	// group whose members make its tokens.
	Kind               string    `json:"kind"`
	OwnerTeam          string    `json:"owner_team,omitempty"`
	Groups             []string  `json:"groups"`
	MustChangePassword bool      `json:"must_change_password"`
	Disabled           bool      `json:"disabled,omitempty"`
	SSO                bool      `json:"sso,omitempty"`
	CreatedAt          time.Time `json:"created_at,omitzero"`
}

// LoginRequest is the body of the login endpoints.
type LoginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
	// TokenName names the API token (auth/token only).
	TokenName string `json:"token_name,omitempty"`
}

// LoginResponse answers a browser login.
type LoginResponse struct {
	User      UserJSON  `json:"user"`
	CSRFToken string    `json:"csrf_token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// TokenJSON is an API token without its secret.
type TokenJSON struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at,omitzero"`
	LastUsedAt time.Time `json:"last_used_at,omitzero"`
	RevokedAt  time.Time `json:"revoked_at,omitzero"`
	// Scope limits the token beyond policy; absent: no limit.
	Scope []string `json:"scope,omitempty"`
}

// NewTokenResponse carries a token's secret, the one time it is shown.
type NewTokenResponse struct {
	Token  string    `json:"token"`
	Info   TokenJSON `json:"info"`
	User   *UserJSON `json:"user,omitempty"`
	Notice string    `json:"notice"`
}

func tokenJSON(t *store.Token) TokenJSON {
	return TokenJSON{ID: t.ID, Name: t.Name, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, LastUsedAt: t.LastUsedAt, RevokedAt: t.RevokedAt, Scope: t.Scope}
}

func userJSON(u *store.User, groups []string) UserJSON {
	if groups == nil {
		groups = []string{}
	}
	kind := u.Kind
	if kind == "" {
		kind = store.AccountPerson
	}
	return UserJSON{ID: u.ID, Username: u.Username, DisplayName: u.DisplayName, Email: u.Email, Kind: kind, OwnerTeam: u.OwnerTeam, Groups: groups,
		MustChangePassword: u.MustChangePassword, Disabled: u.Disabled, SSO: u.Subject != "", CreatedAt: u.CreatedAt}
}

func (h *Handler) setSession(w http.ResponseWriter, r *http.Request, u *store.User, method string) (string, *store.Session, error) {
	previous := ""
	if c, err := r.Cookie(SessionCookie); err == nil {
		previous = c.Value
	}
	secret, sess, err := h.Identity.NewSession(r.Context(), u, method, previous)
	if err != nil {
		return "", nil, err
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: secret, Path: "/", MaxAge: h.SessionMaxAge,
		HttpOnly: true, Secure: h.Secure, SameSite: http.SameSiteLaxMode})
	return secret, sess, nil
}

// LoginBodyLimit bounds a sign-in request: anyone may send one.
const LoginBodyLimit = 8 << 10

func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, LoginBodyLimit)
	var req LoginRequest
	if err := readJSON(r, &req); err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	u, err := h.Identity.PasswordLogin(r.Context(), req.Username, req.Password)
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	secret, sess, err := h.setSession(w, r, u, "password")
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	p, err := h.Identity.Authenticate(r.Context(), secret)
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, LoginResponse{User: userJSON(u, p.Groups), CSRFToken: identity.CSRFToken(secret), ExpiresAt: sess.ExpiresAt})
}

func (h *Handler) loginToken(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, LoginBodyLimit)
	var req LoginRequest
	if err := readJSON(r, &req); err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	if req.TokenName == "" {
		req.TokenName = "cli"
	}
	u, err := h.Identity.PasswordLogin(r.Context(), req.Username, req.Password)
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	secret, tok, err := h.Identity.IssueLoginToken(r.Context(), u, req.TokenName)
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	p, err := h.Identity.Authenticate(r.Context(), secret)
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	uj := userJSON(u, p.Groups)
	writeJSON(w, http.StatusCreated, NewTokenResponse{Token: secret, Info: tokenJSON(tok), User: &uj,
		Notice: "store this token now: it is not shown again"})
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	p := identity.PrincipalFrom(r.Context())
	if err := h.Identity.Logout(r.Context(), p); err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	if p.Via == "session" {
		clearCookie(w, SessionCookie, "/", h.Secure)
	}
	w.WriteHeader(http.StatusNoContent)
}

// PasswordRequest changes one's password. RevokeTokens also revokes all
// the caller's API tokens, the one the request may come with included.
type PasswordRequest struct {
	CurrentPassword string `json:"current_password"`
	NewPassword     string `json:"new_password"`
	RevokeTokens    bool   `json:"revoke_tokens,omitempty"`
}

func (h *Handler) changePassword(w http.ResponseWriter, r *http.Request) {
	var req PasswordRequest
	if err := readJSON(r, &req); err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	if _, err := h.Identity.ChangePasswordWith(r.Context(), identity.PrincipalFrom(r.Context()), identity.PasswordChange{
		Current: req.CurrentPassword, New: req.NewPassword, RevokeTokens: req.RevokeTokens}); err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// MeResponse describes the caller.
type MeResponse struct {
	ID                 string   `json:"id"`
	Username           string   `json:"username"`
	Groups             []string `json:"groups"`
	Via                string   `json:"via"`
	MustChangePassword bool     `json:"must_change_password"`
	// Kind is person or service.
	Kind string `json:"kind"`
}

func (h *Handler) me(w http.ResponseWriter, r *http.Request) {
	p := identity.PrincipalFrom(r.Context())
	groups := p.Groups
	if groups == nil {
		groups = []string{}
	}
	kind := store.AccountPerson
	if p.Service {
		kind = store.AccountService
	}
	writeJSON(w, http.StatusOK, MeResponse{ID: p.UserID, Username: p.Username, Groups: groups, Via: p.Via,
		MustChangePassword: p.MustChangePassword, Kind: kind})
}

// CreateTokenRequest creates an API token.
type CreateTokenRequest struct {
	Name string `json:"name"`
	// TTL is a Go duration ("720h"); empty for the default.
	TTL string `json:"ttl,omitempty"`
	// Scope limits the token to some actions, procedures and
	// environments, beyond policy: ACTION, ACTION:PROCEDURE or
	// ACTION:PROCEDURE@ENVIRONMENT (PROCEDURE may end with *).
	Scope []string `json:"scope,omitempty"`
}

func (h *Handler) createToken(w http.ResponseWriter, r *http.Request) {
	var req CreateTokenRequest
	if err := readJSON(r, &req); err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	ttl, err := parseTTL(req.TTL)
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	secret, tok, err := h.Identity.CreateScopedToken(r.Context(), identity.PrincipalFrom(r.Context()), req.Name, ttl, req.Scope)
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	writeJSON(w, http.StatusCreated, NewTokenResponse{Token: secret, Info: tokenJSON(tok), Notice: "store this token now: it is not shown again"})
}

// parseTTL reads a token's lifetime; empty is zero, the default.
func parseTTL(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, airlock.FieldError("ttl", "expected a duration such as 720h")
	}
	return d, nil
}

// ListResponse wraps list results.
type ListResponse[T any] struct {
	Items []T `json:"items"`
}

func (h *Handler) listTokens(w http.ResponseWriter, r *http.Request) {
	toks, err := h.Identity.ListTokens(r.Context(), identity.PrincipalFrom(r.Context()))
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	out := ListResponse[TokenJSON]{Items: []TokenJSON{}}
	for _, t := range toks {
		out.Items = append(out.Items, tokenJSON(t))
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) revokeToken(w http.ResponseWriter, r *http.Request) {
	if err := h.Identity.RevokeToken(r.Context(), identity.PrincipalFrom(r.Context()), r.PathValue("id")); err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) listUsers(w http.ResponseWriter, r *http.Request) {
	us, groups, err := h.Identity.ListUsers(r.Context(), identity.PrincipalFrom(r.Context()))
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	out := ListResponse[UserJSON]{Items: []UserJSON{}}
	for _, u := range us {
		out.Items = append(out.Items, userJSON(u, groups[u.ID]))
	}
	writeJSON(w, http.StatusOK, out)
}

// CreateUserRequest proposes a local user, created when another admin
// approves; the approver receives its one-time password. Kind service
// proposes a service account instead: owned by OwnerTeam (an existing
// group), with no password, acting only through tokens its team makes
// (POST /api/v1/users/{username}/tokens).
type CreateUserRequest struct {
	Username    string   `json:"username"`
	DisplayName string   `json:"display_name,omitempty"`
	Email       string   `json:"email,omitempty"`
	Groups      []string `json:"groups,omitempty"`
	// Kind is person (default) or service.
	Kind      string `json:"kind,omitempty"`
	OwnerTeam string `json:"owner_team,omitempty"`
}

func (h *Handler) createUser(w http.ResponseWriter, r *http.Request) {
	var req CreateUserRequest
	if err := readJSON(r, &req); err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	h.proposeUserChange(w, r, identity.UserChangeParams{Kind: store.UserChangeCreate, Username: req.Username,
		DisplayName: req.DisplayName, Email: req.Email, Groups: req.Groups, AccountKind: req.Kind, OwnerTeam: req.OwnerTeam})
}

func (h *Handler) createServiceToken(w http.ResponseWriter, r *http.Request) {
	var req CreateTokenRequest
	if err := readJSON(r, &req); err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	ttl, err := parseTTL(req.TTL)
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	secret, tok, err := h.Identity.CreateServiceToken(r.Context(), identity.PrincipalFrom(r.Context()), r.PathValue("username"), req.Name, ttl, req.Scope)
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	writeJSON(w, http.StatusCreated, NewTokenResponse{Token: secret, Info: tokenJSON(tok), Notice: "store this token now: it is not shown again"})
}

func (h *Handler) listServiceTokens(w http.ResponseWriter, r *http.Request) {
	toks, err := h.Identity.ServiceTokens(r.Context(), identity.PrincipalFrom(r.Context()), r.PathValue("username"))
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	out := ListResponse[TokenJSON]{Items: []TokenJSON{}}
	for _, t := range toks {
		out.Items = append(out.Items, tokenJSON(t))
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) revokeServiceToken(w http.ResponseWriter, r *http.Request) {
	if err := h.Identity.RevokeServiceToken(r.Context(), identity.PrincipalFrom(r.Context()), r.PathValue("username"), r.PathValue("id")); err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// MemberRequest adds a member to a group.
type MemberRequest struct {
	Username string `json:"username"`
}

func (h *Handler) addMember(w http.ResponseWriter, r *http.Request) {
	var req MemberRequest
	if err := readJSON(r, &req); err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	h.proposeUserChange(w, r, identity.UserChangeParams{Kind: store.UserChangeAddMember, Username: req.Username, Group: r.PathValue("group")})
}

func (h *Handler) removeMember(w http.ResponseWriter, r *http.Request) {
	if err := h.Identity.RemoveMember(r.Context(), identity.PrincipalFrom(r.Context()), r.PathValue("group"), r.PathValue("username")); err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) disableUser(w http.ResponseWriter, r *http.Request) {
	if err := h.Identity.Disable(r.Context(), identity.PrincipalFrom(r.Context()), r.PathValue("username")); err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) enableUser(w http.ResponseWriter, r *http.Request) {
	h.proposeUserChange(w, r, identity.UserChangeParams{Kind: store.UserChangeEnable, Username: r.PathValue("username")})
}

// resetPassword proposes a one-time password for a local user; the
// approver, never the author, receives it.
func (h *Handler) resetPassword(w http.ResponseWriter, r *http.Request) {
	h.proposeUserChange(w, r, identity.UserChangeParams{Kind: store.UserChangeResetPassword, Username: r.PathValue("username")})
}

const ssoCookie = "airlock_sso"

func (h *Handler) ssoLogin(w http.ResponseWriter, r *http.Request) {
	if h.SSO == nil {
		writeError(w, r, h.Log, airlock.Errorf(airlock.NotFound, "single sign-on is not configured"))
		return
	}
	url, f := h.SSO.Start()
	// Where to return afterwards (a path on this site) rides along with
	// the flow's secrets.
	next := base64.RawURLEncoding.EncodeToString([]byte(sso.LocalPath(r.URL.Query().Get("next"))))
	http.SetCookie(w, &http.Cookie{Name: ssoCookie, Value: f.State + "." + f.Nonce + "." + f.Verifier + "." + next,
		Path: "/auth/oidc", MaxAge: 600, HttpOnly: true, Secure: h.Secure, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, url, http.StatusFound)
}

func (h *Handler) ssoCallback(w http.ResponseWriter, r *http.Request) {
	if h.SSO == nil {
		writeError(w, r, h.Log, airlock.Errorf(airlock.NotFound, "single sign-on is not configured"))
		return
	}
	clearCookie(w, ssoCookie, "/auth/oidc", h.Secure)
	var f sso.Flow
	next := "/"
	if c, err := r.Cookie(ssoCookie); err == nil {
		parts := strings.SplitN(c.Value, ".", 4)
		if len(parts) >= 3 {
			f = sso.Flow{State: parts[0], Nonce: parts[1], Verifier: parts[2]}
		}
		if len(parts) == 4 {
			if b, err := base64.RawURLEncoding.DecodeString(parts[3]); err == nil {
				next = sso.LocalPath(string(b))
			}
		}
	}
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		h.Log.WarnContext(r.Context(), "sso provider error", "error", e, "description", q.Get("error_description"))
		writeError(w, r, h.Log, airlock.Errorf(airlock.Unauthenticated, "single sign-on failed"))
		return
	}
	claims, err := h.SSO.Finish(r.Context(), q.Get("state"), q.Get("code"), f)
	if err != nil {
		h.Log.WarnContext(r.Context(), "sso login rejected", "request_id", requestID(r.Context()), "err", err)
		h.Identity.RecordSSOFailure(r.Context(), err.Error())
		writeError(w, r, h.Log, airlock.Errorf(airlock.Unauthenticated, "single sign-on failed"))
		return
	}
	u, err := h.Identity.SSOLogin(r.Context(), identity.SSOUser{Issuer: claims.Issuer, Subject: claims.Subject,
		Username: claims.Username, Email: claims.Email, Name: claims.Name, Groups: h.SSO.MapGroups(claims.Groups)})
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	if _, _, err := h.setSession(w, r, u, "sso"); err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	http.Redirect(w, r, next, http.StatusFound)
}
