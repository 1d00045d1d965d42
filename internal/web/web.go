// Package web is Airlock's browser interface: server-rendered pages
// (html/template) from embedded assets, no build step, with small
// hand-written JavaScript only for live output. It calls the same
// services as the API, so every page passes the same authorizer. Pages
// work without JavaScript except the live output. Every form carries the
// session's CSRF token; the Content-Security-Policy allows no inline
// script.
package web

import (
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/api"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/authz"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/inventory"
	"github.com/airlockhq/airlock/internal/notify"
	"github.com/airlockhq/airlock/internal/policy"
	"github.com/airlockhq/airlock/internal/review"
	"github.com/airlockhq/airlock/internal/run"
	"github.com/airlockhq/airlock/internal/secretstore"
	"github.com/airlockhq/airlock/internal/sso"
	"github.com/airlockhq/airlock/internal/standing"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/trigger"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Handler serves the pages.
type Handler struct {
	Identity *identity.Service
	Review   *review.Service
	Authz    *authz.Authorizer
	Runs     *run.Service
	// Standing holds schedules and triggers.
	Standing *standing.Service
	// Triggers holds event triggers.
	Triggers *trigger.Service
	Store    store.Store
	Audit    *audit.Log
	Nodes    *inventory.Service
	Secrets  *secretstore.Service
	Notify   *notify.Service
	Log      *slog.Logger
	// Environments offered in forms.
	Environments []string
	Secure       bool
	SSO          bool
	// SessionMaxAge is the cookie lifetime in seconds.
	SessionMaxAge int
	// Now is the clock of the pages' own time decisions (how fresh a
	// verification is, which tokens have expired, evidence dates); nil
	// means time.Now.
	Now func() time.Time

	pages  map[string]*template.Template
	verify verifyJob
}

func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

// SessionCookie is the browser session cookie (shared with the API).
const SessionCookie = "airlock_session"

// page is what every template gets.
type page struct {
	Title      string
	User       *identity.Principal
	CSRF       string
	Flash      string
	Error      string
	InboxCount int
	// Nav shows the links to the pages the user may use.
	Nav    struct{ Audit, Policy, Admin bool }
	Script string
	Data   any
}

func (h *Handler) load() {
	layout := template.Must(template.ParseFS(templateFS, "templates/layout.html"))
	h.pages = map[string]*template.Template{}
	names, _ := fs.Glob(templateFS, "templates/*.html")
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		h.pages[name] = template.Must(template.Must(layout.Clone()).ParseFS(templateFS, n))
	}
}

// Register adds the pages to mux.
func (h *Handler) Register(mux *http.ServeMux, wrap func(route string, next http.Handler) http.Handler) {
	h.load()
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET /static/", wrap("GET /static/", http.StripPrefix("/static/", http.FileServer(http.FS(static)))))
	// Cross-origin form posts are refused before anything else (this
	// covers the login form, which has no session to hold a CSRF token).
	cop := http.NewCrossOriginProtection()
	for _, rt := range h.routes() {
		var next http.Handler = rt.fn
		if rt.auth {
			next = h.session(next)
		}
		mux.Handle(rt.pattern, wrap(rt.pattern, cop.Handler(next)))
	}
}

type route struct {
	pattern string
	auth    bool // behind a session (and, for POST, its CSRF token)
	fn      http.HandlerFunc
}

// routes is every page and form of the UI.
func (h *Handler) routes() []route {
	return slices.Concat(h.coreRoutes(), h.adminRoutes(), h.scheduleRoutes(), h.triggerRoutes())
}

func (h *Handler) coreRoutes() []route {
	return []route{
		{"GET /login", false, h.loginPage},
		{"POST /login", false, h.login},
		{"POST /logout", true, h.logout},
		{"GET /{$}", true, h.catalog},
		{"GET /procedures/{name}", true, h.procedurePage},
		{"POST /procedures/{name}/run", true, h.requestRun},
		{"POST /procedures/{name}/retire", true, h.retireProcedure},
		{"GET /runs", true, h.runsPage},
		{"GET /runs/{id}", true, h.runPage},
		{"GET /runs/{id}/output.txt", true, h.runOutputText},
		{"POST /runs/{id}/request-again", true, h.requestAgain},
		{"POST /runs/{id}/approve", true, h.decideRun("approve")},
		{"POST /runs/{id}/deny", true, h.decideRun("deny")},
		{"POST /runs/{id}/cancel", true, h.cancelRun},
		{"POST /runs/{id}/evidence", true, h.runEvidence},
		{"GET /inbox", true, h.inbox},
		{"GET /versions/{id}", true, h.versionPage},
		{"POST /versions/{id}/review", true, h.reviewVersion},
		{"GET /audit", true, h.auditPage},
		{"POST /audit/verify", true, h.verifyAudit},
		{"POST /audit/evidence", true, h.exportEvidence},
		{"GET /policies", true, h.policiesPage},
		{"POST /policies", true, h.proposePolicy},
		{"POST /policies/{id}/decide", true, h.decidePolicy},
		{"POST /policies/explain", true, h.explainPolicy},
		{"GET /account", true, h.accountPage},
		{"POST /account/password", true, h.changePassword},
		{"POST /account/notifications", true, h.setNotifications},
		{"POST /account/tokens", true, h.createToken},
		{"POST /account/tokens/{id}/revoke", true, h.revokeToken},
		{"POST /account/chat-links/code", true, h.chatLinkCode},
		{"POST /account/chat-links/{provider}/{team}/{id}/unlink", true, h.unlinkChat},
	}
}

// duringPasswordChange are the pages a user who must change their
// password may use before they have.
var duringPasswordChange = map[string]bool{"GET /account": true, "POST /account/password": true, "POST /logout": true}

// session requires a browser session (else: to the login page, with the
// way back), checks the CSRF token on every state-changing request, and
// sends a user who must change their password to do that first.
func (h *Handler) session(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie(SessionCookie)
		var p *identity.Principal
		if err == nil {
			p, err = h.Identity.Authenticate(r.Context(), c.Value)
		}
		if err != nil || p == nil || p.Via != "session" {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI())+"&expired=1", http.StatusSeeOther)
				return
			}
			http.Error(w, "your session has ended; sign in again", http.StatusUnauthorized)
			return
		}
		csrf := identity.CSRFToken(c.Value)
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if r.PostFormValue("csrf_token") != csrf {
				http.Error(w, "missing or invalid CSRF token", http.StatusForbidden)
				return
			}
		}
		ctx := identity.WithPrincipal(r.Context(), p)
		ctx = withCSRF(ctx, csrf)
		if p.MustChangePassword && !duringPasswordChange[r.Method+" "+r.URL.Path] {
			http.Redirect(w, r, "/account?change=1", http.StatusSeeOther)
			return
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, name string, pg page) {
	if p := identity.PrincipalFrom(r.Context()); p != nil {
		pg.User = p
		pg.CSRF = csrfFrom(r.Context())
		pg.Nav.Audit = h.allowedQuietly(r, policy.ActionReadAudit)
		pg.Nav.Policy = pg.Nav.Audit || h.allowedQuietly(r, policy.ActionManagePolicy)
		pg.Nav.Admin = pg.Nav.Policy || h.allowedQuietly(r, policy.ActionManageNodes) || h.allowedQuietly(r, policy.ActionManageSecrets) || h.allowedQuietly(r, policy.ActionManageUsers)
		// The inbox page counts its own items; don't list them twice.
		if name != "inbox" {
			if runs, vs, err := h.inboxItems(r); err == nil {
				pg.InboxCount = len(runs) + len(vs)
			}
		}
	}
	t := h.pages[name]
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := t.ExecuteTemplate(w, "layout", pg); err != nil {
		h.Log.Error("render page", "page", name, "err", err)
	}
}

// fail renders an error: "not found" for what the caller may not see,
// the caller-safe message otherwise.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := airlockStatus(err)
	if code == http.StatusInternalServerError {
		h.Log.Error("page", "path", r.URL.Path, "err", err)
	}
	h.render(w, r, code, "error", page{Title: http.StatusText(code), Error: userMessage(err)})
}

// airlockStatus is the HTTP status for an error's kind, as the API
// answers it.
func airlockStatus(err error) int { return api.Status(airlock.ErrorKind(err)) }

func (h *Handler) loginPage(w http.ResponseWriter, r *http.Request) {
	data := map[string]any{"Next": r.URL.Query().Get("next"), "SSO": h.SSO, "Username": ""}
	pg := page{Title: "Sign in", Data: data}
	if r.URL.Query().Get("expired") != "" {
		pg.Flash = "Please sign in (your session has ended or you are not signed in)."
	}
	h.render(w, r, http.StatusOK, "login", pg)
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	// Anyone may post this form: it is read only up to a few KiB.
	r.Body = http.MaxBytesReader(w, r.Body, api.LoginBodyLimit)
	if err := r.ParseForm(); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			http.Error(w, fmt.Sprintf("the sign-in form is larger than %d bytes", tooLarge.Limit), http.StatusRequestEntityTooLarge)
			return
		}
	}
	username, password := r.PostFormValue("username"), r.PostFormValue("password")
	next := sso.LocalPath(r.PostFormValue("next"))
	ctx := audit.WithMeta(r.Context(), audit.Meta{SourceAddr: clientAddr(r), UserAgent: r.UserAgent()})
	u, err := h.Identity.PasswordLogin(ctx, username, password)
	if err != nil {
		status := http.StatusUnauthorized
		if airlock.ErrorKind(err) == airlock.TooManyRequests {
			status = http.StatusTooManyRequests
			w.Header().Set("Retry-After", identity.RetryAfterHeader(err))
		}
		h.render(w, r, status, "login", page{Title: "Sign in", Error: airlock.ErrorMessage(err),
			Data: map[string]any{"Next": next, "SSO": h.SSO, "Username": username}})
		return
	}
	previous := ""
	if c, err := r.Cookie(SessionCookie); err == nil {
		previous = c.Value
	}
	secret, _, err := h.Identity.NewSession(ctx, u, "password", previous)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: secret, Path: "/", MaxAge: h.SessionMaxAge, HttpOnly: true,
		Secure: h.Secure, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func clientAddr(r *http.Request) string {
	addr := r.RemoteAddr
	if i := strings.LastIndexByte(addr, ':'); i > 0 {
		addr = addr[:i]
	}
	return strings.Trim(addr, "[]")
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	if err := h.Identity.Logout(r.Context(), identity.PrincipalFrom(r.Context())); err != nil {
		h.Log.Warn("logout", "err", err)
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: h.Secure, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func sortedKeys[M ~map[string]V, V any](m M) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

var errNoActive = errors.New("no active version")

// userMessage is an error as a page shows it: the caller-safe message,
// led by the field it is about when there is one.
func userMessage(err error) string {
	if f := airlock.ErrorField(err); f != "" {
		return f + ": " + airlock.ErrorMessage(err)
	}
	return airlock.ErrorMessage(err)
}
