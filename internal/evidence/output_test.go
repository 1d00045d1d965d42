package evidence_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/evidence"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/store/postgres"
	"github.com/airlockhq/airlock/internal/store/sqlite"
	"github.com/airlockhq/airlock/internal/testenv"
)

// outputStore is a store on driver with a procedure for runs to name,
// and a clock every time it writes derives from.
type outputStore struct {
	t      *testing.T
	s      store.Store
	driver string
	proc   *store.Procedure
	at     time.Time
	signer note.Signer
	log    *audit.Log
}

func newOutputStore(t *testing.T, driver string) *outputStore {
	t.Helper()
	ctx := context.Background()
	var s store.Store
	var err error
	switch driver {
	case "postgres":
		s, err = postgres.Open(ctx, testenv.PostgresSchema(t), postgres.Options{})
	default:
		s, err = sqlite.Open(ctx, filepath.Join(t.TempDir(), "airlock.db"))
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	o := &outputStore{t: t, s: s, driver: driver, at: time.Date(2031, 5, 6, 7, 0, 0, 0, time.UTC)}
	o.proc = &store.Procedure{ID: airlock.NewID(airlock.PrefixProc, o.at), Name: "flush-cache", Owner: "payments", CreatedAt: o.at, UpdatedAt: o.at}
	o.update(func(tx store.Tx) error {
		if err := tx.ProcedureInsert(ctx, o.proc); err != nil {
			return err
		}
		return tx.AuditAppend(ctx, audit.New(ctx, o.at, audit.ProcedureCreate, audit.System, o.proc.ID, audit.Success, nil))
	})
	skey, vkey, err := audit.GenerateKey("airlock-test")
	if err != nil {
		t.Fatal(err)
	}
	o.signer, _ = note.NewSigner(skey)
	verifier, _ := note.NewVerifier(vkey)
	o.log = &audit.Log{Store: s, Signer: o.signer, Verifier: verifier, VerifierKey: vkey, Origin: "airlock-test", Now: func() time.Time { return o.at }}
	return o
}

func (o *outputStore) update(fn func(tx store.Tx) error) {
	o.t.Helper()
	if err := o.s.Update(context.Background(), fn); err != nil {
		o.t.Fatal(err)
	}
}

func (o *outputStore) tick() time.Time {
	o.at = o.at.Add(time.Minute)
	return o.at
}

// sql runs a statement as someone with database access would.
func (o *outputStore) sql(q string) {
	o.t.Helper()
	db := o.s.DBs()["sqlite_writer"]
	if o.driver == "postgres" {
		db = o.s.DBs()["postgres"]
	}
	if _, err := db.ExecContext(context.Background(), q); err != nil {
		o.t.Fatalf("%s: %v", q, err)
	}
}

// bytesLiteral spells b for the driver's SQL.
func (o *outputStore) bytesLiteral(b []byte) string {
	if o.driver == "postgres" {
		return `'\x` + hex.EncodeToString(b) + `'::bytea`
	}
	return "X'" + hex.EncodeToString(b) + "'"
}

func digestOf(chunks ...string) string {
	h := sha256.Sum256([]byte(strings.Join(chunks, "")))
	return "sha256:" + hex.EncodeToString(h[:])
}

// finished stores a run that ran, stored chunks as its output through
// the store, and finished with a run.finish event certifying them (or,
// uncertified, with an empty digest, as the reaper once wrote).
func (o *outputStore) finished(uncertified bool, chunks ...string) *store.Run {
	o.t.Helper()
	ctx := context.Background()
	at := o.tick()
	r := &store.Run{ID: airlock.NewID(airlock.PrefixRun, at), ProcedureID: o.proc.ID, ProcedureName: o.proc.Name, VersionID: "pv_x",
		Digest: "sha256:d", Environment: "staging", Params: []byte(`{}`), RequesterID: "usr_a", RequesterName: "alice",
		Status: store.RunRunning, Targets: []string{"web-1"}, Binding: "b", CreatedAt: at, QueuedAt: at, StartedAt: at, HeartbeatAt: at,
		WorkerID: "w1", Attempt: 1}
	o.update(func(tx store.Tx) error {
		if err := tx.RunInsert(ctx, r); err != nil {
			return err
		}
		return tx.AuditAppend(ctx, audit.New(ctx, at, audit.RunStart, audit.System, r.ID, audit.Success, nil))
	})
	var out []*store.OutputChunk
	for i, c := range chunks {
		out = append(out, &store.OutputChunk{RunID: r.ID, Seq: int64(i + 1), Node: "web-1", Stream: store.StreamStdout, Data: []byte(c), CreatedAt: at})
	}
	if err := o.s.RunOutputAppend(ctx, store.Lease{RunID: r.ID, WorkerID: "w1", Attempt: 1}, out); err != nil {
		o.t.Fatal(err)
	}
	r.Status, r.FinishedAt = store.RunSucceeded, o.tick()
	details := map[string]any{"status": r.Status, "output_digest": ""}
	if !uncertified {
		r.OutputBytes, r.OutputDigest = int64(len(strings.Join(chunks, ""))), digestOf(chunks...)
		details = map[string]any{"status": r.Status, "output_bytes": r.OutputBytes, "output_truncated": false, "output_digest": r.OutputDigest}
	}
	o.update(func(tx store.Tx) error {
		if err := tx.RunUpdate(ctx, r); err != nil {
			return err
		}
		return tx.AuditAppend(ctx, audit.New(ctx, r.FinishedAt, audit.RunFinish, audit.System, r.ID, audit.Success, details))
	})
	return r
}

// prune runs retention as run.Service.prune does: the output of the runs
// finished before the cutoff goes, in one audited batch naming them.
func (o *outputStore) prune(finishedBefore time.Time) []string {
	o.t.Helper()
	ctx := context.Background()
	var ids []string
	o.update(func(tx store.Tx) error {
		var n int64
		var err error
		if ids, n, err = tx.RunOutputPrune(ctx, finishedBefore, 200); err != nil || len(ids) == 0 {
			return err
		}
		return tx.AuditAppend(ctx, audit.New(ctx, o.tick(), audit.RunOutputPrune, audit.System, "", audit.Success,
			map[string]any{"runs": ids, "chunks": n, "finished_before": finishedBefore, "retention": "1h0m0s"}))
	})
	return ids
}

// mismatch is the finding for a run whose stored output is the given
// chunks and is not accounted for.
func mismatch(r *store.Run, stored ...string) string {
	return fmt.Sprintf("run %s: stored output (%d bytes, %s) does not match the digest its run.finish event certifies (%d bytes, %s), "+
		"and no run.output_prune event names it", r.ID, len(strings.Join(stored, "")), digestOf(stored...), r.OutputBytes, r.OutputDigest)
}

// TestStoredOutputAgainstItsDigest tampers with runs' stored output by
// hand and checks that the database check (audit verify's) and a
// bundle's offline verification both name exactly the runs whose output
// no longer matches the digest their run.finish certifies and that no
// pruning event accounts for; output removed by retention (a pruning
// event naming the run, or a legacy one by finish time) passes.
func TestStoredOutputAgainstItsDigest(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) { testStoredOutput(t, driver) })
	}
}

func testStoredOutput(t *testing.T, driver string) {
	ctx := context.Background()
	o := newOutputStore(t, driver)
	pruned := o.finished(false, "flushing\n", "flushed\n")
	refilled := o.finished(false, "flushing\n", "flushed\n")
	cutoff := o.tick()
	if ids := o.prune(cutoff); !slices.Equal(ids, []string{pruned.ID, refilled.ID}) {
		t.Fatalf("retention pruned %v, want %s and %s", ids, pruned.ID, refilled.ID)
	}
	// Output stored again for a pruned run: a pruning event accounts for
	// output that is gone, not for output that is there.
	o.sql(fmt.Sprintf(`INSERT INTO run_output (run_id, seq, node, stream, data, created_at) VALUES ('%s', 1, 'web-1', 'stdout', %s, %d)`,
		refilled.ID, o.bytesLiteral([]byte("forged\n")), o.at.UnixMicro()))
	// A pruning event from before events named their runs covers the
	// runs that finished before its cutoff, and no other.
	legacy := o.finished(false, "old output\n")
	legacyCutoff := o.tick()
	late := o.finished(false, "later output\n")
	o.sql(fmt.Sprintf(`DELETE FROM run_output WHERE run_id IN ('%s', '%s')`, legacy.ID, late.ID))
	o.update(func(tx store.Tx) error {
		return tx.AuditAppend(ctx, audit.New(ctx, o.tick(), audit.RunOutputPrune, audit.System, "", audit.Success,
			map[string]any{"chunks": 1, "finished_before": legacyCutoff, "retention": "1h0m0s"}))
	})
	intact := o.finished(false, "a\n", "b\n", "c\n")
	gone := o.finished(false, "a\n", "b\n", "c\n")
	partial := o.finished(false, "a\n", "b\n", "c\n")
	altered := o.finished(false, "a\n", "b\n", "c\x00\xff\n")
	uncertified := o.finished(true, "reaped\n")
	empty := o.finished(false)
	o.sql(`DELETE FROM run_output WHERE run_id = '` + gone.ID + `'`)
	o.sql(`DELETE FROM run_output WHERE run_id = '` + partial.ID + `' AND seq = 2`)
	o.sql(`UPDATE run_output SET data = ` + o.bytesLiteral([]byte("c\x00\xfe\n")) + ` WHERE run_id = '` + altered.ID + `' AND seq = 3`)

	want := map[string]string{
		refilled.ID: fmt.Sprintf("run %s: stored output (7 bytes, %s) does not match the digest its run.finish event certifies (%d bytes, %s); "+
			"the run.output_prune event at position %d removed its output, yet output is stored for it",
			refilled.ID, digestOf("forged\n"), refilled.OutputBytes, refilled.OutputDigest, auditSeq(t, o.s, audit.RunOutputPrune, 0)),
		late.ID:    mismatch(late),
		gone.ID:    mismatch(gone),
		partial.ID: mismatch(partial, "a\n", "c\n"),
		altered.ID: mismatch(altered, "a\n", "b\n", "c\x00\xfe\n"),
	}
	order := []string{refilled.ID, late.ID, gone.ID, partial.ID, altered.ID}

	// The database check.
	rep, err := evidence.CheckOutput(ctx, o.s)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i, f := range rep.Findings {
		got = append(got, f.Run)
		if f.Detail != want[f.Run] {
			t.Errorf("finding %d:\n got %s\nwant %s", i, f.Detail, want[f.Run])
		}
	}
	if !slices.Equal(got, order) {
		t.Errorf("findings name %v, want %v (in the order the runs finished)", got, order)
	}
	// Checked: every run with a certified digest (the empty output too);
	// pruned: the named one and the legacy one.
	if rep.OK() || rep.Runs != 9 || rep.Pruned != 2 || !slices.Equal(rep.Uncertified, []string{uncertified.ID}) {
		t.Errorf("report: %d runs checked, %d pruned, uncertified %v; want 9, 2, [%s]", rep.Runs, rep.Pruned, rep.Uncertified, uncertified.ID)
	}
	size, _ := o.s.AuditSize(ctx)
	if rep.Size != size {
		t.Errorf("relied on the log up to %d, want its size %d", rep.Size, size)
	}

	// A bundle of the period: the same runs named by the offline check,
	// their output exported as stored; pruned runs labelled so, with the
	// events that pruned them.
	o.tick()
	p := evidence.Params{From: o.at.Add(-24 * time.Hour), To: o.at.Add(time.Hour), Now: func() time.Time { return o.at }}
	var buf bytes.Buffer
	if err := evidence.Export(ctx, o.s, o.log, p, &buf); err != nil {
		t.Fatal(err)
	}
	files := unzip(t, buf.Bytes())
	res, err := evidence.Verify(buf.Bytes(), o.log.VerifierKey)
	if err != nil {
		t.Fatal(err)
	}
	got = nil
	for _, pr := range res.Problems {
		run := strings.TrimSuffix(strings.TrimPrefix(pr.File, "output/"), ".log")
		got = append(got, run)
		if pr.Detail != want[run] {
			t.Errorf("bundle problem %s:\n got %s\nwant %s", pr.File, pr.Detail, want[run])
		}
	}
	slices.Sort(got)
	sorted := slices.Clone(order)
	slices.Sort(sorted)
	if !slices.Equal(got, sorted) {
		t.Errorf("bundle verification names %v, want %v", got, sorted)
	}
	var runs []struct {
		ID, OutputDigest string
		OutputPruned     bool   `json:"output_pruned"`
		OutputProblem    string `json:"output_problem"`
	}
	if err := json.Unmarshal(files["runs.json"], &runs); err != nil {
		t.Fatal(err)
	}
	for _, r := range runs {
		_, hasFile := files["output/"+r.ID+".log"]
		wantPruned := r.ID == pruned.ID || r.ID == legacy.ID
		switch {
		case r.OutputPruned != wantPruned:
			t.Errorf("run %s labelled pruned: %v, want %v", r.ID, r.OutputPruned, wantPruned)
		case r.OutputProblem != want[r.ID]:
			t.Errorf("run %s flagged %q, want %q", r.ID, r.OutputProblem, want[r.ID])
		case hasFile == wantPruned && r.OutputDigest != "":
			t.Errorf("run %s: output file in the bundle: %v, labelled pruned: %v", r.ID, hasFile, r.OutputPruned)
		}
	}
	for _, c := range []struct {
		r    *store.Run
		want string
	}{{intact, "a\nb\nc\n"}, {empty, ""}, {gone, ""}, {partial, "a\nc\n"}} {
		if out, ok := files["output/"+c.r.ID+".log"]; !ok || string(out) != c.want {
			t.Errorf("run %s: output exported as %q (file: %v), want as stored: %q", c.r.ID, out, ok, c.want)
		}
	}
	var summary evidence.Summary
	json.Unmarshal(files["summary.json"], &summary)
	for _, c := range summary.Controls {
		if c.ID == "audit-log-integrity" && len(c.Exceptions) != len(want) {
			t.Errorf("the report lists %d output exceptions, want %d: %+v", len(c.Exceptions), len(want), c.Exceptions)
		}
	}

	// One pruned run's bundle holds the pruning event, though it is about
	// no run in particular, and verifies.
	one := exportRun(t, o, pruned)
	if res, err := evidence.Verify(one, o.log.VerifierKey); err != nil || !res.OK() {
		t.Fatalf("the bundle of a pruned run: %v %+v", err, res)
	}
	if evs := eventTypes(t, unzip(t, one)); !slices.Contains(evs, audit.RunOutputPrune) {
		t.Fatalf("the bundle of a pruned run holds %v, not the run.output_prune event", evs)
	}
	// Signed bundles that claim more than their events show: a pruned
	// label without the pruning event (the event left out, or a run whose
	// output was deleted by hand labelled pruned, as exports once did).
	noEvent := resign(t, one, o.signer, func(files map[string][]byte) {
		var kept []string
		for _, l := range strings.SplitAfter(string(files["events.jsonl"]), "\n") {
			if !strings.Contains(l, `"type":"run.output_prune"`) {
				kept = append(kept, l)
			}
		}
		files["events.jsonl"] = []byte(strings.Join(kept, ""))
	})
	goneOne := resign(t, exportRun(t, o, gone), o.signer, func(files map[string][]byte) {
		files["runs.json"] = bytes.Replace(files["runs.json"], []byte(`"output_pruned": false`), []byte(`"output_pruned": true`), 1)
		delete(files, "output/"+gone.ID+".log")
	})
	for name, c := range map[string]struct {
		bundle []byte
		run    string
	}{"pruning event left out": {noEvent, pruned.ID}, "deleted output labelled pruned": {goneOne, gone.ID}} {
		res, err := evidence.Verify(c.bundle, o.log.VerifierKey)
		wantP := evidence.Problem{File: "output/" + c.run + ".log",
			Detail: "run " + c.run + ": its output is labelled pruned, but no run.output_prune event in the bundle names it"}
		if err != nil || res.OK() || !slices.Contains(res.Problems, wantP) {
			t.Errorf("%s: %v %+v; want the problem %+v", name, err, res, wantP)
		}
	}
}

// auditSeq is the position of the n-th event of type typ.
func auditSeq(t *testing.T, s store.Store, typ string, n int) int64 {
	t.Helper()
	evs, err := s.AuditList(context.Background(), store.AuditListParams{After: -1, Type: typ})
	if err != nil || len(evs) <= n {
		t.Fatalf("event %d of type %s: %v (%d events)", n, typ, err, len(evs))
	}
	return evs[n].Seq
}

func exportRun(t *testing.T, o *outputStore, r *store.Run) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := evidence.Export(context.Background(), o.s, o.log, evidence.RunParams(r, func() time.Time { return o.at }), &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func unzip(t *testing.T, bundle []byte) map[string][]byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(bundle), int64(len(bundle)))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, f := range zr.File {
		files[f.Name] = zipFile(t, bundle, f.Name)
	}
	return files
}

func eventTypes(t *testing.T, files map[string][]byte) []string {
	t.Helper()
	var types []string
	dec := json.NewDecoder(bytes.NewReader(files["events.jsonl"]))
	for dec.More() {
		var e evidence.EventRecord
		if err := dec.Decode(&e); err != nil {
			t.Fatal(err)
		}
		types = append(types, e.Type)
	}
	return types
}

// resign rewrites a bundle with edit applied and a manifest signed
// again with the log's key: what an exporter holding the key could hand
// an auditor.
func resign(t *testing.T, bundle []byte, signer note.Signer, edit func(files map[string][]byte)) []byte {
	t.Helper()
	files := unzip(t, bundle)
	var m evidence.Manifest
	if err := json.Unmarshal(files["manifest.json"], &m); err != nil {
		t.Fatal(err)
	}
	delete(files, "manifest.json")
	delete(files, "manifest.sig")
	edit(files)
	m.Files = map[string]string{}
	for name, b := range files {
		h := sha256.Sum256(b)
		m.Files[name] = hex.EncodeToString(h[:])
	}
	mb, _ := json.MarshalIndent(m, "", "  ")
	h := sha256.Sum256(mb)
	sig, err := note.Sign(&note.Note{Text: "airlock evidence manifest\n" + hex.EncodeToString(h[:]) + "\n"}, signer)
	if err != nil {
		t.Fatal(err)
	}
	files["manifest.json"], files["manifest.sig"] = mb, sig
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, b := range files {
		w, _ := zw.Create(name)
		w.Write(b)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
