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
	"github.com/airlockhq/airlock/internal/review"
	"github.com/airlockhq/airlock/internal/sso"
	"github.com/airlockhq/airlock/internal/store"
)

// Handler serves the API.
type Handler struct {
	Identity *identity.Service
	Review   *review.Service
	Store    store.Store
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
		{Method: "GET", Path: "/api/v1/procedures", Summary: "List procedures with their active version and pending proposals", handle: (*Handler).listProcedures},
		{Method: "GET", Path: "/api/v1/procedures/{name}", Summary: "A procedure with its active definition", handle: (*Handler).getProcedure},
		{Method: "GET", Path: "/api/v1/procedures/{name}/versions", Summary: "A procedure's version history with reviews", handle: (*Handler).procedureHistory},
		{Method: "GET", Path: "/api/v1/procedures/{name}/diff", Summary: "Unified diff between two versions (?from=N&to=M)", handle: (*Handler).procedureDiff},
		{Method: "POST", Path: "/api/v1/procedures/{name}/retire", Summary: "Retire a procedure: no new runs", handle: (*Handler).retireProcedure},
		{Method: "GET", Path: "/api/v1/versions", Summary: "List versions (?status=, ?reviewable=true for one's review inbox)", handle: (*Handler).listVersions},
		{Method: "POST", Path: "/api/v1/versions", Summary: "Propose a procedure definition", handle: (*Handler).proposeVersion},
		{Method: "GET", Path: "/api/v1/versions/{id}", Summary: "A version (ID or NAME@N) with definition, reviews and quorum", handle: (*Handler).getVersion},
		{Method: "POST", Path: "/api/v1/versions/{id}/withdraw", Summary: "Withdraw a proposed version", handle: (*Handler).withdrawVersion},
		{Method: "GET", Path: "/api/v1/versions/{id}/reviews", Summary: "A version's reviews", handle: (*Handler).listReviews},
		{Method: "POST", Path: "/api/v1/versions/{id}/reviews", Summary: "Approve or reject a version digest", handle: (*Handler).reviewVersion},
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
