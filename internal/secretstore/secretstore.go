// Package secretstore manages stored secrets: write-only through every
// interface. Values go in (sealed by the keyring before they touch the
// store) and never come out, except to the executor through the run
// package; listings show names, scopes and timestamps only.
//
// Each secret carries a scope: the teams and procedures whose steps may
// name it. CheckUse applies it, when a version is proposed and when a run
// is requested; the run package applies it again at start, where the
// value is opened.
package secretstore

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/authz"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/policy"
	"github.com/airlockhq/airlock/internal/procedure"
	"github.com/airlockhq/airlock/internal/secret"
	"github.com/airlockhq/airlock/internal/store"
)

// Service manages secrets.
type Service struct {
	store   store.Store
	keyring *secret.Keyring
	authz   *authz.Authorizer
	now     func() time.Time
}

// New returns a Service. now may be nil for time.Now.
func New(s store.Store, kr *secret.Keyring, az *authz.Authorizer, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{store: s, keyring: kr, authz: az, now: now}
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)*$`)

// Info describes a secret without its value.
type Info struct {
	Name      string    `json:"name"`
	KeyID     string    `json:"key_id"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	UpdatedBy string    `json:"updated_by"`
	// Scope: the teams and procedures whose steps may name the secret;
	// empty, none may.
	Scope          secret.Scope `json:"scope"`
	ScopeUpdatedAt time.Time    `json:"scope_updated_at,omitzero"`
	// ScopeUpdatedBy is who last set the scope; "(upgrade)" when it was
	// derived at the upgrade that introduced scopes.
	ScopeUpdatedBy string `json:"scope_updated_by,omitempty"`
}

// Put creates or replaces a secret's value, keeping the scope of a secret
// it replaces; a new secret is usable by no procedure until it is given a
// scope. Needs manageSecrets.
func (s *Service) Put(ctx context.Context, p *identity.Principal, name string, value []byte) (*Info, error) {
	return s.PutScoped(ctx, p, name, value, nil)
}

// PutScoped creates or replaces a secret's value and, when scope is not
// nil, sets its scope in the same act. Needs manageSecrets.
func (s *Service) PutScoped(ctx context.Context, p *identity.Principal, name string, value []byte, scope *secret.Scope) (*Info, error) {
	if err := s.authz.CheckSystem(ctx, p, policy.ActionManageSecrets); err != nil {
		return nil, err
	}
	if !nameRE.MatchString(name) || len(name) > 200 {
		return nil, airlock.FieldError("name", "expected a path such as payments/api-token (lower-case letters, digits, '.', '_', '-', '/'), got %q", name)
	}
	if len(value) < 4 || len(value) > 64<<10 {
		return nil, airlock.FieldError("value", "must be 4 bytes to 64 KiB (shorter values cannot be redacted from output reliably)")
	}
	var want secret.Scope
	if scope != nil {
		var err error
		if want, err = normalize(*scope); err != nil {
			return nil, err
		}
	}
	sealed, err := s.keyring.Seal(value, []byte(name))
	if err != nil {
		return nil, err
	}
	now := s.now().UTC()
	var rec *store.SecretRecord
	err = s.store.Update(ctx, func(tx store.Tx) error {
		// Update may run this again: everything is set afresh.
		rec = &store.SecretRecord{Name: name, Ciphertext: sealed, KeyID: s.keyring.KeyID(), CreatedAt: now, UpdatedAt: now, UpdatedBy: p.Username}
		replaced := false
		old, err := tx.SecretGet(ctx, name)
		switch {
		case err == nil:
			replaced = true
			rec.CreatedAt = old.CreatedAt
			rec.ScopeTeams, rec.ScopeProcedures = old.ScopeTeams, old.ScopeProcedures
			rec.ScopeUpdatedAt, rec.ScopeUpdatedBy = old.ScopeUpdatedAt, old.ScopeUpdatedBy
		case airlock.ErrorKind(err) != airlock.NotFound:
			return err
		}
		details := map[string]any{"name": name, "replaced": replaced, "key_id": rec.KeyID, "bytes": len(value)}
		if scope != nil && (!replaced || !slices.Equal(scopeOf(rec).Teams, want.Teams) || !slices.Equal(scopeOf(rec).Procedures, want.Procedures)) {
			details["scope_before"] = scopeOf(rec)
			rec.ScopeTeams, rec.ScopeProcedures = want.Teams, want.Procedures
			rec.ScopeUpdatedAt, rec.ScopeUpdatedBy = now, p.Username
		}
		details["scope"] = scopeOf(rec)
		if err := tx.SecretPut(ctx, rec); err != nil {
			return err
		}
		return tx.AuditAppend(ctx, audit.New(ctx, now, audit.SecretPut, p.Actor(), name, audit.Success, details))
	})
	if err != nil {
		return nil, err
	}
	return info(rec), nil
}

// SetScope replaces the scope of an existing secret: which teams' and
// which procedures' steps may name it. Narrowing it takes effect at the
// next run start of every procedure it no longer covers. Needs
// manageSecrets.
func (s *Service) SetScope(ctx context.Context, p *identity.Principal, name string, scope secret.Scope) (*Info, error) {
	if err := s.authz.CheckSystem(ctx, p, policy.ActionManageSecrets); err != nil {
		return nil, err
	}
	want, err := normalize(scope)
	if err != nil {
		return nil, err
	}
	now := s.now().UTC()
	var rec *store.SecretRecord
	err = s.store.Update(ctx, func(tx store.Tx) error {
		if rec, err = tx.SecretGet(ctx, name); err != nil {
			return err
		}
		before := scopeOf(rec)
		rec.ScopeTeams, rec.ScopeProcedures = want.Teams, want.Procedures
		rec.ScopeUpdatedAt, rec.ScopeUpdatedBy = now, p.Username
		if err := tx.SecretPut(ctx, rec); err != nil {
			return err
		}
		return tx.AuditAppend(ctx, audit.New(ctx, now, audit.SecretScope, p.Actor(), name, audit.Success,
			map[string]any{"name": name, "scope_before": before, "scope": want}))
	})
	if err != nil {
		return nil, err
	}
	return info(rec), nil
}

func normalize(sc secret.Scope) (secret.Scope, error) {
	out, err := sc.Normalize()
	var se *secret.ScopeError
	if errors.As(err, &se) {
		return out, airlock.FieldError(se.Field, "%s", se.Msg)
	}
	return out, err
}

func scopeOf(r *store.SecretRecord) secret.Scope {
	sc := secret.Scope{Teams: r.ScopeTeams, Procedures: r.ScopeProcedures}
	if sc.Teams == nil {
		sc.Teams = []string{}
	}
	if sc.Procedures == nil {
		sc.Procedures = []string{}
	}
	return sc
}

// ScopeOf returns the scope a stored secret carries.
func ScopeOf(r *store.SecretRecord) secret.Scope { return scopeOf(r) }

// Refusal is one step's use of a secret that its procedure may not use:
// no secret of that name exists, or its scope covers neither the
// procedure nor its owning team.
type Refusal struct {
	Step     int    // index in steps
	StepName string // its name
	Env      string // the environment variable the step would get
	Secret   string
	// Missing: there is no such secret. A proposal may name one (whoever
	// creates it decides its scope); a run may not.
	Missing bool
	Scope   secret.Scope
}

// Path is the field path of the reference in the procedure file.
func (r *Refusal) Path() string { return fmt.Sprintf("steps[%d].secrets.%s", r.Step, r.Env) }

// Message says what is refused and how to mend it, for procedure name
// owned by team owner.
func (r *Refusal) Message(name, owner string) string {
	what := "its scope covers neither the procedure nor its team"
	if r.Missing {
		what = "there is no such secret yet"
	}
	return fmt.Sprintf("procedure %s (team %s) may not use secret %s: %s; "+
		"ask whoever manages secrets to add team %s or procedure %s to its scope "+
		"(airlock secrets scope %s --team %s)", name, owner, r.Secret, what, owner, name, r.Secret, owner)
}

// CheckUse checks every secret def's steps name against that secret's
// scope, for the procedure called name owned by team owner, and returns
// the uses refused, in file order.
func CheckUse(ctx context.Context, rd store.Reader, name, owner string, def *procedure.Procedure) ([]*Refusal, error) {
	var out []*Refusal
	for i, st := range def.Steps {
		envs := make([]string, 0, len(st.Secrets))
		for env := range st.Secrets {
			envs = append(envs, env)
		}
		sort.Strings(envs)
		for _, env := range envs {
			ref := st.Secrets[env]
			rec, err := rd.SecretGet(ctx, ref)
			switch {
			case airlock.ErrorKind(err) == airlock.NotFound:
				out = append(out, &Refusal{Step: i, StepName: st.Name, Env: env, Secret: ref, Missing: true, Scope: secret.Scope{Teams: []string{}, Procedures: []string{}}})
			case err != nil:
				return nil, err
			case !scopeOf(rec).Permits(name, owner):
				out = append(out, &Refusal{Step: i, StepName: st.Name, Env: env, Secret: ref, Scope: scopeOf(rec)})
			}
		}
	}
	return out, nil
}

// Delete removes a secret. Needs manageSecrets.
func (s *Service) Delete(ctx context.Context, p *identity.Principal, name string) error {
	if err := s.authz.CheckSystem(ctx, p, policy.ActionManageSecrets); err != nil {
		return err
	}
	return s.store.Update(ctx, func(tx store.Tx) error {
		if err := tx.SecretDelete(ctx, name); err != nil {
			return err
		}
		return tx.AuditAppend(ctx, audit.New(ctx, s.now(), audit.SecretDelete, p.Actor(), name, audit.Success, map[string]any{"name": name}))
	})
}

// List lists secrets without values. Needs manageSecrets.
func (s *Service) List(ctx context.Context, p *identity.Principal) ([]*Info, error) {
	if err := s.authz.CheckSystem(ctx, p, policy.ActionManageSecrets); err != nil {
		return nil, err
	}
	recs, err := s.store.SecretList(ctx)
	if err != nil {
		return nil, err
	}
	out := []*Info{}
	for _, r := range recs {
		out = append(out, info(r))
	}
	return out, nil
}

func info(r *store.SecretRecord) *Info {
	return &Info{Name: r.Name, KeyID: r.KeyID, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, UpdatedBy: r.UpdatedBy,
		Scope: scopeOf(r), ScopeUpdatedAt: r.ScopeUpdatedAt, ScopeUpdatedBy: r.ScopeUpdatedBy}
}
