package web_test

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/testenv"
)

var (
	policyForm   = regexp.MustCompile(`action="/policies/([^"]+)/decide"><input type="hidden" name="csrf_token" value="[^"]+"><input type="hidden" name="digest" value="([^"]+)"`)
	draftText    = regexp.MustCompile(`(?s)<textarea id="text" name="text"[^>]*>(.*?)</textarea>`)
	newTokenCode = regexp.MustCompile(`<code id="new-token" class="wrap">([^<]+)</code>`)
)

func (s *site) pendingPolicies(t *testing.T) []*store.PolicyVersion {
	t.Helper()
	vs, err := s.srv.Store.PolicyVersionList(t.Context(), store.PolicyProposed)
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

func TestPolicyChangeNeedsASecondAdminInTheUI(t *testing.T) {
	s := startServer(t)
	bob, carol := s.visitor(t, "bob"), s.visitor(t, "carol")
	_, body := bob.get("/policies")
	m := draftText.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no policy editor for bob: %.300s", body)
	}
	current := unescape(m[1])

	// A broken policy is refused with its position and nothing is stored.
	code, body := bob.post("/policies", url.Values{"csrf_token": {bob.csrf()}, "description": {"typo"}, "text": {current + "\npermit (principal, action == Action::\"nope\", resource);\n"}})
	if code != http.StatusBadRequest || !regexp.MustCompile(`id="draft-errors"[^>]*>.*\n<ul><li class="problem"><p><strong>Line \d+, column \d+</strong>`).MatchString(body) {
		t.Fatalf("bad policy: %d %.400s", code, body)
	}
	if n := len(s.pendingPolicies(t)); n != 0 {
		t.Fatalf("%d proposals stored after a refused one", n)
	}

	change := current + "\n// erin may also rotate logs (ticket OPS-7)\n"
	if code, body := bob.post("/policies", url.Values{"csrf_token": {bob.csrf()}, "description": {"OPS-7"}, "text": {change}}); code != http.StatusOK {
		t.Fatalf("propose: %d %.300s", code, body)
	}
	pending := s.pendingPolicies(t)
	if len(pending) != 1 {
		t.Fatalf("%d proposals", len(pending))
	}
	id := pending[0].ID

	// bob cannot approve his own change: no form, and the post is refused.
	_, body = bob.get("/policies")
	if policyForm.MatchString(body) {
		t.Fatal("bob is offered to decide his own proposal")
	}
	bob.post("/policies/"+id+"/decide", url.Values{"csrf_token": {bob.csrf()}, "decision": {"approve"}, "digest": {pending[0].Digest}})
	if s.pendingPolicies(t)[0].Status != store.PolicyProposed {
		t.Fatal("bob approved his own policy change")
	}

	// carol sees it in her inbox, and a stale digest is refused.
	if _, body := carol.get("/inbox"); !strings.Contains(body, "/policies#policy-"+id) {
		t.Fatal("the proposal is not in carol's inbox")
	}
	carol.post("/policies/"+id+"/decide", url.Values{"csrf_token": {carol.csrf()}, "decision": {"approve"}, "digest": {"sha256:0000"}})
	if len(s.pendingPolicies(t)) != 1 {
		t.Fatal("approved with a digest that does not match")
	}
	_, body = carol.get("/policies")
	fm := policyForm.FindStringSubmatch(body)
	if fm == nil || fm[1] != id || !strings.Contains(unescape(body), "+// erin may also rotate logs") {
		i := strings.Index(body, "<main")
		t.Fatalf("carol's policy page: %.1500s", body[max(i, 0):])
	}
	if code, body := carol.post("/policies/"+id+"/decide", url.Values{"csrf_token": {carol.csrf()}, "decision": {"approve"}, "digest": {fm[2]}, "comment": {"ok"}}); code != http.StatusOK {
		t.Fatalf("approve: %d %.300s", code, body)
	}
	if v, err := s.srv.Store.PolicyVersionGet(t.Context(), id); err != nil || v.Status != store.PolicyActive {
		t.Fatalf("policy after carol's approval: %+v %v", v, err)
	}
	// Pages for people who may not manage policy show no editor.
	if _, body := s.visitor(t, "alice").get("/policies"); strings.Contains(body, `id="text"`) {
		t.Fatal("alice is offered the policy editor")
	}
}

func unescape(s string) string {
	return strings.NewReplacer("&lt;", "<", "&gt;", ">", "&#34;", `"`, "&#39;", "'", "&#43;", "+", "&amp;", "&").Replace(s)
}

func TestTokensFromTheAccountPage(t *testing.T) {
	s := startServer(t)
	alice := s.visitor(t, "alice")
	code, body := alice.post("/account/tokens", url.Values{"csrf_token": {alice.csrf()}, "name": {"laptop"}, "ttl": {"720h"}})
	m := newTokenCode.FindStringSubmatch(body)
	if code != http.StatusOK || m == nil {
		t.Fatalf("create token: %d %.300s", code, body)
	}
	token := m[1]
	api := func() int {
		req, _ := http.NewRequest("GET", s.url+"/api/v1/me", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := api(); c != http.StatusOK {
		t.Fatalf("new token: %d", c)
	}
	// Shown once: the account page lists it without the secret.
	_, body = alice.get("/account")
	if strings.Contains(body, token) || !strings.Contains(body, "laptop") {
		t.Fatal("the account page shows the token again, or not its name")
	}
	// Another user cannot revoke it.
	u, _ := s.srv.Store.UserGetByUsername(t.Context(), "alice")
	toks, _ := s.srv.Store.TokenListForUser(t.Context(), u.ID)
	var id string
	for _, tk := range toks {
		if tk.Name == "laptop" {
			id = tk.ID
		}
	}
	erin := s.visitor(t, "erin")
	erin.post("/account/tokens/"+id+"/revoke", url.Values{"csrf_token": {erin.csrf()}})
	if c := api(); c != http.StatusOK {
		t.Fatalf("erin revoked alice's token: %d", c)
	}
	alice.post("/account/tokens/"+id+"/revoke", url.Values{"csrf_token": {alice.csrf()}})
	if c := api(); c != http.StatusUnauthorized {
		t.Fatalf("revoked token: %d", c)
	}
}

func TestFirstLoginMustChangePassword(t *testing.T) {
	s := startServer(t)
	if _, err := s.srv.Identity.CreateUser(t.Context(), audit.Actor{Name: "test"}, identity.CreateUserParams{
		Username: "frank", Password: "issued-once-Pa55word", MustChangePassword: true}); err != nil {
		t.Fatal(err)
	}
	s.pw["frank"] = "issued-once-Pa55word"
	jar := s.visitor(t, "")
	if code, body := jar.post("/login", url.Values{"username": {"frank"}, "password": {s.pw["frank"]}}); code != http.StatusOK || !strings.Contains(body, "Choose a new password") {
		t.Fatalf("first login: %d %.300s", code, body)
	}
	if _, body := jar.get("/runs"); !strings.Contains(body, "Choose a new password") {
		t.Fatal("frank reached the runs page before changing his password")
	}
	csrf := csrfField.FindStringSubmatch(func() string { _, b := jar.get("/account"); return b }())[1]
	if code, body := jar.post("/account/password", url.Values{"csrf_token": {csrf}, "current": {s.pw["frank"]}, "new": {"a"}, "confirm": {"b"}}); code != http.StatusBadRequest || !strings.Contains(body, "differ") {
		t.Fatalf("mismatched: %d", code)
	}
	if code, body := jar.post("/account/password", url.Values{"csrf_token": {csrf}, "current": {s.pw["frank"]}, "new": {"correct horse battery staple"}, "confirm": {"correct horse battery staple"}}); code != http.StatusOK || !strings.Contains(body, "Password changed") {
		t.Fatalf("change: %d %.300s", code, body)
	}
	if code, body := jar.get("/runs"); code != http.StatusOK || strings.Contains(body, "Choose a new password") {
		t.Fatalf("after the change: %d", code)
	}
}

func TestAdminPageSecretsAreWriteOnly(t *testing.T) {
	s := startServer(t)
	bob := s.visitor(t, "bob")
	code, body := bob.get("/admin")
	for _, section := range []string{"/admin/access", "/admin/users", "/admin/changes", "/admin/nodes", "/admin/secrets"} {
		if code != http.StatusOK || !strings.Contains(body, `href="`+section+`"`) {
			t.Fatalf("bob's admin overview (%d) does not link %s", code, section)
		}
	}
	for section, table := range map[string]string{"access": "access", "users": "users", "secrets": "secrets", "nodes": "nodes"} {
		if code, body := bob.get("/admin/" + section); code != http.StatusOK || !strings.Contains(body, `id="`+table+`"`) {
			t.Fatalf("bob's /admin/%s: %d", section, code)
		}
	}
	code, body = bob.post("/admin/secrets", url.Values{"csrf_token": {bob.csrf()}, "name": {"payments/db-readonly"}, "value": {canary}})
	if code != http.StatusOK || !strings.Contains(body, "payments/db-readonly") || strings.Contains(body, canary) {
		t.Fatalf("store secret: %d (value echoed: %v)", code, strings.Contains(body, canary))
	}
	if _, body := bob.get("/admin/secrets"); strings.Contains(body, canary) {
		t.Fatal("the admin page shows a secret's value")
	}
	// Who may use it: set with the value, or alone; shown, never the value.
	code, body = bob.post("/admin/secrets", url.Values{"csrf_token": {bob.csrf()}, "name": {"growth/api-key"}, "value": {canary}, "teams": {"growth"}})
	if code != http.StatusOK || !strings.Contains(body, "teams growth") {
		t.Fatalf("store a scoped secret: %d %.300s", code, body)
	}
	code, body = bob.post("/admin/secrets", url.Values{"csrf_token": {bob.csrf()}, "name": {"growth/api-key"}, "procedures": {"nightly-*"}})
	if code != http.StatusOK || !strings.Contains(body, "procedures nightly-*") || strings.Contains(body, canary) {
		t.Fatalf("scope only: %d %.300s", code, body)
	}
	if code, body := bob.post("/admin/secrets", url.Values{"csrf_token": {bob.csrf()}, "name": {"growth/api-key"}}); code != http.StatusBadRequest || !strings.Contains(body, "value:") {
		t.Fatalf("neither value nor scope: %d", code)
	}
	// A bad name is refused and nothing is stored.
	if code, _ := bob.post("/admin/secrets", url.Values{"csrf_token": {bob.csrf()}, "name": {"../x"}, "value": {"v"}}); code != http.StatusBadRequest {
		t.Fatalf("bad secret name: %d", code)
	}
	if _, err := s.srv.Store.SecretGet(t.Context(), "../x"); err == nil {
		t.Fatal("a refused secret was stored")
	}
	// alice may administer nothing: the page does not exist for her, and
	// she cannot store a secret by posting the form.
	alice := s.visitor(t, "alice")
	for _, path := range []string{"/admin", "/admin/secrets", "/admin/users", "/admin/access"} {
		if code, _ := alice.get(path); code != http.StatusNotFound {
			t.Fatalf("alice GET %s: %d", path, code)
		}
	}
	if code, _ := alice.post("/admin/secrets", url.Values{"csrf_token": {alice.csrf()}, "name": {"payments/db-readonly"}, "value": {"mine"}}); code != http.StatusForbidden && code != http.StatusNotFound {
		t.Fatalf("alice stores a secret: %d", code)
	}
	// dana (auditor) sees the access review but no secrets or users.
	dana := s.visitor(t, "dana")
	if _, body := dana.get("/admin"); !strings.Contains(body, `href="/admin/access"`) || strings.Contains(body, `href="/admin/secrets"`) || strings.Contains(body, `href="/admin/users"`) {
		t.Fatal("dana's admin overview links the wrong sections")
	}
	if code, body := dana.get("/admin/access"); code != http.StatusOK || !strings.Contains(body, `id="access"`) {
		t.Fatalf("dana's access review: %d", code)
	}
	for _, path := range []string{"/admin/secrets", "/admin/users", "/admin/changes"} {
		if code, _ := dana.get(path); code != http.StatusNotFound {
			t.Errorf("dana GET %s: %d, want 404", path, code)
		}
	}
}

func TestProcedurePageShowsVersionsWithReviews(t *testing.T) {
	s := startServer(t)
	code, body := s.visitor(t, "alice").get("/procedures/toggle-feature-flag")
	if code != http.StatusOK {
		t.Fatalf("procedure page: %d", code)
	}
	i := strings.Index(body, `id="versions"`)
	if i < 0 {
		t.Fatal("no version history")
	}
	hist := body[i:]
	for _, want := range []string{">v1</a>", ">v2</a>", "needs security", "bob (", " approve"} {
		if !strings.Contains(hist, want) {
			t.Errorf("version history lacks %q:\n%.1500s", want, hist)
		}
	}
}

func TestEvidenceFormRefusesABadPeriod(t *testing.T) {
	s := startServer(t)
	dana := s.visitor(t, "dana")
	for _, c := range []struct{ from, to, field string }{
		{"2026-11-28", "2026-11-27", "to: must be after from"},
		{"yesterday", "2026-11-27", "from: expected RFC 3339"},
	} {
		code, body := dana.post("/audit/evidence", url.Values{"csrf_token": {dana.csrf()}, "from": {c.from}, "to": {c.to}})
		if code != http.StatusBadRequest || !strings.Contains(unescape(body), c.field) || !strings.Contains(body, `value="`+c.from+`"`) {
			i := strings.Index(body, "Export evidence")
			t.Errorf("from=%s to=%s: %d, want 400 naming %q with the values kept: %.600s", c.from, c.to, code, c.field, body[max(i, 0):])
		}
	}
	evs, _ := s.srv.Store.AuditList(t.Context(), store.AuditListParams{After: -1, Type: "evidence.export"})
	if len(evs) != 0 {
		t.Fatalf("refused exports were recorded: %d", len(evs))
	}
	// Someone who may not export cannot, whatever the form says.
	alice := s.visitor(t, "alice")
	if code, _ := alice.post("/audit/evidence", url.Values{"csrf_token": {alice.csrf()}, "from": {"2026-11-27"}, "to": {"2026-11-27"}}); code != http.StatusForbidden && code != http.StatusNotFound {
		t.Fatalf("alice exports evidence: %d", code)
	}
}

// TestPolicyDraftWhatIf checks a draft's effect from the policy page
// before proposing it: the rows whose access changes are listed, a draft
// that does not compile shows its position, and nothing is stored.
func TestPolicyDraftWhatIf(t *testing.T) {
	s := startServer(t)
	bob := s.visitor(t, "bob")
	_, body := bob.get("/policies")
	m := draftText.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no policy editor for bob")
	}
	current := unescape(m[1])
	// The draft takes the NOC's right to run restarts and flushes alone.
	draft := strings.Replace(current, `@id("noc-runs-restarts-and-cache-flushes")
permit`, `@id("noc-runs-restarts-and-cache-flushes")
forbid`, 1)
	if draft == current {
		t.Fatal("the demo policy changed: adjust the test's draft")
	}
	code, body := bob.post("/policies", url.Values{"csrf_token": {bob.csrf()}, "description": {"OPS-9"}, "text": {draft}, "check": {"1"}})
	if code != http.StatusOK || !strings.Contains(body, `id="changes"`) {
		t.Fatalf("check: %d %.400s", code, body)
	}
	changes := regexp.MustCompile(`(?s)<tr><td>([a-z]+)</td><td>(flush-cache|restart-service)</td><td>(staging|production)</td><td>run</td><td><strong>(\w+)`).FindAllStringSubmatch(body, -1)
	if len(changes) == 0 {
		t.Fatalf("no change listed: %.2000s", body)
	}
	for _, c := range changes {
		if c[4] == "run" {
			t.Errorf("%s keeps run on %s in %s", c[1], c[2], c[3])
		}
	}
	if !strings.Contains(unescape(draftText.FindStringSubmatch(body)[1]), "forbid") {
		t.Error("the editor lost the draft")
	}
	// Unchanged text: nobody's access changes.
	if _, body := bob.post("/policies", url.Values{"csrf_token": {bob.csrf()}, "text": {current}, "check": {"1"}}); !strings.Contains(body, "No one's access changes.") {
		t.Errorf("unchanged draft: %.300s", body)
	}
	// A draft that does not compile.
	code, body = bob.post("/policies", url.Values{"csrf_token": {bob.csrf()}, "text": {current + "\npermit (principal, action == Action::\"nope\", resource);\n"}, "check": {"1"}})
	if code != http.StatusBadRequest || !regexp.MustCompile(`<strong>Line \d+, column \d+</strong>`).MatchString(body) || !strings.Contains(body, "needs an @id") {
		t.Fatalf("broken draft: %d %.400s", code, body)
	}
	if n := len(s.pendingPolicies(t)); n != 0 {
		t.Fatalf("checking stored %d proposals", n)
	}
	// Someone who may not manage policy cannot use it to map access.
	alice := s.visitor(t, "alice")
	if code, _ := alice.post("/policies", url.Values{"csrf_token": {alice.csrf()}, "text": {draft}, "check": {"1"}}); code != http.StatusForbidden {
		t.Errorf("alice checks a draft: %d, want 403", code)
	}
}

var (
	newPassword   = regexp.MustCompile(`<code id="new-password" class="wrap">([^<]+)</code>`)
	pendingChange = regexp.MustCompile(`/admin/user-changes/(uch_[0-9a-z]+)/approve`)
)

// TestAdminManagesNodesAndUsers adds, refuses and removes a node, creates
// a user whose one-time password works once and must be changed, and
// changes the user's groups, all from the admin page; each change is
// audited and a refused form stores nothing.
func TestAdminManagesNodesAndUsers(t *testing.T) {
	s := startServer(t)
	bob := s.visitor(t, "bob")
	ctx := t.Context()

	// Nodes.
	code, body := bob.post("/admin/nodes", url.Values{"csrf_token": {bob.csrf()}, "name": {"staging-db-9"}, "environment": {"staging"},
		"transport": {"local"}, "tags": {"db, reports"}, "attributes": {"region=eu-west-1"}})
	if code != http.StatusOK || !strings.Contains(body, "Node staging-db-9 saved.") {
		t.Fatalf("add node: %d %.300s", code, body)
	}
	n, err := s.srv.Store.NodeGet(ctx, "staging-db-9")
	if err != nil || n.Source != "api" || strings.Join(n.Tags, ",") != "db,reports" || n.Attributes["region"] != "eu-west-1" {
		t.Fatalf("stored node: %+v %v", n, err)
	}
	code, body = bob.post("/admin/nodes", url.Values{"csrf_token": {bob.csrf()}, "name": {"Bad Name"}, "environment": {"staging"}, "transport": {"local"}})
	if code != http.StatusBadRequest || !strings.Contains(body, "name:") || !strings.Contains(body, `value="Bad Name"`) {
		t.Fatalf("bad node: %d %.300s", code, body)
	}
	if code, _ := bob.post("/admin/nodes/staging-app-1/delete", url.Values{"csrf_token": {bob.csrf()}, "confirm": {"yes"}}); code != http.StatusConflict {
		t.Errorf("removing a node of the inventory file: %d, want 409", code)
	}
	// Removing asks first, and the question removes nothing.
	if code, body := bob.post("/admin/nodes/staging-db-9/delete", url.Values{"csrf_token": {bob.csrf()}}); code != http.StatusOK || !strings.Contains(body, `id="confirm-form"`) {
		t.Fatalf("remove node without confirming: %d", code)
	}
	if _, err := s.srv.Store.NodeGet(ctx, "staging-db-9"); err != nil {
		t.Fatal("the node went before the removal was confirmed")
	}
	if code, _ := bob.post("/admin/nodes/staging-db-9/delete", url.Values{"csrf_token": {bob.csrf()}, "confirm": {"yes"}}); code != http.StatusOK {
		t.Fatalf("remove node: %d", code)
	}
	if _, err := s.srv.Store.NodeGet(ctx, "staging-db-9"); err == nil {
		t.Fatal("the node is still there")
	}

	// Users: bob proposes, carol approves and receives the one-time
	// password; bob cannot approve his own change.
	carol := s.visitor(t, "carol")
	approve := func(what string) string {
		t.Helper()
		_, page := carol.get("/admin/changes")
		m := pendingChange.FindStringSubmatch(page)
		if m == nil || !strings.Contains(page, what) {
			t.Fatalf("carol's admin page lists no pending %q: %.2000s", what, page)
		}
		if _, own := bob.get("/admin/changes"); !strings.Contains(own, "/admin/user-changes/"+m[1]+"/withdraw") || strings.Contains(own, "/admin/user-changes/"+m[1]+"/approve") {
			t.Fatal("bob's page offers to approve his own change, or not to withdraw it")
		}
		if code, body := bob.post("/admin/user-changes/"+m[1]+"/approve", url.Values{"csrf_token": {bob.csrf()}}); code != http.StatusForbidden || !strings.Contains(body, "second admin") {
			t.Fatalf("bob approves his own change: %d %.300s", code, body)
		}
		code, body := carol.post("/admin/user-changes/"+m[1]+"/approve", url.Values{"csrf_token": {carol.csrf()}})
		if code != http.StatusOK || !strings.Contains(body, "Approved: "+what) && !strings.Contains(body, "Done: "+what) {
			t.Fatalf("carol approves %q: %d %.500s", what, code, body)
		}
		return body
	}
	code, body = bob.post("/admin/users", url.Values{"csrf_token": {bob.csrf()}, "username": {"frank"}, "display_name": {"Frank"}, "groups": {"dev, qa"}})
	if code != http.StatusOK || !strings.Contains(body, "Proposed: create user frank in dev, qa") || newPassword.MatchString(body) {
		t.Fatalf("propose user: %d %.300s", code, body)
	}
	if _, err := s.srv.Store.UserGetByUsername(ctx, "frank"); err == nil {
		t.Fatal("frank exists before a second admin approved")
	}
	m := newPassword.FindStringSubmatch(approve("create user frank in dev, qa"))
	if m == nil {
		t.Fatal("carol's approval shows no one-time password")
	}
	if _, again := carol.get("/admin/changes"); strings.Contains(again, m[1]) {
		t.Fatal("the one-time password is shown again")
	}
	frank := s.visitor(t, "")
	req, _ := http.NewRequest("POST", s.url+"/login", strings.NewReader(url.Values{"username": {"frank"}, "password": {m[1]}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := frank.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Request.URL.Path != "/account" {
		t.Fatalf("frank's first sign-in ends on %s, want the password change on /account", resp.Request.URL)
	}
	if code, _ := bob.post("/admin/users", url.Values{"csrf_token": {bob.csrf()}, "username": {"frank"}}); code != http.StatusConflict {
		t.Errorf("duplicate user: %d, want 409", code)
	}
	if code, _ := bob.post("/admin/users/frank/groups", url.Values{"csrf_token": {bob.csrf()}, "group": {"noc"}}); code != http.StatusOK {
		t.Fatalf("propose frank in noc: %d", code)
	}
	approve("add frank to noc")
	if code, body := bob.post("/admin/users/frank/groups/qa/remove", url.Values{"csrf_token": {bob.csrf()}}); code != http.StatusOK || !strings.Contains(body, "Remove frank from qa?") {
		t.Fatalf("remove from qa without confirming: %d", code)
	}
	if code, _ := bob.post("/admin/users/frank/groups/qa/remove", url.Values{"csrf_token": {bob.csrf()}, "confirm": {"yes"}}); code != http.StatusOK {
		t.Fatalf("remove from qa: %d", code)
	}
	u, _ := s.srv.Store.UserGetByUsername(ctx, "frank")
	gs, _ := s.srv.Store.GroupListForUser(ctx, u.ID)
	var names []string
	for _, g := range gs {
		names = append(names, g.Name)
	}
	sort.Strings(names)
	if got := strings.Join(names, ","); got != "dev,noc" {
		t.Errorf("frank's groups: %q, want dev,noc", got)
	}
	// Disabling frank ends his session at once; enabling, once carol
	// approves, lets him back.
	if code, _ := frank.get("/account"); code != http.StatusOK {
		t.Fatalf("frank's session before: %d", code)
	}
	if code, body := bob.post("/admin/users/frank/disable", url.Values{"csrf_token": {bob.csrf()}}); code != http.StatusOK || !strings.Contains(body, "Disable frank?") {
		t.Fatalf("disable without confirming: %d", code)
	}
	if code, _ := frank.get("/account"); code != http.StatusOK {
		t.Fatalf("frank's session ended before the disable was confirmed: %d", code)
	}
	if code, body := bob.post("/admin/users/frank/disable", url.Values{"csrf_token": {bob.csrf()}, "confirm": {"yes"}}); code != http.StatusOK || !strings.Contains(body, "frank disabled") {
		t.Fatalf("disable: %d", code)
	}
	frank.c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if code, _ := frank.get("/account"); code != http.StatusSeeOther {
		t.Fatalf("frank's session after disable: %d, want the redirect to sign in", code)
	}
	if code, _ := bob.post("/admin/users/bob/disable", url.Values{"csrf_token": {bob.csrf()}, "confirm": {"yes"}}); code != http.StatusConflict {
		t.Errorf("bob disables himself: %d, want 409", code)
	}
	if code, _ := bob.post("/admin/users/frank/enable", url.Values{"csrf_token": {bob.csrf()}}); code != http.StatusOK {
		t.Fatalf("propose enable: %d", code)
	}
	if u, _ := s.srv.Store.UserGetByUsername(ctx, "frank"); !u.Disabled {
		t.Fatal("frank is enabled before a second admin approved")
	}
	approve("enable user frank")
	if u, _ := s.srv.Store.UserGetByUsername(ctx, "frank"); u.Disabled {
		t.Fatal("frank is still disabled")
	}
	for who, types := range map[string][]string{
		"bob":   {audit.NodePut, audit.NodeDelete, audit.UserUpdate, audit.GroupMemberRemove, audit.UserChangePropose, audit.UserChangeDenied},
		"carol": {audit.UserCreate, audit.UserUpdate, audit.GroupMemberAdd, audit.UserChangeApprove},
	} {
		for _, typ := range types {
			evs, _ := s.srv.Store.AuditList(ctx, store.AuditListParams{After: -1, Type: typ, Actor: who})
			if len(evs) == 0 {
				t.Errorf("no %s event by %s", typ, who)
			}
		}
	}

	// alice may do none of it.
	alice := s.visitor(t, "alice")
	for path, form := range map[string]url.Values{
		"/admin/nodes":                          {"name": {"x1"}, "environment": {"staging"}, "transport": {"local"}},
		"/admin/users":                          {"username": {"mallory"}},
		"/admin/users/alice/groups":             {"group": {"admins"}},
		"/admin/users/bob/groups/admins/remove": {},
		"/admin/users/bob/disable":              {},
	} {
		form.Set("csrf_token", alice.csrf())
		if code, _ := alice.post(path, form); code != http.StatusForbidden {
			t.Errorf("alice POST %s: %d, want 403", path, code)
		}
	}
	if _, err := s.srv.Store.UserGetByUsername(ctx, "mallory"); err == nil {
		t.Error("alice created a user")
	}
}

// checkedAt finds the verification's exact time (nanoseconds: two runs
// within a second must not look like one) and who asked.
var checkedAt = regexp.MustCompile(`(?s)data-checked="(\d+)".*?at (\w+)'s request`)

// verification is a verification's result as a page shows it: its time
// in nanoseconds and who asked, or "" when the page shows none.
func verification(body string) string {
	if m := checkedAt.FindStringSubmatch(body); m != nil {
		return m[1] + " " + m[2]
	}
	return ""
}

// TestVerifyNowRunsOnceAtATime: "Verify now" answers with the result, and
// asking again (or from several tabs) while it is fresh shows that result
// instead of recomputing the tree; once the result is older than the
// freshness window by the server's clock, asking recomputes. Only readers
// of the audit log may ask. The test moves the server's clock, so it
// holds however slowly the machine runs.
func TestVerifyNowRunsOnceAtATime(t *testing.T) {
	s, clock := startServerWithClock(t)
	dana := s.visitor(t, "dana")
	token := dana.csrf()
	// ask posts "Verify now" from any goroutine: the result the answer
	// shows, or how it failed.
	ask := func() (result, failure string) {
		req, _ := http.NewRequest("POST", s.url+"/audit/verify", strings.NewReader(url.Values{"csrf_token": {token}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := dana.c.Do(req)
		if err != nil {
			return "", err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Sprintf("%d %.300s", resp.StatusCode, b)
		}
		return verification(string(b)), ""
	}
	// settled is the result the audit page shows once no verification
	// runs (an answer only says "running" when the tree takes longer than
	// the request waits).
	settled := func() string {
		t.Helper()
		var body string
		testenv.Eventually(t, "the audit page to show a verification's result with none running", func() bool {
			_, body = dana.get("/audit")
			return verification(body) != "" && !strings.Contains(body, `id="verify-running"`)
		})
		if !strings.Contains(body, "Verified:") || !strings.Contains(body, `<p class="ok" id="verify-output">`) {
			i := strings.Index(body, `id="verify-result"`)
			t.Fatalf("the log does not verify: %.600s", body[max(i, 0):])
		}
		return verification(body)
	}

	type answer struct{ result, failure string }
	answers := make(chan answer, 3)
	for range 3 {
		go func() {
			r, f := ask()
			answers <- answer{r, f}
		}()
	}
	var got []string
	for range 3 {
		select {
		case a := <-answers:
			if a.failure != "" {
				t.Fatalf("verify now: %s", a.failure)
			}
			got = append(got, a.result)
		case <-time.After(time.Minute):
			t.Fatalf("waited a minute for the answers to three concurrent verify requests; have %q", got)
		}
	}
	first := settled()
	for _, r := range got {
		if r != "" && r != first {
			t.Fatalf("concurrent verifications %q and %q: want one shared result", r, first)
		}
	}

	// Asking again while the result is fresh reuses it, however long the
	// wall clock says that took.
	if r, f := ask(); f != "" || r != first {
		t.Fatalf("a second verification within the freshness window recomputed the tree: %q (%s), first %q", r, f, first)
	}
	if _, body := dana.get("/audit"); !strings.Contains(body, `data-checked="`+strings.Fields(first)[0]+`"`) {
		t.Error("the audit page does not show the last result")
	}

	// A minute later by the server's clock, it is stale: asking recomputes,
	// dated by that clock.
	later := clock.Advance(time.Minute)
	if _, f := ask(); f != "" {
		t.Fatalf("verify now after a minute: %s", f)
	}
	again := settled()
	if again == first {
		t.Fatalf("a verification a minute after the last one showed the old result %q", first)
	}
	if ns, err := strconv.ParseInt(strings.Fields(again)[0], 10, 64); err != nil || ns < later.UnixNano() {
		t.Errorf("the new result is dated %s, want at or after the server clock's %v", again, later)
	}

	alice := s.visitor(t, "alice")
	if code, _ := alice.post("/audit/verify", url.Values{"csrf_token": {alice.csrf()}}); code != http.StatusForbidden {
		t.Errorf("alice verifies: %d, want 403", code)
	}
}

// TestRetireFromTheProcedurePage: an admin retires a procedure from its
// page (a reason is required; without one nothing changes), it leaves the
// catalog, and the act is audited; erin (NOC, not of the owning team)
// gets no form and is refused.
func TestRetireFromTheProcedurePage(t *testing.T) {
	s := startServer(t)
	erin, bob := s.visitor(t, "erin"), s.visitor(t, "bob")
	if _, body := erin.get("/procedures/restart-service"); strings.Contains(body, `id="retire-form"`) || !strings.Contains(body, `id="run-form"`) {
		t.Error("erin is offered to retire a procedure (or sees no page)")
	}
	if code, _ := erin.post("/procedures/rotate-logs/retire", url.Values{"csrf_token": {erin.csrf()}, "reason": {"mine"}}); code != http.StatusForbidden && code != http.StatusNotFound {
		t.Errorf("erin retires: %d, want 403 or 404", code)
	}
	if _, body := bob.get("/procedures/rotate-logs"); !strings.Contains(body, `id="retire-form"`) {
		t.Fatal("bob has no retire form")
	}
	if code, body := bob.post("/procedures/rotate-logs/retire", url.Values{"csrf_token": {bob.csrf()}, "reason": {" "}}); code != http.StatusBadRequest || !strings.Contains(body, "reason:") {
		t.Fatalf("retire without a reason: %d", code)
	}
	if p, _ := s.srv.Store.ProcedureGetByName(t.Context(), "rotate-logs"); !p.RetiredAt.IsZero() {
		t.Fatal("retired without a reason")
	}
	// Retiring asks first; the question retires nothing.
	code, body := bob.post("/procedures/rotate-logs/retire", url.Values{"csrf_token": {bob.csrf()}, "reason": {"replaced by logrotate (OPS-12)"}})
	if code != http.StatusOK || !strings.Contains(body, "Retire rotate-logs?") || !strings.Contains(body, `name="reason" value="replaced by logrotate (OPS-12)"`) {
		t.Fatalf("retire without confirming: %d %.300s", code, body)
	}
	if p, _ := s.srv.Store.ProcedureGetByName(t.Context(), "rotate-logs"); !p.RetiredAt.IsZero() {
		t.Fatal("retired before it was confirmed")
	}
	code, body = bob.post("/procedures/rotate-logs/retire", url.Values{"csrf_token": {bob.csrf()}, "reason": {"replaced by logrotate (OPS-12)"}, "confirm": {"yes"}})
	if code != http.StatusOK || !strings.Contains(body, "rotate-logs is retired") || strings.Contains(body, `href="/procedures/rotate-logs"`) {
		t.Fatalf("retire: %d %.300s", code, body)
	}
	if p, _ := s.srv.Store.ProcedureGetByName(t.Context(), "rotate-logs"); p.RetiredAt.IsZero() {
		t.Fatal("not retired")
	}
	if evs, _ := s.srv.Store.AuditList(t.Context(), store.AuditListParams{After: -1, Type: audit.ProcedureRetire, Actor: "bob"}); len(evs) != 1 {
		t.Fatalf("%d retire events by bob", len(evs))
	}
	// The flash says so only when it is true.
	if _, body := bob.get("/?retired=flush-cache"); strings.Contains(body, "is retired") {
		t.Error("the catalog claims a live procedure is retired")
	}
}

// TestExplainFromThePolicyPage asks the policy in force one question from
// the policy page; alice may ask about herself but not about others.
func TestExplainFromThePolicyPage(t *testing.T) {
	s := startServer(t)
	bob := s.visitor(t, "bob")
	code, body := bob.post("/policies/explain", url.Values{"csrf_token": {bob.csrf()}, "username": {"erin"}, "action": {"run"},
		"procedure": {"restart-service"}, "environment": {"production"}})
	if code != http.StatusOK || !strings.Contains(body, `id="answer"`) || !strings.Contains(body, "Allowed") ||
		!strings.Contains(body, "noc-runs-restarts-and-cache-flushes") || !strings.Contains(body, "waits for approval") {
		t.Fatalf("explain: %d %.600s", code, body)
	}
	code, body = bob.post("/policies/explain", url.Values{"csrf_token": {bob.csrf()}, "username": {"nobody"}, "action": {"run"},
		"procedure": {"flush-cache"}, "environment": {"staging"}})
	if code != http.StatusBadRequest || !strings.Contains(body, "username:") {
		t.Fatalf("unknown user: %d", code)
	}
	alice := s.visitor(t, "alice")
	if code, _ := alice.post("/policies/explain", url.Values{"csrf_token": {alice.csrf()}, "username": {"bob"}, "action": {"run"},
		"procedure": {"flush-cache"}, "environment": {"staging"}}); code != http.StatusForbidden {
		t.Errorf("alice explains bob's access: %d, want 403", code)
	}
}

// TestAdminProposesAServiceAccount: the admin page proposes a service
// account (an unknown owner team is refused, naming the field), another
// admin approves it without receiving a password, the user list shows
// its kind and owner, and the sign-in page refuses it as it refuses a
// wrong password.
func TestAdminProposesAServiceAccount(t *testing.T) {
	s := startServer(t)
	bob, carol := s.visitor(t, "bob"), s.visitor(t, "carol")
	form := func(owner string) url.Values {
		return url.Values{"csrf_token": {bob.csrf()}, "username": {"payments-ci"}, "kind": {"service"}, "owner_team": {owner}, "groups": {"payments"}}
	}
	if code, body := bob.post("/admin/users", form("no-such-team")); code != http.StatusBadRequest || !strings.Contains(body, "owner_team") {
		t.Fatalf("an unknown owner team: %d", code)
	}
	code, body := bob.post("/admin/users", form("payments"))
	if code != http.StatusOK || !strings.Contains(body, "create service account payments-ci owned by payments in payments") {
		t.Fatalf("bob proposes a service account: %d", code)
	}
	_, body = carol.get("/admin/changes")
	m := pendingChange.FindStringSubmatch(body)
	if m == nil {
		t.Fatal("carol sees no change to approve")
	}
	code, body = carol.post("/admin/user-changes/"+m[1]+"/approve", url.Values{"csrf_token": {carol.csrf()}})
	if code != http.StatusOK || newPassword.MatchString(body) {
		t.Fatalf("carol approves: %d (a one-time password shown: %v)", code, newPassword.MatchString(body))
	}
	if _, body := bob.get("/admin/users"); !strings.Contains(body, "service account of payments") || !strings.Contains(body, "person, password") {
		t.Fatal("the user list does not say which account is a service account")
	}
	wrongCode, wrong := s.visitor(t, "").post("/login", url.Values{"username": {"alice"}, "password": {"not-her-password"}})
	for _, pw := range []string{"", "anything-at-all"} {
		code, body := s.visitor(t, "").post("/login", url.Values{"username": {"payments-ci"}, "password": {pw}})
		if code != wrongCode || strings.Contains(body, "Sign out") || !strings.Contains(wrong, "invalid username or password") || !strings.Contains(body, "invalid username or password") {
			t.Errorf("signing in as payments-ci with %q: %d, want what a wrong password gets (%d)", pw, code, wrongCode)
		}
	}
}

// TestResetPasswordFromTheAdminPage: bob proposes a one-time password
// for alice from the users page and sees none; carol approves it on the
// changes page and alone receives it; alice's session ends and the
// password signs her in, to change it first.
func TestResetPasswordFromTheAdminPage(t *testing.T) {
	s := startServer(t)
	bob, carol, alice := s.visitor(t, "bob"), s.visitor(t, "carol"), s.visitor(t, "alice")
	if _, body := bob.get("/admin/users"); !strings.Contains(body, `action="/admin/users/alice/reset-password"`) || strings.Contains(body, `action="/admin/users/bob/reset-password"`) {
		t.Fatal("the users page offers no reset for alice, or one for bob himself")
	}
	code, body := bob.post("/admin/users/alice/reset-password", url.Values{"csrf_token": {bob.csrf()}})
	if code != http.StatusOK || !strings.Contains(body, "Proposed: reset the password of alice") || newPassword.MatchString(body) {
		t.Fatalf("bob proposes: %d %.300s", code, body)
	}
	_, page := carol.get("/admin/changes")
	m := pendingChange.FindStringSubmatch(page)
	if m == nil || !strings.Contains(page, "reset the password of alice") {
		t.Fatal("carol sees no reset to approve")
	}
	if code, _ := bob.post("/admin/user-changes/"+m[1]+"/approve", url.Values{"csrf_token": {bob.csrf()}}); code != http.StatusForbidden {
		t.Fatalf("bob approves his own reset: %d", code)
	}
	code, body = carol.post("/admin/user-changes/"+m[1]+"/approve", url.Values{"csrf_token": {carol.csrf()}})
	pw := newPassword.FindStringSubmatch(body)
	if code != http.StatusOK || pw == nil || !strings.Contains(body, "sessions ended") {
		t.Fatalf("carol approves: %d %.500s", code, body)
	}
	for _, path := range []string{"/admin/changes", "/admin/users", "/admin"} {
		if _, page := bob.get(path); strings.Contains(page, pw[1]) {
			t.Fatalf("bob's %s shows the one-time password", path)
		}
	}
	alice.c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if code, _ := alice.get("/runs"); code != http.StatusSeeOther {
		t.Fatalf("alice's session after the reset: %d, want the redirect to sign in", code)
	}
	again := s.visitor(t, "")
	req, _ := http.NewRequest("POST", s.url+"/login", strings.NewReader(url.Values{"username": {"alice"}, "password": {pw[1]}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := again.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Request.URL.Path != "/account" {
		t.Fatalf("alice's sign-in with the one-time password ends on %s, want the password change on /account", resp.Request.URL)
	}
}
