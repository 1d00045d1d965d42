package run

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/store"
)

// Binding is what an approval of the planned run binds to: the digest,
// environment, parameters and targets (with their addresses and keys).
func (p *Plan) Binding() string {
	return binding(p.Version.Digest, p.Environment, p.Params, p.Targets)
}

// TargetNames are the names of the planned run's targets.
func (p *Plan) TargetNames() []string {
	names := make([]string, len(p.Targets))
	for i, n := range p.Targets {
		names[i] = n.Name
	}
	return names
}

// HasSecrets reports whether the request carried secret parameters.
func (p *Plan) HasSecrets() bool { return len(p.secrets) > 0 }

// InsertStanding stores, in tx, the run a schedule starts at a tick on
// its standing approval: queued, requested by the schedule, and carrying
// the standing approvals as its own. They bind to the run because the
// plan's binding is the one they approved (the caller checked); the
// worker checks again at start, as for any approved run. The caller
// wakes the queue (Wake) after the transaction commits.
func (s *Service) InsertStanding(ctx context.Context, tx store.Tx, plan *Plan, st *store.Standing, approvals []*store.StandingApproval,
	tick time.Time, now time.Time) (*store.Run, error) {
	if plan.HasSecrets() {
		return nil, airlock.Errorf(airlock.Invalid, "a schedule cannot carry secret parameters")
	}
	names := plan.TargetNames()
	params, _ := json.Marshal(plan.Params)
	r := &store.Run{ID: airlock.NewID(airlock.PrefixRun, now), ProcedureID: plan.Procedure.ID, ProcedureName: plan.Procedure.Name,
		VersionID: plan.Version.ID, Digest: plan.Version.Digest, Environment: plan.Environment, Params: params,
		RequesterID: st.ID, RequesterName: st.Kind + ":" + st.Name, Reason: fmt.Sprintf("%s %s, tick %s", st.Kind, st.Name, tick.UTC().Format(time.RFC3339)),
		Targets: names, LockKey: plan.LockKey, Binding: plan.Binding(), Idempotent: plan.Definition.Idempotent,
		StandingID: st.ID, Status: store.RunQueued, ApprovalsRequired: st.ApprovalsRequired, CreatedAt: now, QueuedAt: now}
	if err := tx.RunInsert(ctx, r); err != nil {
		return nil, err
	}
	var approvers []string
	for _, a := range approvals {
		ra := &store.RunApproval{ID: airlock.NewID(airlock.PrefixRunApproval, now), RunID: r.ID, ApproverID: a.ApproverID,
			ApproverName: a.ApproverName, Decision: "approve", Binding: r.Binding, CreatedAt: a.CreatedAt,
			Comment: fmt.Sprintf("standing approval %s of %s %s", a.ID, st.Kind, st.Name)}
		if err := tx.RunApprovalInsert(ctx, ra); err != nil {
			return nil, err
		}
		approvers = append(approvers, a.ApproverName)
	}
	actor := audit.Actor{ID: st.ID, Name: r.RequesterName}
	return r, tx.AuditAppend(ctx, audit.New(ctx, now, audit.RunRequest, actor, r.ID, audit.Success, map[string]any{
		"procedure": r.ProcedureName, "version_id": r.VersionID, "digest": r.Digest, "environment": r.Environment,
		"params": plan.Params, "secret_params": 0, "targets": names, "status": r.Status,
		"decision":    fmt.Sprintf("standing approval of %s %s by %v", st.Kind, st.Name, approvers),
		"standing_id": st.ID, "proposer": st.ProposerName, "approvers": approvers, "tick": tick.UTC().Format(time.RFC3339),
		"approvals_required": r.ApprovalsRequired, "reason": r.Reason, "binding": r.Binding}))
}

// triggerProposer returns who proposed the event trigger that requested
// r, or "" for any other run. They were shown the trigger's secret and
// can make it request whatever its mapping allows: for separation of
// duties they asked for the run as much as its service account did.
func triggerProposer(ctx context.Context, rd store.Reader, r *store.Run) (id, name string, err error) {
	if r.StandingID == "" || r.StandingID == r.RequesterID {
		return "", "", nil // not a trigger's: a schedule's run is approved by its standing approval
	}
	st, err := rd.StandingGet(ctx, r.StandingID)
	if err != nil {
		if airlock.ErrorKind(err) == airlock.NotFound {
			return "", "", nil
		}
		return "", "", err
	}
	return st.ProposerID, st.ProposerName, nil
}
