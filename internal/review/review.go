// Package review owns the lifecycle of procedure versions: proposal,
// review against the quorum of the version's risk class, activation
// (superseding the previous active version), rejection, withdrawal and
// retirement. Separation of duties is enforced here, beneath any policy:
// an author never reviews their own version, a person counts once, and an
// approval binds to the digest the reviewer saw.
package review

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/aymanbagabas/go-udiff"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/authz"
	"github.com/airlockhq/airlock/internal/config"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/policy"
	"github.com/airlockhq/airlock/internal/procedure"
	"github.com/airlockhq/airlock/internal/secretstore"
	"github.com/airlockhq/airlock/internal/store"
)

// Service runs the version lifecycle. Policy decides who may see,
// propose, review and retire; the rules in this package hold beneath it.
type Service struct {
	store  store.Store
	quorum Quorum
	authz  *authz.Authorizer
	log    *slog.Logger
	now    func() time.Time

	// KnownTargets, when set, returns the notify.teams and
	// notify.webhooks names of the server's configuration: a proposal
	// whose notify: rules name another is refused, at the name's line
	// and column. Nil: no check (the file's own validation checks only
	// the names' syntax).
	KnownTargets func() procedure.KnownTargets
}

// ConfiguredTargets returns a KnownTargets for the notification targets
// of a server's configuration.
func ConfiguredTargets(n config.Notify) func() procedure.KnownTargets {
	var known procedure.KnownTargets
	for _, t := range n.Teams {
		known.Teams = append(known.Teams, t.Name)
	}
	for _, w := range n.Webhooks {
		known.Webhooks = append(known.Webhooks, w.Name)
	}
	return func() procedure.KnownTargets { return known }
}

// New returns a Service.
func New(s store.Store, q Quorum, az *authz.Authorizer, log *slog.Logger, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{store: s, quorum: q, authz: az, log: log, now: now}
}

// procedureResource loads a procedure and describes it for policies.
func (s *Service) procedureResource(ctx context.Context, name string) (*store.Procedure, policy.Resource, error) {
	proc, err := s.store.ProcedureGetByName(ctx, name)
	if err != nil {
		return nil, policy.Resource{}, err
	}
	pr, err := authz.ProcedureOf(ctx, s.store, proc)
	return proc, policy.Resource{Procedure: &pr}, err
}

// Procedures lists the procedures p may view.
func (s *Service) Procedures(ctx context.Context, p *identity.Principal) ([]*store.Procedure, error) {
	all, err := s.store.ProcedureList(ctx)
	if err != nil {
		return nil, err
	}
	var out []*store.Procedure
	for _, proc := range all {
		pr, err := authz.ProcedureOf(ctx, s.store, proc)
		if err != nil {
			return nil, err
		}
		if s.authz.Allowed(ctx, p, policy.ActionView, policy.Resource{Procedure: &pr}, policy.Context{}) {
			out = append(out, proc)
		}
	}
	return out, nil
}

// Procedure returns a procedure p may view; one they may not is "not
// found".
func (s *Service) Procedure(ctx context.Context, p *identity.Principal, name string) (*store.Procedure, error) {
	proc, res, err := s.procedureResource(ctx, name)
	if err != nil {
		return nil, err
	}
	if err := s.authz.CheckObject(ctx, p, policy.ActionView, res, policy.Context{}, "procedure"); err != nil {
		return nil, err
	}
	return proc, nil
}

// Versions lists a viewable procedure's versions, oldest first.
func (s *Service) Versions(ctx context.Context, p *identity.Principal, name string) (*store.Procedure, []*store.ProcedureVersion, error) {
	proc, err := s.Procedure(ctx, p, name)
	if err != nil {
		return nil, nil, err
	}
	vs, err := s.store.ProcedureVersionList(ctx, store.ProcedureVersionListParams{ProcedureID: proc.ID})
	return proc, vs, err
}

// Version returns a version of a procedure p may view.
func (s *Service) Version(ctx context.Context, p *identity.Principal, id string) (*store.ProcedureVersion, error) {
	v, err := s.store.ProcedureVersionGet(ctx, id)
	if err != nil {
		return nil, err
	}
	if _, err := s.Procedure(ctx, p, v.ProcedureName); err != nil {
		if airlock.ErrorKind(err) == airlock.NotFound {
			return nil, airlock.Errorf(airlock.NotFound, "procedure version not found")
		}
		return nil, err
	}
	return v, nil
}

// VersionsByStatus lists versions with status (all when empty) of the
// procedures p may view.
func (s *Service) VersionsByStatus(ctx context.Context, p *identity.Principal, status string) ([]*store.ProcedureVersion, error) {
	vs, err := s.store.ProcedureVersionList(ctx, store.ProcedureVersionListParams{Status: status})
	if err != nil {
		return nil, err
	}
	visible := map[string]bool{}
	procs, err := s.Procedures(ctx, p)
	if err != nil {
		return nil, err
	}
	for _, proc := range procs {
		visible[proc.ID] = true
	}
	var out []*store.ProcedureVersion
	for _, v := range vs {
		if visible[v.ProcedureID] {
			out = append(out, v)
		}
	}
	return out, nil
}

// Quorum returns the configured quorum.
func (s *Service) Quorum() Quorum { return s.quorum }

// ProposeResult tells what a proposal did.
type ProposeResult struct {
	// Status is "proposed" or "unchanged".
	Status  string
	Version *store.ProcedureVersion
	// Withdrawn lists earlier pending versions this proposal replaced.
	Withdrawn []*store.ProcedureVersion
}

// Propose records a validated definition as a new proposed version,
// unless it is what is already active or already pending ("unchanged").
// A new proposal withdraws the procedure's earlier pending proposals; the
// active version stays in service until the new one is approved.
//
// Until policy decides who may propose where, the proposer must belong to
// the team (group) that owns the procedure, and the owner is fixed at
// first approval.
func (s *Service) Propose(ctx context.Context, p *identity.Principal, src *procedure.Source) (*ProposeResult, error) {
	def := src.Procedure
	digest := def.Digest()
	// Policy decides who may propose for which procedure: for a new one,
	// as the definition describes it; for an existing one, as it stands.
	target := policy.Procedure{Name: def.Name, Owner: def.Owner, Risk: def.Risk}
	existed := false
	if existing, err := s.store.ProcedureGetByName(ctx, def.Name); err == nil {
		existed = true
		if target, err = authz.ProcedureOf(ctx, s.store, existing); err != nil {
			return nil, err
		}
		if existing.OwnerFixed && def.Owner != existing.Owner {
			return nil, &airlock.Error{Kind: airlock.Forbidden, Field: "owner",
				Message: fmt.Sprintf("procedure %q is owned by team %q; its owner cannot change", def.Name, existing.Owner)}
		}
	} else if airlock.ErrorKind(err) != airlock.NotFound {
		return nil, err
	}
	if err := s.authz.Check(ctx, p, policy.ActionPropose, policy.Resource{Procedure: &target}, policy.Context{}); err != nil {
		return nil, err
	}
	if err := s.checkTargets(src); err != nil {
		return nil, err
	}
	now := s.now().UTC()
	var res ProposeResult
	err := s.store.Update(ctx, func(tx store.Tx) error {
		res = ProposeResult{} // Update may run this again
		proc, err := tx.ProcedureGetByName(ctx, def.Name)
		switch {
		case airlock.ErrorKind(err) == airlock.NotFound && existed:
			return airlock.Errorf(airlock.Conflict, "procedure %q was deleted meanwhile; propose again", def.Name)
		case airlock.ErrorKind(err) == airlock.NotFound:
			proc = &store.Procedure{ID: airlock.NewID(airlock.PrefixProc, now), Name: def.Name, Owner: def.Owner, CreatedAt: now, UpdatedAt: now}
			if err := tx.ProcedureInsert(ctx, proc); err != nil {
				return err
			}
			if err := tx.AuditAppend(ctx, audit.New(ctx, now, audit.ProcedureCreate, p.Actor(), proc.ID, audit.Success,
				map[string]any{"name": def.Name, "owner": def.Owner})); err != nil {
				return err
			}
		case err != nil:
			return err
		case !existed:
			// Policy was asked about a new procedure owned as def says;
			// someone created it meanwhile, so ask again about what is.
			return airlock.Errorf(airlock.Conflict, "procedure %q was created by someone else meanwhile; propose again", def.Name)
		case proc.OwnerFixed && def.Owner != proc.Owner:
			return airlock.Errorf(airlock.Conflict, "procedure %q changed owner meanwhile; propose again", def.Name)
		}
		if err := checkSecretUse(ctx, tx, src); err != nil {
			return err
		}
		versions, err := tx.ProcedureVersionList(ctx, store.ProcedureVersionListParams{ProcedureID: proc.ID})
		if err != nil {
			return err
		}
		var pending []*store.ProcedureVersion
		number := 0
		for _, v := range versions {
			number = max(number, v.Number)
			switch {
			case v.Status == store.VersionProposed:
				pending = append(pending, v)
			case v.Status == store.VersionRejected && v.Digest == digest:
				return airlock.Errorf(airlock.Conflict, "this exact definition was rejected as version %d; change it before proposing again", v.Number)
			}
		}
		for _, v := range pending {
			if v.Digest == digest {
				res = ProposeResult{Status: "unchanged", Version: v}
				return nil
			}
		}
		if proc.ActiveVersionID != "" && proc.RetiredAt.IsZero() {
			active, err := tx.ProcedureVersionGet(ctx, proc.ActiveVersionID)
			if err != nil {
				return err
			}
			if active.Digest == digest {
				res = ProposeResult{Status: "unchanged", Version: active}
				return nil
			}
		}
		for _, v := range pending {
			if err := tx.ProcedureVersionSetStatus(ctx, v.ID, store.VersionWithdrawn, now); err != nil {
				return err
			}
			v.Status, v.DecidedAt = store.VersionWithdrawn, now
			if err := tx.AuditAppend(ctx, audit.New(ctx, now, audit.ProcedureVersionWithdraw, p.Actor(), v.ID, audit.Success,
				map[string]any{"procedure": def.Name, "number": v.Number, "digest": v.Digest, "reason": "replaced by a newer proposal"})); err != nil {
				return err
			}
			res.Withdrawn = append(res.Withdrawn, v)
		}
		v := &store.ProcedureVersion{ID: airlock.NewID(airlock.PrefixVersion, now), ProcedureID: proc.ID, ProcedureName: proc.Name,
			Number: number + 1, Digest: digest, Definition: def.Canonical(), Risk: def.Risk, Status: store.VersionProposed,
			AuthorID: p.UserID, AuthorName: p.Username, SourceFile: src.File, CreatedAt: now}
		if err := tx.ProcedureVersionInsert(ctx, v); err != nil {
			return err
		}
		res.Status, res.Version = "proposed", v
		return tx.AuditAppend(ctx, audit.New(ctx, now, audit.ProcedureVersionPropose, p.Actor(), v.ID, audit.Success,
			map[string]any{"procedure": def.Name, "number": v.Number, "digest": digest, "risk": def.Risk, "file": src.File}))
	})
	if err != nil {
		return nil, err
	}
	return &res, nil
}

// checkSecretUse refuses a definition whose steps name a secret whose
// scope covers neither the procedure nor its owning team, each at its
// line and column. A secret not stored yet passes: whoever creates it
// decides its scope, and a run is refused until that scope covers the
// procedure.
func checkSecretUse(ctx context.Context, tx store.Tx, src *procedure.Source) error {
	def := src.Procedure
	refused, err := secretstore.CheckUse(ctx, tx, def.Name, def.Owner, def)
	if err != nil {
		return err
	}
	var msgs []string
	for _, r := range refused {
		if !r.Missing {
			msgs = append(msgs, src.ErrorAt(r.Path(), "%s", r.Message(def.Name, def.Owner)).Error())
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	return &airlock.Error{Kind: airlock.Invalid, Field: "source", Message: strings.Join(msgs, "\n")}
}

// checkTargets refuses a definition whose notify: rules name a Teams
// webhook or a webhook the server's configuration lacks, each at its line
// and column: a version must not be reviewed and approved for a place
// its notifications can never reach.
func (s *Service) checkTargets(src *procedure.Source) error {
	if s.KnownTargets == nil || len(src.Procedure.Notify) == 0 {
		return nil
	}
	errs := src.CheckTargets(s.KnownTargets())
	if len(errs) == 0 {
		return nil
	}
	return &airlock.Error{Kind: airlock.Invalid, Field: "source", Message: errs.Error()}
}

// ReviewResult tells what a review did.
type ReviewResult struct {
	Review  *store.Review
	Version *store.ProcedureVersion
	// Activated is set when this approval completed the quorum.
	Activated bool
	// Superseded is the version that was active before, if any.
	Superseded *store.ProcedureVersion
	Missing    []string
}

// Review records an approval or rejection of a proposed version. digest
// is the digest the reviewer saw; it must be the version's. A rejection
// ends the version; an approval that completes the quorum activates it.
func (s *Service) Review(ctx context.Context, p *identity.Principal, versionID, digest, decision, comment string) (*ReviewResult, error) {
	if decision != store.ReviewApprove && decision != store.ReviewReject {
		return nil, airlock.FieldError("decision", "expected approve or reject, got %q", decision)
	}
	if len(comment) > 4000 {
		return nil, airlock.FieldError("comment", "at most 4000 characters")
	}
	if decision == store.ReviewReject && strings.TrimSpace(comment) == "" {
		return nil, airlock.FieldError("comment", "a rejection needs a comment saying what to change")
	}
	pre, err := s.store.ProcedureVersionGet(ctx, versionID)
	if err != nil {
		return nil, err
	}
	_, res0, err := s.procedureResource(ctx, pre.ProcedureName)
	if err != nil {
		return nil, err
	}
	authorGroups, err := authz.GroupsOf(ctx, s.store, pre.AuthorID)
	if err != nil {
		return nil, err
	}
	vres := policy.Resource{Version: &policy.Version{ID: pre.ID, Number: pre.Number, Risk: pre.Risk, Status: pre.Status,
		Author: pre.AuthorName, AuthorGroups: authorGroups, Procedure: *res0.Procedure}}
	if err := s.authz.CheckObject(ctx, p, policy.ActionView, res0, policy.Context{}, "procedure version"); err != nil {
		return nil, err
	}
	if err := s.authz.Check(ctx, p, policy.ActionReview, vres, policy.Context{}); err != nil {
		return nil, err
	}
	now := s.now().UTC()
	var res ReviewResult
	var denied *airlock.Error
	err = s.store.Update(ctx, func(tx store.Tx) error {
		res, denied = ReviewResult{}, nil // Update may run this again
		v, err := tx.ProcedureVersionGet(ctx, versionID)
		if err != nil {
			return err
		}
		res.Version = v
		if v.Status != store.VersionProposed {
			return airlock.Errorf(airlock.Conflict, "version %d of %s is %s; only proposed versions can be reviewed", v.Number, v.ProcedureName, v.Status)
		}
		if denied, err = identity.PeopleOnly(ctx, tx, p, "review procedure versions"); err != nil {
			return err
		} else if denied != nil {
			return denied
		}
		switch {
		case digest != v.Digest:
			denied = &airlock.Error{Kind: airlock.Conflict, Field: "digest",
				Message: fmt.Sprintf("this version's digest is %s, not the %s you reviewed; reload it and review again", v.Digest, digest)}
		case v.AuthorID == p.UserID:
			denied = airlock.Errorf(airlock.Forbidden, "you cannot review your own version")
		}
		risk, inService, err := reviewRisk(ctx, tx, v)
		if err != nil {
			return err
		}
		if denied == nil && !s.quorum.Eligible(risk, p.Groups) {
			what := fmt.Sprintf("a %s-risk version", risk)
			if risk != v.Risk {
				what = fmt.Sprintf("this version (declared %s risk, replacing a %s-risk version in service)", v.Risk, inService)
			}
			denied = airlock.Errorf(airlock.Forbidden, "reviewing %s needs membership in one of: %s", what, strings.Join(s.quorum[risk], ", "))
		}
		if denied != nil {
			return denied
		}
		reviews, err := tx.ReviewList(ctx, v.ID)
		if err != nil {
			return err
		}
		for _, r := range reviews {
			if r.ReviewerID == p.UserID {
				denied = airlock.Errorf(airlock.Conflict, "you already reviewed this version; a person counts once")
				return denied
			}
		}
		if decision == store.ReviewApprove {
			// An account the author (or a fellow approver) created or
			// granted a group counts as that person.
			others := []string{v.AuthorID}
			for _, r := range reviews {
				if r.Decision == store.ReviewApprove {
					others = append(others, r.ReviewerID)
				}
			}
			if denied, err = identity.OnePerson(ctx, tx, p.UserID, others); err != nil {
				return err
			} else if denied != nil {
				return denied
			}
		}
		r := &store.Review{ID: airlock.NewID(airlock.PrefixReview, now), VersionID: v.ID, Digest: v.Digest, ReviewerID: p.UserID,
			ReviewerName: p.Username, Decision: decision, Comment: comment, ReviewerGroups: slices.Clone(p.Groups), CreatedAt: now}
		if err := tx.ReviewInsert(ctx, r); err != nil {
			return err
		}
		res.Review = r
		if err := tx.AuditAppend(ctx, audit.New(ctx, now, audit.ProcedureVersionReview, p.Actor(), v.ID, audit.Success,
			map[string]any{"procedure": v.ProcedureName, "number": v.Number, "digest": v.Digest, "decision": decision,
				"comment": comment, "reviewer_groups": p.Groups})); err != nil {
			return err
		}
		if decision == store.ReviewReject {
			v.Status, v.DecidedAt = store.VersionRejected, now
			if err := tx.ProcedureVersionSetStatus(ctx, v.ID, v.Status, now); err != nil {
				return err
			}
			return tx.AuditAppend(ctx, audit.New(ctx, now, audit.ProcedureVersionReject, p.Actor(), v.ID, audit.Success,
				map[string]any{"procedure": v.ProcedureName, "number": v.Number, "digest": v.Digest, "comment": comment}))
		}
		met, missing, approvers := s.evaluate(v, risk, append(reviews, r))
		res.Missing = missing
		if !met {
			return nil
		}
		return s.activate(ctx, tx, p, v, risk, approvers, &res, now)
	})
	if denied != nil {
		s.recordDenied(ctx, p, versionID, digest, denied)
	}
	if err != nil {
		return nil, err
	}
	return &res, nil
}

// evaluate counts the approvals that bind to v's digest and are not the
// author's.
func (s *Service) evaluate(v *store.ProcedureVersion, risk string, reviews []*store.Review) (bool, []string, []string) {
	var ap []Approver
	var names []string
	for _, r := range reviews {
		if r.Decision != store.ReviewApprove || r.Digest != v.Digest || r.ReviewerID == v.AuthorID {
			continue
		}
		ap = append(ap, Approver{UserID: r.ReviewerID, Groups: r.ReviewerGroups})
		names = append(names, r.ReviewerName)
	}
	met, missing := s.quorum.Evaluate(risk, ap)
	return met, missing, names
}

func (s *Service) activate(ctx context.Context, tx store.Tx, p *identity.Principal, v *store.ProcedureVersion, risk string, approvers []string, res *ReviewResult, now time.Time) error {
	proc, err := tx.ProcedureGetByID(ctx, v.ProcedureID)
	if err != nil {
		return err
	}
	def, err := procedure.FromCanonical(v.Definition)
	if err != nil {
		return fmt.Errorf("activate %s: %w", v.ID, err)
	}
	if proc.ActiveVersionID != "" {
		prev, err := tx.ProcedureVersionGet(ctx, proc.ActiveVersionID)
		if err != nil {
			return err
		}
		if prev.Status == store.VersionApproved {
			if err := tx.ProcedureVersionSetStatus(ctx, prev.ID, store.VersionSuperseded, now); err != nil {
				return err
			}
			prev.Status = store.VersionSuperseded
			res.Superseded = prev
			if err := tx.AuditAppend(ctx, audit.New(ctx, now, audit.ProcedureVersionSupersede, audit.System, prev.ID, audit.Success,
				map[string]any{"procedure": v.ProcedureName, "number": prev.Number, "digest": prev.Digest, "superseded_by": v.ID})); err != nil {
				return err
			}
		}
	}
	if err := tx.ProcedureVersionSetStatus(ctx, v.ID, store.VersionApproved, now); err != nil {
		return err
	}
	v.Status, v.DecidedAt = store.VersionApproved, now
	proc.ActiveVersionID, proc.Owner, proc.OwnerFixed, proc.RetiredAt, proc.UpdatedAt = v.ID, def.Owner, true, time.Time{}, now
	if err := tx.ProcedureUpdate(ctx, proc); err != nil {
		return err
	}
	res.Activated = true
	return tx.AuditAppend(ctx, audit.New(ctx, now, audit.ProcedureVersionActivate, p.Actor(), v.ID, audit.Success,
		map[string]any{"procedure": v.ProcedureName, "number": v.Number, "digest": v.Digest, "risk": v.Risk,
			"review_risk": risk, "approvers": approvers, "quorum": s.quorum[risk], "author": v.AuthorName}))
}

func (s *Service) recordDenied(ctx context.Context, p *identity.Principal, versionID, digest string, reason *airlock.Error) {
	err := s.store.Update(ctx, func(tx store.Tx) error {
		return tx.AuditAppend(ctx, audit.New(ctx, s.now(), audit.ProcedureVersionReviewDenied, p.Actor(), versionID, audit.Denied,
			map[string]any{"digest": digest, "reason": reason.Message}))
	})
	if err != nil {
		s.log.Error("audit denied review", "version_id", versionID, "err", err)
	}
}

// Withdraw ends a proposed version. Its author may, and so may those
// permitted to retire the procedure.
func (s *Service) Withdraw(ctx context.Context, p *identity.Principal, versionID string) (*store.ProcedureVersion, error) {
	v, err := s.Version(ctx, p, versionID)
	if err != nil {
		return nil, err
	}
	if v.AuthorID != p.UserID {
		_, res, err := s.procedureResource(ctx, v.ProcedureName)
		if err != nil {
			return nil, err
		}
		if err := s.authz.Check(ctx, p, policy.ActionRetire, res, policy.Context{}); err != nil {
			return nil, err
		}
	}
	now := s.now().UTC()
	err = s.store.Update(ctx, func(tx store.Tx) error {
		var err error
		if v, err = tx.ProcedureVersionGet(ctx, versionID); err != nil {
			return err
		}
		if v.Status != store.VersionProposed {
			return airlock.Errorf(airlock.Conflict, "version %d of %s is %s; only proposed versions can be withdrawn", v.Number, v.ProcedureName, v.Status)
		}
		if err := tx.ProcedureVersionSetStatus(ctx, v.ID, store.VersionWithdrawn, now); err != nil {
			return err
		}
		v.Status, v.DecidedAt = store.VersionWithdrawn, now
		return tx.AuditAppend(ctx, audit.New(ctx, now, audit.ProcedureVersionWithdraw, p.Actor(), v.ID, audit.Success,
			map[string]any{"procedure": v.ProcedureName, "number": v.Number, "digest": v.Digest}))
	})
	return v, err
}

// Retire takes a procedure out of service: its active version is retired
// and no new runs start. Policy's retire decides who may. A new version
// approved later brings it back.
func (s *Service) Retire(ctx context.Context, p *identity.Principal, name, reason string) (*store.Procedure, error) {
	if strings.TrimSpace(reason) == "" {
		return nil, airlock.FieldError("reason", "say why the procedure is retired")
	}
	_, res, err := s.procedureResource(ctx, name)
	if err != nil {
		return nil, err
	}
	if err := s.authz.CheckObject(ctx, p, policy.ActionRetire, res, policy.Context{}, "procedure"); err != nil {
		return nil, err
	}
	now := s.now().UTC()
	var proc *store.Procedure
	err = s.store.Update(ctx, func(tx store.Tx) error {
		var err error
		if proc, err = tx.ProcedureGetByName(ctx, name); err != nil {
			return err
		}
		if !proc.RetiredAt.IsZero() {
			return airlock.Errorf(airlock.Conflict, "%s is already retired", name)
		}
		if proc.ActiveVersionID != "" {
			if err := tx.ProcedureVersionSetStatus(ctx, proc.ActiveVersionID, store.VersionRetired, now); err != nil {
				return err
			}
		}
		proc.RetiredAt, proc.UpdatedAt = now, now
		if err := tx.ProcedureUpdate(ctx, proc); err != nil {
			return err
		}
		return tx.AuditAppend(ctx, audit.New(ctx, now, audit.ProcedureRetire, p.Actor(), proc.ID, audit.Success,
			map[string]any{"procedure": name, "version_id": proc.ActiveVersionID, "reason": reason}))
	})
	return proc, err
}

// Status is a version with its reviews and where its quorum stands.
type Status struct {
	Version *store.ProcedureVersion
	Reviews []*store.Review
	// Risk is the risk the version is reviewed under: the higher of its
	// own and that of the version in service, which a new version may
	// not lower its own review by declaring less.
	Risk string
	// RiskChange says so when Risk is not the version's own.
	RiskChange string
	Quorum     []string // required groups
	Missing    []string // still missing, for a proposed version
}

var riskRank = map[string]int{procedure.RiskLow: 1, procedure.RiskMedium: 2, procedure.RiskHigh: 3}

// reviewRisk is the risk a proposed version is reviewed under — the
// higher of its own and the in-service version's — and the latter.
func reviewRisk(ctx context.Context, r store.Reader, v *store.ProcedureVersion) (risk, inService string, err error) {
	if v.Status != store.VersionProposed {
		return v.Risk, "", nil
	}
	proc, err := r.ProcedureGetByID(ctx, v.ProcedureID)
	if err != nil || proc.ActiveVersionID == "" || proc.ActiveVersionID == v.ID {
		return v.Risk, "", err
	}
	active, err := r.ProcedureVersionGet(ctx, proc.ActiveVersionID)
	if err != nil {
		return "", "", err
	}
	if riskRank[active.Risk] > riskRank[v.Risk] {
		return active.Risk, active.Risk, nil
	}
	return v.Risk, active.Risk, nil
}

// VersionStatus loads a version p may view with its reviews and quorum
// standing.
func (s *Service) VersionStatus(ctx context.Context, p *identity.Principal, id string) (*Status, error) {
	v, err := s.Version(ctx, p, id)
	if err != nil {
		return nil, err
	}
	return s.StatusOf(ctx, v)
}

// StatusOf loads the reviews and quorum standing of a version the caller
// has already been allowed to see.
func (s *Service) StatusOf(ctx context.Context, v *store.ProcedureVersion) (*Status, error) {
	id := v.ID
	rs, err := s.store.ReviewList(ctx, id)
	if err != nil {
		return nil, err
	}
	risk, inService, err := reviewRisk(ctx, s.store, v)
	if err != nil {
		return nil, err
	}
	st := &Status{Version: v, Reviews: rs, Risk: risk, Quorum: s.quorum[risk]}
	if risk != v.Risk {
		st.RiskChange = fmt.Sprintf("declared %s risk, replacing a %s-risk version in service: reviewed under the %s-risk quorum", v.Risk, inService, risk)
	}
	if v.Status == store.VersionProposed {
		_, st.Missing, _ = s.evaluate(v, risk, rs)
	}
	return st, nil
}

// Diff returns the unified diff of the canonical YAML of two versions.
func Diff(from, to *store.ProcedureVersion) (string, error) {
	a, err := procedure.FromCanonical(from.Definition)
	if err != nil {
		return "", err
	}
	b, err := procedure.FromCanonical(to.Definition)
	if err != nil {
		return "", err
	}
	label := func(v *store.ProcedureVersion) string {
		return fmt.Sprintf("%s v%d (%s, %s)", v.ProcedureName, v.Number, v.Status, v.Digest[:min(len(v.Digest), 19)])
	}
	return udiff.Unified(label(from), label(to), a.YAML(), b.YAML()), nil
}

// CanReview reports whether p could review the version now: proposed, not
// theirs, not yet reviewed by them, in one of its quorum's groups, and
// a person.
func (s *Service) CanReview(p *identity.Principal, st *Status) bool {
	if p.Service || st.Version.Status != store.VersionProposed || st.Version.AuthorID == p.UserID || !s.quorum.Eligible(st.Risk, p.Groups) {
		return false
	}
	for _, r := range st.Reviews {
		if r.ReviewerID == p.UserID {
			return false
		}
	}
	return true
}

// Reviewers lists the people who could review v: in a group of its
// risk class's quorum, permitted review by the policy in force, and
// neither its author nor an account that counts as the author. For
// telling them; Review still decides.
func (s *Service) Reviewers(ctx context.Context, v *store.ProcedureVersion) ([]string, error) {
	risk, _, err := reviewRisk(ctx, s.store, v)
	if err != nil {
		return nil, err
	}
	_, res0, err := s.procedureResource(ctx, v.ProcedureName)
	if err != nil {
		return nil, err
	}
	authorGroups, err := authz.GroupsOf(ctx, s.store, v.AuthorID)
	if err != nil {
		return nil, err
	}
	vres := policy.Resource{Version: &policy.Version{ID: v.ID, Number: v.Number, Risk: v.Risk, Status: v.Status,
		Author: v.AuthorName, AuthorGroups: authorGroups, Procedure: *res0.Procedure}}
	var out []string
	err = authz.People(ctx, s.store, func(p *identity.Principal) error {
		if p.UserID == v.AuthorID || !s.quorum.Eligible(risk, p.Groups) || !s.authz.Allowed(ctx, p, policy.ActionReview, vres, policy.Context{}) {
			return nil
		}
		if denied, err := identity.OnePerson(ctx, s.store, p.UserID, []string{v.AuthorID}); err != nil || denied != nil {
			return err
		}
		out = append(out, p.Username)
		return nil
	})
	return out, err
}
