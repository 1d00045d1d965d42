package evidence

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
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
	OutputPruned bool                 `json:"output_pruned"`
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
	cp, err := log.Checkpoint(ctx)
	if err != nil {
		return err
	}
	// Runs of the period (or the one run).
	var allRuns []*store.Run
	if p.Run != "" {
		r, err := s.RunGet(ctx, p.Run)
		if err != nil {
			return err
		}
		allRuns = []*store.Run{r}
	} else if allRuns, err = s.RunList(ctx, store.RunListParams{ProcedureName: p.Procedure, Limit: 100000}); err != nil {
		return err
	}
	var runs []RunRecord
	runIDs := map[string]bool{}
	versionIDs := map[string]bool{}
	var output = map[string][]byte{}
	for _, r := range allRuns {
		if r.CreatedAt.Before(p.From) || !r.CreatedAt.Before(p.To) || (p.Environment != "" && r.Environment != p.Environment) ||
			(p.Run != "" && r.ID != p.Run) {
			continue
		}
		rec := RunRecord{Run: r}
		if rec.Approvals, err = s.RunApprovalList(ctx, r.ID); err != nil {
			return err
		}
		if rec.Nodes, err = s.RunNodeList(ctx, r.ID); err != nil {
			return err
		}
		if rec.Steps, err = s.RunStepList(ctx, r.ID); err != nil {
			return err
		}
		var buf bytes.Buffer
		after := int64(0)
		for {
			chunks, err := s.RunOutputList(ctx, r.ID, after, 1000)
			if err != nil {
				return err
			}
			for _, c := range chunks {
				buf.Write(c.Data)
				after = c.Seq
			}
			if len(chunks) < 1000 {
				break
			}
		}
		if r.OutputDigest != "" {
			if buf.Len() == 0 && r.OutputBytes > 0 {
				rec.OutputPruned = true
			} else {
				output["output/"+r.ID+".log"] = buf.Bytes()
			}
		}
		r2 := *r
		r2.SecretParams = nil
		rec.Run = &r2
		runs = append(runs, rec)
		runIDs[r.ID] = true
		versionIDs[r.VersionID] = true
	}
	// Events of the period.
	var events []*store.AuditEvent
	after := int64(-1)
	for {
		// A run's events are read by subject (indexed), not by walking
		// the whole log.
		evs, err := s.AuditList(ctx, store.AuditListParams{After: after, Subject: p.Run, Limit: 5000})
		if err != nil {
			return err
		}
		for _, e := range evs {
			after = e.Seq
			if e.Seq >= cp.Size || e.Time.Before(p.From) || !e.Time.Before(p.To) {
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
			break
		}
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
	summary := Summarize(events, runs, versions, inForce)
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
	for n, b := range output {
		files[n] = b
	}
	m := &Manifest{Format: Format, CreatedAt: p.now().UTC(), From: p.From.UTC(), To: p.To.UTC(), Procedure: p.Procedure,
		Environment: p.Environment, Run: p.Run, Checkpoint: cp.Note}
	return writeBundle(w, files, m, log.Signer)
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
