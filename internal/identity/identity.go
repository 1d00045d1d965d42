// Package identity owns who a caller is: local users with argon2id
// passwords, groups, API tokens, browser sessions, login throttling and
// single sign-on users. Every login, failed login, token creation and
// revocation is an audit event written in the same transaction as the
// change.
//
// It knows nothing of HTTP: the api package turns requests into calls
// here, and the principal it returns travels in the context.
package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/store"
)

// Config holds the identity settings.
type Config struct {
	SessionIdleTimeout     time.Duration
	SessionAbsoluteTimeout time.Duration
	TokenDefaultTTL        time.Duration
	TokenMaxTTL            time.Duration
	AdminGroup             string
	Throttle               ThrottleConfig
}

// DefaultConfig returns the defaults documented in docs/configuration.md.
func DefaultConfig() Config {
	return Config{
		SessionIdleTimeout:     30 * time.Minute,
		SessionAbsoluteTimeout: 12 * time.Hour,
		TokenDefaultTTL:        90 * 24 * time.Hour,
		TokenMaxTTL:            366 * 24 * time.Hour,
		AdminGroup:             "admins",
		Throttle:               DefaultThrottleConfig(),
	}
}

// Service is the identity service.
type Service struct {
	store store.Store
	cfg   Config
	log   *slog.Logger
	now   func() time.Time
	authz Authorizer
	// dummyHash is verified against when the user does not exist, so a
	// failed login takes the same time either way. Made on first use.
	dummyOnce sync.Once
	dummyHash string
	// loginTurns serializes password attempts per account.
	loginTurns turns
	// auth caches API tokens' principals (authcache.go).
	auth authCache
}

// New returns a Service. now may be nil for time.Now.
func New(s store.Store, cfg Config, log *slog.Logger, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{store: s, cfg: cfg, log: log, now: now}
}

// Principal is an authenticated caller.
type Principal struct {
	UserID             string
	Username           string
	Groups             []string
	MustChangePassword bool
	// Service marks a service account: it holds API tokens only, and
	// never signs in, approves or reviews, whatever policy says.
	Service bool
	// Via is "session" or "token"; SessionID or TokenID names which.
	Via       string
	SessionID string
	TokenID   string
	// Scope limits a token's principal beyond policy (ParseScope); nil
	// for sessions and unscoped tokens.
	Scope []ScopeEntry
}

// Actor returns the audit actor for p.
func (p *Principal) Actor() audit.Actor { return audit.Actor{ID: p.UserID, Name: p.Username} }

// PeopleOnly refuses a service account what only a person may do
// (what: "approve runs", "review versions"): a Forbidden error saying
// so, or nil. It reads the account's kind from r too, so a principal
// built without it is refused all the same.
func PeopleOnly(ctx context.Context, r store.Reader, p *Principal, what string) (*airlock.Error, error) {
	service := p.Service
	if !service {
		u, err := r.UserGetByID(ctx, p.UserID)
		if err != nil && airlock.ErrorKind(err) != airlock.NotFound {
			return nil, err
		}
		service = u != nil && u.Kind == store.AccountService
	}
	if service {
		return airlock.Errorf(airlock.Forbidden, "a service account cannot %s", what), nil
	}
	return nil, nil
}

// InGroup reports whether p is a member of group.
func (p *Principal) InGroup(group string) bool { return slices.Contains(p.Groups, group) }

type principalKey struct{}

// WithPrincipal returns ctx carrying p. Only the authentication
// middleware calls it.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal in ctx, or nil.
func PrincipalFrom(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}

// Authorizer checks system-wide actions (manageUsers) for the service.
// It is the authz package's; the interface keeps identity free of it.
type Authorizer interface {
	CheckSystem(ctx context.Context, p *Principal, action string) error
	// AllowedSystem is CheckSystem without auditing a denial.
	AllowedSystem(ctx context.Context, p *Principal, action string) bool
}

// SetAuthorizer installs the authorizer. Until it is set, every check
// that needs one is refused.
func (s *Service) SetAuthorizer(a Authorizer) { s.authz = a }

// manageUsers is the policy action that guards user administration.
const manageUsers = "manageUsers"

func (s *Service) checkManageUsers(ctx context.Context, p *Principal) error {
	if s.authz == nil {
		return errForbidden
	}
	return s.authz.CheckSystem(ctx, p, manageUsers)
}

var usernameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// ValidUsername reports whether name is a valid username or group name.
func ValidUsername(name string) bool { return usernameRE.MatchString(name) }

func validatePassword(field, pw string) error {
	if len(pw) < MinPasswordLength {
		return airlock.FieldError(field, "must be at least %d characters", MinPasswordLength)
	}
	if len(pw) > 1024 {
		return airlock.FieldError(field, "must be at most 1024 characters")
	}
	return nil
}

// Bootstrap creates the admin user and admin group on a store that has no
// users yet, and returns the one-time password (empty when nothing was
// created). The password must be changed at first login.
func (s *Service) Bootstrap(ctx context.Context) (string, error) {
	users, err := s.store.UserList(ctx)
	if err != nil {
		return "", err
	}
	if len(users) > 0 {
		return "", nil
	}
	pw := RandomPassword()
	_, err = s.CreateUser(ctx, audit.System, CreateUserParams{
		Username: "admin", DisplayName: "Administrator", Password: pw, MustChangePassword: true,
		Groups: []string{s.cfg.AdminGroup},
	})
	if airlock.ErrorKind(err) == airlock.Conflict {
		// Another replica starting on the same empty database created it
		// first (and printed its password).
		if users, lerr := s.store.UserList(ctx); lerr == nil && len(users) > 0 {
			return "", nil
		}
	}
	if err != nil {
		return "", fmt.Errorf("bootstrap admin: %w", err)
	}
	return pw, nil
}

// CreateUserParams are the inputs of CreateUser.
type CreateUserParams struct {
	Username           string
	DisplayName        string
	Email              string
	Password           string // empty: no password login (SSO only)
	MustChangePassword bool
	Groups             []string // created when missing
}

// CreateUser creates a local user and its group memberships at once,
// without a second admin: for the first admin (Bootstrap) and the demo.
// People propose users instead (ProposeUserChange). An actor with a user
// ID is linked to the account, as if it had proposed it.
func (s *Service) CreateUser(ctx context.Context, actor audit.Actor, p CreateUserParams) (*store.User, error) {
	if !ValidUsername(p.Username) {
		return nil, airlock.FieldError("username", "must be 1-63 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	now := s.now().UTC()
	u := &store.User{ID: airlock.NewID(airlock.PrefixUser, now), Username: p.Username, DisplayName: p.DisplayName,
		Email: p.Email, MustChangePassword: p.MustChangePassword, CreatedAt: now, UpdatedAt: now}
	if p.Password != "" {
		if err := validatePassword("password", p.Password); err != nil {
			return nil, err
		}
		u.PasswordHash = HashPassword(p.Password)
	}
	for _, g := range p.Groups {
		if !ValidUsername(g) {
			return nil, airlock.FieldError("groups", "%q is not a valid group name", g)
		}
	}
	err := s.update(ctx, func(tx store.Tx) error {
		if err := tx.UserInsert(ctx, u); err != nil {
			if airlock.ErrorKind(err) == airlock.Conflict {
				return &airlock.Error{Kind: airlock.Conflict, Field: "username", Message: fmt.Sprintf("user %q already exists", p.Username)}
			}
			return err
		}
		e := audit.New(ctx, now, audit.UserCreate, actor, u.ID, audit.Success,
			map[string]any{"username": u.Username, "groups": p.Groups, "must_change_password": u.MustChangePassword})
		if err := tx.AuditAppend(ctx, e); err != nil {
			return err
		}
		if err := linkTo(ctx, tx, actor, u, "created by "+actor.Name, e, now); err != nil {
			return err
		}
		for _, name := range p.Groups {
			e, err := s.addMemberEvent(ctx, tx, actor, name, u, store.MemberManual, nil)
			if err != nil {
				return err
			}
			if err := linkTo(ctx, tx, actor, u, fmt.Sprintf("granted %s by %s", name, actor.Name), e, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// linkTo records that a person (not the system or the demo, which have
// no user ID) created u or granted it a group.
func linkTo(ctx context.Context, tx store.Tx, by audit.Actor, u *store.User, reason string, e *store.AuditEvent, now time.Time) error {
	if by.ID == "" || by.ID == u.ID {
		return nil
	}
	return tx.AccountLinkAdd(ctx, &store.AccountLink{UserID: u.ID, ByID: by.ID, ByName: by.Name, Reason: reason, EventID: e.ID, CreatedAt: now})
}

// ensureGroup returns the group named name, creating it when missing.
func (s *Service) ensureGroup(ctx context.Context, tx store.Tx, actor audit.Actor, name string) (*store.Group, error) {
	g, err := tx.GroupGetByName(ctx, name)
	if err == nil {
		return g, nil
	}
	if airlock.ErrorKind(err) != airlock.NotFound {
		return nil, err
	}
	now := s.now().UTC()
	g = &store.Group{ID: airlock.NewID(airlock.PrefixGroup, now), Name: name, CreatedAt: now}
	if err := tx.GroupInsert(ctx, g); err != nil {
		return nil, err
	}
	return g, tx.AuditAppend(ctx, audit.New(ctx, now, audit.GroupCreate, actor, g.ID, audit.Success, map[string]any{"name": name}))
}

// addMemberEvent adds u to group with extra in its audit event's details,
// and returns the event.
func (s *Service) addMemberEvent(ctx context.Context, tx store.Tx, actor audit.Actor, group string, u *store.User, source string,
	extra map[string]any) (*store.AuditEvent, error) {
	g, err := s.ensureGroup(ctx, tx, actor, group)
	if err != nil {
		return nil, err
	}
	now := s.now().UTC()
	if err := tx.GroupMemberAdd(ctx, &store.GroupMember{GroupID: g.ID, UserID: u.ID, Source: source, CreatedAt: now}); err != nil {
		if airlock.ErrorKind(err) == airlock.Conflict {
			return nil, airlock.Errorf(airlock.Conflict, "%s is already a member of %s", u.Username, group)
		}
		return nil, err
	}
	d := map[string]any{"group": group, "user_id": u.ID, "username": u.Username, "source": source}
	maps.Copy(d, extra)
	e := audit.New(ctx, now, audit.GroupMemberAdd, actor, g.ID, audit.Success, d)
	return e, tx.AuditAppend(ctx, e)
}

// Disable disables a user. Needs manageUsers; nobody disables
// themselves. Disabling ends the user's sessions and revokes their API
// tokens at once (a disabled user could not use them anyway; re-enabled,
// they start afresh). A user signing in through SSO stays disabled: the
// provider cannot re-enable them. Enabling again is a change another
// admin approves (ProposeUserChange).
func (s *Service) Disable(ctx context.Context, p *Principal, username string) error {
	if err := s.checkManageUsers(ctx, p); err != nil {
		return err
	}
	return s.update(ctx, func(tx store.Tx) error {
		u, err := tx.UserGetByUsername(ctx, username)
		if err != nil {
			return err
		}
		if u.ID == p.UserID {
			return airlock.Errorf(airlock.Conflict, "you cannot disable yourself")
		}
		if u.Disabled {
			return nil
		}
		now := s.now().UTC()
		u.Disabled, u.UpdatedAt = true, now
		if err := tx.UserUpdate(ctx, u); err != nil {
			return err
		}
		n, err := tx.SessionRevokeForUser(ctx, u.ID, "", now)
		if err != nil {
			return err
		}
		toks, err := tx.TokenListForUser(ctx, u.ID)
		if err != nil {
			return err
		}
		revoked := 0
		for _, t := range toks {
			if t.RevokedAt.IsZero() {
				if err := tx.TokenRevoke(ctx, t.ID, now); err != nil {
					return err
				}
				revoked++
			}
		}
		unlinked, err := unlinkAllChats(ctx, tx, u.ID)
		if err != nil {
			return err
		}
		return tx.AuditAppend(ctx, audit.New(ctx, now, audit.UserUpdate, p.Actor(), u.ID, audit.Success,
			map[string]any{"username": u.Username, "disabled": true, "sessions_ended": n, "tokens_revoked": revoked,
				"chat_links_removed": unlinked}))
	})
}

// RemoveMember removes a user from a group. Needs manageUsers.
func (s *Service) RemoveMember(ctx context.Context, p *Principal, group, username string) error {
	if err := s.checkManageUsers(ctx, p); err != nil {
		return err
	}
	return s.update(ctx, func(tx store.Tx) error {
		u, err := tx.UserGetByUsername(ctx, username)
		if err != nil {
			return err
		}
		g, err := tx.GroupGetByName(ctx, group)
		if err != nil {
			return err
		}
		if group == s.cfg.AdminGroup && u.ID == p.UserID {
			return airlock.Errorf(airlock.Conflict, "admins cannot remove themselves from %s", group)
		}
		if err := tx.GroupMemberRemove(ctx, g.ID, u.ID); err != nil {
			return err
		}
		return tx.AuditAppend(ctx, audit.New(ctx, s.now(), audit.GroupMemberRemove, p.Actor(), g.ID, audit.Success,
			map[string]any{"group": group, "user_id": u.ID, "username": u.Username}))
	})
}

var (
	errForbidden   = airlock.Errorf(airlock.Forbidden, "not permitted")
	errBadLogin    = airlock.Errorf(airlock.Unauthenticated, "invalid username or password")
	errNotLoggedIn = airlock.Errorf(airlock.Unauthenticated, "authentication required")
	errThrottled   = airlock.Errorf(airlock.TooManyRequests, "too many failed logins; try again later")
)

// PasswordLogin checks a username and password. Failures are audited and
// throttled per account and source address (see ThrottleConfig); the
// caller learns only that the login failed, never whether the user
// exists, and, when throttled, how long to wait (RetryAfter).
func (s *Service) PasswordLogin(ctx context.Context, username, password string) (*store.User, error) {
	meta := audit.MetaFrom(ctx)
	// No account has a longer name: what an anonymous caller sends is cut
	// short before it is looked up, counted or audited.
	username = CapName(username)
	// Attempts on one account take turns on this replica, so that each
	// sees the failures recorded before it: parallel guesses cannot all
	// pass the throttle before the first is counted. (Across replicas
	// the bound is the limit per replica.)
	defer s.loginTurns.lock(username)()
	now := s.now()
	if wait, err := s.throttled(ctx, now, username, meta.SourceAddr); err != nil {
		return nil, err
	} else if wait > 0 {
		s.recordLoginFailure(ctx, now, audit.UserLoginThrottled, audit.Denied, nil, username, "throttled", false)
		return nil, errThrottledFor(wait)
	}
	u, err := s.store.UserGetByUsername(ctx, username)
	if err != nil && airlock.ErrorKind(err) != airlock.NotFound {
		return nil, err
	}
	s.dummyOnce.Do(func() { s.dummyHash = HashPassword(RandomPassword()) })
	hash := s.dummyHash
	if u != nil && u.PasswordHash != "" {
		hash = u.PasswordHash
	}
	ok, verr := VerifyPassword(hash, password)
	if errors.Is(verr, ErrBusy) {
		return nil, ErrBusy // not a failed attempt: nothing was checked
	}
	reason := ""
	switch {
	case verr != nil:
		reason = "unreadable password hash"
		s.log.Error("verify password", "user_id", u.ID, "err", verr)
	case u == nil:
		reason = "unknown user"
	case u.Kind == store.AccountService:
		reason = "service account"
	case u.PasswordHash == "":
		reason = "no password set"
	case !ok:
		reason = "wrong password"
	case u.Disabled:
		reason = "user disabled"
	}
	if reason != "" {
		s.recordLoginFailure(ctx, now, audit.UserLoginFailed, audit.Failure, u, username, reason, true)
		return nil, errBadLogin
	}
	return u, nil
}

// recordLoginEvent appends a login event, with change (may be nil: the
// throttle's bookkeeping) in the same transaction.
func (s *Service) recordLoginEvent(ctx context.Context, typ, outcome string, u *store.User, username, reason string, change func(store.Tx) error) {
	actor := audit.Actor{Name: username}
	subject := ""
	if u != nil {
		actor.ID, subject = u.ID, u.ID
	}
	err := s.update(ctx, func(tx store.Tx) error {
		if change != nil {
			if err := change(tx); err != nil {
				return err
			}
		}
		return tx.AuditAppend(ctx, audit.New(ctx, s.now(), typ, actor, subject, outcome, map[string]any{"username": username, "reason": reason}))
	})
	if err != nil {
		s.log.Error("audit login event", "type", typ, "err", err)
	}
}

// RecordSSOFailure audits a refused single sign-on callback. reason is
// for the log and the audit trail, never for the caller.
func (s *Service) RecordSSOFailure(ctx context.Context, reason string) {
	s.recordLoginFailure(ctx, s.now(), audit.UserLoginFailed, audit.Failure, nil, "", "sso: "+reason, false)
}

// NewSession starts a browser session for u and returns the cookie
// secret. previous, when set, is the session the browser presented: it is
// revoked, so a login always rotates the session.
func (s *Service) NewSession(ctx context.Context, u *store.User, method, previous string) (secret string, sess *store.Session, err error) {
	now := s.now().UTC()
	meta := audit.MetaFrom(ctx)
	secret = newSecret("als_")
	sess = &store.Session{ID: airlock.NewID(airlock.PrefixSession, now), UserID: u.ID, Hash: hashSecret(secret),
		Method: method, CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(s.cfg.SessionAbsoluteTimeout),
		SourceAddr: meta.SourceAddr, UserAgent: truncate(meta.UserAgent, 256)}
	err = s.update(ctx, func(tx store.Tx) error {
		if err := enabled(ctx, tx, u.ID); err != nil {
			return err
		}
		if err := person(ctx, tx, u.ID); err != nil {
			return err
		}
		if previous != "" {
			if old, err := tx.SessionGetByHash(ctx, hashSecret(previous)); err == nil && old.RevokedAt.IsZero() {
				if err := tx.SessionRevoke(ctx, old.ID, now); err != nil {
					return err
				}
			}
		}
		if err := tx.SessionInsert(ctx, sess); err != nil {
			return err
		}
		// A good password ends this source's run of failures on the
		// account, not a stranger's elsewhere: the owner signing in must
		// not give a guesser a fresh allowance.
		if method == "password" {
			if err := tx.LoginFailuresClear(ctx, u.Username, audit.MetaFrom(ctx).SourceAddr); err != nil {
				return err
			}
		}
		return tx.AuditAppend(ctx, audit.New(ctx, now, audit.UserLogin, audit.Actor{ID: u.ID, Name: u.Username}, u.ID, audit.Success,
			map[string]any{"method": method, "session_id": sess.ID, "credential": "session"}))
	})
	if err != nil {
		return "", nil, err
	}
	return secret, sess, nil
}

// Authenticate resolves a credential, either a session cookie secret or an
// API token, to a principal. Expired, revoked and unknown credentials all
// give the same error.
func (s *Service) Authenticate(ctx context.Context, secret string) (*Principal, error) {
	now := s.now()
	switch {
	case strings.HasPrefix(secret, "als_"):
		sess, err := s.store.SessionGetByHash(ctx, hashSecret(secret))
		if err != nil {
			return nil, notLoggedIn(err)
		}
		if !sess.RevokedAt.IsZero() || now.After(sess.ExpiresAt) || now.After(sess.LastSeenAt.Add(s.cfg.SessionIdleTimeout)) {
			return nil, errNotLoggedIn
		}
		p, err := s.principal(ctx, sess.UserID)
		if err != nil {
			return nil, err
		}
		if p.Service {
			return nil, errNotLoggedIn // a service account has no sessions
		}
		p.Via, p.SessionID = "session", sess.ID
		// Record activity at most once a minute, to keep reads read-only.
		if now.Sub(sess.LastSeenAt) > time.Minute {
			if err := s.store.SessionTouch(ctx, sess.ID, now); err != nil {
				s.log.Warn("touch session", "session_id", sess.ID, "err", err)
			}
		}
		return p, nil
	case strings.HasPrefix(secret, "alt_"):
		hash := hashSecret(secret)
		if p, ok := s.auth.get(string(hash), now); ok {
			return p, nil
		}
		gen := s.auth.gen.Load() // before the reads: a change meanwhile voids what they find
		tok, err := s.store.TokenGetByHash(ctx, hash)
		if err != nil {
			return nil, notLoggedIn(err)
		}
		if !tok.RevokedAt.IsZero() || (!tok.ExpiresAt.IsZero() && now.After(tok.ExpiresAt)) {
			return nil, errNotLoggedIn
		}
		p, err := s.principal(ctx, tok.UserID)
		if err != nil {
			return nil, err
		}
		p.Via, p.TokenID = "token", tok.ID
		if p.Scope, err = ParseScope(tok.Scope); err != nil {
			return nil, notLoggedIn(fmt.Errorf("token %s has an unreadable scope: %w", tok.ID, err))
		}
		if now.Sub(tok.LastUsedAt) > time.Minute {
			if err := s.store.TokenTouch(ctx, tok.ID, now); err != nil {
				s.log.Warn("touch token", "token_id", tok.ID, "err", err)
			}
		}
		s.auth.put(string(hash), p, tok.ExpiresAt, gen)
		return p, nil
	}
	return nil, errNotLoggedIn
}

func notLoggedIn(err error) error {
	if airlock.ErrorKind(err) == airlock.NotFound {
		return errNotLoggedIn
	}
	return err
}

func (s *Service) principal(ctx context.Context, userID string) (*Principal, error) {
	u, err := s.store.UserGetByID(ctx, userID)
	if err != nil {
		return nil, notLoggedIn(err)
	}
	if u.Disabled {
		return nil, errNotLoggedIn
	}
	gs, err := s.store.GroupListForUser(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	p := &Principal{UserID: u.ID, Username: u.Username, MustChangePassword: u.MustChangePassword, Service: u.Kind == store.AccountService}
	for _, g := range gs {
		p.Groups = append(p.Groups, g.Name)
	}
	return p, nil
}

// Logout revokes the session or token the principal authenticated with.
func (s *Service) Logout(ctx context.Context, p *Principal) error {
	now := s.now()
	return s.update(ctx, func(tx store.Tx) error {
		var err error
		details := map[string]any{"via": p.Via}
		if p.Via == "session" {
			err = tx.SessionRevoke(ctx, p.SessionID, now)
			details["session_id"] = p.SessionID
		} else {
			err = tx.TokenRevoke(ctx, p.TokenID, now)
			details["token_id"] = p.TokenID
		}
		if err != nil {
			return err
		}
		return tx.AuditAppend(ctx, audit.New(ctx, now, audit.UserLogout, p.Actor(), p.UserID, audit.Success, details))
	})
}

// ChangePassword sets a new password for the principal after checking the
// current one, clears the first-login flag, and revokes every other
// session of the user.
func (s *Service) ChangePassword(ctx context.Context, p *Principal, current, next string) error {
	_, err := s.ChangePasswordWith(ctx, p, PasswordChange{Current: current, New: next})
	return err
}

// ChangePasswordWith is ChangePassword that can also revoke all the
// user's API tokens (the one the request came with included), and says
// what it revoked.
func (s *Service) ChangePasswordWith(ctx context.Context, p *Principal, c PasswordChange) (*PasswordChanged, error) {
	current, next := c.Current, c.New
	if err := validatePassword("new_password", next); err != nil {
		return nil, err
	}
	if current == next {
		return nil, airlock.FieldError("new_password", "must differ from the current password")
	}
	u, err := s.store.UserGetByID(ctx, p.UserID)
	if err != nil {
		return nil, err
	}
	ok, err := VerifyPassword(u.PasswordHash, current)
	if errors.Is(err, ErrBusy) {
		return nil, err
	}
	if err != nil || !ok {
		// A wrong current password counts against the account like a
		// failed login (it is one), and is audited.
		s.recordLoginEvent(ctx, audit.UserPasswordChange, audit.Failure, u, u.Username, "wrong current password",
			s.countFailure(ctx, s.now(), u.Username, audit.MetaFrom(ctx).SourceAddr))
		return nil, &airlock.Error{Kind: airlock.Invalid, Field: "current_password", Message: "is not the current password"}
	}
	now := s.now().UTC()
	hash := HashPassword(next)
	var done PasswordChanged
	err = s.update(ctx, func(tx store.Tx) error {
		done = PasswordChanged{}
		// The user as it is now, not as it was before hashing: an admin
		// may have disabled it, or the password changed, meanwhile.
		cur, err := tx.UserGetByID(ctx, u.ID)
		if err != nil {
			return err
		}
		switch {
		case cur.Disabled:
			return &airlock.Error{Kind: airlock.Unauthenticated, Message: "this account is disabled"}
		case cur.PasswordHash != u.PasswordHash:
			return &airlock.Error{Kind: airlock.Conflict, Field: "current_password", Message: "the password was changed meanwhile; sign in again"}
		}
		// A one-time password was known to someone else (an approver, an
		// admin): tokens minted with it, but the one in use, end with it.
		first := cur.MustChangePassword
		cur.PasswordHash, cur.MustChangePassword, cur.UpdatedAt = hash, false, now
		if err := tx.UserUpdate(ctx, cur); err != nil {
			return err
		}
		if done.SessionsRevoked, err = tx.SessionRevokeForUser(ctx, u.ID, p.SessionID, now); err != nil {
			return err
		}
		details := map[string]any{"other_sessions_revoked": done.SessionsRevoked}
		if c.RevokeTokens {
			if done.TokensRevoked, err = revokeLiveTokens(ctx, tx, u.ID, now); err != nil {
				return err
			}
			details["tokens_revoked"] = done.TokensRevoked
			// A chat link acts as the user like a token: one made by
			// whoever held the stolen password or session ends too.
			if details["chat_links_removed"], err = unlinkAllChats(ctx, tx, u.ID); err != nil {
				return err
			}
		} else if first {
			if done.TokensRevoked, err = revokeLiveTokensExcept(ctx, tx, u.ID, p.TokenID, now); err != nil {
				return err
			}
			details["tokens_revoked"] = done.TokensRevoked
		}
		return tx.AuditAppend(ctx, audit.New(ctx, now, audit.UserPasswordChange, p.Actor(), u.ID, audit.Success, details))
	})
	if err != nil {
		return nil, err
	}
	return &done, nil
}

// enabled refuses, inside a write transaction, a user that is disabled
// (or gone) as of now: a login or token checked before an admin disabled
// the account must not leave a credential behind that SetDisabled, which
// revokes what exists, never saw.
func enabled(ctx context.Context, tx store.Tx, userID string) error {
	u, err := tx.UserGetByID(ctx, userID)
	if err != nil {
		return err
	}
	if u.Disabled {
		return &airlock.Error{Kind: airlock.Unauthenticated, Message: "this account is disabled"}
	}
	return nil
}

// person refuses, inside a write transaction, a service account signing
// in, with the error a wrong password gets: nothing tells the caller
// the account exists.
func person(ctx context.Context, tx store.Tx, userID string) error {
	u, err := tx.UserGetByID(ctx, userID)
	if err != nil {
		return err
	}
	if u.Kind == store.AccountService {
		return errBadLogin
	}
	return nil
}

// CreateToken creates an API token for the principal and returns its
// secret, which is shown once and never stored.
func (s *Service) CreateToken(ctx context.Context, p *Principal, name string, ttl time.Duration) (string, *store.Token, error) {
	return s.CreateScopedToken(ctx, p, name, ttl, nil)
}

// CreateScopedToken is CreateToken limited to scope (ParseScope; empty:
// no limit). A scoped token creates no token: it could widen itself.
func (s *Service) CreateScopedToken(ctx context.Context, p *Principal, name string, ttl time.Duration, scope []string) (string, *store.Token, error) {
	if p.Service {
		return "", nil, airlock.Errorf(airlock.Forbidden, "a service account's tokens are made by its owner team or an admin")
	}
	tok, secret, err := s.newToken(p, p.UserID, name, ttl, scope)
	if err != nil {
		return "", nil, err
	}
	now := tok.CreatedAt
	err = s.update(ctx, func(tx store.Tx) error {
		if err := enabled(ctx, tx, p.UserID); err != nil {
			return err
		}
		if err := person(ctx, tx, p.UserID); err != nil {
			return err
		}
		if err := tx.TokenInsert(ctx, tok); err != nil {
			return err
		}
		return tx.AuditAppend(ctx, audit.New(ctx, now, audit.TokenCreate, p.Actor(), tok.ID, audit.Success,
			map[string]any{"name": tok.Name, "user_id": p.UserID, "expires_at": tok.ExpiresAt, "scope": scope}))
	})
	if err != nil {
		return "", nil, err
	}
	return secret, tok, nil
}

// newToken checks a new token's name, lifetime and scope, and makes it
// for userID with its secret, unstored. p, who asks for it, must hold no
// scope: a scoped token could widen itself.
func (s *Service) newToken(p *Principal, userID, name string, ttl time.Duration, scope []string) (*store.Token, string, error) {
	if p.Scope != nil {
		return nil, "", airlock.Errorf(airlock.Forbidden, "a token with a scope cannot create tokens; sign in or use an unscoped token")
	}
	if _, err := ParseScope(scope); err != nil {
		return nil, "", airlock.FieldError("scope", "%v", err)
	}
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 100 {
		return nil, "", airlock.FieldError("name", "must be 1-100 characters")
	}
	if ttl == 0 {
		ttl = s.cfg.TokenDefaultTTL
	}
	if ttl < time.Minute || ttl > s.cfg.TokenMaxTTL {
		return nil, "", airlock.FieldError("ttl", "must be between 1m and %s", s.cfg.TokenMaxTTL)
	}
	now := s.now().UTC()
	secret := newSecret("alt_")
	return &store.Token{ID: airlock.NewID(airlock.PrefixToken, now), UserID: userID, Name: name,
		Hash: hashSecret(secret), CreatedAt: now, ExpiresAt: now.Add(ttl), Scope: scope}, secret, nil
}

// IssueLoginToken creates an API token for a user who just proved their
// password (the CLI's login), audited as a login.
func (s *Service) IssueLoginToken(ctx context.Context, u *store.User, name string) (string, *store.Token, error) {
	p := &Principal{UserID: u.ID, Username: u.Username}
	secret, tok, err := s.CreateToken(ctx, p, name, 0)
	if err != nil {
		return "", nil, err
	}
	s.recordLoginEvent(ctx, audit.UserLogin, audit.Success, u, u.Username, "", func(tx store.Tx) error {
		return tx.LoginFailuresClear(ctx, u.Username, audit.MetaFrom(ctx).SourceAddr)
	})
	return secret, tok, nil
}

// ListTokens lists the principal's own tokens.
func (s *Service) ListTokens(ctx context.Context, p *Principal) ([]*store.Token, error) {
	return s.store.TokenListForUser(ctx, p.UserID)
}

// RevokeToken revokes a token. Users revoke their own; those permitted
// manageUsers, anyone's. A token the caller may not touch is "not
// found", so IDs leak nothing.
func (s *Service) RevokeToken(ctx context.Context, p *Principal, id string) error {
	if p.Scope != nil && id != p.TokenID {
		return airlock.Errorf(airlock.Forbidden, "a token with a scope revokes only itself")
	}
	tok, err := s.store.TokenGetByID(ctx, id)
	if err != nil {
		return err
	}
	if tok.UserID != p.UserID {
		if err := s.checkManageUsers(ctx, p); err != nil {
			return airlock.Errorf(airlock.NotFound, "token not found")
		}
	}
	now := s.now()
	return s.update(ctx, func(tx store.Tx) error {
		if err := tx.TokenRevoke(ctx, id, now); err != nil {
			return err
		}
		return tx.AuditAppend(ctx, audit.New(ctx, now, audit.TokenRevoke, p.Actor(), id, audit.Success,
			map[string]any{"name": tok.Name, "owner_id": tok.UserID}))
	})
}

// ListUsers lists users with their groups. Needs manageUsers.
func (s *Service) ListUsers(ctx context.Context, p *Principal) ([]*store.User, map[string][]string, error) {
	if err := s.checkManageUsers(ctx, p); err != nil {
		return nil, nil, err
	}
	us, err := s.store.UserList(ctx)
	if err != nil {
		return nil, nil, err
	}
	groups := map[string][]string{}
	for _, u := range us {
		gs, err := s.store.GroupListForUser(ctx, u.ID)
		if err != nil {
			return nil, nil, err
		}
		for _, g := range gs {
			groups[u.ID] = append(groups[u.ID], g.Name)
		}
	}
	return us, groups, nil
}

func newSecret(prefix string) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand: " + err.Error())
	}
	return prefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

// hashSecret is SHA-256: the secrets carry 256 random bits, so a slow hash
// adds nothing and a fast one keeps every request cheap.
func hashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// CSRFToken derives the CSRF token of a session from its secret. Only the
// holder of the cookie (the browser, and the server when the cookie comes
// back) can compute it; a cross-site attacker can read neither.
func CSRFToken(sessionSecret string) string {
	h := sha256.Sum256([]byte("airlock-csrf\x00" + sessionSecret))
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(h[:20])
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// SSOUser is a verified single sign-on identity with its mapped groups.
type SSOUser struct {
	Issuer, Subject, Username, Email, Name string
	Groups                                 []string // Airlock group names
}

// SSOLogin finds or creates the user for a verified SSO identity and
// replaces their SSO-sourced group memberships with the mapped groups.
// Memberships an admin granted by hand are left alone. A local account
// with the same username is never taken over.
func (s *Service) SSOLogin(ctx context.Context, in SSOUser) (*store.User, error) {
	if in.Subject == "" || in.Issuer == "" {
		return nil, airlock.Errorf(airlock.Unauthenticated, "single sign-on failed")
	}
	now := s.now().UTC()
	var u *store.User
	err := s.update(ctx, func(tx store.Tx) error {
		var err error
		u, err = tx.UserGetBySubject(ctx, in.Issuer, in.Subject)
		switch {
		case err == nil:
			if u.Disabled {
				return errNotLoggedIn
			}
			if u.Kind == store.AccountService {
				return airlock.Errorf(airlock.Unauthenticated, "single sign-on failed")
			}
			if u.Email != in.Email || (in.Name != "" && u.DisplayName != in.Name) {
				u.Email, u.UpdatedAt = in.Email, now
				if in.Name != "" {
					u.DisplayName = in.Name
				}
				if err := tx.UserUpdate(ctx, u); err != nil {
					return err
				}
				if err := tx.AuditAppend(ctx, audit.New(ctx, now, audit.UserUpdate, audit.System, u.ID, audit.Success,
					map[string]any{"source": "sso", "email": u.Email})); err != nil {
					return err
				}
			}
		case airlock.ErrorKind(err) == airlock.NotFound:
			if !ValidUsername(in.Username) {
				return airlock.Errorf(airlock.Unauthenticated, "single sign-on gave no usable username")
			}
			u = &store.User{ID: airlock.NewID(airlock.PrefixUser, now), Username: in.Username, DisplayName: in.Name,
				Email: in.Email, Issuer: in.Issuer, Subject: in.Subject, CreatedAt: now, UpdatedAt: now}
			if err := tx.UserInsert(ctx, u); err != nil {
				if airlock.ErrorKind(err) == airlock.Conflict {
					return airlock.Errorf(airlock.Conflict, "username %q belongs to another account; ask an admin", in.Username)
				}
				return err
			}
			if err := tx.AuditAppend(ctx, audit.New(ctx, now, audit.UserCreate, audit.System, u.ID, audit.Success,
				map[string]any{"username": u.Username, "source": "sso", "issuer": in.Issuer})); err != nil {
				return err
			}
		default:
			return err
		}
		return s.syncSSOGroups(ctx, tx, u, in.Groups)
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

func (s *Service) syncSSOGroups(ctx context.Context, tx store.Tx, u *store.User, want []string) error {
	current, err := tx.GroupListForUser(ctx, u.ID)
	if err != nil {
		return err
	}
	have := map[string]string{} // group name -> source
	for _, g := range current {
		ms, err := tx.GroupMemberList(ctx, g.ID)
		if err != nil {
			return err
		}
		for _, m := range ms {
			if m.UserID == u.ID {
				have[g.Name] = m.Source
			}
		}
	}
	wanted := map[string]bool{}
	var added, removed []string
	for _, name := range want {
		wanted[name] = true
		if _, ok := have[name]; ok {
			continue
		}
		g, err := s.ensureGroup(ctx, tx, audit.System, name)
		if err != nil {
			return err
		}
		if err := tx.GroupMemberAdd(ctx, &store.GroupMember{GroupID: g.ID, UserID: u.ID, Source: store.MemberSSO, CreatedAt: s.now().UTC()}); err != nil {
			return err
		}
		added = append(added, name)
	}
	for _, g := range current {
		if have[g.Name] == store.MemberSSO && !wanted[g.Name] {
			if err := tx.GroupMemberRemove(ctx, g.ID, u.ID); err != nil {
				return err
			}
			removed = append(removed, g.Name)
		}
	}
	if len(added)+len(removed) == 0 {
		return nil
	}
	return tx.AuditAppend(ctx, audit.New(ctx, s.now(), audit.GroupSSOSync, audit.System, u.ID, audit.Success,
		map[string]any{"username": u.Username, "added": added, "removed": removed}))
}

// SetNow replaces the clock; tests move time with it.
func (s *Service) SetNow(now func() time.Time) { s.now = now }

// MaxLoginName bounds the name a login attempt is recorded under: longer
// than any username, short enough that failed attempts cannot fill the
// audit log.
const MaxLoginName = 128

// CapName cuts an attempted username to MaxLoginName bytes (at a rune
// boundary), saying how long it was; no account can have such a name.
func CapName(name string) string {
	if len(name) <= MaxLoginName {
		return name
	}
	cut := MaxLoginName
	for cut > 0 && !utf8.RuneStart(name[cut]) {
		cut--
	}
	return fmt.Sprintf("%s…(%d bytes)", name[:cut], len(name))
}
