package api_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/config"
)

// idp is a real OIDC provider (mockoidc) in the test process, with a hook
// to replace the ID token it issues.
type idp struct {
	m      *mockoidc.MockOIDC
	mu     sync.Mutex
	nonce  string                             // from the last authorize request
	forge  func(nonce string) (string, error) // nil: leave the token alone
	forged int
}

func newIDP(t *testing.T) *idp {
	t.Helper()
	m, err := mockoidc.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	p := &idp{m: m}
	err = m.AddMiddleware(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == mockoidc.AuthorizationEndpoint {
				p.mu.Lock()
				p.nonce = r.URL.Query().Get("nonce")
				p.mu.Unlock()
			}
			p.mu.Lock()
			forge := p.forge
			p.mu.Unlock()
			if r.URL.Path != mockoidc.TokenEndpoint || forge == nil {
				next.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			var body map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Code != 200 {
				w.WriteHeader(rec.Code)
				w.Write(rec.Body.Bytes())
				return
			}
			tok, err := forge(p.nonce)
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			body["id_token"] = tok
			p.mu.Lock()
			p.forged++
			p.mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(body)
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ln, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Shutdown() })
	return p
}

func ssoEnv(t *testing.T) (*env, *idp) {
	p := newIDP(t)
	cfg := p.m.Config()
	e := newEnv(t, func(c *config.Config) {
		c.OIDC.Issuer = cfg.Issuer
		c.OIDC.ClientID = cfg.ClientID
		c.OIDC.ClientSecret = cfg.ClientSecret
		c.OIDC.GroupMap = map[string]string{"idp-ops": "ops", "idp-sec": "security"}
		c.Login.AuditWindow = 0 // every refused callback is an event of its own
	})
	return e, p
}

// ssoLogin drives the browser side of the flow and returns the client,
// the final status, and whether a session cookie was set.
func ssoLogin(t *testing.T, e *env) (*http.Client, int) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: client.Timeout}
	resp, err := c.Get(e.url + "/auth/oidc/login")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return c, resp.StatusCode
}

func me(t *testing.T, e *env, c *http.Client) (int, map[string]any) {
	resp, err := c.Get(e.url + "/api/v1/me")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func TestSSOLoginMapsGroups(t *testing.T) {
	e, p := ssoEnv(t)
	p.m.QueueUser(&mockoidc.MockUser{Subject: "sub-gina", Email: "gina@example.com", PreferredUsername: "gina",
		Groups: []string{"idp-ops", "idp-unmapped"}})
	c, code := ssoLogin(t, e)
	if code != 200 {
		t.Fatalf("sso flow ended with %d", code)
	}
	code, out := me(t, e, c)
	if code != 200 || out["username"] != "gina" {
		t.Fatalf("me after sso: %d %v", code, out)
	}
	if gs, _ := json.Marshal(out["groups"]); string(gs) != `["ops"]` {
		t.Fatalf("groups = %s, want only the mapped one", gs)
	}
	logins := e.events(audit.UserLogin)
	if len(logins) != 1 || !strings.Contains(string(logins[0].Details), `"method":"sso"`) {
		t.Fatalf("sso login not audited: %v", logins)
	}
	// The next login with fewer groups drops the SSO membership.
	p.m.QueueUser(&mockoidc.MockUser{Subject: "sub-gina", Email: "gina@example.com", PreferredUsername: "gina", Groups: []string{"idp-sec"}})
	c, _ = ssoLogin(t, e)
	if _, out := me(t, e, c); func() string { b, _ := json.Marshal(out["groups"]); return string(b) }() != `["security"]` {
		t.Fatalf("groups after second login: %v", out["groups"])
	}
}

func TestSSORejectsBadIDTokens(t *testing.T) {
	e, p := ssoEnv(t)
	cfg := p.m.Config()
	other, err := mockoidc.RandomKeypair(2048)
	if err != nil {
		t.Fatal(err)
	}
	claims := func(nonce string) jwt.MapClaims {
		now := time.Now()
		return jwt.MapClaims{"iss": cfg.Issuer, "aud": cfg.ClientID, "sub": "sub-mallory", "preferred_username": "mallory",
			"nonce": nonce, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "groups": []string{"idp-ops"}}
	}
	cases := map[string]func(nonce string) (string, error){
		"control": func(n string) (string, error) { return p.m.Keypair.SignJWT(claims(n)) },
		"wrong audience": func(n string) (string, error) {
			c := claims(n)
			c["aud"] = "another-client"
			return p.m.Keypair.SignJWT(c)
		},
		"wrong issuer": func(n string) (string, error) {
			c := claims(n)
			c["iss"] = "https://evil.example/oidc"
			return p.m.Keypair.SignJWT(c)
		},
		"wrong nonce": func(n string) (string, error) {
			c := claims(n)
			c["nonce"] = "replayed-" + n
			return p.m.Keypair.SignJWT(c)
		},
		"expired": func(n string) (string, error) {
			c := claims(n)
			c["iat"], c["exp"] = time.Now().Add(-2*time.Hour).Unix(), time.Now().Add(-time.Hour).Unix()
			return p.m.Keypair.SignJWT(c)
		},
		"signed by another key": func(n string) (string, error) { return other.SignJWT(claims(n)) },
	}
	for name, forge := range cases {
		t.Run(name, func(t *testing.T) {
			p.mu.Lock()
			p.forge = forge
			p.mu.Unlock()
			failedBefore := len(e.events(audit.UserLoginFailed))
			c, code := ssoLogin(t, e)
			meCode, _ := me(t, e, c)
			if name == "control" {
				if code != 200 || meCode != 200 {
					t.Fatalf("a well-formed forged-by-the-test token was refused (%d, %d): the harness is broken", code, meCode)
				}
				return
			}
			if code != 401 || meCode != 401 {
				t.Fatalf("login with %s: callback %d, me %d; want both 401", name, code, meCode)
			}
			if got := len(e.events(audit.UserLoginFailed)); got != failedBefore+1 {
				t.Fatalf("refused sso login not audited")
			}
		})
	}
	if p.forged < len(cases) {
		t.Fatalf("only %d of %d forged tokens were served", p.forged, len(cases))
	}
	// State must match too: a callback without the flow cookie fails.
	resp, _ := client.Get(e.url + "/auth/oidc/callback?state=x&code=y")
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("callback without flow cookie: %d", resp.StatusCode)
	}
}
