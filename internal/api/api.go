// Package api is Airlock's HTTP surface: the REST API under /api/v1, the
// SSO endpoints, and the middleware every request passes (request ID,
// logging, metrics, authentication, CSRF). Handlers translate HTTP to
// service calls and back; the services decide. Error kinds map to HTTP
// status in exactly one place (status in errors.go).
package api

import (
	"crypto/subtle"
	"log/slog"
	"net/http"

	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/sso"
)

// Handler serves the API.
type Handler struct {
	Identity *identity.Service
	SSO      *sso.Provider // nil when SSO is off
	Log      *slog.Logger
	Metrics  *Metrics
	// Secure marks cookies Secure; set when serving TLS.
	Secure bool
	// SessionTTL is the cookie lifetime (the session's absolute expiry).
	SessionMaxAge int
}

// Route is one entry of the route table. Every route is registered from
// this table, and tests walk it, so a new route cannot skip the checks.
type Route struct {
	Method  string
	Path    string
	Public  bool // no authentication required
	Summary string
	// DuringPasswordChange: still allowed while the user must change
	// their password.
	DuringPasswordChange bool
	handle               func(h *Handler, w http.ResponseWriter, r *http.Request)
}

// Routes returns the route table.
func Routes() []Route {
	return []Route{
		{Method: "POST", Path: "/api/v1/auth/login", Public: true, Summary: "Log in with a password; starts a browser session", handle: (*Handler).login},
		{Method: "POST", Path: "/api/v1/auth/token", Public: true, Summary: "Exchange a password for an API token (CLI login)", handle: (*Handler).loginToken},
		{Method: "POST", Path: "/api/v1/auth/logout", Summary: "End the current session or revoke the current token", DuringPasswordChange: true, handle: (*Handler).logout},
		{Method: "POST", Path: "/api/v1/auth/password", Summary: "Change one's own password", DuringPasswordChange: true, handle: (*Handler).changePassword},
		{Method: "GET", Path: "/api/v1/me", Summary: "Who am I", DuringPasswordChange: true, handle: (*Handler).me},
		{Method: "GET", Path: "/api/v1/tokens", Summary: "List one's own API tokens", handle: (*Handler).listTokens},
		{Method: "POST", Path: "/api/v1/tokens", Summary: "Create an API token (the secret is shown once)", handle: (*Handler).createToken},
		{Method: "DELETE", Path: "/api/v1/tokens/{id}", Summary: "Revoke an API token", handle: (*Handler).revokeToken},
		{Method: "GET", Path: "/api/v1/users", Summary: "List users (admins)", handle: (*Handler).listUsers},
		{Method: "POST", Path: "/api/v1/users", Summary: "Create a local user (admins)", handle: (*Handler).createUser},
		{Method: "POST", Path: "/api/v1/groups/{group}/members", Summary: "Add a user to a group (admins)", handle: (*Handler).addMember},
		{Method: "DELETE", Path: "/api/v1/groups/{group}/members/{username}", Summary: "Remove a user from a group (admins)", handle: (*Handler).removeMember},
		{Method: "GET", Path: "/auth/oidc/login", Public: true, Summary: "Start single sign-on", handle: (*Handler).ssoLogin},
		{Method: "GET", Path: "/auth/oidc/callback", Public: true, Summary: "Finish single sign-on", handle: (*Handler).ssoCallback},
	}
}

// Register adds every route to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	for _, rt := range Routes() {
		pattern := rt.Method + " " + rt.Path
		var next http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { rt.handle(h, w, r) })
		if !rt.Public {
			next = h.authenticate(rt, next)
		}
		mux.Handle(pattern, h.observe(pattern, next))
	}
}

// Wrap applies the common middleware to a handler registered outside the
// route table (health, metrics).
func (h *Handler) Wrap(route string, next http.Handler) http.Handler { return h.observe(route, next) }

func equalConstantTime(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

func clearCookie(w http.ResponseWriter, name, path string, secure bool) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: path, MaxAge: -1, HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode})
}
