package authz

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/aymanbagabas/go-udiff"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/policy"
	"github.com/airlockhq/airlock/internal/store"
)

func digest(text string) string {
	sum := sha256.Sum256([]byte(text))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// compile validates text against the schema of the catalog r reads:
// inside a write transaction, pass the transaction — a read through the
// pool there would wait for a connection that writers queued behind this
// transaction may all hold.
func (a *Authorizer) compile(ctx context.Context, r store.Reader, file, text string) (*policy.Set, error) {
	params, err := ParamTypes(ctx, r)
	if err != nil {
		return nil, err
	}
	set, err := policy.Compile(file, text, params)
	if err != nil {
		if es, ok := err.(policy.Errors); ok {
			return nil, &airlock.Error{Kind: airlock.Invalid, Field: "text", Message: es.Error()}
		}
		return nil, err
	}
	return set, nil
}

// Bootstrap installs text as policy version 1, active, when the store has
// no policy yet: the first start's policy comes from a file, not from an
// unreviewed API call. It does nothing on a store that has a policy.
func (a *Authorizer) Bootstrap(ctx context.Context, file, text string) (bool, error) {
	vs, err := a.store.PolicyVersionList(ctx, "")
	if err != nil || len(vs) > 0 {
		return false, err
	}
	if _, err := a.compile(ctx, a.store, file, text); err != nil {
		return false, fmt.Errorf("bootstrap policy: %w", err)
	}
	now := a.now().UTC()
	v := &store.PolicyVersion{ID: airlock.NewID(airlock.PrefixPolicy, now), Number: 1, Digest: digest(text), Text: text,
		Description: "bootstrapped from " + file, Status: store.PolicyActive, AuthorName: "system", DecidedByName: "system",
		CreatedAt: now, DecidedAt: now}
	installed := false
	err = a.store.Update(ctx, func(tx store.Tx) error {
		// Checked again under the write lock: another replica starting
		// on the same empty database may have installed one meanwhile.
		installed = false
		if vs, err := tx.PolicyVersionList(ctx, ""); err != nil || len(vs) > 0 {
			return err
		}
		if err := tx.PolicyVersionInsert(ctx, v); err != nil {
			return err
		}
		installed = true
		return tx.AuditAppend(ctx, audit.New(ctx, now, audit.PolicyBootstrap, audit.System, v.ID, audit.Success,
			map[string]any{"number": 1, "digest": v.Digest, "file": file}))
	})
	a.invalidate()
	return installed && err == nil, err
}

// ProposePolicy records a new complete policy set, validated against the
// schema. It does not take effect until a second admin approves it. A new
// proposal withdraws older pending ones.
func (a *Authorizer) ProposePolicy(ctx context.Context, p *identity.Principal, text, description string) (*store.PolicyVersion, error) {
	if err := a.CheckSystem(ctx, p, policy.ActionManagePolicy); err != nil {
		return nil, err
	}
	if strings.TrimSpace(description) == "" {
		return nil, airlock.FieldError("description", "say what the change is for; it goes into the audit trail")
	}
	if _, err := a.compile(ctx, a.store, "proposed policy", text); err != nil {
		return nil, err
	}
	now := a.now().UTC()
	v := &store.PolicyVersion{ID: airlock.NewID(airlock.PrefixPolicy, now), Digest: digest(text), Text: text, Description: description,
		Status: store.PolicyProposed, AuthorID: p.UserID, AuthorName: p.Username, CreatedAt: now}
	err := a.store.Update(ctx, func(tx store.Tx) error {
		v.Number = 0 // Update may run this again
		all, err := tx.PolicyVersionList(ctx, "")
		if err != nil {
			return err
		}
		for _, o := range all {
			if o.Status == store.PolicyActive && o.Digest == v.Digest {
				return airlock.Errorf(airlock.Conflict, "this policy is already in force (v%d)", o.Number)
			}
		}
		for _, o := range all {
			v.Number = max(v.Number, o.Number)
			if o.Status != store.PolicyProposed {
				continue
			}
			o.Status, o.DecidedByID, o.DecidedByName, o.DecisionComment, o.DecidedAt = store.PolicyWithdrawn, p.UserID, p.Username, "replaced by a newer proposal", now
			if err := tx.PolicyVersionDecide(ctx, o); err != nil {
				return err
			}
			if err := tx.AuditAppend(ctx, audit.New(ctx, now, audit.PolicyWithdraw, p.Actor(), o.ID, audit.Success,
				map[string]any{"number": o.Number, "reason": o.DecisionComment})); err != nil {
				return err
			}
		}
		v.Number++
		if err := tx.PolicyVersionInsert(ctx, v); err != nil {
			return err
		}
		return tx.AuditAppend(ctx, audit.New(ctx, now, audit.PolicyPropose, p.Actor(), v.ID, audit.Success,
			map[string]any{"number": v.Number, "digest": v.Digest, "description": description}))
	})
	if err != nil {
		return nil, err
	}
	return v, nil
}

// DecidePolicy approves or rejects a proposed policy version. Dual
// control, enforced here beneath any policy: the author can never approve
// their own change, and the approver must be permitted managePolicy by
// the policy in force. digest, when given, must match the version's.
func (a *Authorizer) DecidePolicy(ctx context.Context, p *identity.Principal, id, decision, digestSeen, comment string) (*store.PolicyVersion, error) {
	if decision != "approve" && decision != "reject" {
		return nil, airlock.FieldError("decision", "expected approve or reject, got %q", decision)
	}
	if err := a.CheckSystem(ctx, p, policy.ActionManagePolicy); err != nil {
		return nil, err
	}
	if decision == "reject" && strings.TrimSpace(comment) == "" {
		return nil, airlock.FieldError("comment", "a rejection needs a comment")
	}
	now := a.now().UTC()
	var v *store.PolicyVersion
	var denied *airlock.Error
	err := a.store.Update(ctx, func(tx store.Tx) error {
		denied = nil // Update may run this again
		var err error
		if v, err = tx.PolicyVersionGet(ctx, id); err != nil {
			return err
		}
		if v.Status != store.PolicyProposed {
			return airlock.Errorf(airlock.Conflict, "policy v%d is %s; only proposed versions can be decided", v.Number, v.Status)
		}
		if denied, err = identity.PeopleOnly(ctx, tx, p, "approve or reject policy changes"); err != nil {
			return err
		} else if denied != nil {
			return denied
		}
		switch {
		case v.AuthorID == p.UserID:
			denied = airlock.Errorf(airlock.Forbidden, "nobody approves their own policy change: a second admin must")
		case digestSeen != "" && digestSeen != v.Digest:
			denied = &airlock.Error{Kind: airlock.Conflict, Field: "digest", Message: fmt.Sprintf("policy v%d has digest %s, not the %s you read", v.Number, v.Digest, digestSeen)}
		}
		if denied == nil && decision == "approve" {
			link, err := identity.Linked(ctx, tx, p.UserID, v.AuthorID)
			if err != nil {
				return err
			}
			if link != "" {
				denied = airlock.Errorf(airlock.Forbidden, "your account counts as the author's (%s): a second admin must approve", link)
			}
		}
		if denied != nil {
			return denied
		}
		if decision == "reject" {
			v.Status, v.DecidedByID, v.DecidedByName, v.DecisionComment, v.DecidedAt = store.PolicyRejected, p.UserID, p.Username, comment, now
			if err := tx.PolicyVersionDecide(ctx, v); err != nil {
				return err
			}
			return tx.AuditAppend(ctx, audit.New(ctx, now, audit.PolicyReject, p.Actor(), v.ID, audit.Success,
				map[string]any{"number": v.Number, "digest": v.Digest, "comment": comment, "author": v.AuthorName}))
		}
		// The catalog may have changed since the proposal: validate again.
		if _, err := a.compile(ctx, tx, fmt.Sprintf("policy v%d", v.Number), v.Text); err != nil {
			return err
		}
		active, err := tx.PolicyVersionList(ctx, store.PolicyActive)
		if err != nil {
			return err
		}
		for _, o := range active {
			o.Status, o.DecidedAt = store.PolicySuperseded, now
			if err := tx.PolicyVersionDecide(ctx, o); err != nil {
				return err
			}
		}
		v.Status, v.DecidedByID, v.DecidedByName, v.DecisionComment, v.DecidedAt = store.PolicyActive, p.UserID, p.Username, comment, now
		if err := tx.PolicyVersionDecide(ctx, v); err != nil {
			return err
		}
		return tx.AuditAppend(ctx, audit.New(ctx, now, audit.PolicyApprove, p.Actor(), v.ID, audit.Success,
			map[string]any{"number": v.Number, "digest": v.Digest, "comment": comment, "author": v.AuthorName}))
	})
	if denied != nil {
		_ = a.store.Update(ctx, func(tx store.Tx) error {
			return tx.AuditAppend(ctx, audit.New(ctx, now, audit.PolicyDenied, p.Actor(), id, audit.Denied,
				map[string]any{"decision": decision, "reason": denied.Message}))
		})
	}
	if err != nil {
		return nil, err
	}
	a.invalidate()
	return v, nil
}

// WithdrawPolicy withdraws one's own pending proposal.
func (a *Authorizer) WithdrawPolicy(ctx context.Context, p *identity.Principal, id string) (*store.PolicyVersion, error) {
	if err := a.CheckSystem(ctx, p, policy.ActionManagePolicy); err != nil {
		return nil, err
	}
	now := a.now().UTC()
	var v *store.PolicyVersion
	err := a.store.Update(ctx, func(tx store.Tx) error {
		var err error
		if v, err = tx.PolicyVersionGet(ctx, id); err != nil {
			return err
		}
		if v.Status != store.PolicyProposed {
			return airlock.Errorf(airlock.Conflict, "policy v%d is %s; only proposed versions can be withdrawn", v.Number, v.Status)
		}
		if v.AuthorID != p.UserID {
			return airlock.Errorf(airlock.Forbidden, "only the author withdraws a proposal; others reject it")
		}
		v.Status, v.DecidedByID, v.DecidedByName, v.DecidedAt = store.PolicyWithdrawn, p.UserID, p.Username, now
		if err := tx.PolicyVersionDecide(ctx, v); err != nil {
			return err
		}
		return tx.AuditAppend(ctx, audit.New(ctx, now, audit.PolicyWithdraw, p.Actor(), v.ID, audit.Success, map[string]any{"number": v.Number}))
	})
	return v, err
}

// CanReadPolicy: those permitted managePolicy or readAudit may read
// policies, explain others' access and run the access review.
func (a *Authorizer) CanReadPolicy(ctx context.Context, p *identity.Principal) error {
	if a.Allowed(ctx, p, policy.ActionManagePolicy, policy.Resource{}, policy.Context{}) {
		return nil
	}
	return a.CheckSystem(ctx, p, policy.ActionReadAudit)
}

// ListPolicies lists policy versions, newest first.
func (a *Authorizer) ListPolicies(ctx context.Context, p *identity.Principal, status string) ([]*store.PolicyVersion, error) {
	if err := a.CanReadPolicy(ctx, p); err != nil {
		return nil, err
	}
	return a.store.PolicyVersionList(ctx, status)
}

// GetPolicy returns one version; "active" names the one in force.
func (a *Authorizer) GetPolicy(ctx context.Context, p *identity.Principal, id string) (*store.PolicyVersion, error) {
	if err := a.CanReadPolicy(ctx, p); err != nil {
		return nil, err
	}
	if id == "active" {
		vs, err := a.store.PolicyVersionList(ctx, store.PolicyActive)
		if err != nil {
			return nil, err
		}
		if len(vs) == 0 {
			return nil, airlock.Errorf(airlock.NotFound, "no policy is in force")
		}
		return vs[0], nil
	}
	return a.store.PolicyVersionGet(ctx, id)
}

// DiffPolicies is the unified diff between two policy versions.
func DiffPolicies(from, to *store.PolicyVersion) string {
	return udiff.Unified(fmt.Sprintf("policy v%d (%s)", from.Number, from.Status), fmt.Sprintf("policy v%d (%s)", to.Number, to.Status), from.Text, to.Text)
}
