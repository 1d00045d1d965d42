package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/api"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/config"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/server"
	"github.com/airlockhq/airlock/internal/store"
)

type env struct {
	t    testing.TB
	srv  *server.Server
	url  string
	logs *logBuffer // everything the server logged, at debug level
}

type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *logBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// client makes the tests' own requests: none waits without bound, event
// streams included.
var client = &http.Client{Timeout: time.Minute}

func newEnv(t testing.TB, mutate func(*config.Config)) *env {
	t.Helper()
	hs := httptest.NewUnstartedServer(nil)
	url := "http://" + hs.Listener.Addr().String()
	cfg := config.Default()
	cfg.Data = t.TempDir()
	cfg.PublicURL = url
	if mutate != nil {
		mutate(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	s, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	hs.Config.Handler = s.Handler()
	hs.Start()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Runs.Start(ctx) }()
	notified := make(chan struct{})
	go func() {
		defer close(notified)
		if s.Notify != nil {
			s.Notify.Run(ctx)
		}
	}()
	t.Cleanup(func() {
		hs.Close()
		stop()
		<-notified
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Error("waited a minute for the run service to stop and record the runs in progress")
			return
		}
		s.Close()
	})
	return &env{t: t, srv: s, url: url, logs: logs}
}

func (e *env) user(name string, groups ...string) string {
	e.t.Helper()
	pw := name + "-password-123"
	if _, err := e.srv.Identity.CreateUser(context.Background(), audit.System, identity.CreateUserParams{Username: name, Password: pw, Groups: groups}); err != nil {
		e.t.Fatal(err)
	}
	return pw
}

// call sends a request; token may be empty. It returns the status and body.
func (e *env) call(method, path, token string, body any, hdr ...string) (int, map[string]any, *http.Response) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.url+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out, resp
}

func (e *env) token(user, pw string) string {
	e.t.Helper()
	code, out, _ := e.call("POST", "/api/v1/auth/token", "", api.LoginRequest{Username: user, Password: pw})
	if code != http.StatusCreated {
		e.t.Fatalf("token login %s: %d %v", user, code, out)
	}
	return out["token"].(string)
}

func (e *env) events(typ string) []*store.AuditEvent {
	e.t.Helper()
	evs, err := e.srv.Store.AuditList(context.Background(), store.AuditListParams{After: -1, Type: typ, Limit: 10000})
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}

func errCode(out map[string]any) string {
	e, _ := out["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func TestWrongPasswordIsGeneric401AndThrottled(t *testing.T) {
	// Every attempt audited by itself (login.audit_window 0); the default,
	// one event with a count for a source's window, is tested in
	// loginreports_test.go.
	e := newEnv(t, func(c *config.Config) { c.Login.AuditWindow = 0 })
	pw := e.user("alice", "dev")
	code, out, _ := e.call("POST", "/api/v1/auth/login", "", api.LoginRequest{Username: "alice", Password: "wrong"})
	if code != 401 || out["error"].(map[string]any)["message"] != "invalid username or password" {
		t.Fatalf("wrong password: %d %v", code, out)
	}
	_, unknown, _ := e.call("POST", "/api/v1/auth/login", "", api.LoginRequest{Username: "nobody", Password: "wrong"})
	if unknown["error"].(map[string]any)["message"] != out["error"].(map[string]any)["message"] {
		t.Fatal("unknown user and wrong password answer differently")
	}
	for range 2 {
		e.call("POST", "/api/v1/auth/login", "", api.LoginRequest{Username: "alice", Password: "wrong"})
	}
	code, out, resp := e.call("POST", "/api/v1/auth/login", "", api.LoginRequest{Username: "alice", Password: pw})
	if code != 429 || errCode(out) != "too_many_requests" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("fourth rapid attempt from one source: %d %v", code, out)
	}
	if n := len(e.events(audit.UserLoginThrottled)); n != 1 {
		t.Fatalf("%d throttle events", n)
	}
	if n := len(e.events(audit.UserLoginFailed)); n != 4 {
		t.Fatalf("%d failed-login events, want 4", n)
	}
}

func TestTokenExpiredOrRevokedIs401(t *testing.T) {
	e := newEnv(t, nil)
	pw := e.user("bob", "ops")
	tok := e.token("bob", pw)
	if code, out, _ := e.call("GET", "/api/v1/me", tok, nil); code != 200 || out["username"] != "bob" {
		t.Fatalf("me: %d %v", code, out)
	}
	code, out, _ := e.call("POST", "/api/v1/tokens", tok, api.CreateTokenRequest{Name: "short", TTL: "1m"})
	if code != 201 {
		t.Fatalf("create: %d %v", code, out)
	}
	short := out["token"].(string)
	id := out["info"].(map[string]any)["id"].(string)
	if code, _, _ := e.call("DELETE", "/api/v1/tokens/"+id, tok, nil); code != 204 {
		t.Fatalf("revoke: %d", code)
	}
	if code, out, _ := e.call("GET", "/api/v1/me", short, nil); code != 401 || errCode(out) != "unauthenticated" {
		t.Fatalf("revoked token: %d %v", code, out)
	}
	if code, _, _ := e.call("GET", "/api/v1/me", "alt_notarealtoken", nil); code != 401 {
		t.Fatalf("made-up token: %d", code)
	}
	// Expiry: a token created with the shortest lifetime, checked after it.
	code, out, _ = e.call("POST", "/api/v1/tokens", tok, api.CreateTokenRequest{Name: "expiring", TTL: "1m"})
	if code != 201 {
		t.Fatal(code)
	}
	expiring := out["token"].(string)
	restore := setClock(e, time.Now().Add(2*time.Minute))
	defer restore()
	if code, _, _ := e.call("GET", "/api/v1/me", expiring, nil); code != 401 {
		t.Fatalf("expired token: %d", code)
	}
	if len(e.events(audit.TokenCreate)) != 3 || len(e.events(audit.TokenRevoke)) != 1 {
		t.Fatal("token create/revoke not audited")
	}
}

// setClock moves the identity service's clock.
func setClock(e *env, at time.Time) func() {
	e.srv.Identity.SetNow(func() time.Time { return at })
	return func() { e.srv.Identity.SetNow(time.Now) }
}

func browserLogin(t *testing.T, e *env, user, pw string) (*http.Client, string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: client.Timeout}
	b, _ := json.Marshal(api.LoginRequest{Username: user, Password: pw})
	resp, err := c.Post(e.url+"/api/v1/auth/login", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var lr api.LoginResponse
	json.NewDecoder(resp.Body).Decode(&lr)
	if resp.StatusCode != 200 || lr.CSRFToken == "" {
		t.Fatalf("browser login: %d", resp.StatusCode)
	}
	var cookie *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == api.SessionCookie {
			cookie = ck
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteLaxMode {
		t.Fatalf("session cookie not HttpOnly+SameSite: %+v", cookie)
	}
	return c, lr.CSRFToken
}

func TestCSRF(t *testing.T) {
	e := newEnv(t, nil)
	pw := e.user("carol", "security")
	c, csrf := browserLogin(t, e, "carol", pw)
	post := func(hdr string) int {
		req, _ := http.NewRequest("POST", e.url+"/api/v1/tokens", strings.NewReader(`{"name":"x"}`))
		req.Header.Set("Content-Type", "application/json")
		if hdr != "" {
			req.Header.Set(api.CSRFHeader, hdr)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(""); code != 403 {
		t.Fatalf("cookie POST without CSRF token: %d", code)
	}
	if code := post("forged"); code != 403 {
		t.Fatalf("cookie POST with a wrong CSRF token: %d", code)
	}
	if n := len(e.events(audit.TokenCreate)); n != 0 {
		t.Fatalf("refused request had side effects: %d tokens", n)
	}
	if code := post(csrf); code != 201 {
		t.Fatalf("cookie POST with the CSRF token: %d", code)
	}
	// Safe methods need none.
	resp, _ := c.Get(e.url + "/api/v1/me")
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET with session: %d", resp.StatusCode)
	}
	// A form post (no JSON content type) cannot log in cross-site.
	resp, _ = client.Post(e.url+"/api/v1/auth/login", "application/x-www-form-urlencoded", strings.NewReader("username=carol&password="+pw))
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("form login: %d", resp.StatusCode)
	}
}

func TestFirstLoginMustChangePassword(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.token("admin", e.srv.AdminPassword)
	code, out, _ := e.call("GET", "/api/v1/users", tok, nil)
	if code != 403 || errCode(out) != "password_change_required" {
		t.Fatalf("before change: %d %v", code, out)
	}
	if code, out, _ := e.call("GET", "/api/v1/me", tok, nil); code != 200 || out["must_change_password"] != true {
		t.Fatalf("me before change: %d %v", code, out)
	}
	code, out, _ = e.call("POST", "/api/v1/auth/password", tok, api.PasswordRequest{CurrentPassword: e.srv.AdminPassword, NewPassword: "short"})
	if code != 400 || out["error"].(map[string]any)["field"] != "new_password" {
		t.Fatalf("short password: %d %v", code, out)
	}
	if code, _, _ := e.call("POST", "/api/v1/auth/password", tok, api.PasswordRequest{CurrentPassword: e.srv.AdminPassword, NewPassword: "a-much-better-password"}); code != 204 {
		t.Fatalf("change: %d", code)
	}
	if code, _, _ := e.call("GET", "/api/v1/users", tok, nil); code != 200 {
		t.Fatalf("after change: %d", code)
	}
}

// TestEveryRouteNeedsAuthentication walks the route table, so a route
// added later cannot skip authentication.
func TestEveryRouteNeedsAuthentication(t *testing.T) {
	e := newEnv(t, nil)
	ids := regexp.MustCompile(`\{[^}]+\}`)
	before, _ := e.srv.Store.AuditSize(context.Background())
	n := 0
	for _, rt := range api.Routes() {
		if rt.Public {
			continue
		}
		n++
		path := ids.ReplaceAllString(rt.Path, "x")
		code, out, _ := e.call(rt.Method, path, "", map[string]any{})
		if code != 401 || errCode(out) != "unauthenticated" {
			t.Errorf("%s %s without credentials: %d %v", rt.Method, rt.Path, code, out)
		}
		if code, _, _ := e.call(rt.Method, path, "alt_bogus", map[string]any{}); code != 401 {
			t.Errorf("%s %s with a bogus token: %d", rt.Method, rt.Path, code)
		}
	}
	if n < 8 {
		t.Fatalf("only %d protected routes", n)
	}
	if after, _ := e.srv.Store.AuditSize(context.Background()); after != before {
		t.Fatal("unauthenticated calls changed state")
	}
}

func TestCLILoginAndAdminFlow(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.token("admin", e.srv.AdminPassword)
	e.call("POST", "/api/v1/auth/password", tok, api.PasswordRequest{CurrentPassword: e.srv.AdminPassword, NewPassword: "admin-password-42"})
	// admin is the only admin: the change is in force at once.
	code, out, _ := e.call("POST", "/api/v1/users", tok, api.CreateUserRequest{Username: "frank", Groups: []string{"qa"}})
	if code != 200 || out["change"].(map[string]any)["status"] != "approved" {
		t.Fatalf("create user: %d %v", code, out)
	}
	otp := out["one_time_password"].(string)
	if code, out, _ := e.call("POST", "/api/v1/users", tok, api.CreateUserRequest{Username: "frank"}); code != 409 || errCode(out) != "conflict" {
		t.Fatalf("duplicate user: %d %v", code, out)
	}
	if code, out, _ := e.call("POST", "/api/v1/users", tok, api.CreateUserRequest{Username: "Bad Name"}); code != 400 || out["error"].(map[string]any)["field"] != "username" {
		t.Fatalf("bad username: %d %v", code, out)
	}
	if code, _, _ := e.call("POST", "/api/v1/groups/ops/members", tok, api.MemberRequest{Username: "frank"}); code != 200 {
		t.Fatal(code)
	}
	ftok := e.token("frank", otp)
	_, me, _ := e.call("GET", "/api/v1/me", ftok, nil)
	if me["must_change_password"] != true || len(me["groups"].([]any)) != 2 {
		t.Fatalf("frank: %v", me)
	}
	if code, _, _ := e.call("POST", "/api/v1/users", tok, map[string]any{"username": "x", "admin": true}); code != 400 {
		t.Fatalf("unknown JSON field accepted: %d", code)
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	e := newEnv(t, nil)
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ready"} {
		resp, err := client.Get(e.url + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != want {
			t.Fatalf("%s: %d %q", path, resp.StatusCode, b)
		}
	}
	e.call("GET", "/api/v1/me", "", nil)
	resp, _ := client.Get(e.url + "/metrics")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`airlock_http_requests_total{code="401",method="GET",route="GET /api/v1/me"} 1`,
		`airlock_http_request_duration_seconds_bucket{method="GET",route="GET /api/v1/me"`,
		`go_sql_open_connections{db_name="sqlite_writer"}`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	code, out, resp2 := e.call("GET", "/api/v1/nothing-here", "", nil)
	if code != 404 || errCode(out) != "not_found" || resp2.Header.Get("X-Request-Id") == "" {
		t.Fatalf("unknown path: %d %v", code, out)
	}
	if resp2.Header.Get("Content-Security-Policy") == "" || resp2.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatal("security headers missing")
	}
}

func TestEveryRouteIsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, rt := range api.Routes() {
		if !strings.Contains(string(doc), "| "+rt.Method+" | `"+rt.Path+"` |") {
			t.Errorf("docs/api.md does not document %s %s", rt.Method, rt.Path)
		}
	}
}
