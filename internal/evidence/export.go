package evidence

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/store"
)

// Params selects what a bundle covers.
type Params struct {
	From, To    time.Time
	Procedure   string
	Environment string
	// Run, when set, narrows the bundle to one run: its events, its
	// output, the version it ran with that version's reviews, and the
	// policies in force.
	Run string
	// Now is the clock that dates the bundle and its export event; nil
	// means time.Now.
	Now func() time.Time
}

func (p Params) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// RunRecord is a run as a bundle holds it.
type RunRecord struct {
	*store.Run
	SecretParams struct{}             `json:"-"`
	Approvals    []*store.RunApproval `json:"approvals"`
	Nodes        []*store.RunNode     `json:"nodes"`
	Steps        []*store.RunStep     `json:"steps"`
	// OutputPruned: the run's output is gone, and the bundle holds the
	// run.output_prune event that removed it.
	OutputPruned bool `json:"output_pruned"`
	// OutputProblem says how the stored output (in output/RUN.log, as
	// stored) differs from the digest the run's run.finish event
	// certifies, when no pruning event accounts for it.
	OutputProblem string `json:"output_problem,omitempty"`
}

// VersionRecord is a procedure version with its reviews.
type VersionRecord struct {
	*store.ProcedureVersion
	Reviews []*store.Review `json:"reviews"`
}

// Export writes a bundle for p: the events of the period (filtered to the
// procedure and environment when given, with everything about the
// selected runs), inclusion proofs against a checkpoint signed now, the
// runs with their output, the procedure versions they ran and their
// reviews, the policies in force, a summary per control and the report.
func Export(ctx context.Context, s store.Store, log *audit.Log, p Params, w io.Writer) error {
	runs, output, err := exportRuns(ctx, s, p)
	if err != nil {
		return err
	}
	// Signed after the output is read: a pruning that removed output
	// before it was read is below the checkpoint, so the bundle can hold
	// the event that accounts for it.
	cp, err := log.Checkpoint(ctx)
	if err != nil {
		return err
	}
	runIDs := map[string]bool{}
	versionIDs := map[string]bool{}
	for _, r := range runs {
		runIDs[r.ID] = true
		versionIDs[r.VersionID] = true
	}
	events, err := periodEvents(ctx, s, p, cp.Size, runIDs)
	if err != nil {
		return err
	}
	if events, err = accountForOutput(ctx, s, cp.Size, runs, output, events); err != nil {
		return err
	}
	if events, err = withAccountOrigins(ctx, s, cp.Size, events); err != nil {
		return err
	}
	if events, err = withStandingOrigins(ctx, s, cp.Size, runs, events); err != nil {
		return err
	}
	proofs := Proofs{Size: cp.Size, Root: cp.RootHash, Proofs: map[string][]string{}}
	var ev bytes.Buffer
	enc := json.NewEncoder(&ev)
	for _, e := range events {
		if err := enc.Encode(eventRecord(e)); err != nil {
			return err
		}
		rp, _, err := log.InclusionProof(ctx, e.Seq, cp.Size)
		if err != nil {
			return fmt.Errorf("proof of event %d: %w", e.Seq, err)
		}
		proofs.Proofs[fmt.Sprint(e.Seq)] = b64s(rp)
	}
	// Procedure versions the runs ran, and the procedures' histories.
	var versions []VersionRecord
	procs, err := s.ProcedureList(ctx)
	if err != nil {
		return err
	}
	for _, pr := range procs {
		if p.Procedure != "" && pr.Name != p.Procedure {
			continue
		}
		vs, err := s.ProcedureVersionList(ctx, store.ProcedureVersionListParams{ProcedureID: pr.ID})
		if err != nil {
			return err
		}
		for _, v := range vs {
			if !versionIDs[v.ID] && (p.Run != "" || v.CreatedAt.Before(p.From) || !v.CreatedAt.Before(p.To)) {
				continue
			}
			rs, err := s.ReviewList(ctx, v.ID)
			if err != nil {
				return err
			}
			versions = append(versions, VersionRecord{ProcedureVersion: v, Reviews: rs})
		}
	}
	// Policies in force during the period.
	pols, err := s.PolicyVersionList(ctx, "")
	if err != nil {
		return err
	}
	var inForce []*store.PolicyVersion
	for _, pv := range pols {
		active := pv.Status == store.PolicyActive || pv.Status == store.PolicySuperseded
		if active && pv.DecidedAt.Before(p.To) {
			inForce = append(inForce, pv)
		}
	}
	summary := Summarize(events, runs, versions, inForce, p.From)
	files := map[string][]byte{
		"events.jsonl":    ev.Bytes(),
		"proofs.json":     mustJSON(proofs),
		"runs.json":       mustJSON(orEmpty(runs)),
		"procedures.json": mustJSON(orEmpty(versions)),
		"policies.json":   mustJSON(orEmpty(inForce)),
		"summary.json":    mustJSON(summary),
		"key.txt":         []byte(log.VerifierKey + "\n"),
		"report.html":     Report(summary, p, cp, log.VerifierKey),
	}
	for id, b := range output {
		files["output/"+id+".log"] = b
	}
	m := &Manifest{Format: Format, CreatedAt: p.now().UTC(), From: p.From.UTC(), To: p.To.UTC(), Procedure: p.Procedure,
		Environment: p.Environment, Run: p.Run, Checkpoint: cp.Note}
	return writeBundle(w, files, m, log.Signer)
}

// exportRuns reads the runs of the period (or the one run) with their
// approvals, nodes and steps, and the stored output of each run that
// certified a digest, as stored.
func exportRuns(ctx context.Context, s store.Store, p Params) ([]RunRecord, map[string][]byte, error) {
	var all []*store.Run
	if p.Run != "" {
		r, err := s.RunGet(ctx, p.Run)
		if err != nil {
			return nil, nil, err
		}
		all = []*store.Run{r}
	} else {
		var err error
		if all, err = s.RunList(ctx, store.RunListParams{ProcedureName: p.Procedure, Limit: 100000}); err != nil {
			return nil, nil, err
		}
	}
	var runs []RunRecord
	output := map[string][]byte{}
	for _, r := range all {
		if r.CreatedAt.Before(p.From) || !r.CreatedAt.Before(p.To) || (p.Environment != "" && r.Environment != p.Environment) ||
			(p.Run != "" && r.ID != p.Run) {
			continue
		}
		rec := RunRecord{Run: r}
		var err error
		if rec.Approvals, err = s.RunApprovalList(ctx, r.ID); err != nil {
			return nil, nil, err
		}
		if rec.Nodes, err = s.RunNodeList(ctx, r.ID); err != nil {
			return nil, nil, err
		}
		if rec.Steps, err = s.RunStepList(ctx, r.ID); err != nil {
			return nil, nil, err
		}
		if r.OutputDigest != "" {
			var buf bytes.Buffer
			if err := s.RunOutputRead(ctx, r.ID, func(_ int64, data []byte) error {
				buf.Write(data)
				return nil
			}); err != nil {
				return nil, nil, err
			}
			output[r.ID] = buf.Bytes()
		}
		r2 := *r
		r2.SecretParams = nil
		rec.Run = &r2
		runs = append(runs, rec)
	}
	return runs, output, nil
}

// periodEvents reads the events of the period below position size:
// those about the selected runs, or all of them (or those mentioning the
// procedure) for a period bundle.
func periodEvents(ctx context.Context, s store.Reader, p Params, size int64, runIDs map[string]bool) ([]*store.AuditEvent, error) {
	var events []*store.AuditEvent
	after := int64(-1)
	for {
		// A run's events are read by subject (indexed), not by walking
		// the whole log.
		evs, err := s.AuditList(ctx, store.AuditListParams{After: after, Subject: p.Run, Limit: 5000})
		if err != nil {
			return nil, err
		}
		for _, e := range evs {
			after = e.Seq
			if e.Seq >= size || e.Time.Before(p.From) || !e.Time.Before(p.To) {
				continue
			}
			switch {
			case p.Run != "":
				if !runIDs[e.Subject] {
					continue
				}
			case p.Procedure != "" || p.Environment != "":
				if !runIDs[e.Subject] && !mentions(e, p.Procedure) {
					continue
				}
			}
			events = append(events, e)
		}
		if len(evs) < 5000 {
			return events, nil
		}
	}
}

// accountForOutput holds each run's stored output to the digest its
// run.finish event certifies, and returns the events with those the
// bundle needs to show it (each below position size): every run's
// run.finish, from outside the period too, and for a run whose output is
// gone the run.output_prune event that removed it — the run is then
// labelled pruned and has no output file. Any other difference is
// recorded on the run (OutputProblem) and its output exported as stored.
func accountForOutput(ctx context.Context, s store.Reader, size int64, runs []RunRecord, output map[string][]byte,
	events []*store.AuditEvent) ([]*store.AuditEvent, error) {
	have := map[int64]bool{}
	l := newLedger()
	for _, e := range events {
		have[e.Seq] = true
		l.add(e)
	}
	include := func(e *store.AuditEvent) {
		if !have[e.Seq] {
			have[e.Seq] = true
			events = append(events, e)
			l.add(e)
		}
	}
	// The log's pruning events, read when a run first needs them.
	var prunes map[int64]*store.AuditEvent
	pruned := newLedger()
	for i := range runs {
		r := &runs[i]
		if r.OutputDigest == "" {
			continue
		}
		c, ok := l.finished[r.ID]
		if !ok {
			var last *store.AuditEvent
			q := store.AuditListParams{Type: audit.RunFinish, Subject: r.ID, Before: size}
			if err := listEvents(ctx, s, q, func(e *store.AuditEvent) { last = e }); err != nil {
				return nil, err
			}
			if last != nil {
				include(last)
			}
			if c, ok = l.finished[r.ID]; !ok {
				c = certified{seq: -1, at: r.FinishedAt, digest: r.OutputDigest, bytes: r.OutputBytes, hasBytes: true}
			}
		}
		stored := sumOutput(output[r.ID])
		if stored.digest == c.digest {
			continue
		}
		if prunes == nil {
			prunes = map[int64]*store.AuditEvent{}
			if err := listEvents(ctx, s, store.AuditListParams{Type: audit.RunOutputPrune, Before: size}, func(e *store.AuditEvent) {
				prunes[e.Seq] = e
				pruned.add(e)
			}); err != nil {
				return nil, err
			}
		}
		by := pruned.prunedBy(r.ID, c)
		if by >= 0 {
			include(prunes[by])
		}
		if by >= 0 && stored.bytes == 0 {
			r.OutputPruned = true
			delete(output, r.ID)
			continue
		}
		r.OutputProblem = l.judge(r.ID, c, stored)
	}
	sort.Slice(events, func(i, j int) bool { return events[i].Seq < events[j].Seq })
	return events, nil
}

// withAccountOrigins adds every event below position size, from any
// time, that shows who created an account or granted it a group: the
// report counts such accounts as one person with their creator.
func withAccountOrigins(ctx context.Context, s store.Reader, size int64, events []*store.AuditEvent) ([]*store.AuditEvent, error) {
	have := map[int64]bool{}
	for _, e := range events {
		have[e.Seq] = true
	}
	for _, typ := range []string{audit.UserCreate, audit.GroupMemberAdd} {
		if err := listEvents(ctx, s, store.AuditListParams{Type: typ, Before: size}, func(e *store.AuditEvent) {
			if !have[e.Seq] && e.ActorID != "" {
				have[e.Seq] = true
				events = append(events, e)
			}
		}); err != nil {
			return nil, err
		}
	}
	sort.Slice(events, func(i, j int) bool { return events[i].Seq < events[j].Seq })
	return events, nil
}

// withStandingOrigins adds, for each run a schedule or trigger started,
// the standing request's history from the log (from before the period
// too): its proposal, decisions, activations, pauses and suspensions —
// what the standing-approvals control needs. Its ticks and deliveries
// outside the period stay out.
func withStandingOrigins(ctx context.Context, s store.Reader, size int64, runs []RunRecord, events []*store.AuditEvent) ([]*store.AuditEvent, error) {
	have := map[int64]bool{}
	for _, e := range events {
		have[e.Seq] = true
	}
	seen := map[string]bool{}
	for _, r := range runs {
		if r.StandingID == "" || seen[r.StandingID] {
			continue
		}
		seen[r.StandingID] = true
		if err := listEvents(ctx, s, store.AuditListParams{Subject: r.StandingID, Before: size}, func(e *store.AuditEvent) {
			switch e.Type[strings.IndexByte(e.Type, '.')+1:] {
			case "tick", "missed", "fire", "refused":
				return
			}
			if !have[e.Seq] {
				have[e.Seq] = true
				events = append(events, e)
			}
		}); err != nil {
			return nil, err
		}
	}
	sort.Slice(events, func(i, j int) bool { return events[i].Seq < events[j].Seq })
	return events, nil
}

func mentions(e *store.AuditEvent, procedure string) bool {
	return procedure != "" && strings.Contains(string(e.Details), `"procedure":"`+procedure+`"`)
}

func b64s(hs []tlog.Hash) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = base64.StdEncoding.EncodeToString(h[:])
	}
	return out
}

func mustJSON(v any) []byte {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		panic("evidence: " + err.Error())
	}
	return b
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
