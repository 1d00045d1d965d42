package inventory

import (
	"context"
	"strings"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/authz"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/policy"
	"github.com/airlockhq/airlock/internal/store"
)

// Service manages nodes. Changing them needs manageNodes.
type Service struct {
	store        store.Store
	authz        *authz.Authorizer
	environments []string
	now          func() time.Time
}

// NewService returns a Service. now may be nil for time.Now.
func NewService(s store.Store, az *authz.Authorizer, environments []string, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{store: s, authz: az, environments: environments, now: now}
}

// List lists nodes. Needs manageNodes.
func (s *Service) List(ctx context.Context, p *identity.Principal) ([]*store.Node, error) {
	if err := s.authz.CheckSystem(ctx, p, policy.ActionManageNodes); err != nil {
		return nil, err
	}
	return s.store.NodeList(ctx)
}

// Put creates or replaces a node through the API. A node defined by the
// inventory file is refused: the file is its source of truth.
func (s *Service) Put(ctx context.Context, p *identity.Principal, n Node) (*store.Node, error) {
	if err := s.authz.CheckSystem(ctx, p, policy.ActionManageNodes); err != nil {
		return nil, err
	}
	if errs := n.Validate(s.environments); len(errs) > 0 {
		field, msg, _ := strings.Cut(errs[0], ": ")
		return nil, &airlock.Error{Kind: airlock.Invalid, Field: field, Message: msg}
	}
	sn := n.Store("api")
	now := s.now().UTC()
	sn.CreatedAt, sn.UpdatedAt = now, now
	err := s.store.Update(ctx, func(tx store.Tx) error {
		sn.CreatedAt = now // Update may run this again
		if old, err := tx.NodeGet(ctx, n.Name); err == nil {
			if old.Source == "file" {
				return airlock.Errorf(airlock.Conflict, "node %s comes from the inventory file; change it there", n.Name)
			}
			sn.CreatedAt = old.CreatedAt
		}
		if err := tx.NodeUpsert(ctx, sn); err != nil {
			return err
		}
		return tx.AuditAppend(ctx, audit.New(ctx, now, audit.NodePut, p.Actor(), n.Name, audit.Success, nodeDetails(sn)))
	})
	return sn, err
}

// Delete removes an API-managed node.
func (s *Service) Delete(ctx context.Context, p *identity.Principal, name string) error {
	if err := s.authz.CheckSystem(ctx, p, policy.ActionManageNodes); err != nil {
		return err
	}
	return s.store.Update(ctx, func(tx store.Tx) error {
		old, err := tx.NodeGet(ctx, name)
		if err != nil {
			return err
		}
		if old.Source == "file" {
			return airlock.Errorf(airlock.Conflict, "node %s comes from the inventory file; remove it there", name)
		}
		if err := tx.NodeDelete(ctx, name); err != nil {
			return err
		}
		return tx.AuditAppend(ctx, audit.New(ctx, s.now(), audit.NodeDelete, p.Actor(), name, audit.Success, map[string]any{"name": name}))
	})
}

// SyncFile makes the store's file-sourced nodes equal the file's: added,
// changed and removed ones are audited as the system's acts.
func (s *Service) SyncFile(ctx context.Context, path string) (changed int, err error) {
	nodes, err := LoadFile(path, s.environments)
	if err != nil {
		return 0, err
	}
	now := s.now().UTC()
	err = s.store.Update(ctx, func(tx store.Tx) error {
		changed = 0 // Update may run this again
		existing, err := tx.NodeList(ctx)
		if err != nil {
			return err
		}
		have := map[string]*store.Node{}
		for _, n := range existing {
			have[n.Name] = n
		}
		inFile := map[string]bool{}
		for _, n := range nodes {
			inFile[n.Name] = true
			sn := n.Store("file")
			sn.CreatedAt, sn.UpdatedAt = now, now
			if old, ok := have[n.Name]; ok {
				sn.CreatedAt = old.CreatedAt
				sn.UpdatedAt = old.UpdatedAt
				if same(old, sn) {
					continue
				}
				sn.UpdatedAt = now
			}
			if err := tx.NodeUpsert(ctx, sn); err != nil {
				return err
			}
			changed++
			if err := tx.AuditAppend(ctx, audit.New(ctx, now, audit.NodePut, audit.System, n.Name, audit.Success,
				merge(nodeDetails(sn), map[string]any{"source": path}))); err != nil {
				return err
			}
		}
		for _, old := range existing {
			if old.Source == "file" && !inFile[old.Name] {
				if err := tx.NodeDelete(ctx, old.Name); err != nil {
					return err
				}
				changed++
				if err := tx.AuditAppend(ctx, audit.New(ctx, now, audit.NodeDelete, audit.System, old.Name, audit.Success,
					map[string]any{"name": old.Name, "source": path})); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return changed, err
}

func same(a, b *store.Node) bool {
	return a.Address == b.Address && a.Port == b.Port && a.User == b.User && a.Environment == b.Environment &&
		strings.Join(a.Tags, ",") == strings.Join(b.Tags, ",") && mapEq(a.Attributes, b.Attributes) && a.HostKey == b.HostKey &&
		a.Credential == b.Credential && a.Transport == b.Transport && a.Source == b.Source
}

func mapEq(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func nodeDetails(n *store.Node) map[string]any {
	return map[string]any{"name": n.Name, "address": n.Address, "port": n.Port, "user": n.User, "environment": n.Environment,
		"tags": n.Tags, "attributes": n.Attributes, "host_key": n.HostKey, "credential": n.Credential, "transport": n.Transport}
}

func merge(a, b map[string]any) map[string]any {
	for k, v := range b {
		a[k] = v
	}
	return a
}
