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
	"slices"
	"time"

	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/authz"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/inventory"
	"github.com/airlockhq/airlock/internal/notify"
	"github.com/airlockhq/airlock/internal/review"
	"github.com/airlockhq/airlock/internal/run"
	"github.com/airlockhq/airlock/internal/secretstore"
	"github.com/airlockhq/airlock/internal/sso"
	"github.com/airlockhq/airlock/internal/standing"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/trigger"
)

// Handler serves the API.
type Handler struct {
	Identity *identity.Service
	Review   *review.Service
	Authz    *authz.Authorizer
	Audit    *audit.Log
	Runs     *run.Service
	// Standing holds schedules and triggers.
	Standing *standing.Service
	// Triggers takes event triggers' webhooks.
	Triggers *trigger.Service
	Nodes    *inventory.Service
	Secrets  *secretstore.Service
	Notify   *notify.Service
	Store    store.Store
	SSO      *sso.Provider // nil when SSO is off
	Log      *slog.Logger
	Metrics  *Metrics
	// Secure marks cookies Secure; set when serving TLS.
	Secure bool
	// SessionTTL is the cookie lifetime (the session's absolute expiry).
	SessionMaxAge int
	// Now is the clock that dates evidence bundles; nil means time.Now.
	Now func() time.Time
	// SlackCommands and SlackInteractions serve Slack's callbacks (the
	// /airlock command, the Approve and Deny buttons); nil when Slack is
	// not configured.
	SlackCommands, SlackInteractions http.Handler
}

func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
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
	// For the OpenAPI document: the JSON request body (In) and response
	// (Out) as zero values of their types, the success status (Code;
	// default 200 with Out, 204 without), query parameters, and another
	// content type the route can answer with (Produces).
	In, Out  any
	Code     int
	Query    []string
	Produces string
	handle   func(h *Handler, w http.ResponseWriter, r *http.Request)
}

// Routes returns the route table.
func Routes() []Route {
	return slices.Concat(coreRoutes(), scheduleRoutes(), triggerRoutes())
}

func coreRoutes() []Route {
	return []Route{
		{Method: "POST", Path: "/api/v1/auth/login", Public: true, Summary: "Log in with a password; starts a browser session", In: LoginRequest{}, Out: LoginResponse{}, handle: (*Handler).login},
		{Method: "POST", Path: "/api/v1/auth/token", Public: true, Summary: "Exchange a password for an API token (CLI login)", In: LoginRequest{}, Out: NewTokenResponse{}, Code: 201, handle: (*Handler).loginToken},
		{Method: "POST", Path: "/api/v1/auth/logout", Action: "self", Summary: "End the current session or revoke the current token", DuringPasswordChange: true, Code: 204, handle: (*Handler).logout},
		{Method: "GET", Path: "/api/v1/me/notifications", Action: "self", Summary: "One's notification choices: every kind on every channel that reaches one", Out: SubscriptionsJSON{}, handle: (*Handler).mySubscriptions},
		{Method: "PUT", Path: "/api/v1/me/notifications", Action: "self", Summary: "Change some of one's notification choices", In: SubscriptionsRequest{}, Out: SubscriptionsJSON{}, handle: (*Handler).setMySubscriptions},
		{Method: "GET", Path: "/api/v1/notify/deliveries", Action: "managePolicy", Summary: "Notification deliveries, newest first (?status=pending|delivered|dead&limit=) (admins)", Out: ListResponse[DeliveryJSON]{}, Query: []string{"status", "limit"}, handle: (*Handler).listDeliveries},
		{Method: "POST", Path: "/api/v1/notify/deliveries/{id}/retry", Action: "managePolicy", Summary: "Send a dead letter again (admins; audited)", Out: DeliveryJSON{}, handle: (*Handler).retryDelivery},
		{Method: "POST", Path: "/api/v1/notify/test", Action: "managePolicy", Summary: "Send a test message through a channel (admins; audited)", In: NotifyTestRequest{}, Out: NotifyTestResponse{}, Code: 202, handle: (*Handler).notifyTest},
		{Method: "POST", Path: "/api/v1/auth/password", Action: "self", Summary: "Change one's own password", DuringPasswordChange: true, In: PasswordRequest{}, Code: 204, handle: (*Handler).changePassword},
		{Method: "GET", Path: "/api/v1/me", Action: "self", Summary: "Who am I", DuringPasswordChange: true, Out: MeResponse{}, handle: (*Handler).me},
		{Method: "GET", Path: "/api/v1/me/chat-links", Action: "self", Summary: "List the chat accounts (Slack) linked to one's account", Out: ListResponse[ChatLinkJSON]{}, handle: (*Handler).listChatLinks},
		{Method: "POST", Path: "/api/v1/me/chat-links/code", Action: "self", Summary: "Issue a one-time code (10 minutes) that links the chat account typing it to one's account", Out: ChatLinkCodeResponse{}, Code: 201, handle: (*Handler).chatLinkCode},
		{Method: "DELETE", Path: "/api/v1/me/chat-links/{provider}/{team}/{id}", Action: "self", Summary: "Unlink one of one's chat accounts", Code: 204, handle: (*Handler).unlinkChat},
		{Method: "POST", Path: "/api/v1/chat/slack/commands", Public: true, Summary: "Slack's /airlock slash command (form-encoded, authenticated by Slack's request signature)", Out: map[string]any{}, handle: chatEndpoint(func(h *Handler) http.Handler { return h.SlackCommands })},
		{Method: "POST", Path: "/api/v1/chat/slack/interactions", Public: true, Summary: "Slack's interactions: the Approve and Deny buttons (form-encoded, authenticated by Slack's request signature)", Code: 200, handle: chatEndpoint(func(h *Handler) http.Handler { return h.SlackInteractions })},
		{Method: "GET", Path: "/api/v1/tokens", Action: "self", Summary: "List one's own API tokens", Out: ListResponse[TokenJSON]{}, handle: (*Handler).listTokens},
		{Method: "POST", Path: "/api/v1/tokens", Action: "self", Summary: "Create an API token (the secret is shown once)", In: CreateTokenRequest{}, Out: NewTokenResponse{}, Code: 201, handle: (*Handler).createToken},
		{Method: "DELETE", Path: "/api/v1/tokens/{id}", Action: "self", Summary: "Revoke an API token", Code: 204, handle: (*Handler).revokeToken},
		{Method: "GET", Path: "/api/v1/users", Action: "manageUsers", Summary: "List users (admins)", Out: ListResponse[UserJSON]{}, handle: (*Handler).listUsers},
		{Method: "POST", Path: "/api/v1/users", Action: "manageUsers", Summary: "Propose a local user or (kind service, owner_team) a service account, created when another admin approves (admins)", In: CreateUserRequest{}, Out: UserChangeResponse{}, Code: 202, handle: (*Handler).createUser},
		{Method: "GET", Path: "/api/v1/users/{username}/tokens", Action: "manageUsers", Summary: "List a service account's API tokens (its owner team, admins)", Out: ListResponse[TokenJSON]{}, handle: (*Handler).listServiceTokens},
		{Method: "POST", Path: "/api/v1/users/{username}/tokens", Action: "manageUsers", Summary: "Create an API token for a service account; the secret is shown once (its owner team, admins; the creator counts as the account for separation of duties)", In: CreateTokenRequest{}, Out: NewTokenResponse{}, Code: 201, handle: (*Handler).createServiceToken},
		{Method: "DELETE", Path: "/api/v1/users/{username}/tokens/{id}", Action: "manageUsers", Summary: "Revoke a service account's API token (its owner team, admins)", Code: 204, handle: (*Handler).revokeServiceToken},
		{Method: "POST", Path: "/api/v1/users/{username}/disable", Action: "manageUsers", Summary: "Disable a user at once: ends their sessions and revokes their tokens (admins)", Code: 204, handle: (*Handler).disableUser},
		{Method: "POST", Path: "/api/v1/users/{username}/enable", Action: "manageUsers", Summary: "Propose enabling a disabled user again, in force when another admin approves (admins)", Out: UserChangeResponse{}, Code: 202, handle: (*Handler).enableUser},
		{Method: "POST", Path: "/api/v1/users/{username}/reset-password", Action: "manageUsers", Summary: "Propose resetting a local user's password, in force when another admin approves; the approver receives the one-time password (admins)", Out: UserChangeResponse{}, Code: 202, handle: (*Handler).resetPassword},
		{Method: "POST", Path: "/api/v1/groups/{group}/members", Action: "manageUsers", Summary: "Propose adding a user to a group, in force when another admin approves (admins)", In: MemberRequest{}, Out: UserChangeResponse{}, Code: 202, handle: (*Handler).addMember},
		{Method: "GET", Path: "/api/v1/user-changes", Action: "manageUsers", Summary: "List proposed user changes (?status=pending) (admins)", Out: ListResponse[*UserChangeJSON]{}, Query: []string{"status"}, handle: (*Handler).listUserChanges},
		{Method: "GET", Path: "/api/v1/user-changes/{id}", Action: "manageUsers", Summary: "A proposed user change (admins)", Out: UserChangeJSON{}, handle: (*Handler).getUserChange},
		{Method: "POST", Path: "/api/v1/user-changes/{id}/approve", Action: "manageUsers", Summary: "Approve a user change (a second admin, not linked to its author); returns a new user's or a reset password's one-time password", In: UserChangeDecisionRequest{}, Out: UserChangeResponse{}, handle: decideUserChange("approve")},
		{Method: "POST", Path: "/api/v1/user-changes/{id}/reject", Action: "manageUsers", Summary: "Reject a user change, with a comment (admins)", In: UserChangeDecisionRequest{}, Out: UserChangeResponse{}, handle: decideUserChange("reject")},
		{Method: "POST", Path: "/api/v1/user-changes/{id}/withdraw", Action: "manageUsers", Summary: "Withdraw one's own proposed user change", Out: UserChangeJSON{}, handle: (*Handler).withdrawUserChange},
		{Method: "DELETE", Path: "/api/v1/groups/{group}/members/{username}", Action: "manageUsers", Summary: "Remove a user from a group (admins)", Code: 204, handle: (*Handler).removeMember},
		{Method: "GET", Path: "/api/v1/procedures", Action: "view", List: true, Summary: "List procedures with their active version and pending proposals", Out: ListResponse[*ProcedureJSON]{}, handle: (*Handler).listProcedures},
		{Method: "GET", Path: "/api/v1/procedures/{name}", Action: "view", Summary: "A procedure with its active definition", Out: ProcedureJSON{}, handle: (*Handler).getProcedure},
		{Method: "GET", Path: "/api/v1/procedures/{name}/versions", Action: "view", Summary: "A procedure's version history with reviews", Out: ListResponse[*VersionJSON]{}, handle: (*Handler).procedureHistory},
		{Method: "GET", Path: "/api/v1/procedures/{name}/diff", Action: "view", Summary: "Unified diff between two versions (?from=N&to=M)", Out: DiffResponse{}, Query: []string{"from", "to"}, handle: (*Handler).procedureDiff},
		{Method: "POST", Path: "/api/v1/procedures/{name}/retire", Action: "retire", Summary: "Retire a procedure: no new runs", In: RetireRequest{}, Out: ProcedureJSON{}, handle: (*Handler).retireProcedure},
		{Method: "GET", Path: "/api/v1/versions", Action: "view", List: true, Summary: "List versions (?status=, ?reviewable=true for one's review inbox)", Out: ListResponse[*VersionJSON]{}, Query: []string{"status", "reviewable"}, handle: (*Handler).listVersions},
		{Method: "POST", Path: "/api/v1/versions", Action: "propose", Summary: "Propose a procedure definition", In: ProposeRequest{}, Out: ProposeResponse{}, Code: 201, handle: (*Handler).proposeVersion},
		{Method: "GET", Path: "/api/v1/versions/{id}", Action: "view", Summary: "A version (ID or NAME@N) with definition, reviews and quorum", Out: VersionJSON{}, handle: (*Handler).getVersion},
		{Method: "POST", Path: "/api/v1/versions/{id}/withdraw", Action: "retire", Summary: "Withdraw a proposed version", Out: VersionJSON{}, handle: (*Handler).withdrawVersion},
		{Method: "GET", Path: "/api/v1/versions/{id}/reviews", Action: "view", Summary: "A version's reviews", Out: ListResponse[ReviewJSON]{}, handle: (*Handler).listReviews},
		{Method: "POST", Path: "/api/v1/versions/{id}/reviews", Action: "review", Summary: "Approve or reject a version digest", In: ReviewRequest{}, Out: ReviewResponse{}, Code: 201, handle: (*Handler).reviewVersion},
		{Method: "GET", Path: "/api/v1/policies", Action: "managePolicy", Summary: "List policy versions (admins, auditors)", Out: ListResponse[*PolicyJSON]{}, Query: []string{"status"}, handle: (*Handler).listPolicies},
		{Method: "POST", Path: "/api/v1/policies", Action: "managePolicy", Summary: "Propose a policy set; in force after a second admin approves", In: ProposePolicyRequest{}, Out: PolicyJSON{}, Code: 201, handle: (*Handler).proposePolicy},
		{Method: "GET", Path: "/api/v1/policies/{id}", Action: "managePolicy", Summary: "A policy version with its text (ID or active)", Out: PolicyJSON{}, handle: (*Handler).getPolicy},
		{Method: "GET", Path: "/api/v1/policies/{id}/diff", Action: "managePolicy", Summary: "Unified diff of a policy version against ?against= (default active)", Out: PolicyDiffResponse{}, Query: []string{"against"}, handle: (*Handler).diffPolicy},
		{Method: "POST", Path: "/api/v1/policies/{id}/approve", Action: "managePolicy", Summary: "Approve a proposed policy (a second admin)", In: PolicyDecisionRequest{}, Out: PolicyJSON{}, handle: decidePolicy("approve")},
		{Method: "POST", Path: "/api/v1/policies/{id}/reject", Action: "managePolicy", Summary: "Reject a proposed policy", In: PolicyDecisionRequest{}, Out: PolicyJSON{}, handle: decidePolicy("reject")},
		{Method: "POST", Path: "/api/v1/policies/{id}/withdraw", Action: "managePolicy", Summary: "Withdraw one's own proposed policy", Out: PolicyJSON{}, handle: (*Handler).withdrawPolicy},
		{Method: "POST", Path: "/api/v1/policy/explain", Action: "managePolicy", Summary: "Explain a decision; what-if with policy_version or policy_text", In: authz.Question{}, Out: authz.Answer{}, handle: (*Handler).explain},
		{Method: "GET", Path: "/api/v1/policy/access-review", Action: "managePolicy", Summary: "Every user × procedure × environment → run/request/none (?format=csv)", Out: authz.AccessReport{}, Query: []string{"policy_version", "format"}, Produces: "text/csv", handle: (*Handler).accessReview},
		{Method: "GET", Path: "/api/v1/policy/schema", Action: "managePolicy", Summary: "The Cedar schema policies are validated against", Out: SchemaResponse{}, handle: (*Handler).policySchema},
		{Method: "POST", Path: "/api/v1/procedures/{name}/plan", Action: "view", Summary: "Dry resolution of a run: targets, decision, approvals", In: RunRequest{}, Out: PlanResponse{}, handle: (*Handler).planRun},
		{Method: "POST", Path: "/api/v1/runs", Action: "run", Summary: "Request a run (honours Idempotency-Key)", In: RunRequest{}, Out: RunJSON{}, Code: 201, handle: (*Handler).createRun},
		{Method: "GET", Path: "/api/v1/runs", Action: "viewRun", List: true, Summary: "List runs one may view (?status=&procedure=&mine=true)", Out: ListResponse[*RunJSON]{}, Query: []string{"status", "procedure", "mine", "limit"}, handle: (*Handler).listRuns},
		{Method: "GET", Path: "/api/v1/runs/{id}", Action: "viewRun", Summary: "A run with approvals, nodes and steps", Out: RunJSON{}, handle: (*Handler).getRun},
		{Method: "GET", Path: "/api/v1/runs/{id}/output", Action: "viewRun", Summary: "Output after ?after=; SSE with Accept: text/event-stream", Out: OutputResponse{}, Query: []string{"after", "node"}, Produces: "text/event-stream", handle: (*Handler).runOutput},
		{Method: "GET", Path: "/api/v1/runs/{id}/events", Action: "viewRun", Summary: "The run's audit events", Out: ListResponse[AuditEventJSON]{}, handle: (*Handler).runEvents},
		{Method: "POST", Path: "/api/v1/runs/{id}/approve", Action: "approveRun", Summary: "Approve a pending run (not one's own)", In: DecisionRequest{}, Out: RunJSON{}, handle: decideRun("approve")},
		{Method: "POST", Path: "/api/v1/runs/{id}/deny", Action: "approveRun", Summary: "Deny a pending run", In: DecisionRequest{}, Out: RunJSON{}, handle: decideRun("deny")},
		{Method: "POST", Path: "/api/v1/runs/{id}/cancel", Action: "cancelRun", Summary: "Cancel a run", Out: RunJSON{}, handle: (*Handler).cancelRun},
		{Method: "GET", Path: "/api/v1/nodes", Action: "manageNodes", Summary: "List nodes", Out: ListResponse[inventory.Node]{}, handle: (*Handler).listNodes},
		{Method: "PUT", Path: "/api/v1/nodes/{name}", Action: "manageNodes", Summary: "Create or replace a node", In: inventory.Node{}, Out: inventory.Node{}, handle: (*Handler).putNode},
		{Method: "DELETE", Path: "/api/v1/nodes/{name}", Action: "manageNodes", Summary: "Remove a node", Code: 204, handle: (*Handler).deleteNode},
		{Method: "GET", Path: "/api/v1/secrets", Action: "manageSecrets", Summary: "List secret names (never values)", Out: ListResponse[*secretstore.Info]{}, handle: (*Handler).listSecrets},
		{Method: "PUT", Path: "/api/v1/secrets/{name...}", Action: "manageSecrets", Summary: "Set a secret (write-only), and with scope, which procedures may use it", In: SecretRequest{}, Out: secretstore.Info{}, handle: (*Handler).putSecret},
		{Method: "PATCH", Path: "/api/v1/secrets/{name...}", Action: "manageSecrets", Summary: "Set which teams' and procedures' steps may use a secret", In: SecretScopeRequest{}, Out: secretstore.Info{}, handle: (*Handler).scopeSecret},
		{Method: "DELETE", Path: "/api/v1/secrets/{name...}", Action: "manageSecrets", Summary: "Remove a secret", Code: 204, handle: (*Handler).deleteSecret},
		{Method: "GET", Path: "/api/v1/audit/checkpoint", Action: "readAudit", Summary: "The latest signed checkpoint", Out: CheckpointJSON{}, handle: (*Handler).checkpoint},
		{Method: "POST", Path: "/api/v1/audit/checkpoint", Action: "readAudit", Summary: "Sign a checkpoint now", Out: CheckpointJSON{}, handle: (*Handler).checkpoint},
		{Method: "GET", Path: "/api/v1/audit/key", Action: "readAudit", Summary: "The checkpoint verifier key", Out: map[string]string{}, handle: (*Handler).auditKey},
		{Method: "GET", Path: "/api/v1/audit/events", Action: "readAudit", Summary: "Audit events by range and filter (?after=&limit=&type=&actor=&subject=)", Out: ListResponse[AuditEventJSON]{}, Query: []string{"after", "limit", "type", "actor", "subject"}, handle: (*Handler).auditEvents},
		{Method: "GET", Path: "/api/v1/audit/proof/inclusion", Action: "readAudit", Summary: "Inclusion proof of the event at ?index= in the tree of ?size=", Out: InclusionProof{}, Query: []string{"index", "size"}, handle: (*Handler).inclusionProof},
		{Method: "GET", Path: "/api/v1/audit/proof/consistency", Action: "readAudit", Summary: "Consistency proof between tree sizes ?old= and ?new=", Out: ConsistencyProof{}, Query: []string{"old", "new"}, handle: (*Handler).consistencyProof},
		{Method: "POST", Path: "/api/v1/evidence", Action: "exportEvidence", Summary: "Export an evidence bundle (zip) for a period, or for one run", In: EvidenceRequest{}, Produces: "application/zip", handle: (*Handler).exportEvidence},
		{Method: "GET", Path: "/api/v1/openapi.json", Public: true, Summary: "This API's OpenAPI 3.1 document, made from the route table", Out: map[string]any{}, handle: (*Handler).openapi},
		{Method: "GET", Path: "/auth/oidc/login", Public: true, Summary: "Start single sign-on", Code: 302, Query: []string{"next"}, handle: (*Handler).ssoLogin},
		{Method: "GET", Path: "/auth/oidc/callback", Public: true, Summary: "Finish single sign-on", Code: 302, Query: []string{"state", "code"}, handle: (*Handler).ssoCallback},
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
