package identity_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/store/sqlite"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// groupAuthorizer is a fake for unit tests: members of "admins" may do
// every system action. The real authorizer is tested in authz and api.
type groupAuthorizer struct{}

func (g groupAuthorizer) AllowedSystem(ctx context.Context, p *identity.Principal, action string) bool {
	return g.CheckSystem(ctx, p, action) == nil
}

func (groupAuthorizer) CheckSystem(_ context.Context, p *identity.Principal, _ string) error {
	if p.InGroup("admins") {
		return nil
	}
	return airlock.Errorf(airlock.Forbidden, "not permitted")
}

func setup(t *testing.T) (*identity.Service, store.Store, *clock) {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "a.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	c := &clock{t: time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)}
	svc := identity.New(s, identity.DefaultConfig(), slog.New(slog.NewTextHandler(io.Discard, nil)), c.now)
	svc.SetAuthorizer(groupAuthorizer{})
	return svc, s, c
}

func events(t *testing.T, s store.Store, typ string) []*store.AuditEvent {
	t.Helper()
	evs, err := s.AuditList(context.Background(), store.AuditListParams{After: -1, Type: typ, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func TestPasswordHash(t *testing.T) {
	h := identity.HashPassword("correct horse battery")
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q is not argon2id with the chosen parameters", h)
	}
	if ok, err := identity.VerifyPassword(h, "correct horse battery"); !ok || err != nil {
		t.Fatalf("verify right password: %v %v", ok, err)
	}
	if ok, _ := identity.VerifyPassword(h, "correct horse batterY"); ok {
		t.Fatal("wrong password verified")
	}
	if h == identity.HashPassword("correct horse battery") {
		t.Fatal("two hashes of one password are equal: no salt")
	}
}

func TestBootstrapOnce(t *testing.T) {
	svc, s, _ := setup(t)
	ctx := context.Background()
	pw, err := svc.Bootstrap(ctx)
	if err != nil || len(pw) < identity.MinPasswordLength {
		t.Fatalf("bootstrap: %q %v", pw, err)
	}
	u, err := svc.PasswordLogin(ctx, "admin", pw)
	if err != nil || !u.MustChangePassword {
		t.Fatalf("admin login: %+v %v", u, err)
	}
	if pw2, err := svc.Bootstrap(ctx); pw2 != "" || err != nil {
		t.Fatalf("second bootstrap created again: %q %v", pw2, err)
	}
	if n := len(events(t, s, audit.UserCreate)); n != 1 {
		t.Fatalf("%d user.create events", n)
	}
}

func TestLoginThrottledAndAudited(t *testing.T) {
	svc, s, c := setup(t)
	ctx := audit.WithMeta(context.Background(), audit.Meta{SourceAddr: "192.0.2.1"})
	if _, err := svc.CreateUser(ctx, audit.System, identity.CreateUserParams{Username: "alice", Password: "alice-password-1"}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		_, err := svc.PasswordLogin(ctx, "alice", "wrong")
		if airlock.ErrorKind(err) != airlock.Unauthenticated || airlock.ErrorMessage(err) != "invalid username or password" {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	// The fourth attempt from the source is throttled even with the
	// right password, for a second.
	if _, err := svc.PasswordLogin(ctx, "alice", "alice-password-1"); airlock.ErrorKind(err) != airlock.TooManyRequests || identity.RetryAfter(err) != time.Second {
		t.Fatalf("fourth attempt: %v", err)
	}
	// The first failure is audited at once; the rest of the source's
	// minute is counted, and recorded with its count once it is over.
	if n, th := len(events(t, s, audit.UserLoginFailed)), len(events(t, s, audit.UserLoginThrottled)); n != 1 || th != 0 {
		t.Fatalf("%d failed-login and %d throttled events, want 1 and 0", n, th)
	}
	c.add(time.Minute)
	if err := svc.FlushLoginReports(ctx); err != nil {
		t.Fatal(err)
	}
	sum := events(t, s, audit.UserLoginFailures)
	if len(sum) != 1 || sum[0].SourceAddr != "192.0.2.1" ||
		!strings.Contains(string(sum[0].Details), `"attempts":3,"failed":2`) || !strings.Contains(string(sum[0].Details), `"throttled":1,"usernames":["alice"]`) {
		t.Fatalf("summary events: %+v", sum)
	}
	if _, err := svc.PasswordLogin(ctx, "alice", "alice-password-1"); err != nil {
		t.Fatalf("after the delay: %v", err)
	}
	// An unknown user fails the same way as a wrong password.
	_, err := svc.PasswordLogin(ctx, "mallory", "whatever-password")
	if airlock.ErrorMessage(err) != "invalid username or password" {
		t.Fatalf("unknown user: %v", err)
	}
}

func TestAddressThrottleAcrossAccounts(t *testing.T) {
	svc, _, _ := setup(t)
	ctx := audit.WithMeta(context.Background(), audit.Meta{SourceAddr: "198.51.100.7"})
	for i := range 20 {
		svc.PasswordLogin(ctx, "user"+string(rune('a'+i)), "x")
	}
	if _, err := svc.PasswordLogin(ctx, "zed", "x"); airlock.ErrorKind(err) != airlock.TooManyRequests {
		t.Fatalf("password spray from one address not throttled: %v", err)
	}
}

func TestSessionExpiry(t *testing.T) {
	svc, _, c := setup(t)
	ctx := context.Background()
	u, _ := svc.CreateUser(ctx, audit.System, identity.CreateUserParams{Username: "bob", Password: "bob-password-12"})
	secret, _, err := svc.NewSession(ctx, u, "password", "")
	if err != nil {
		t.Fatal(err)
	}
	p, err := svc.Authenticate(ctx, secret)
	if err != nil || p.Username != "bob" || p.Via != "session" {
		t.Fatalf("authenticate: %+v %v", p, err)
	}
	c.add(31 * time.Minute) // idle timeout is 30m
	if _, err := svc.Authenticate(ctx, secret); airlock.ErrorKind(err) != airlock.Unauthenticated {
		t.Fatalf("idle session accepted: %v", err)
	}

	secret, _, _ = svc.NewSession(ctx, u, "password", "")
	for range 25 { // active every 29 minutes for over 12 hours
		c.add(29 * time.Minute)
		if _, err := svc.Authenticate(ctx, secret); err != nil {
			break
		}
	}
	if _, err := svc.Authenticate(ctx, secret); airlock.ErrorKind(err) != airlock.Unauthenticated {
		t.Fatalf("session past its absolute expiry accepted: %v", err)
	}

	// A new login rotates the session: the one presented is revoked.
	old, _, _ := svc.NewSession(ctx, u, "password", "")
	fresh, _, _ := svc.NewSession(ctx, u, "password", old)
	if _, err := svc.Authenticate(ctx, old); err == nil {
		t.Fatal("session survived a new login in the same browser")
	}
	if _, err := svc.Authenticate(ctx, fresh); err != nil {
		t.Fatal(err)
	}
}

func TestTokenLifecycle(t *testing.T) {
	svc, s, c := setup(t)
	ctx := context.Background()
	u, _ := svc.CreateUser(ctx, audit.System, identity.CreateUserParams{Username: "carol", Password: "carol-password-1"})
	owner := &identity.Principal{UserID: u.ID, Username: u.Username}
	secret, tok, err := svc.CreateToken(ctx, owner, "ci", time.Hour)
	if err != nil || !strings.HasPrefix(secret, "alt_") {
		t.Fatalf("create: %q %v", secret, err)
	}
	if strings.Contains(string(tok.Hash), secret) {
		t.Fatal("token stored in clear")
	}
	p, err := svc.Authenticate(ctx, secret)
	if err != nil || p.UserID != u.ID || p.TokenID != tok.ID {
		t.Fatalf("authenticate: %+v %v", p, err)
	}
	c.add(61 * time.Minute)
	if _, err := svc.Authenticate(ctx, secret); airlock.ErrorKind(err) != airlock.Unauthenticated {
		t.Fatalf("expired token accepted: %v", err)
	}
	secret, tok, _ = svc.CreateToken(ctx, owner, "ci2", time.Hour)
	other, _ := svc.CreateUser(ctx, audit.System, identity.CreateUserParams{Username: "mallory", Password: "mallory-password"})
	err = svc.RevokeToken(ctx, &identity.Principal{UserID: other.ID, Username: "mallory"}, tok.ID)
	if airlock.ErrorKind(err) != airlock.NotFound {
		t.Fatalf("another user revoked the token: %v", err)
	}
	if err := svc.RevokeToken(ctx, owner, tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Authenticate(ctx, secret); airlock.ErrorKind(err) != airlock.Unauthenticated {
		t.Fatalf("revoked token accepted: %v", err)
	}
	if len(events(t, s, audit.TokenCreate)) != 2 || len(events(t, s, audit.TokenRevoke)) != 1 {
		t.Fatal("token events missing")
	}
	if _, _, err := svc.CreateToken(ctx, owner, "forever", 10*365*24*time.Hour); airlock.ErrorField(err) != "ttl" {
		t.Fatalf("token beyond the max lifetime: %v", err)
	}
}

func TestChangePassword(t *testing.T) {
	svc, _, _ := setup(t)
	ctx := context.Background()
	pw, _ := svc.Bootstrap(ctx)
	u, _ := svc.PasswordLogin(ctx, "admin", pw)
	other, _, _ := svc.NewSession(ctx, u, "password", "")
	cur, sess, _ := svc.NewSession(ctx, u, "password", "")
	p, _ := svc.Authenticate(ctx, cur)
	if !p.MustChangePassword {
		t.Fatal("bootstrap admin need not change the password")
	}
	if err := svc.ChangePassword(ctx, p, "not-the-password", "a-new-password-1"); airlock.ErrorField(err) != "current_password" {
		t.Fatalf("wrong current password: %v", err)
	}
	if err := svc.ChangePassword(ctx, p, pw, "short"); airlock.ErrorField(err) != "new_password" {
		t.Fatalf("short password: %v", err)
	}
	if err := svc.ChangePassword(ctx, p, pw, "a-new-password-1"); err != nil {
		t.Fatal(err)
	}
	if p, err := svc.Authenticate(ctx, cur); err != nil || p.MustChangePassword || p.SessionID != sess.ID {
		t.Fatalf("current session after change: %+v %v", p, err)
	}
	if _, err := svc.Authenticate(ctx, other); err == nil {
		t.Fatal("other session survived a password change")
	}
	if _, err := svc.PasswordLogin(ctx, "admin", pw); err == nil {
		t.Fatal("old password still works")
	}
}

func TestSSOLoginMapsGroups(t *testing.T) {
	svc, s, _ := setup(t)
	ctx := context.Background()
	in := identity.SSOUser{Issuer: "https://idp", Subject: "42", Username: "frank", Email: "frank@example.com", Groups: []string{"dev", "qa"}}
	u, err := svc.SSOLogin(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	admin := &identity.Principal{UserID: "usr_x", Username: "root", Groups: []string{"admins"}}
	// frank came from SSO, so admin is not setting up alone: a second
	// admin approves.
	res, err := svc.ProposeUserChange(ctx, admin, identity.UserChangeParams{Kind: store.UserChangeAddMember, Username: "frank", Group: "oncall"})
	if err != nil {
		t.Fatal(err)
	}
	second := &identity.Principal{UserID: "usr_y", Username: "root2", Groups: []string{"admins"}}
	if _, err := svc.DecideUserChange(ctx, second, res.Change.ID, "approve", ""); err != nil {
		t.Fatal(err)
	}
	in.Groups = []string{"dev"}
	if u2, err := svc.SSOLogin(ctx, in); err != nil || u2.ID != u.ID {
		t.Fatalf("second login: %v %v", u2, err)
	}
	gs, _ := s.GroupListForUser(ctx, u.ID)
	var names []string
	for _, g := range gs {
		names = append(names, g.Name)
	}
	if strings.Join(names, ",") != "dev,oncall" {
		t.Fatalf("groups after sync = %v, want dev (sso) and oncall (manual)", names)
	}
	// A local account is never taken over by an SSO identity with its name.
	svc.CreateUser(ctx, audit.System, identity.CreateUserParams{Username: "gina", Password: "gina-password-12"})
	if _, err := svc.SSOLogin(ctx, identity.SSOUser{Issuer: "https://idp", Subject: "43", Username: "gina"}); airlock.ErrorKind(err) != airlock.Conflict {
		t.Fatalf("sso took over a local account: %v", err)
	}
}

// TestDisableUser: disabling ends the user's sessions and revokes their
// tokens at once (re-enabling restores neither); only user managers may,
// and not on themselves; each change is audited.
func TestDisableUser(t *testing.T) {
	svc, s, _ := setup(t)
	ctx := context.Background()
	admin, _ := svc.CreateUser(ctx, audit.System, identity.CreateUserParams{Username: "root", Password: "root-password-1", Groups: []string{"admins"}})
	u, _ := svc.CreateUser(ctx, audit.System, identity.CreateUserParams{Username: "frank", Password: "frank-password-1"})
	ap := &identity.Principal{UserID: admin.ID, Username: "root", Groups: []string{"admins"}}
	fp := &identity.Principal{UserID: u.ID, Username: "frank"}
	session, _, err := svc.NewSession(ctx, u, "password", "")
	if err != nil {
		t.Fatal(err)
	}
	token, _, _ := svc.CreateToken(ctx, fp, "ci", time.Hour)

	if err := svc.Disable(ctx, fp, "root"); airlock.ErrorKind(err) != airlock.Forbidden {
		t.Fatalf("frank disables root: %v", err)
	}
	if err := svc.Disable(ctx, ap, "root"); airlock.ErrorKind(err) != airlock.Conflict {
		t.Fatalf("root disables himself: %v", err)
	}
	if err := svc.Disable(ctx, ap, "frank"); err != nil {
		t.Fatal(err)
	}
	for name, secret := range map[string]string{"session": session, "token": token} {
		if _, err := svc.Authenticate(ctx, secret); airlock.ErrorKind(err) != airlock.Unauthenticated {
			t.Errorf("%s of a disabled user: %v", name, err)
		}
	}
	if _, err := svc.PasswordLogin(ctx, "frank", "frank-password-1"); err == nil {
		t.Error("a disabled user signed in")
	}
	// Re-enabling is a change a second admin approves.
	res, err := svc.ProposeUserChange(ctx, ap, identity.UserChangeParams{Kind: store.UserChangeEnable, Username: "frank"})
	if err != nil {
		t.Fatal(err)
	}
	second := &identity.Principal{UserID: "usr_y", Username: "root2", Groups: []string{"admins"}}
	if _, err := svc.DecideUserChange(ctx, second, res.Change.ID, "approve", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Authenticate(ctx, token); err == nil {
		t.Error("re-enabling brought a revoked token back")
	}
	if _, err := svc.PasswordLogin(ctx, "frank", "frank-password-1"); err != nil {
		t.Errorf("re-enabled user cannot sign in: %v", err)
	}
	evs := events(t, s, audit.UserUpdate)
	if len(evs) != 2 || !strings.Contains(string(evs[0].Details), `"tokens_revoked":1`) || evs[0].ActorName != "root" {
		t.Fatalf("user.update events: %+v", evs)
	}
}

// TestThrottleIsSharedByReplicas: two services on one store (two
// replicas) count failed logins together, so spreading attempts over
// replicas gains nothing; a good password on either clears the account.
func TestThrottleIsSharedByReplicas(t *testing.T) {
	a, s, c := setup(t)
	b := identity.New(s, identity.DefaultConfig(), slog.New(slog.NewTextHandler(io.Discard, nil)), c.now)
	ctx := audit.WithMeta(context.Background(), audit.Meta{SourceAddr: "192.0.2.7"})
	if _, err := a.CreateUser(ctx, audit.System, identity.CreateUserParams{Username: "alice", Password: "alice-password-1"}); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		svc := []*identity.Service{a, b}[i%2]
		if _, err := svc.PasswordLogin(ctx, "alice", "wrong"); airlock.ErrorKind(err) != airlock.Unauthenticated {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	// A good password on b clears the account (its session records it).
	u, err := b.PasswordLogin(ctx, "alice", "alice-password-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.NewSession(ctx, u, "password", ""); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		svc := []*identity.Service{a, b}[i%2]
		if _, err := svc.PasswordLogin(ctx, "alice", "wrong"); airlock.ErrorKind(err) != airlock.Unauthenticated {
			t.Fatalf("failure %d after the reset: %v", i, err)
		}
	}
	for _, svc := range []*identity.Service{a, b} {
		if _, err := svc.PasswordLogin(ctx, "alice", "alice-password-1"); airlock.ErrorKind(err) != airlock.TooManyRequests {
			t.Fatalf("after 3 failures spread over two replicas: %v", err)
		}
	}
	c.add(time.Second)
	if _, err := a.PasswordLogin(ctx, "alice", "alice-password-1"); err != nil {
		t.Fatalf("after the delay: %v", err)
	}
}

// TestCachedPrincipalDroppedOnChange: a token's principal is cached
// (identity.AuthCacheTTL) but never outlives a change on this replica:
// after a revoke, a disable or a group change the next request sees it.
func TestCachedPrincipalDroppedOnChange(t *testing.T) {
	svc, _, _ := setup(t)
	ctx := context.Background()
	u, _ := svc.CreateUser(ctx, audit.System, identity.CreateUserParams{Username: "carol", Password: "carol-password-1"})
	owner := &identity.Principal{UserID: u.ID, Username: u.Username}
	secret, tok, _ := svc.CreateToken(ctx, owner, "ci", time.Hour)
	for range 2 { // the second answer comes from the cache
		if _, err := svc.Authenticate(ctx, secret); err != nil {
			t.Fatal(err)
		}
	}
	if err := svc.RevokeToken(ctx, owner, tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Authenticate(ctx, secret); airlock.ErrorKind(err) != airlock.Unauthenticated {
		t.Fatalf("a revoked token served from the cache: %v", err)
	}
	secret, _, _ = svc.CreateToken(ctx, owner, "ci2", time.Hour)
	if _, err := svc.Authenticate(ctx, secret); err != nil {
		t.Fatal(err)
	}
	admin := &identity.Principal{UserID: "usr_admin", Username: "admin", Groups: []string{"admins"}}
	if err := svc.Disable(ctx, admin, "carol"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Authenticate(ctx, secret); airlock.ErrorKind(err) != airlock.Unauthenticated {
		t.Fatalf("a disabled user's token served from the cache: %v", err)
	}
}
