// Package demo seeds a fresh Airlock with the demo's people and catalog:
// five users, one per role, and a small realistic set of procedures
// across risk classes, proposed by the developer and approved by the
// reviewers through the real review lifecycle (so the audit trail shows
// it), plus one proposal left waiting for review.
package demo

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"

	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/inventory"
	"github.com/airlockhq/airlock/internal/procedure"
	"github.com/airlockhq/airlock/internal/review"
	"github.com/airlockhq/airlock/internal/secret"
	"github.com/airlockhq/airlock/internal/secretstore"
	"github.com/airlockhq/airlock/internal/store"
)

//go:embed catalog/*.yaml pending/*.yaml
var files embed.FS

// Inventory is the demo's inventory file of local nodes.
//
//go:embed inventory.yaml
var Inventory string

// Policy is the demo's Cedar policy: dev runs low-risk procedures in
// staging and requests them in production; ops runs everything and
// approves runs; security and compliance review; dana audits; erin (noc)
// runs restarts and cache flushes anywhere and requests the rest.
//
//go:embed policy.cedar
var Policy string

// User is a demo account as written to the credentials file.
type User struct {
	Username string   `json:"username"`
	Password string   `json:"password"`
	Groups   []string `json:"groups"`
	Role     string   `json:"role"`
}

// People is the demo's cast, one per role of the design.
var People = []User{
	{Username: "alice", Groups: []string{"dev", "payments"}, Role: "developer on the payments team: requests runs, authors procedures"},
	{Username: "bob", Groups: []string{"ops", "admins"}, Role: "operations: approves runs, reviews, administers"},
	{Username: "carol", Groups: []string{"security", "admins"}, Role: "security: reviews procedures, second admin"},
	{Username: "dana", Groups: []string{"compliance", "auditors"}, Role: "compliance: reviews, audits, exports evidence"},
	{Username: "erin", Groups: []string{"noc"}, Role: "NOC: runs restarts in production"},
}

// Services are what seeding uses.
type Services struct {
	Store    store.Store
	Identity *identity.Service
	Review   *review.Service
	// Nodes and Secrets, with SSH, add the SSH nodes; both optional.
	Nodes   *inventory.Service
	Secrets *secretstore.Service
	SSH     *Fleet
}

// Seed creates the demo users and catalog on a store that has neither.
// On a store that already has them it changes nothing and returns no
// users (their passwords were printed when they were created). Users are
// created concurrently: hashing their passwords is most of the demo's
// start-up time.
func Seed(ctx context.Context, s Services) ([]User, error) {
	users, err := seedUsers(ctx, s)
	if err != nil {
		return nil, err
	}
	if err := seedCatalog(ctx, s); err != nil {
		return nil, err
	}
	if err := seedSecrets(ctx, s); err != nil {
		return nil, err
	}
	if err := seedSSH(ctx, s); err != nil {
		return nil, err
	}
	return users, nil
}

// seedSecrets stores the secrets the catalog's steps use (random values:
// the demo's scripts never print them), as bob would.
func seedSecrets(ctx context.Context, s Services) error {
	if s.Secrets == nil {
		return nil
	}
	if _, err := s.Store.SecretGet(ctx, "payments/db-readonly"); err == nil {
		return nil
	}
	bob, err := principal(ctx, s.Store, "bob")
	if err != nil {
		return err
	}
	// Usable by the payments team's procedures (db-readonly-query), and
	// by no other team's.
	scope := secret.Scope{Teams: []string{"payments"}}
	if _, err := s.Secrets.PutScoped(ctx, bob, "payments/db-readonly", []byte(identity.RandomPassword()), &scope); err != nil {
		return fmt.Errorf("demo secret: %w", err)
	}
	return nil
}

func seedUsers(ctx context.Context, s Services) ([]User, error) {
	var (
		mu   sync.Mutex
		out  []User
		errs []error
		wg   sync.WaitGroup
	)
	for _, p := range People {
		if _, err := s.Store.UserGetByUsername(ctx, p.Username); err == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.Password = identity.RandomPassword()
			_, err := s.Identity.CreateUser(ctx, audit.Actor{Name: "demo"}, identity.CreateUserParams{
				Username: p.Username, DisplayName: strings.ToUpper(p.Username[:1]) + p.Username[1:],
				Email: p.Username + "@demo.airlock.local", Password: p.Password, Groups: p.Groups,
			})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("demo user %s: %w", p.Username, err))
				return
			}
			out = append(out, p)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b User) int { return strings.Compare(a.Username, b.Username) })
	return out, nil
}

// principal builds the principal of a demo user from the store.
func principal(ctx context.Context, s store.Store, name string) (*identity.Principal, error) {
	u, err := s.UserGetByUsername(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("demo user %s: %w", name, err)
	}
	gs, err := s.GroupListForUser(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	p := &identity.Principal{UserID: u.ID, Username: u.Username}
	for _, g := range gs {
		p.Groups = append(p.Groups, g.Name)
	}
	return p, nil
}

// Catalog returns the demo procedures: the approved catalog, and the
// proposals left pending.
func Catalog() (approved, pending []*procedure.Source, err error) {
	load := func(dir string) ([]*procedure.Source, error) {
		names, err := fs.Glob(files, dir+"/*.yaml")
		if err != nil {
			return nil, err
		}
		var out []*procedure.Source
		for _, n := range names {
			b, err := files.ReadFile(n)
			if err != nil {
				return nil, err
			}
			srcs, err := procedure.Parse("demo/"+n, b)
			if err != nil {
				return nil, err
			}
			out = append(out, srcs...)
		}
		return out, nil
	}
	if approved, err = load("catalog"); err != nil {
		return nil, nil, err
	}
	pending, err = load("pending")
	return approved, pending, err
}

func seedCatalog(ctx context.Context, s Services) error {
	existing, err := s.Store.ProcedureList(ctx)
	if err != nil || len(existing) > 0 {
		return err
	}
	approved, pending, err := Catalog()
	if err != nil {
		return err
	}
	people := map[string]*identity.Principal{}
	for _, name := range []string{"alice", "bob", "carol", "dana"} {
		if people[name], err = principal(ctx, s.Store, name); err != nil {
			return err
		}
	}
	reviewers := map[string][]string{
		procedure.RiskLow:    {"bob"},
		procedure.RiskMedium: {"bob", "carol"},
		procedure.RiskHigh:   {"bob", "carol", "dana"},
	}
	for _, src := range approved {
		res, err := s.Review.Propose(ctx, people["alice"], src)
		if err != nil {
			return fmt.Errorf("demo procedure %s: %w", src.Procedure.Name, err)
		}
		for _, r := range reviewers[src.Procedure.Risk] {
			if _, err := s.Review.Review(ctx, people[r], res.Version.ID, res.Version.Digest, store.ReviewApprove,
				"Reviewed for the demo: steps and parameters checked."); err != nil {
				return fmt.Errorf("demo review of %s by %s: %w", src.Procedure.Name, r, err)
			}
		}
	}
	for _, src := range pending {
		res, err := s.Review.Propose(ctx, people["alice"], src)
		if err != nil {
			return fmt.Errorf("demo proposal %s: %w", src.Procedure.Name, err)
		}
		// Ops has signed off; security's review is still needed.
		if _, err := s.Review.Review(ctx, people["bob"], res.Version.ID, res.Version.Digest, store.ReviewApprove,
			"Looks fine from ops; the default keeps today's behaviour."); err != nil {
			return err
		}
	}
	return nil
}

// seedSSH adds the demo's sshd processes as SSH nodes, with the client
// key as a secret, as bob (an admin in the demo policy) would.
func seedSSH(ctx context.Context, s Services) error {
	if s.SSH == nil || s.Nodes == nil || s.Secrets == nil {
		return nil
	}
	bob, err := principal(ctx, s.Store, "bob")
	if err != nil {
		return err
	}
	// A node credential: Airlock uses it to connect, no step may name it,
	// so its scope stays empty.
	if _, err := s.Secrets.Put(ctx, bob, "demo/ssh-key", s.SSH.ClientKey); err != nil {
		return fmt.Errorf("demo ssh key: %w", err)
	}
	envs := []string{"staging", "production"}
	for i, d := range s.SSH.Nodes {
		env := envs[i%len(envs)]
		name := fmt.Sprintf("%s-ssh-%d", map[string]string{"staging": "staging", "production": "prod"}[env], i/len(envs)+1)
		_, err := s.Nodes.Put(ctx, bob, inventory.Node{Name: name, Address: "127.0.0.1", Port: d.Port, User: s.SSH.User,
			Environment: env, Tags: []string{"app", "ssh"}, HostKey: d.HostKey, Credential: "demo/ssh-key"})
		if err != nil {
			return fmt.Errorf("demo node %s: %w", name, err)
		}
	}
	return nil
}
