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

	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/authz"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/inventory"
	"github.com/airlockhq/airlock/internal/review"
	"github.com/airlockhq/airlock/internal/run"
	"github.com/airlockhq/airlock/internal/secretstore"
	"github.com/airlockhq/airlock/internal/sso"
	"github.com/airlockhq/airlock/internal/store"
)

// Handler serves the API.
type Handler struct {
	Identity *identity.Service
	Review   *review.Service
	Authz    *authz.Authorizer
	Audit    *audit.Log
	Runs     *run.Service
	Nodes    *inventory.Service
	Secrets  *secretstore.Service
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
	// Action names the policy action that guards the route: a Cedar
	// action, or "self" for routes that act only on the caller's own
	// session, password and tokens. Every non-public route has one; the
	// route-table tests use it.
	Action string
	// List routes answer with only the items the caller may see.
	List bool
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
		{Method: "POST", Path: "/api/v1/auth/logout", Action: "self", Summary: "End the current session or revoke the current token", DuringPasswordChange: true, handle: (*Handler).logout},
		{Method: "POST", Path: "/api/v1/auth/password", Action: "self", Summary: "Change one's own password", DuringPasswordChange: true, handle: (*Handler).changePassword},
		{Method: "GET", Path: "/api/v1/me", Action: "self", Summary: "Who am I", DuringPasswordChange: true, handle: (*Handler).me},
		{Method: "GET", Path: "/api/v1/tokens", Action: "self", Summary: "List one's own API tokens", handle: (*Handler).listTokens},
		{Method: "POST", Path: "/api/v1/tokens", Action: "self", Summary: "Create an API token (the secret is shown once)", handle: (*Handler).createToken},
		{Method: "DELETE", Path: "/api/v1/tokens/{id}", Action: "self", Summary: "Revoke an API token", handle: (*Handler).revokeToken},
		{Method: "GET", Path: "/api/v1/users", Action: "manageUsers", Summary: "List users (admins)", handle: (*Handler).listUsers},
		{Method: "POST", Path: "/api/v1/users", Action: "manageUsers", Summary: "Create a local user (admins)", handle: (*Handler).createUser},
		{Method: "POST", Path: "/api/v1/users/{username}/disable", Action: "manageUsers", Summary: "Disable a user: ends their sessions and revokes their tokens (admins)", handle: (*Handler).disableUser},
		{Method: "POST", Path: "/api/v1/users/{username}/enable", Action: "manageUsers", Summary: "Enable a disabled user again (admins)", handle: (*Handler).enableUser},
		{Method: "POST", Path: "/api/v1/groups/{group}/members", Action: "manageUsers", Summary: "Add a user to a group (admins)", handle: (*Handler).addMember},
		{Method: "DELETE", Path: "/api/v1/groups/{group}/members/{username}", Action: "manageUsers", Summary: "Remove a user from a group (admins)", handle: (*Handler).removeMember},
		{Method: "GET", Path: "/api/v1/procedures", Action: "view", List: true, Summary: "List procedures with their active version and pending proposals", handle: (*Handler).listProcedures},
		{Method: "GET", Path: "/api/v1/procedures/{name}", Action: "view", Summary: "A procedure with its active definition", handle: (*Handler).getProcedure},
		{Method: "GET", Path: "/api/v1/procedures/{name}/versions", Action: "view", Summary: "A procedure's version history with reviews", handle: (*Handler).procedureHistory},
		{Method: "GET", Path: "/api/v1/procedures/{name}/diff", Action: "view", Summary: "Unified diff between two versions (?from=N&to=M)", handle: (*Handler).procedureDiff},
		{Method: "POST", Path: "/api/v1/procedures/{name}/retire", Action: "retire", Summary: "Retire a procedure: no new runs", handle: (*Handler).retireProcedure},
		{Method: "GET", Path: "/api/v1/versions", Action: "view", List: true, Summary: "List versions (?status=, ?reviewable=true for one's review inbox)", handle: (*Handler).listVersions},
		{Method: "POST", Path: "/api/v1/versions", Action: "propose", Summary: "Propose a procedure definition", handle: (*Handler).proposeVersion},
		{Method: "GET", Path: "/api/v1/versions/{id}", Action: "view", Summary: "A version (ID or NAME@N) with definition, reviews and quorum", handle: (*Handler).getVersion},
		{Method: "POST", Path: "/api/v1/versions/{id}/withdraw", Action: "retire", Summary: "Withdraw a proposed version", handle: (*Handler).withdrawVersion},
		{Method: "GET", Path: "/api/v1/versions/{id}/reviews", Action: "view", Summary: "A version's reviews", handle: (*Handler).listReviews},
		{Method: "POST", Path: "/api/v1/versions/{id}/reviews", Action: "review", Summary: "Approve or reject a version digest", handle: (*Handler).reviewVersion},
		{Method: "GET", Path: "/api/v1/policies", Action: "managePolicy", Summary: "List policy versions (admins, auditors)", handle: (*Handler).listPolicies},
		{Method: "POST", Path: "/api/v1/policies", Action: "managePolicy", Summary: "Propose a policy set; in force after a second admin approves", handle: (*Handler).proposePolicy},
		{Method: "GET", Path: "/api/v1/policies/{id}", Action: "managePolicy", Summary: "A policy version with its text (ID or active)", handle: (*Handler).getPolicy},
		{Method: "GET", Path: "/api/v1/policies/{id}/diff", Action: "managePolicy", Summary: "Unified diff of a policy version against ?against= (default active)", handle: (*Handler).diffPolicy},
		{Method: "POST", Path: "/api/v1/policies/{id}/approve", Action: "managePolicy", Summary: "Approve a proposed policy (a second admin)", handle: decidePolicy("approve")},
		{Method: "POST", Path: "/api/v1/policies/{id}/reject", Action: "managePolicy", Summary: "Reject a proposed policy", handle: decidePolicy("reject")},
		{Method: "POST", Path: "/api/v1/policies/{id}/withdraw", Action: "managePolicy", Summary: "Withdraw one's own proposed policy", handle: (*Handler).withdrawPolicy},
		{Method: "POST", Path: "/api/v1/policy/explain", Action: "managePolicy", Summary: "Explain a decision; what-if with policy_version or policy_text", handle: (*Handler).explain},
		{Method: "GET", Path: "/api/v1/policy/access-review", Action: "managePolicy", Summary: "Every user × procedure × environment → run/request/none (?format=csv)", handle: (*Handler).accessReview},
		{Method: "GET", Path: "/api/v1/policy/schema", Action: "managePolicy", Summary: "The Cedar schema policies are validated against", handle: (*Handler).policySchema},
		{Method: "POST", Path: "/api/v1/procedures/{name}/plan", Action: "view", Summary: "Dry resolution of a run: targets, decision, approvals", handle: (*Handler).planRun},
		{Method: "POST", Path: "/api/v1/runs", Action: "run", Summary: "Request a run (honours Idempotency-Key)", handle: (*Handler).createRun},
		{Method: "GET", Path: "/api/v1/runs", Action: "viewRun", List: true, Summary: "List runs one may view (?status=&procedure=&mine=true)", handle: (*Handler).listRuns},
		{Method: "GET", Path: "/api/v1/runs/{id}", Action: "viewRun", Summary: "A run with approvals, nodes and steps", handle: (*Handler).getRun},
		{Method: "GET", Path: "/api/v1/runs/{id}/output", Action: "viewRun", Summary: "Output after ?after=; SSE with Accept: text/event-stream", handle: (*Handler).runOutput},
		{Method: "GET", Path: "/api/v1/runs/{id}/events", Action: "viewRun", Summary: "The run's audit events", handle: (*Handler).runEvents},
		{Method: "POST", Path: "/api/v1/runs/{id}/approve", Action: "approveRun", Summary: "Approve a pending run (not one's own)", handle: decideRun("approve")},
		{Method: "POST", Path: "/api/v1/runs/{id}/deny", Action: "approveRun", Summary: "Deny a pending run", handle: decideRun("deny")},
		{Method: "POST", Path: "/api/v1/runs/{id}/cancel", Action: "cancelRun", Summary: "Cancel a run", handle: (*Handler).cancelRun},
		{Method: "GET", Path: "/api/v1/nodes", Action: "manageNodes", Summary: "List nodes", handle: (*Handler).listNodes},
		{Method: "PUT", Path: "/api/v1/nodes/{name}", Action: "manageNodes", Summary: "Create or replace a node", handle: (*Handler).putNode},
		{Method: "DELETE", Path: "/api/v1/nodes/{name}", Action: "manageNodes", Summary: "Remove a node", handle: (*Handler).deleteNode},
		{Method: "GET", Path: "/api/v1/secrets", Action: "manageSecrets", Summary: "List secret names (never values)", handle: (*Handler).listSecrets},
		{Method: "PUT", Path: "/api/v1/secrets/{name...}", Action: "manageSecrets", Summary: "Set a secret (write-only)", handle: (*Handler).putSecret},
		{Method: "DELETE", Path: "/api/v1/secrets/{name...}", Action: "manageSecrets", Summary: "Remove a secret", handle: (*Handler).deleteSecret},
		{Method: "GET", Path: "/api/v1/audit/checkpoint", Action: "readAudit", Summary: "The latest signed checkpoint", handle: (*Handler).checkpoint},
		{Method: "POST", Path: "/api/v1/audit/checkpoint", Action: "readAudit", Summary: "Sign a checkpoint now", handle: (*Handler).checkpoint},
		{Method: "GET", Path: "/api/v1/audit/key", Action: "readAudit", Summary: "The checkpoint verifier key", handle: (*Handler).auditKey},
		{Method: "GET", Path: "/api/v1/audit/events", Action: "readAudit", Summary: "Audit events by range and filter (?after=&limit=&type=&actor=&subject=)", handle: (*Handler).auditEvents},
		{Method: "GET", Path: "/api/v1/audit/proof/inclusion", Action: "readAudit", Summary: "Inclusion proof of the event at ?index= in the tree of ?size=", handle: (*Handler).inclusionProof},
		{Method: "GET", Path: "/api/v1/audit/proof/consistency", Action: "readAudit", Summary: "Consistency proof between tree sizes ?old= and ?new=", handle: (*Handler).consistencyProof},
		{Method: "POST", Path: "/api/v1/evidence", Action: "exportEvidence", Summary: "Export an evidence bundle (zip) for a period", handle: (*Handler).exportEvidence},
		{Method: "GET", Path: "/auth/oidc/login", Public: true, Summary: "Start single sign-on", handle: (*Handler).ssoLogin},
		{Method: "GET", Path: "/auth/oidc/callback", Public: true, Summary: "Finish single sign-on", handle: (*Handler).ssoCallback},
	}
}

// Register adds every route to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	for _, rt := range Routes() {
		if !rt.Public && rt.Action == "" {
			panic("api: route " + rt.Method + " " + rt.Path + " names no policy action")
		}
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
