// Package secretstore manages stored secrets: write-only through every
// interface. Values go in (sealed by the keyring before they touch the
// store) and never come out, except to the executor through the run
// package; listings show names and timestamps only.
package secretstore

import (
	"context"
	"regexp"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/authz"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/policy"
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
}

// Put creates or replaces a secret. Needs manageSecrets.
func (s *Service) Put(ctx context.Context, p *identity.Principal, name string, value []byte) (*Info, error) {
	if err := s.authz.CheckSystem(ctx, p, policy.ActionManageSecrets); err != nil {
		return nil, err
	}
	if !nameRE.MatchString(name) || len(name) > 200 {
		return nil, airlock.FieldError("name", "expected a path such as payments/api-token (lower-case letters, digits, '.', '_', '-', '/'), got %q", name)
	}
	if len(value) < 4 || len(value) > 64<<10 {
		return nil, airlock.FieldError("value", "must be 4 bytes to 64 KiB (shorter values cannot be redacted from output reliably)")
	}
	sealed, err := s.keyring.Seal(value, []byte(name))
	if err != nil {
		return nil, err
	}
	now := s.now().UTC()
	rec := &store.SecretRecord{Name: name, Ciphertext: sealed, KeyID: s.keyring.KeyID(), CreatedAt: now, UpdatedAt: now, UpdatedBy: p.Username}
	err = s.store.Update(ctx, func(tx store.Tx) error {
		replaced := false
		rec.CreatedAt = now // Update may run this again
		if old, err := tx.SecretGet(ctx, name); err == nil {
			rec.CreatedAt, replaced = old.CreatedAt, true
		}
		if err := tx.SecretPut(ctx, rec); err != nil {
			return err
		}
		return tx.AuditAppend(ctx, audit.New(ctx, now, audit.SecretPut, p.Actor(), name, audit.Success,
			map[string]any{"name": name, "replaced": replaced, "key_id": rec.KeyID, "bytes": len(value)}))
	})
	if err != nil {
		return nil, err
	}
	return info(rec), nil
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
	return &Info{Name: r.Name, KeyID: r.KeyID, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, UpdatedBy: r.UpdatedBy}
}
