package evidence

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"sort"
	"time"

	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/store"
)

// The rule for run output, in one place for the bundle export, the
// offline bundle check and the database check (airlock audit verify):
//
// A run's run.finish event certifies its output: output_digest is
// "sha256:" and the hex SHA-256 of the data of all its stored chunks in
// sequence order, output_bytes their length. Its stored output must hash
// to that digest, unless it is gone entirely and a later
// run.output_prune event covers the run: one that names it in "runs", or
// (an event written before pruning named its runs) one whose
// "finished_before" is after the run's run.finish. A pruning event
// accounts for output that is gone, never for output that differs.
//
// A run.finish with no digest (the reaper before it certified output)
// certifies nothing: output stored for such a run is not evidence, and
// the database check lists it apart without failing.

// outputSum is output as hashed: its length and "sha256:…" digest.
type outputSum struct {
	bytes  int64
	digest string
}

func (o outputSum) String() string { return fmt.Sprintf("%d bytes, %s", o.bytes, o.digest) }

// outputHasher sums output chunk by chunk.
type outputHasher struct {
	h hash.Hash
	n int64
}

func newOutputHasher() *outputHasher { return &outputHasher{h: sha256.New()} }

func (o *outputHasher) add(b []byte) { o.h.Write(b); o.n += int64(len(b)) }

func (o *outputHasher) sum() outputSum {
	return outputSum{bytes: o.n, digest: "sha256:" + hex.EncodeToString(o.h.Sum(nil))}
}

func sumOutput(b []byte) outputSum {
	h := newOutputHasher()
	h.add(b)
	return h.sum()
}

// certified is what a run's run.finish event says of its output.
type certified struct {
	seq      int64 // the event's position; -1 when no event is at hand
	at       time.Time
	digest   string
	bytes    int64
	hasBytes bool
}

func (c certified) String() string {
	if !c.hasBytes {
		return c.digest
	}
	return fmt.Sprintf("%d bytes, %s", c.bytes, c.digest)
}

// pruning is one run.output_prune event.
type pruning struct {
	seq int64
	// runs it names; nil for an event from before pruning named them,
	// which covers every run finished before finishedBefore.
	runs           map[string]bool
	finishedBefore time.Time
}

func (p pruning) covers(run string, c certified) bool {
	if p.seq <= c.seq {
		return false
	}
	if p.runs != nil {
		return p.runs[run]
	}
	return !p.finishedBefore.IsZero() && !c.at.IsZero() && c.at.Before(p.finishedBefore)
}

// ledger is what a set of audit events says about runs' output.
type ledger struct {
	finished map[string]certified // the last run.finish of each run
	prunes   []pruning
}

func newLedger() *ledger { return &ledger{finished: map[string]certified{}} }

// add takes in e if it is a run.finish or run.output_prune event.
func (l *ledger) add(e *store.AuditEvent) {
	switch e.Type {
	case audit.RunFinish:
		var d struct {
			Digest string `json:"output_digest"`
			Bytes  *int64 `json:"output_bytes"`
		}
		_ = json.Unmarshal(e.Details, &d)
		c := certified{seq: e.Seq, at: e.Time, digest: d.Digest}
		if d.Bytes != nil {
			c.bytes, c.hasBytes = *d.Bytes, true
		}
		if prev, ok := l.finished[e.Subject]; !ok || prev.seq < e.Seq {
			l.finished[e.Subject] = c
		}
	case audit.RunOutputPrune:
		var d struct {
			Runs           []string  `json:"runs"`
			FinishedBefore time.Time `json:"finished_before"`
		}
		_ = json.Unmarshal(e.Details, &d)
		p := pruning{seq: e.Seq, finishedBefore: d.FinishedBefore}
		if d.Runs != nil {
			p.runs = map[string]bool{}
			for _, id := range d.Runs {
				p.runs[id] = true
			}
		}
		l.prunes = append(l.prunes, p)
	}
}

// prunedBy returns the position of the first pruning event that covers
// run (certified as c), or -1.
func (l *ledger) prunedBy(run string, c certified) int64 {
	by := int64(-1)
	for _, p := range l.prunes {
		if p.covers(run, c) && (by < 0 || p.seq < by) {
			by = p.seq
		}
	}
	return by
}

// judge compares a run's stored output with what c certifies, and says
// what is wrong, or "" when it holds: the output hashes to the digest,
// or it is gone and a pruning event covers the run.
func (l *ledger) judge(run string, c certified, stored outputSum) string {
	if c.digest == "" || stored.digest == c.digest {
		return ""
	}
	what := "its run.finish event certifies"
	if c.seq < 0 {
		what = "its run record claims (no run.finish event is at hand)"
	}
	by := l.prunedBy(run, c)
	switch {
	case by < 0:
		return fmt.Sprintf("run %s: stored output (%s) does not match the digest %s (%s), and no run.output_prune event names it",
			run, stored, what, c)
	case stored.bytes > 0:
		return fmt.Sprintf("run %s: stored output (%s) does not match the digest %s (%s); the run.output_prune event at position %d removed its output, yet output is stored for it",
			run, stored, what, c, by)
	}
	return ""
}

// listEvents calls fn for each event q selects, in position order, a
// page at a time; q.Before must be positive (a log size).
func listEvents(ctx context.Context, s store.Reader, q store.AuditListParams, fn func(*store.AuditEvent)) error {
	if q.Before <= 0 {
		return nil
	}
	q.After, q.Limit = -1, 1000
	for {
		evs, err := s.AuditList(ctx, q)
		if err != nil {
			return err
		}
		for _, e := range evs {
			fn(e)
			q.After = e.Seq
		}
		if len(evs) < q.Limit {
			return nil
		}
	}
}

// storedOutput hashes a run's stored output as it streams from the store.
func storedOutput(ctx context.Context, s store.Reader, runID string) (outputSum, error) {
	h := newOutputHasher()
	err := s.RunOutputRead(ctx, runID, func(_ int64, data []byte) error {
		h.add(data)
		return nil
	})
	return h.sum(), err
}

// OutputFinding is a run whose stored output its audit trail does not
// account for.
type OutputFinding struct {
	Run    string `json:"run"`
	Detail string `json:"detail"`
}

// OutputReport is what CheckOutput found.
type OutputReport struct {
	// Runs is how many finished runs with a certified digest had their
	// stored output hashed; Pruned how many of those had it pruned.
	Runs   int `json:"runs_checked"`
	Pruned int `json:"runs_pruned"`
	// Findings name each run whose stored output does not match its
	// digest and is not accounted for by a pruning event.
	Findings []OutputFinding `json:"findings"`
	// Uncertified lists runs whose run.finish certifies no digest but
	// that have output stored: it is not evidence of anything.
	Uncertified []string `json:"uncertified,omitempty"`
	// Size is the log size the check relied on: every event it read is
	// below it. Verify the log at least that far.
	Size int64 `json:"relied_on_size"`
}

// OK reports whether every run's output is accounted for.
func (r *OutputReport) OK() bool { return len(r.Findings) == 0 }

// CheckOutput checks the stored output of every run with a run.finish
// event against the digest that event certifies, streaming each run's
// chunks in sequence order. The pruning events are read after the
// output, so a pruning that ran meanwhile is among them; the caller
// verifies the log up to Size (audit.Verify), so that everything the
// check relied on is proven.
func CheckOutput(ctx context.Context, s store.Reader) (*OutputReport, error) {
	size, err := s.AuditSize(ctx)
	if err != nil {
		return nil, err
	}
	l := newLedger()
	if err := listEvents(ctx, s, store.AuditListParams{Type: audit.RunFinish, Before: size}, l.add); err != nil {
		return nil, fmt.Errorf("read run.finish events: %w", err)
	}
	runs := make([]string, 0, len(l.finished))
	for id := range l.finished {
		runs = append(runs, id)
	}
	sort.Slice(runs, func(i, j int) bool { return l.finished[runs[i]].seq < l.finished[runs[j]].seq })
	rep := &OutputReport{Findings: []OutputFinding{}}
	type mismatch struct {
		run    string
		stored outputSum
	}
	var mismatches []mismatch
	for _, id := range runs {
		c := l.finished[id]
		stored, err := storedOutput(ctx, s, id)
		if err != nil {
			return nil, fmt.Errorf("read the output of run %s: %w", id, err)
		}
		switch {
		case c.digest == "":
			if stored.bytes > 0 {
				rep.Uncertified = append(rep.Uncertified, id)
			}
		case stored.digest != c.digest:
			rep.Runs++
			mismatches = append(mismatches, mismatch{id, stored})
		default:
			rep.Runs++
		}
	}
	if rep.Size, err = s.AuditSize(ctx); err != nil {
		return nil, err
	}
	if len(mismatches) > 0 {
		if err := listEvents(ctx, s, store.AuditListParams{Type: audit.RunOutputPrune, Before: rep.Size}, l.add); err != nil {
			return nil, fmt.Errorf("read run.output_prune events: %w", err)
		}
	}
	for _, m := range mismatches {
		if f := l.judge(m.run, l.finished[m.run], m.stored); f != "" {
			rep.Findings = append(rep.Findings, OutputFinding{Run: m.run, Detail: f})
		} else {
			rep.Pruned++
		}
	}
	return rep, nil
}
