package web_test

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/web"
)

// These attacks need no browser: they drive the pages with a plain HTTP
// client the way a hostile page or a curious user would.

type visitor struct {
	t    *testing.T
	base string
	c    *http.Client
}

func (s *site) visitor(t *testing.T, user string) *visitor {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	// A request that hangs fails the test, naming its URL, well before
	// the test binary's own timeout.
	v := &visitor{t: t, base: s.url, c: &http.Client{Jar: jar, Timeout: 2 * time.Minute}}
	if user != "" {
		if code, body := v.post("/login", url.Values{"username": {user}, "password": {s.pw[user]}}); code != http.StatusOK || !strings.Contains(body, "Sign out") {
			t.Fatalf("sign in as %s: %d", user, code)
		}
	}
	return v
}

func (v *visitor) do(req *http.Request) (int, string) {
	v.t.Helper()
	resp, err := v.c.Do(req)
	if err != nil {
		v.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (v *visitor) get(path string) (int, string) {
	req, _ := http.NewRequest("GET", v.base+path, nil)
	return v.do(req)
}

func (v *visitor) post(path string, form url.Values, headers ...string) (int, string) {
	req, _ := http.NewRequest("POST", v.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return v.do(req)
}

var csrfField = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

func (v *visitor) csrf() string {
	_, body := v.get("/")
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		v.t.Fatal("no CSRF token on the catalog page")
	}
	return m[1]
}

var runLink = regexp.MustCompile(`<div id="run" data-run="([^"]+)"`)

// requestProductionFlush has alice request a run that waits for approval and
// returns its ID.
func requestProductionFlush(t *testing.T, alice *visitor) string {
	t.Helper()
	code, body := alice.post("/procedures/flush-cache/run", url.Values{"csrf_token": {alice.csrf()},
		"environment": {"production"}, "p.cache": {"catalog"}})
	m := runLink.FindStringSubmatch(body)
	if code != http.StatusOK || m == nil || !strings.Contains(body, "pending_approval") {
		t.Fatalf("request: %d %.300s", code, body)
	}
	return m[1]
}

func (s *site) status(t *testing.T, id string) string {
	t.Helper()
	r, err := s.srv.Store.RunGet(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return string(r.Status)
}

func TestPagesNeedASession(t *testing.T) {
	s := startServer(t)
	anon := s.visitor(t, "")
	anon.c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for _, path := range []string{"/", "/runs", "/inbox", "/procedures/flush-cache"} {
		req, _ := http.NewRequest("GET", s.url+path, nil)
		resp, err := anon.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
			t.Errorf("GET %s without a session: %d %s", path, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
}

func TestLoginRedirectStaysOnSite(t *testing.T) {
	s := startServer(t)
	for _, next := range []string{"//evil.example/", "https://evil.example/", `/\evil.example/`} {
		v := s.visitor(t, "")
		v.c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		req, _ := http.NewRequest("POST", s.url+"/login", strings.NewReader(url.Values{"username": {"alice"}, "password": {s.pw["alice"]}, "next": {next}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := v.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); loc != "/" {
			t.Errorf("next=%q redirected to %q", next, loc)
		}
	}
}

func TestFormPostsWithoutTheCSRFTokenAreRefused(t *testing.T) {
	s := startServer(t)
	alice, bob := s.visitor(t, "alice"), s.visitor(t, "bob")
	id := requestProductionFlush(t, alice)

	// No token, a wrong token, and another user's token.
	for name, token := range map[string]string{"missing": "", "wrong": "x", "alice's": alice.csrf()} {
		if code, _ := bob.post("/runs/"+id+"/approve", url.Values{"csrf_token": {token}}); code != http.StatusForbidden {
			t.Errorf("%s token: %d, want 403", name, code)
		}
	}
	// A cross-site form post is refused even with the right token.
	if code, _ := bob.post("/runs/"+id+"/approve", url.Values{"csrf_token": {bob.csrf()}}, "Sec-Fetch-Site", "cross-site"); code != http.StatusForbidden {
		t.Errorf("cross-site post: %d, want 403", code)
	}
	if code, _ := bob.post("/runs/"+id+"/approve", url.Values{"csrf_token": {bob.csrf()}}, "Origin", "https://evil.example"); code != http.StatusForbidden {
		t.Errorf("foreign origin post: %d, want 403", code)
	}
	if got := s.status(t, id); got != "pending_approval" {
		t.Fatalf("run is %s after refused posts", got)
	}
}

// TestEveryFormNeedsItsCSRFToken posts to every state-changing route of
// the UI as an admin with a valid session but no token, a wrong token,
// or from another site: each is refused before it does anything (the
// audit log does not grow).
func TestEveryFormNeedsItsCSRFToken(t *testing.T) {
	s := startServer(t)
	alice, bob := s.visitor(t, "alice"), s.visitor(t, "bob")
	id := requestProductionFlush(t, alice)
	fill := strings.NewReplacer("{id}", id, "{name}", "flush-cache", "{username}", "alice", "{group}", "dev")
	routes := web.FormRoutes()
	if len(routes) < 20 {
		t.Fatalf("only %d form routes: %v", len(routes), routes)
	}
	before, _ := s.srv.Store.AuditSize(t.Context())
	for _, r := range routes {
		path := fill.Replace(r)
		form := url.Values{"name": {"x"}, "username": {"mallory"}, "group": {"admins"}, "text": {"permit (principal, action, resource);"}}
		for name, token := range map[string]string{"missing": "", "wrong": "x"} {
			form.Set("csrf_token", token)
			if code, _ := bob.post(path, form); code != http.StatusForbidden {
				t.Errorf("POST %s with a %s token: %d, want 403", path, name, code)
			}
		}
		form.Set("csrf_token", bob.csrf())
		if code, _ := bob.post(path, form, "Sec-Fetch-Site", "cross-site"); code != http.StatusForbidden {
			t.Errorf("POST %s cross-site: %d, want 403", path, code)
		}
	}
	if after, _ := s.srv.Store.AuditSize(t.Context()); after != before {
		t.Fatalf("refused posts changed something: the audit log grew from %d to %d events", before, after)
	}
}

func TestSelfApprovalThroughTheFormIsRefused(t *testing.T) {
	s := startServer(t)
	alice := s.visitor(t, "alice")
	id := requestProductionFlush(t, alice)
	code, body := alice.post("/runs/"+id+"/approve", url.Values{"csrf_token": {alice.csrf()}})
	if code != http.StatusForbidden && code != http.StatusConflict && code != http.StatusBadRequest {
		t.Errorf("self-approval: %d %.200s", code, body)
	}
	if got := s.status(t, id); got != "pending_approval" {
		t.Fatalf("run is %s after self-approval", got)
	}
}

func TestOthersRunsAreInvisible(t *testing.T) {
	s := startServer(t)
	alice, erin := s.visitor(t, "alice"), s.visitor(t, "erin")
	id := requestProductionFlush(t, alice)
	for _, path := range []string{"/runs/" + id, "/runs/run_doesnotexist"} {
		if code, body := erin.get(path); code != http.StatusNotFound || strings.Contains(body, "flush-cache") {
			t.Errorf("erin GET %s: %d", path, code)
		}
	}
	if code, _ := erin.post("/runs/"+id+"/cancel", url.Values{"csrf_token": {erin.csrf()}}); code != http.StatusNotFound {
		t.Errorf("erin cancels alice's run: %d, want 404", code)
	}
	if _, body := erin.get("/runs"); strings.Contains(body, id) {
		t.Error("alice's run is listed for erin")
	}
	if got := s.status(t, id); got != "pending_approval" {
		t.Fatalf("run is %s", got)
	}
}

// A secret with a recognisable value; no page or API response may show it.
const canary = "s3cr3t-CANARY-7f1e"

var (
	inlineScript  = regexp.MustCompile(`(?i)<script(\s[^>]*)?>`)
	eventHandler  = regexp.MustCompile(`(?i)\son[a-z]+\s*=`)
	inlineStyle   = regexp.MustCompile(`(?i)\sstyle\s*=`)
	hrefs         = regexp.MustCompile(`href="(/(?:runs|versions|procedures)/[^"?#]+)"`)
	versionsInBox = regexp.MustCompile(`href="(/versions/[^"]+)"`)
)

func TestEveryPageIsStrictAndLeaksNoSecret(t *testing.T) {
	s := startServer(t)
	bob := s.visitor(t, "bob")
	// bob stores the database password the db-readonly-query steps use,
	// through the API, then runs the report in staging with it.
	req, _ := http.NewRequest("PUT", s.url+"/api/v1/secrets/payments/db-readonly", strings.NewReader(`{"value":"`+canary+`","scope":{"teams":["payments"]}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CSRF-Token", bob.csrf())
	if code, body := bob.do(req); code != http.StatusOK && code != http.StatusCreated {
		t.Fatalf("put secret: %d %s", code, body)
	}
	code, body := bob.post("/procedures/db-readonly-query/run", url.Values{"csrf_token": {bob.csrf()},
		"environment": {"staging"}, "p.report": {"stuck-settlements"}, "p.limit": {"10"}, "p.ticket": {"OPS-1"}})
	if code != http.StatusOK || !strings.Contains(body, `id="run"`) {
		t.Fatalf("bob runs the report: %d %.300s", code, body)
	}
	requestProductionFlush(t, s.visitor(t, "alice"))

	anon := s.visitor(t, "")
	seen := 0
	check := func(who, path string, resp *http.Response, body string) {
		t.Helper()
		seen++
		if strings.Contains(body, canary) {
			t.Errorf("%s GET %s shows the secret value", who, path)
		}
		if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			return
		}
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s GET %s: CSP %q", who, path, csp)
		}
		for _, m := range inlineScript.FindAllStringSubmatch(body, -1) {
			if !strings.Contains(m[1], "src=") {
				t.Errorf("%s GET %s has an inline script: %s", who, path, m[0])
			}
		}
		if m := eventHandler.FindString(body); m != "" {
			t.Errorf("%s GET %s has an inline event handler: %s", who, path, m)
		}
		if m := inlineStyle.FindString(body); m != "" {
			t.Errorf("%s GET %s has an inline style: %s", who, path, m)
		}
	}
	fetch := func(who string, v *visitor, path string) string {
		req, _ := http.NewRequest("GET", s.url+path, nil)
		resp, err := v.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		check(who, path, resp, string(b))
		return string(b)
	}
	fetch("anonymous", anon, "/login")
	for _, who := range []string{"alice", "bob", "carol", "dana", "erin"} {
		v := s.visitor(t, who)
		visited := map[string]bool{}
		queue := []string{"/", "/runs", "/inbox", "/audit", "/policies", "/account", "/admin"}
		for len(queue) > 0 {
			path := queue[0]
			queue = queue[1:]
			if visited[path] {
				continue
			}
			visited[path] = true
			body := fetch(who, v, path)
			for _, m := range append(hrefs.FindAllStringSubmatch(body, -1), versionsInBox.FindAllStringSubmatch(body, -1)...) {
				queue = append(queue, m[1])
				if strings.HasPrefix(m[1], "/runs/") {
					queue = append(queue, "/api/v1"+m[1], "/api/v1"+m[1]+"/output")
				}
			}
		}
		for _, path := range []string{"/api/v1/runs", "/api/v1/secrets", "/api/v1/audit/events?limit=1000", "/api/v1/procedures"} {
			fetch(who, v, path)
		}
	}
	if seen < 40 {
		t.Fatalf("only %d responses checked; the walk did not reach the pages", seen)
	}
	t.Logf("%d responses checked", seen)
}
