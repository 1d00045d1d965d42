// Package run owns runs: requests validated against the active version,
// the decision (run, request, refuse) by policy and by the procedure's own
// approval rules, four-eyes approvals bound to what they approve, the
// durable queue (the run rows themselves), workers that claim and execute
// runs on their nodes, heartbeats and the detection of runs whose worker
// died, output capture with redaction, and live output.
package run

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/authz"
	"github.com/airlockhq/airlock/internal/executor"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/inventory"
	"github.com/airlockhq/airlock/internal/policy"
	"github.com/airlockhq/airlock/internal/procedure"
	"github.com/airlockhq/airlock/internal/secret"
	"github.com/airlockhq/airlock/internal/secretstore"
	"github.com/airlockhq/airlock/internal/store"
)

// Config tunes runs.
type Config struct {
	Workers           int
	ApprovalTTL       time.Duration
	HeartbeatInterval time.Duration
	// HeartbeatTimeout: a running run whose worker has not beaten for this
	// long is taken to have lost its worker.
	HeartbeatTimeout time.Duration
	MaxOutputBytes   int64
	// MaxAttempts bounds how often an idempotent run whose worker died is
	// started again.
	MaxAttempts int
	WorkDir     string
	// OutputRetention: output of runs that ended longer ago is pruned
	// (zero keeps it).
	OutputRetention time.Duration
	// TryEnvironments are where a proposed, unreviewed version may run
	// (try runs).
	TryEnvironments []string
	// SingleNode: this process is the only one working the queue (the
	// embedded SQLite database), so at start no run can be executing
	// anywhere: runs left running by a previous process are reaped at
	// once, not after the heartbeat timeout.
	SingleNode bool
	// Observer is told what runs do, for metrics; nil observes nothing.
	Observer Observer
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{Workers: 8, ApprovalTTL: 24 * time.Hour, HeartbeatInterval: 2 * time.Second, HeartbeatTimeout: 20 * time.Second,
		MaxOutputBytes: 10 << 20, MaxAttempts: 3}
}

// Service runs runs.
type Service struct {
	store     store.Store
	authz     *authz.Authorizer
	keyring   *secret.Keyring
	log       *slog.Logger
	now       func() time.Time
	cfg       Config
	executors map[string]executor.Executor
	workerID  string
	wake      chan struct{}
	// slots bounds the runs executing here (Config.Workers): the
	// dispatcher and a request that starts its run at once take one.
	slots  chan struct{}
	broker *broker

	mu sync.Mutex
	// attempts are the attempts executing here, by run and attempt
	// number: one run can have two here for a moment, when this worker
	// claims a run the reaper took from one of its own attempts.
	attempts map[attemptKey]*attemptState
	// stopping: Start is shutting down; an attempt that registers now is
	// stopped at once.
	stopping bool
	// working is Start's context while it works the queue (nil
	// otherwise): a request may then start its run itself.
	working context.Context
	// beat is when the last heartbeat that reached the database began
	// (monotonic clock): the lease of every attempt here lasts from it.
	beat time.Time
	// live is each running fan-out run's node progress on this replica
	// (live.go); liveSeq numbers its changes.
	live    map[string]map[string]liveNode
	liveSeq uint64
	active  sync.WaitGroup
	// endings: those awaiting runs that end here.
	endings endings
	// catalog: procedures as requests last read them.
	catalog catalog
}

// New returns a Service. executors maps a node transport (local, ssh) to
// its executor.
func New(s store.Store, az *authz.Authorizer, kr *secret.Keyring, executors map[string]executor.Executor, cfg Config, log *slog.Logger, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	return &Service{store: s, authz: az, keyring: kr, log: log, now: now, cfg: cfg, executors: executors,
		workerID: airlock.NewID("wrk", time.Now()), wake: make(chan struct{}, 1), slots: make(chan struct{}, max(1, cfg.Workers)), broker: newBroker(),
		attempts: map[attemptKey]*attemptState{}, live: map[string]map[string]liveNode{}}
}

// RequestParams is a run request.
type RequestParams struct {
	Procedure   string
	Environment string
	// Params are raw values: from JSON (string, float64, bool, []any) or
	// strings from a form or the CLI.
	Params         map[string]any
	Reason         string
	Ticket         string
	IdempotencyKey string
	// StandingID names the event trigger that requests the run (set by
	// the trigger, never from a request body).
	StandingID string
	// Version, when set, is the number of the version to run: another
	// than the one in service makes a try run.
	Version int
}

// Plan is what a request would do, before anything is stored: the dry
// resolution shown to the requester.
type Plan struct {
	Procedure     *store.Procedure
	Version       *store.ProcedureVersion
	Definition    *procedure.Procedure
	Environment   string
	Params        map[string]any // typed, secrets excluded
	secrets       map[string]any
	Targets       []*store.Node
	Decision      string // run | request | refused
	NeedsApproval bool
	Approvals     int
	Policies      []string
	LockKey       string
	// Try: a proposed, unreviewed version in a try environment.
	Try bool
	// view is policy's view of the procedure, as the plan read it.
	view policy.Procedure
	// entry is the procedure with its active version the plan was made
	// on; digestOK: the definition hashes to the version's digest.
	entry    *entry
	digestOK bool
}

// Plan validates a request and decides it, storing nothing. Parameters
// are validated against the active version; a failing value names the
// parameter.
func (s *Service) Plan(ctx context.Context, p *identity.Principal, rp RequestParams) (*Plan, error) {
	return s.plan(ctx, p, rp, nil)
}

// errStale: a plan made on a catalog entry met a procedure that is not
// the entry's, or was refused: it is made again from the store.
var errStale = errors.New("run: planned on a stale catalog entry")

// errReplayed: the request's Idempotency-Key made a run before.
var errReplayed = errors.New("run: the Idempotency-Key made a run before")

// plan is Plan on cached, the procedure and its active version as the
// catalog has them, or as read now when cached is nil. A plan on cached
// that is refused the view of the procedure says so with errStale,
// unaudited: the plan made again from the store decides, and audits.
func (s *Service) plan(ctx context.Context, p *identity.Principal, rp RequestParams, cached *entry) (*Plan, error) {
	e := cached
	if e == nil {
		proc, err := s.store.ProcedureGetByName(ctx, rp.Procedure)
		if err != nil {
			return nil, err
		}
		// The active version, read once: policy's view of the procedure
		// (its risk) and, most often, the version the request runs.
		var active *store.ProcedureVersion
		if proc.ActiveVersionID != "" {
			if active, err = s.store.ProcedureVersionGet(ctx, proc.ActiveVersionID); err != nil {
				return nil, err
			}
		}
		e = newEntry(proc, active)
	}
	proc, active := e.proc, e.active
	var pr policy.Procedure
	if active != nil {
		pr = authz.ActiveProcedureOf(proc, active)
	} else {
		var err error
		if pr, err = authz.ProcedureOf(ctx, s.store, proc); err != nil {
			return nil, err
		}
	}
	viewRes := policy.Resource{Procedure: &pr}
	if cached != nil {
		if !s.authz.Allowed(ctx, p, policy.ActionView, viewRes, policy.Context{}) {
			return nil, errStale
		}
	} else if err := s.authz.CheckObject(ctx, p, policy.ActionView, viewRes, policy.Context{}, "procedure"); err != nil {
		return nil, err
	}
	if !proc.RetiredAt.IsZero() {
		return nil, airlock.Errorf(airlock.Conflict, "%s is retired: no new runs start", proc.Name)
	}
	if !slices.Contains(s.authz.Environments(), rp.Environment) {
		return nil, airlock.FieldError("environment", "expected one of %s, got %q", strings.Join(s.authz.Environments(), ", "), rp.Environment)
	}
	v, try, err := s.version(ctx, p, proc, active, rp)
	if err != nil {
		return nil, err
	}
	def, digestOK := e.def, e.digestOK
	if v != active || def == nil {
		if def, err = procedure.FromCanonical(v.Definition); err != nil {
			return nil, err
		}
		digestOK = def.Digest() == v.Digest
	}
	plain, secrets, err := coerce(def, rp.Params)
	if err != nil {
		return nil, err
	}
	if try {
		if err := tryWithoutSecrets(proc.Name, v.Number, def, secrets); err != nil {
			return nil, err
		}
	}
	// A step naming a secret the procedure may not use would be refused
	// at start: say so now, before anyone approves the run.
	refused, err := secretstore.CheckUse(ctx, s.store, proc.Name, proc.Owner, def)
	if err != nil {
		return nil, err
	}
	if len(refused) > 0 {
		return nil, airlock.Errorf(airlock.Conflict, "%s cannot run now: step %s: %s", proc.Name, refused[0].StepName, refused[0].Message(proc.Name, proc.Owner))
	}
	var nodes []*store.Node
	if def.Targets != nil { // without, the run is on Airlock's own host
		if nodes, err = s.store.NodeList(ctx); err != nil {
			return nil, err
		}
	}
	targets, err := inventory.Resolve(def, rp.Environment, render(plain), nodes)
	if err != nil {
		return nil, airlock.FieldError("environment", "%v", err)
	}
	names := make([]string, len(targets))
	for i, n := range targets {
		names[i] = n.Name
	}
	pc := policy.Context{Environment: rp.Environment, Params: plain, Targets: names}
	plan := &Plan{Procedure: proc, Version: v, Definition: def, Environment: rp.Environment, Params: plain, secrets: secrets,
		Targets: targets, NeedsApproval: authz.NeedsApproval(def, rp.Environment), Try: try, view: pr, entry: e, digestOK: digestOK}
	if err := s.decide(ctx, p, pr, pc, plan); err != nil {
		return nil, err
	}
	if def.Lock != "" {
		plan.LockKey, err = procedure.Expand(def.Lock, procedure.Vars{Params: render(plain), Environment: rp.Environment,
			Run: map[string]string{"environment": rp.Environment, "requester": p.Username}})
		if err != nil {
			return nil, airlock.FieldError("lock", "%v", err)
		}
	}
	return plan, nil
}

// decide sets the plan's decision: run, request (with how many
// approvals) or refused. A try run needs policy's try, and no approval:
// it runs a proposed version in a sandbox, never with secrets.
func (s *Service) decide(ctx context.Context, p *identity.Principal, pr policy.Procedure, pc policy.Context, plan *Plan) error {
	ask := func(action string) (policy.Decision, error) {
		return s.authz.DecideFor(ctx, p, policy.Request{Principal: authz.PrincipalOf(p), Action: action, Resource: policy.Resource{Procedure: &pr}, Context: pc})
	}
	if plan.Try {
		d, err := ask(policy.ActionTry)
		if err != nil {
			return err
		}
		plan.NeedsApproval, plan.Policies, plan.Decision = false, d.Policies, "refused"
		if d.Allowed {
			plan.Decision = "run"
		}
		return nil
	}
	runD, err := ask(policy.ActionRun)
	if err != nil {
		return err
	}
	if runD.Allowed && !plan.NeedsApproval {
		plan.Decision, plan.Policies = "run", runD.Policies
		return nil // whether a request alone is allowed does not matter
	}
	reqD, err := ask(policy.ActionRequest)
	if err != nil {
		return err
	}
	switch {
	case runD.Allowed || reqD.Allowed:
		plan.Decision, plan.Approvals = "request", 1
		plan.Policies = runD.Policies
		if !runD.Allowed {
			plan.Policies = reqD.Policies
		}
		if plan.NeedsApproval && plan.Definition.Approval.Count > 1 {
			plan.Approvals = plan.Definition.Approval.Count
		}
	default:
		plan.Decision = "refused"
		plan.Policies = append(runD.Policies, reqD.Policies...)
	}
	return nil
}

// version returns the version a request runs: the one in service
// (active, which the caller read), or the numbered one — a try run when
// that is not the one in service, allowed only in a try environment, of
// a proposed version, to its author or owner team.
func (s *Service) version(ctx context.Context, p *identity.Principal, proc *store.Procedure, active *store.ProcedureVersion, rp RequestParams) (*store.ProcedureVersion, bool, error) {
	if rp.Version <= 0 {
		if active == nil {
			return nil, false, airlock.Errorf(airlock.Conflict, "%s has no approved version yet", proc.Name)
		}
		return active, false, nil
	}
	vs, err := s.store.ProcedureVersionList(ctx, store.ProcedureVersionListParams{ProcedureID: proc.ID})
	if err != nil {
		return nil, false, err
	}
	var v *store.ProcedureVersion
	for _, x := range vs {
		if x.Number == rp.Version {
			v = x
		}
	}
	switch {
	case v == nil:
		return nil, false, airlock.FieldError("version", "%s has no version %d", proc.Name, rp.Version)
	case v.ID == proc.ActiveVersionID:
		return v, false, nil
	case len(s.cfg.TryEnvironments) == 0:
		return nil, false, airlock.FieldError("version", "version %d of %s is %s, not in service, and no environment takes try runs (try_environments)", v.Number, proc.Name, v.Status)
	case !slices.Contains(s.cfg.TryEnvironments, rp.Environment):
		return nil, false, airlock.FieldError("environment", "version %d of %s is %s, not in service: it runs only in a try environment (%s), not in %s",
			v.Number, proc.Name, v.Status, strings.Join(s.cfg.TryEnvironments, ", "), rp.Environment)
	case v.Status != store.VersionProposed:
		return nil, false, airlock.Errorf(airlock.Conflict, "version %d of %s is %s; only a proposed version can be tried", v.Number, proc.Name, v.Status)
	case p.UserID != v.AuthorID && !p.InGroup(proc.Owner):
		err := airlock.Errorf(airlock.Forbidden, "only its author (%s) or its owner team (%s) may try version %d of %s", v.AuthorName, proc.Owner, v.Number, proc.Name)
		s.auditDenied(ctx, p, proc.Name, rp.Environment, err.Error())
		return nil, false, err
	}
	return v, true, nil
}

// tryWithoutSecrets refuses a try run that would get a secret: a step
// naming one, or a secret parameter.
func tryWithoutSecrets(name string, number int, def *procedure.Procedure, secrets map[string]any) error {
	for i, st := range def.Steps {
		if len(st.Secrets) > 0 {
			return airlock.Errorf(airlock.Conflict, "version %d of %s cannot be tried: step %d (%s) names secrets, and a try run gets none", number, name, i+1, st.Name)
		}
	}
	if len(secrets) > 0 {
		return airlock.Errorf(airlock.Conflict, "version %d of %s cannot be tried: it takes secret parameters, and a try run gets none", number, name)
	}
	return nil
}

// auditDenied records a refused try as authz.deny does.
func (s *Service) auditDenied(ctx context.Context, p *identity.Principal, proc, env, reason string) {
	now := s.now().UTC()
	_ = s.store.Update(ctx, func(tx store.Tx) error {
		return tx.AuditAppend(ctx, audit.New(ctx, now, audit.AuthzDeny, p.Actor(), `Procedure::"`+proc+`"`, audit.Denied,
			map[string]any{"action": policy.ActionTry, "resource": `Procedure::"` + proc + `"`, "environment": env, "reason": reason}))
	})
}

// Request stores a run: queued when policy lets the requester run it and
// the procedure does not demand an approval here; pending_approval when
// policy allows only a request or the procedure demands approval; refused
// otherwise. An Idempotency-Key the requester used before returns that
// run instead of starting another.
func (s *Service) Request(ctx context.Context, p *identity.Principal, rp RequestParams) (*store.Run, error) {
	r, _, err := s.request(ctx, p, rp)
	return r, err
}

// request is Request, also returning the plan the run was stored on
// (nil when an Idempotency-Key returned an earlier run). It plans on the
// catalog's entry for the procedure when there is one, and from the
// store when there is none or the entry proves stale.
func (s *Service) request(ctx context.Context, p *identity.Principal, rp RequestParams) (*store.Run, *Plan, error) {
	if rp.Version <= 0 { // a try run's version is not the entry's
		if e := s.catalog.get(rp.Procedure); e != nil {
			r, plan, err := s.requestOn(ctx, p, rp, e)
			if err == nil {
				return r, plan, nil
			}
			s.catalog.drop(rp.Procedure)
			if !errors.Is(err, errStale) {
				return nil, nil, err
			}
		}
	}
	return s.requestOn(ctx, p, rp, nil)
}

// requestOn is request planned on cached, or on the store when nil.
func (s *Service) requestOn(ctx context.Context, p *identity.Principal, rp RequestParams, cached *entry) (*store.Run, *Plan, error) {
	if rp.IdempotencyKey != "" {
		if len(rp.IdempotencyKey) > 200 {
			return nil, nil, airlock.FieldError("Idempotency-Key", "at most 200 characters")
		}
		// Planned on the catalog, the key is looked up in the write
		// transaction instead: a plan on it that fails comes back here.
		if cached == nil {
			if r, err := s.store.RunGetByIdempotencyKey(ctx, p.UserID, rp.IdempotencyKey); err == nil {
				return r, nil, nil
			}
		}
	}
	if len(rp.Reason) > 2000 || len(rp.Ticket) > 200 {
		if cached != nil {
			// Refused before its key was looked up: the store looks
			// it up first, so a repeat still returns its run.
			return nil, nil, errStale
		}
		return nil, nil, airlock.FieldError("reason", "reason at most 2000 characters, ticket at most 200")
	}
	plan, err := s.plan(ctx, p, rp, cached)
	if cached != nil && (err != nil || plan.Decision == "refused") {
		// Refused, or failed, only on the store's word: the caller
		// plans again on it (nothing is stored yet).
		return nil, nil, errStale
	}
	if err != nil {
		return nil, nil, err
	}
	if cached == nil && !plan.Try {
		s.catalog.put(plan.entry)
	}
	if plan.Decision == "refused" {
		action := policy.ActionRequest
		if plan.Try {
			action = policy.ActionTry
		}
		return nil, nil, s.authz.Check(ctx, p, action, policy.Resource{Procedure: &plan.view},
			policy.Context{Environment: plan.Environment, Params: plan.Params})
	}
	now := s.now().UTC()
	names := make([]string, len(plan.Targets))
	for i, n := range plan.Targets {
		names[i] = n.Name
	}
	params, _ := json.Marshal(plan.Params)
	r := &store.Run{ID: airlock.NewID(airlock.PrefixRun, now), ProcedureID: plan.Procedure.ID, ProcedureName: plan.Procedure.Name,
		VersionID: plan.Version.ID, Digest: plan.Version.Digest, Environment: plan.Environment, Params: params,
		RequesterID: p.UserID, RequesterName: p.Username, Reason: rp.Reason, Ticket: rp.Ticket, Targets: names,
		LockKey: plan.LockKey, Binding: binding(plan.Version.Digest, plan.Environment, plan.Params, plan.Targets),
		Idempotent: plan.Definition.Idempotent, IdempotencyKey: rp.IdempotencyKey, StandingID: rp.StandingID, Try: plan.Try, CreatedAt: now}
	if len(plan.secrets) > 0 {
		b, _ := json.Marshal(plan.secrets)
		if r.SecretParams, err = s.keyring.Seal(b, []byte(r.ID)); err != nil {
			return nil, nil, err
		}
	}
	if plan.Decision == "run" {
		r.Status, r.QueuedAt = store.RunQueued, now
	} else {
		r.Status, r.ApprovalsRequired, r.ExpiresAt = store.RunPending, plan.Approvals, now.Add(s.cfg.ApprovalTTL)
	}
	// A run that may start now, on a replica with a free worker, starts
	// in the request's own transaction: claimed as it is stored, with
	// both events, rather than queued for the dispatcher to claim in a
	// second one. Not a try run or one that takes a lock (the claim
	// decides those), nor while other runs wait in the queue (they go
	// first); and the definition must hash to its digest, as the start
	// would check.
	// requested is the status the request gives the run (the request
	// event says it); a run started here is stored running.
	requested := r.Status
	var base context.Context
	if plan.Decision == "run" && !plan.Try && plan.LockKey == "" && plan.digestOK {
		base = s.reserve(ctx)
	}
	started, launched := false, false
	var replayed *store.Run // the run an earlier request with the key made
	defer func() {
		if base != nil && !launched { // an error, a panic, or queued after all
			s.release()
		}
	}()
	why := "policy permits run"
	switch {
	case plan.Try:
		why = fmt.Sprintf("a try run of proposed version %d in %s: unreviewed", plan.Version.Number, plan.Environment)
	case plan.Decision == "request" && plan.NeedsApproval:
		why = fmt.Sprintf("the procedure requires %d approval(s) in %s", plan.Approvals, plan.Environment)
	case plan.Decision == "request":
		why = "policy permits only a request"
	}
	err = s.store.Update(ctx, func(tx store.Tx) error {
		// The plan was made outside this transaction: the procedure may
		// have been retired, or a new version approved, meanwhile.
		started, replayed = false, nil // Update may run this again
		if cached != nil && rp.IdempotencyKey != "" {
			prev, err := tx.RunGetByIdempotencyKey(ctx, p.UserID, rp.IdempotencyKey)
			if err == nil {
				replayed = prev
				return errReplayed
			}
			if airlock.ErrorKind(err) != airlock.NotFound {
				return err
			}
		}
		cur, err := tx.ProcedureGetByID(ctx, plan.Procedure.ID)
		if err != nil {
			return err
		}
		switch {
		case cached != nil && !sameProcedure(cur, plan.Procedure):
			return errStale
		case !cur.RetiredAt.IsZero():
			return airlock.Errorf(airlock.Conflict, "procedure %q was retired meanwhile", cur.Name)
		case !plan.Try && cur.ActiveVersionID != plan.Version.ID:
			return airlock.Errorf(airlock.Conflict, "a new version of %q was approved meanwhile; look at it and request again", cur.Name)
		}
		if base != nil {
			waiting, err := tx.RunQueued(ctx)
			if err != nil {
				return err
			}
			started = !waiting
		}
		r.Status, r.WorkerID, r.StartedAt, r.HeartbeatAt, r.Attempt = requested, "", time.Time{}, time.Time{}, 0
		if started {
			// The lease begins as the claim commits, as a claim's does:
			// not when the request was planned, before it waited for the
			// writer.
			at := s.now().UTC()
			r.Status, r.WorkerID, r.StartedAt, r.HeartbeatAt, r.Attempt = store.RunRunning, s.workerID, at, at, 1
		}
		if err := tx.RunInsert(ctx, r); err != nil {
			if airlock.ErrorKind(err) == airlock.Conflict && rp.IdempotencyKey != "" {
				return airlock.Errorf(airlock.Conflict, "a run with this Idempotency-Key is being created; retry")
			}
			return err
		}
		d := map[string]any{
			"procedure": r.ProcedureName, "version_id": r.VersionID, "digest": r.Digest, "environment": r.Environment,
			"params": plan.Params, "secret_params": len(plan.secrets), "targets": names, "status": requested, "decision": why,
			"policies": plan.Policies, "approvals_required": r.ApprovalsRequired, "reason": r.Reason, "ticket": r.Ticket,
			"binding": r.Binding}
		if r.StandingID != "" {
			d["standing_id"] = r.StandingID
		}
		if r.Try {
			d["try"], d["unreviewed"], d["version"] = true, true, plan.Version.Number
		}
		if err := tx.AuditAppend(ctx, audit.New(ctx, now, audit.RunRequest, p.Actor(), r.ID, audit.Success, d)); err != nil || !started {
			return err
		}
		// As a claim writes it: the system's act, not the request's.
		return tx.AuditAppend(ctx, s.startEvent(audit.WithMeta(ctx, audit.Meta{}), r))
	})
	if err != nil && started {
		// A commit of unknown fate (its connection was lost, or the
		// request's context ended during it): a run stored claimed by
		// this worker is executed by no one else, so it is executed here
		// if it is there.
		if cur, gerr := s.store.RunGet(context.WithoutCancel(ctx), r.ID); gerr == nil && s.holds(cur, r.Attempt) {
			err = nil
		}
	}
	if errors.Is(err, errReplayed) {
		return replayed, nil, nil
	}
	if err != nil {
		started = false
		return nil, nil, err
	}
	switch {
	case started:
		s.cfg.Observer.RunStarted(r)
		attempt := *r // the attempt's own: the caller keeps r
		launched = true
		go s.work(base, &attempt, plan.Definition)
	case r.Status == store.RunQueued:
		s.WakeReplicas()
	}
	return r, plan, nil
}

// Wake makes the dispatcher look for queued runs now.
func (s *Service) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// resource describes a stored run for policies. viewer, when set, is
// who asks: when they requested the run, their groups are its
// requester's (as read when they authenticated).
func (s *Service) resource(ctx context.Context, r *store.Run, viewer *identity.Principal) (policy.Resource, policy.Context, error) {
	proc, err := s.store.ProcedureGetByID(ctx, r.ProcedureID)
	if err != nil {
		return policy.Resource{}, policy.Context{}, err
	}
	pr, err := authz.ProcedureOf(ctx, s.store, proc)
	if err != nil {
		return policy.Resource{}, policy.Context{}, err
	}
	return s.resourceOn(ctx, r, pr, viewer)
}

// resourceOn is resource for a run of procedure pr, as the caller has it.
func (s *Service) resourceOn(ctx context.Context, r *store.Run, pr policy.Procedure, viewer *identity.Principal) (policy.Resource, policy.Context, error) {
	typed, err := PolicyParams(r.Params)
	if err != nil {
		return policy.Resource{}, policy.Context{}, err
	}
	// A schedule's runs are its proposer's to policies (who may follow
	// and cancel them); the run records the schedule as its requester.
	requesterID, requester := r.RequesterID, r.RequesterName
	if r.StandingID != "" && r.StandingID == r.RequesterID {
		if st, err := s.store.StandingGet(ctx, r.StandingID); err == nil {
			requesterID, requester = st.ProposerID, st.ProposerName
		}
	}
	var groups []string
	if viewer != nil && viewer.UserID == requesterID {
		groups = append([]string{}, viewer.Groups...)
	} else if groups, err = authz.GroupsOf(ctx, s.store, requesterID); err != nil {
		return policy.Resource{}, policy.Context{}, err
	}
	return policy.Resource{Run: &policy.RunInfo{ID: r.ID, Requester: requester, RequesterGroups: groups, Environment: r.Environment, Status: r.Status, Procedure: pr}},
		policy.Context{Environment: r.Environment, Params: typed, Targets: r.Targets}, nil
}

// PolicyParams reads stored parameters (a JSON object) back into the
// types policies see: numbers as int64, lists as []string.
func PolicyParams(raw []byte) (map[string]any, error) {
	var params map[string]any
	if err := json.Unmarshal(raw, &params); err != nil {
		return nil, err
	}
	typed := map[string]any{}
	for k, v := range params {
		switch x := v.(type) {
		case float64:
			typed[k] = int64(x)
		case []any:
			list := []string{}
			for _, e := range x {
				list = append(list, fmt.Sprint(e))
			}
			typed[k] = list
		default:
			typed[k] = x
		}
	}
	return typed, nil
}

// Get returns a run p may view; one they may not is "not found".
func (s *Service) Get(ctx context.Context, p *identity.Principal, id string) (*store.Run, error) {
	r, err := s.store.RunGet(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := s.checkView(ctx, p, r); err != nil {
		return nil, err
	}
	return r, nil
}

// checkView refuses p a run they may not view (as not found).
func (s *Service) checkView(ctx context.Context, p *identity.Principal, r *store.Run) error {
	res, c, err := s.resource(ctx, r, p)
	if err != nil {
		return err
	}
	return s.authz.CheckObject(ctx, p, policy.ActionViewRun, res, c, "run")
}

// List lists the runs p may view, newest first.
func (s *Service) List(ctx context.Context, p *identity.Principal, f store.RunListParams) ([]*store.Run, error) {
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 100
	}
	all, err := s.store.RunList(ctx, f)
	if err != nil {
		return nil, err
	}
	var out []*store.Run
	for _, r := range all {
		res, c, err := s.resource(ctx, r, p)
		if err != nil {
			return nil, err
		}
		if s.authz.Allowed(ctx, p, policy.ActionViewRun, res, c) {
			out = append(out, r)
		}
	}
	return out, nil
}

// Details are what a run page shows besides the run.
type Details struct {
	Approvals []*store.RunApproval
	Nodes     []*store.RunNode
	Steps     []*store.RunStep
}

// Details loads a visible run's approvals and per-node and per-step
// outcomes.
func (s *Service) Details(ctx context.Context, r *store.Run) (*Details, error) {
	var d Details
	var err error
	if d.Approvals, err = s.store.RunApprovalList(ctx, r.ID); err != nil {
		return nil, err
	}
	if d.Nodes, err = s.store.RunNodeList(ctx, r.ID); err != nil {
		return nil, err
	}
	d.Steps, err = s.store.RunStepList(ctx, r.ID)
	return &d, err
}

// Output returns a visible run's output chunks after seq.
func (s *Service) Output(ctx context.Context, p *identity.Principal, id string, after int64, limit int) (*store.Run, []*store.OutputChunk, error) {
	r, err := s.store.RunGet(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	chunks, err := s.OutputOf(ctx, p, r, after, limit)
	if err != nil {
		return nil, nil, err
	}
	return r, chunks, nil
}

// OutputOf returns the output chunks after seq of r, a run just read or
// awaited, if p may view it (a run p may not view is "not found").
func (s *Service) OutputOf(ctx context.Context, p *identity.Principal, r *store.Run, after int64, limit int) ([]*store.OutputChunk, error) {
	if err := s.checkView(ctx, p, r); err != nil {
		return nil, err
	}
	return s.store.RunOutputList(ctx, r.ID, after, limit)
}

// Subscribe signals after new output or a status change of a run.
func (s *Service) Subscribe(runID string) (<-chan struct{}, func()) { return s.broker.subscribe(runID) }

// Events returns the audit events about a visible run.
func (s *Service) Events(ctx context.Context, p *identity.Principal, id string) ([]*store.AuditEvent, error) {
	r, err := s.Get(ctx, p, id)
	if err != nil {
		return nil, err
	}
	return s.store.AuditList(ctx, store.AuditListParams{After: -1, Subject: r.ID, Limit: 10000})
}

// Allowed reports, without auditing, whether p may do action on r (for
// showing or hiding buttons; the action itself is checked again).
func (s *Service) Allowed(ctx context.Context, p *identity.Principal, r *store.Run, action string) bool {
	res, c, err := s.resource(ctx, r, p)
	if err != nil {
		return false
	}
	return s.authz.Allowed(ctx, p, action, res, c)
}
