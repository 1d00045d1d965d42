package standing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	_ "time/tzdata" // time zones on machines without a zoneinfo database

	"github.com/robfig/cron/v3"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/policy"
	"github.com/airlockhq/airlock/internal/run"
	"github.com/airlockhq/airlock/internal/store"
)

// Missed-tick rules.
const (
	MissedSkip    = "skip"
	MissedRunOnce = "run-once"
)

// ScheduleSpec is a schedule's own definition (store.Standing.Spec).
type ScheduleSpec struct {
	Cron         string `json:"cron"`
	TimeZone     string `json:"time_zone"`
	Missed       string `json:"missed"`
	AllowOverlap bool   `json:"allow_overlap"`
	Reason       string `json:"reason,omitempty"`
}

// ScheduleRequest proposes a schedule.
type ScheduleRequest struct {
	Name        string
	Procedure   string
	Environment string
	// Params are raw values, as for a run request.
	Params map[string]any
	ScheduleSpec
}

// cron expressions: five fields or a macro (@hourly, @daily, …); the
// time zone is the schedule's own, never one written into the
// expression.
var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSpec checks a schedule's cron expression and time zone and
// returns its schedule.
func ParseSpec(spec ScheduleSpec) (cron.Schedule, error) {
	expr := strings.TrimSpace(spec.Cron)
	switch {
	case expr == "":
		return nil, airlock.FieldError("cron", "expected a cron expression (minute hour day-of-month month day-of-week) or a macro such as @daily")
	case strings.HasPrefix(expr, "@every"):
		return nil, airlock.FieldError("cron", "@every is not supported: write the times as a cron expression")
	case strings.Contains(expr, "TZ="):
		return nil, airlock.FieldError("cron", "give the time zone in time_zone, not in the expression")
	}
	tz := spec.TimeZone
	if tz == "" {
		tz = "UTC"
	}
	if _, err := time.LoadLocation(tz); err != nil || strings.EqualFold(tz, "local") {
		return nil, airlock.FieldError("time_zone", "expected an IANA time zone such as Europe/Berlin or UTC, got %q", spec.TimeZone)
	}
	sched, err := parser.Parse("CRON_TZ=" + tz + " " + expr)
	if err != nil {
		return nil, airlock.FieldError("cron", "%q: %v", spec.Cron, err)
	}
	if sched.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
		return nil, airlock.FieldError("cron", "%q never fires", spec.Cron)
	}
	return sched, nil
}

// NextTicks returns the n ticks of spec after from.
func NextTicks(spec ScheduleSpec, from time.Time, n int) ([]time.Time, error) {
	sched, err := ParseSpec(spec)
	if err != nil {
		return nil, err
	}
	var out []time.Time
	for t := from; len(out) < n; {
		t = next(spec, sched, t)
		if t.IsZero() {
			break
		}
		out = append(out, t)
	}
	return out, nil
}

// next is the tick after t. A schedule at fixed hours fires once a day
// at its wall-clock time, also on the night the clocks go back, when
// that time happens twice (cron's own rule); one with a wildcard hour
// (@hourly, "0 * * * *") fires every hour of that night, both included.
// On the night the clocks go forward a time that does not happen does
// not fire.
func next(spec ScheduleSpec, sched cron.Schedule, t time.Time) time.Time {
	n := sched.Next(t)
	if n.IsZero() || !fixedHours(spec.Cron) || t.IsZero() {
		return n
	}
	const wall = "2006-01-02 15:04"
	if n.Format(wall) == t.In(n.Location()).Format(wall) {
		return sched.Next(n)
	}
	return n
}

// fixedHours reports whether a cron expression names its hours (not
// "*", "*/N" or @hourly).
func fixedHours(expr string) bool {
	f := strings.Fields(expr)
	switch {
	case len(f) == 1: // a macro: @yearly, @monthly, @weekly, @daily, @midnight fix the hour
		return f[0] != "@hourly"
	case len(f) >= 2:
		return !strings.Contains(f[1], "*")
	}
	return false
}

// SpecOf reads a schedule's spec.
func SpecOf(st *store.Standing) (ScheduleSpec, error) {
	var spec ScheduleSpec
	err := json.Unmarshal(st.Spec, &spec)
	return spec, err
}

// ProposeSchedule validates and stores a schedule proposed by p: p must
// be someone policy lets request such a run.
func (s *Service) ProposeSchedule(ctx context.Context, p *identity.Principal, req ScheduleRequest) (*store.Standing, error) {
	if err := ValidName(req.Name); err != nil {
		return nil, err
	}
	switch req.Missed {
	case "":
		req.Missed = MissedSkip
	case MissedSkip, MissedRunOnce:
	default:
		return nil, airlock.FieldError("missed", "expected skip or run-once, got %q", req.Missed)
	}
	if req.TimeZone == "" {
		req.TimeZone = "UTC"
	}
	if len(req.Reason) > 2000 {
		return nil, airlock.FieldError("reason", "at most 2000 characters")
	}
	if _, err := ParseSpec(req.ScheduleSpec); err != nil {
		return nil, err
	}
	plan, err := s.runs.Plan(ctx, p, run.RequestParams{Procedure: req.Procedure, Environment: req.Environment, Params: req.Params})
	if err != nil {
		return nil, err
	}
	if plan.HasSecrets() {
		return nil, airlock.FieldError("params", "a schedule cannot hold secret parameters: %s takes one; give the step the secret through a secret reference instead", plan.Procedure.Name)
	}
	if plan.Decision == "refused" {
		return nil, s.refusePlan(ctx, p, plan)
	}
	if svc, err := isService(ctx, s.store, p.UserID); err != nil {
		return nil, err
	} else if svc {
		return nil, airlock.Errorf(airlock.Forbidden, "a service account cannot propose a schedule; a person proposes it")
	}
	spec, _ := json.Marshal(req.ScheduleSpec)
	params, _ := json.Marshal(plan.Params)
	st := &store.Standing{ID: airlock.NewID(airlock.PrefixSchedule, s.now()), Kind: store.StandingSchedule, Name: req.Name,
		ProcedureID: plan.Procedure.ID, ProcedureName: plan.Procedure.Name, Environment: plan.Environment, Params: params,
		Spec: spec, VersionID: plan.Version.ID, Digest: plan.Version.Digest, Binding: plan.Binding(), Targets: plan.TargetNames(),
		ApprovalsRequired: max(1, plan.Approvals)}
	err = s.Insert(ctx, p, st, map[string]any{"cron": req.Cron, "time_zone": req.TimeZone, "missed": req.Missed,
		"allow_overlap": req.AllowOverlap, "params": plan.Params, "targets": st.Targets, "reason": req.Reason, "version_id": st.VersionID})
	if err != nil {
		return nil, err
	}
	return st, nil
}

// refusePlan returns the audited refusal of a plan policy refused.
func (s *Service) refusePlan(ctx context.Context, p *identity.Principal, plan *run.Plan) error {
	res, c, err := s.planResource(ctx, plan)
	if err != nil {
		return err
	}
	if err := s.authz.Check(ctx, p, policy.ActionRequest, res, c); err != nil {
		return err
	}
	return airlock.Errorf(airlock.Forbidden, "no policy lets you request %s in %s", plan.Procedure.Name, plan.Environment)
}

func (s *Service) planResource(ctx context.Context, plan *run.Plan) (policy.Resource, policy.Context, error) {
	st := &store.Standing{ProcedureID: plan.Procedure.ID}
	res, _, err := s.resource(ctx, st)
	if err != nil {
		return res, policy.Context{}, err
	}
	return policy.Resource{Procedure: &res.Run.Procedure}, policy.Context{Environment: plan.Environment, Params: plan.Params, Targets: plan.TargetNames()}, nil
}

// rawParams are a schedule's parameters as a request carries them.
func rawParams(st *store.Standing) (map[string]any, error) {
	raw := map[string]any{}
	err := json.Unmarshal(orObject(st.Params), &raw)
	return raw, err
}

// checkSchedule replans a schedule as its proposer would request it now.
func (s *Service) checkSchedule(ctx context.Context, st *store.Standing) (*Fresh, error) {
	p, why, err := PrincipalOf(ctx, s.store, st.ProposerID)
	if err != nil || why != "" {
		return &Fresh{Why: why, Blocked: true}, err
	}
	raw, err := rawParams(st)
	if err != nil {
		return nil, err
	}
	plan, err := s.runs.Plan(ctx, p, run.RequestParams{Procedure: st.ProcedureName, Environment: st.Environment, Params: raw})
	if err != nil {
		var e *airlock.Error
		if errors.As(err, &e) {
			return &Fresh{Why: e.Error(), Blocked: true}, nil
		}
		return nil, err
	}
	f := &Fresh{VersionID: plan.Version.ID, Digest: plan.Version.Digest, Binding: plan.Binding(), Targets: plan.TargetNames(), Approvals: plan.Approvals}
	switch {
	case plan.Decision == "refused":
		f.Why, f.Blocked = fmt.Sprintf("no policy in force lets %s request %s in %s any more", p.Username, st.ProcedureName, st.Environment), true
	case plan.Version.Digest != st.Digest:
		f.Why = fmt.Sprintf("version %d of %s (%s) is in service now, not the approved %s", plan.Version.Number, st.ProcedureName, plan.Version.Digest, st.Digest)
	case !slices.Equal(f.Targets, st.Targets):
		f.Why = fmt.Sprintf("its targets are now %v, not the approved %v", f.Targets, st.Targets)
	case f.Binding != st.Binding:
		f.Why = "a target node's address, port, user or host key changed since it was approved"
	case plan.Approvals > st.ApprovalsRequired:
		f.Why = fmt.Sprintf("%s now needs %d approvals in %s, it had %d", st.ProcedureName, plan.Approvals, st.Environment, st.ApprovalsRequired)
	}
	if plan.HasSecrets() {
		f.Why, f.Blocked = "the procedure now takes a secret parameter", true
	}
	return f, nil
}

// Start runs the scheduler until ctx ends: every Interval it checks the
// active standing requests and starts each schedule's due ticks.
func (s *Service) Start(ctx context.Context) {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		if err := s.Pass(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("scheduler pass", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Pass checks every active standing request once and deals with each
// schedule's due ticks. Any number of replicas may pass at once: each
// tick has one outcome, recorded with its run in one transaction.
func (s *Service) Pass(ctx context.Context) error {
	all, err := s.store.StandingList(ctx, "", store.StandingActive)
	if err != nil {
		return err
	}
	var errs []error
	for _, st := range all {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		f, err := s.Check(ctx, st)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", st.Kind, st.Name, err))
			continue
		}
		if f.Why != "" {
			if err := s.Suspend(ctx, st, f.Why); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if st.Kind == store.StandingSchedule {
			if err := s.ticks(ctx, st); err != nil {
				errs = append(errs, fmt.Errorf("schedule %s: %w", st.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// maxDue bounds how many ticks one pass looks at after downtime: the
// rest are missed all the same.
const maxDue = 10000

// ticks deals with a schedule's ticks due by now: each one first seen
// within Grace of its time starts a run; older ones were missed and
// are recorded as one summary, except that with run-once and no tick on
// time the latest missed one runs.
func (s *Service) ticks(ctx context.Context, st *store.Standing) error {
	spec, err := SpecOf(st)
	if err != nil {
		return err
	}
	sched, err := ParseSpec(spec)
	if err != nil {
		return err
	}
	now := s.now()
	var missed, onTime []time.Time
	for t := next(spec, sched, st.Cursor); !t.IsZero() && !t.After(now) && len(missed)+len(onTime) < maxDue; t = next(spec, sched, t) {
		if now.Sub(t) > s.cfg.Grace {
			missed = append(missed, t)
		} else {
			onTime = append(onTime, t)
		}
	}
	if len(missed) > 0 {
		last := missed[len(missed)-1]
		if spec.Missed == MissedRunOnce && len(onTime) == 0 {
			detail := fmt.Sprintf("run once for %d missed tick(s) from %s", len(missed), missed[0].UTC().Format(time.RFC3339))
			if len(missed) > 1 {
				if err := s.record(ctx, st, missed[len(missed)-2], missed[0], len(missed)-1); err != nil {
					return err
				}
			}
			return s.tick(ctx, st, spec, last, detail)
		}
		if err := s.record(ctx, st, last, missed[0], len(missed)); err != nil {
			return err
		}
	}
	for _, t := range onTime {
		if err := s.tick(ctx, st, spec, t, ""); err != nil {
			return err
		}
	}
	return nil
}

// errDone: another replica dealt with the tick first, or the schedule
// changed meanwhile.
var errDone = errors.New("tick dealt with already")

// record records ticks from first to last as missed.
func (s *Service) record(ctx context.Context, st *store.Standing, last, first time.Time, n int) error {
	now := s.now().UTC()
	err := s.store.Update(ctx, func(tx store.Tx) error {
		cur, err := tx.StandingGet(ctx, st.ID)
		if err != nil {
			return err
		}
		if cur.Status != store.StandingActive || !cur.Cursor.Before(last) {
			return errDone
		}
		detail := fmt.Sprintf("%d tick(s) from %s to %s missed (Airlock was not running, or the clock jumped); rule: skip",
			n, first.UTC().Format(time.RFC3339), last.UTC().Format(time.RFC3339))
		if err := tx.StandingEventInsert(ctx, &store.StandingEvent{StandingID: cur.ID, Key: last.UTC().Format(time.RFC3339), At: now,
			Outcome: "missed", Detail: detail}); err != nil {
			if airlock.ErrorKind(err) == airlock.Conflict {
				return errDone
			}
			return err
		}
		cur.Cursor, cur.UpdatedAt = last, now
		if err := tx.StandingUpdate(ctx, cur); err != nil {
			return err
		}
		return tx.AuditAppend(ctx, audit.New(ctx, now, audit.ScheduleMissed, audit.System, cur.ID, audit.Success, map[string]any{
			"name": cur.Name, "missed": n, "first": first.UTC().Format(time.RFC3339), "last": last.UTC().Format(time.RFC3339)}))
	})
	if errors.Is(err, errDone) {
		return nil
	}
	return err
}

// tick starts the run of one tick, or records why it did not: the
// previous run still going (without allow_overlap), or the schedule no
// longer holding (suspended).
func (s *Service) tick(ctx context.Context, st *store.Standing, spec ScheduleSpec, t time.Time, note string) error {
	p, why, err := PrincipalOf(ctx, s.store, st.ProposerID)
	if err != nil {
		return err
	}
	if why != "" {
		return s.Suspend(ctx, st, why)
	}
	raw, err := rawParams(st)
	if err != nil {
		return err
	}
	plan, err := s.runs.Plan(ctx, p, run.RequestParams{Procedure: st.ProcedureName, Environment: st.Environment, Params: raw})
	if err != nil {
		return err
	}
	if plan.Binding() != st.Binding || plan.Decision == "refused" {
		return nil // the next check suspends it
	}
	now := s.now().UTC()
	key := t.UTC().Format(time.RFC3339)
	var started *store.Run
	err = s.store.Update(ctx, func(tx store.Tx) error {
		started = nil
		cur, err := tx.StandingGet(ctx, st.ID)
		if err != nil {
			return err
		}
		if cur.Status != store.StandingActive || !cur.Cursor.Before(t) || cur.Binding != st.Binding {
			return errDone
		}
		proc, err := tx.ProcedureGetByID(ctx, cur.ProcedureID)
		if err != nil {
			return err
		}
		if proc.ActiveVersionID != plan.Version.ID || !proc.RetiredAt.IsZero() {
			return errDone
		}
		ev := &store.StandingEvent{StandingID: cur.ID, Key: key, At: now, Outcome: "started", Detail: note}
		if !spec.AllowOverlap {
			if prev, err := s.running(ctx, tx, cur); err != nil {
				return err
			} else if prev != nil {
				ev.Outcome, ev.RunID = "skipped_overlap", prev.ID
				ev.Detail = fmt.Sprintf("run %s of an earlier tick is still %s", prev.ID, prev.Status)
			}
		}
		if ev.Outcome == "started" {
			as, err := tx.StandingApprovalList(ctx, cur.ID)
			if err != nil {
				return err
			}
			got := counted(cur, as)
			if len(got) < cur.ApprovalsRequired {
				return errDone
			}
			if started, err = s.runs.InsertStanding(ctx, tx, plan, cur, got, t, now); err != nil {
				return err
			}
			ev.RunID = started.ID
		}
		if err := tx.StandingEventInsert(ctx, ev); err != nil {
			if airlock.ErrorKind(err) == airlock.Conflict {
				return errDone
			}
			return err
		}
		cur.Cursor, cur.UpdatedAt = t, now
		if err := tx.StandingUpdate(ctx, cur); err != nil {
			return err
		}
		d := map[string]any{"name": cur.Name, "tick": key, "outcome": ev.Outcome, "run_id": ev.RunID}
		if ev.Detail != "" {
			d["detail"] = ev.Detail
		}
		return tx.AuditAppend(ctx, audit.New(ctx, now, audit.ScheduleTick, audit.System, cur.ID, audit.Success, d))
	})
	if errors.Is(err, errDone) {
		return nil
	}
	if err == nil && started != nil {
		s.runs.WakeReplicas()
	}
	return err
}

// running returns the schedule's latest run when it has not ended.
func (s *Service) running(ctx context.Context, r store.Reader, st *store.Standing) (*store.Run, error) {
	evs, err := r.StandingEventList(ctx, st.ID, 20)
	if err != nil {
		return nil, err
	}
	for _, e := range evs {
		if e.Outcome != "started" || e.RunID == "" {
			continue
		}
		run, err := r.RunGet(ctx, e.RunID)
		if err != nil {
			return nil, err
		}
		if store.RunFinal(run.Status) {
			return nil, nil
		}
		return run, nil
	}
	return nil, nil
}
