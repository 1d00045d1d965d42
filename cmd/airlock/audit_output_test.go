package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/config"
	"github.com/airlockhq/airlock/internal/evidence"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/store/postgres"
	"github.com/airlockhq/airlock/internal/store/sqlite"
	"github.com/airlockhq/airlock/internal/testenv"
)

// outputServer is a demo server on one driver that keeps run output an
// hour, on a clock the test moves forward, with the in-process CLI as
// its users.
type outputServer struct {
	t      *testing.T
	d      *testenv.Demo
	driver string
	shift  atomic.Int64 // added to the wall clock, in nanoseconds
	as     func(user string) cli
	config string // a configuration file naming its database, for audit verify
	key    string
}

func newOutputServer(t *testing.T, driver string) *outputServer {
	t.Helper()
	o := &outputServer{t: t, driver: driver}
	o.d = testenv.DemoServer(t, testenv.UseDriver(t, driver), func(c *config.Config) {
		c.Runs.OutputRetention = time.Hour
		c.Runs.HeartbeatInterval = 100 * time.Millisecond
		c.Runs.HeartbeatTimeout = 2 * time.Second
	})
	o.d.Now = func() time.Time { return time.Now().Add(time.Duration(o.shift.Load())) }
	url := o.d.Serve(t)
	tokens := map[string]string{}
	for _, name := range []string{"alice", "dana"} {
		u, err := o.d.Store.UserGetByUsername(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		if tokens[name], _, err = o.d.Identity.IssueLoginToken(context.Background(), u, "test"); err != nil {
			t.Fatal(err)
		}
	}
	o.as = loginProfiles(t, url, tokens)
	cfg := fmt.Sprintf("data: %q\ndatabase:\n  driver: %s\n", o.d.Config.Data, o.d.Config.Database.Driver)
	if driver == "postgres" {
		cfg += fmt.Sprintf("  url: %q\n", o.d.Config.Database.URL)
	}
	o.config = filepath.Join(t.TempDir(), "airlock.yaml")
	if err := os.WriteFile(o.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ := o.as("dana").run("audit", "checkpoint", "-o", "json")
	var cp struct{ Key string }
	if err := json.Unmarshal([]byte(out), &cp); code != 0 || err != nil || cp.Key == "" {
		t.Fatalf("checkpoint: %d %v %s", code, err, out)
	}
	o.key = cp.Key
	return o
}

// finishedRun has alice run flush-cache in staging and waits for it to
// end; it returns the run as stored.
func (o *outputServer) finishedRun() *store.Run {
	o.t.Helper()
	alice := o.as("alice")
	code, out, stderr := alice.run("run", "flush-cache", "--env", "staging", "-p", "cache=sessions", "-o", "json")
	if code != 0 {
		o.t.Fatalf("run: %d %s %s", code, out, stderr)
	}
	id := runOf(o.t, out).ID
	if code, out, stderr := alice.run("runs", "logs", id, "-f"); code != 0 {
		o.t.Fatalf("follow %s: %d %s %s", id, code, out, stderr)
	}
	r, err := o.d.Store.RunGet(context.Background(), id)
	if err != nil || r.OutputDigest == "" || r.OutputBytes == 0 {
		o.t.Fatalf("run %s as stored: %+v %v; want it finished with its output certified", id, r, err)
	}
	return r
}

// sql runs a statement on the database as someone with access to it.
func (o *outputServer) sql(q string) {
	o.t.Helper()
	db := o.d.Store.DBs()["sqlite_writer"]
	if o.driver == "postgres" {
		db = o.d.Store.DBs()["postgres"]
	}
	if _, err := db.ExecContext(context.Background(), q); err != nil {
		o.t.Fatalf("%s: %v", q, err)
	}
}

// stored is a run's output as the database holds it now.
func (o *outputServer) stored(id string) []byte {
	o.t.Helper()
	chunks, err := o.d.Store.RunOutputList(context.Background(), id, 0, 10000)
	if err != nil {
		o.t.Fatal(err)
	}
	var b []byte
	for _, c := range chunks {
		b = append(b, c.Data...)
	}
	return b
}

// finding is the line audit verify and evidence verify print for a run
// whose stored output does not match its digest.
func (o *outputServer) finding(r *store.Run) string {
	out := o.stored(r.ID)
	h := sha256.Sum256(out)
	return fmt.Sprintf("run %s: stored output (%d bytes, sha256:%s) does not match the digest its run.finish event certifies (%d bytes, %s), "+
		"and no run.output_prune event names it", r.ID, len(out), hex.EncodeToString(h[:]), r.OutputBytes, r.OutputDigest)
}

func (o *outputServer) auditVerify() (int, string) {
	o.t.Helper()
	code, out, stderr := runCLI(o.t, "", "audit", "verify", "--config", o.config, "--key", o.key)
	if stderr != "" && code != 1 {
		o.t.Logf("audit verify stderr: %s", stderr)
	}
	return code, out
}

// exportAndVerify exports a bundle of the period from the first run's
// request until now, as dana, verifies it offline, and returns the exit
// code, the verifier's output and the bundle.
func (o *outputServer) exportAndVerify(from time.Time) (int, string, bundle) {
	o.t.Helper()
	path := filepath.Join(o.t.TempDir(), "bundle.zip")
	to := o.d.Now().Add(time.Minute)
	if code, out, stderr := o.as("dana").run("evidence", "export", "--from", from.Add(-time.Minute).UTC().Format(time.RFC3339),
		"--to", to.UTC().Format(time.RFC3339), "--out", path); code != 0 {
		o.t.Fatalf("export: %d %s %s", code, out, stderr)
	}
	code, out, _ := runCLI(o.t, "", "evidence", "verify", path, "--key", o.key)
	return code, out, readBundle(o.t, path)
}

// waitPruned moves the clock past the retention and waits until the
// runs' output is gone.
func (o *outputServer) waitPruned(runs ...*store.Run) {
	o.t.Helper()
	o.shift.Add(int64(2 * time.Hour))
	waitFor(o.t, 30*time.Second, func() error {
		for _, r := range runs {
			if out := o.stored(r.ID); len(out) > 0 {
				return fmt.Errorf("retention (1h, the clock 2h on) to prune the output of %s; %d bytes left", r.ID, len(out))
			}
		}
		return nil
	})
}

// pruned reads which runs a bundle labels pruned, and the runs its
// run.output_prune events name.
func pruned(t *testing.T, b bundle) (labelled, named []string) {
	t.Helper()
	var runs []evidence.RunRecord
	if err := json.Unmarshal(b.files["runs.json"], &runs); err != nil {
		t.Fatal(err)
	}
	for _, r := range runs {
		if r.OutputPruned {
			labelled = append(labelled, r.ID)
		}
	}
	for _, e := range b.events {
		if e.Type == audit.RunOutputPrune {
			var d struct{ Runs []string }
			json.Unmarshal([]byte(e.Details), &d)
			named = append(named, d.Runs...)
		}
	}
	slices.Sort(labelled)
	slices.Sort(named)
	return labelled, named
}

// lines are the lines of out that mention run.
func lines(out, run string) []string {
	var ls []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, run) {
			ls = append(ls, l)
		}
	}
	return ls
}

// TestTamperedOutputFailsVerification deletes a finished run's output by
// hand, one chunk of another's, and alters one chunk of a third, with SQL
// on the live database: audit verify and a bundle's offline verification
// each fail with one line per run naming it; the untouched run is not
// named. Retention then prunes the output of the runs that still have
// some, and names them: those are accounted for, the run whose output was
// deleted by hand is not.
func TestTamperedOutputFailsVerification(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) { testTamperedOutput(t, driver) })
	}
}

func testTamperedOutput(t *testing.T, driver string) {
	o := newOutputServer(t, driver)
	intact, gone, partial, altered := o.finishedRun(), o.finishedRun(), o.finishedRun(), o.finishedRun()
	if code, out := o.auditVerify(); code != 0 || !strings.HasPrefix(out, "OK: ") {
		t.Fatalf("audit verify before tampering: %d %s", code, out)
	} else if !strings.Contains(out, "output of 4 runs checked, 0 of them pruned") {
		t.Errorf("audit verify before tampering does not say it checked the output of the 4 runs:\n%s", out)
	}
	chunks, _ := o.d.Store.RunOutputList(context.Background(), partial.ID, 0, 100)
	if len(chunks) < 2 {
		t.Fatalf("run %s stored %d chunk(s); the test deletes one of several", partial.ID, len(chunks))
	}
	lit := "X'" + hex.EncodeToString([]byte("all caches are fine\n")) + "'"
	if driver == "postgres" {
		lit = `'\x` + hex.EncodeToString([]byte("all caches are fine\n")) + `'::bytea`
	}
	o.sql(`DELETE FROM run_output WHERE run_id = '` + gone.ID + `'`)
	o.sql(fmt.Sprintf(`DELETE FROM run_output WHERE run_id = '%s' AND seq = %d`, partial.ID, chunks[0].Seq))
	o.sql(`UPDATE run_output SET data = ` + lit + ` WHERE run_id = '` + altered.ID + `' AND seq = (SELECT MIN(seq) FROM run_output WHERE run_id = '` +
		altered.ID + `')`)
	tampered := []*store.Run{gone, partial, altered}

	code, out := o.auditVerify()
	if code != 1 || !strings.Contains(out, "FAILED: 3 problem(s)") {
		t.Errorf("audit verify after tampering: exit %d, want 1 with 3 problems:\n%s", code, out)
	}
	for _, r := range tampered {
		if got := lines(out, r.ID); !slices.Equal(got, []string{o.finding(r)}) {
			t.Errorf("audit verify on run %s:\n%s\nwant the one line\n%s", r.ID, strings.Join(got, "\n"), o.finding(r))
		}
	}
	if got := lines(out, intact.ID); len(got) != 0 {
		t.Errorf("audit verify names the untouched run %s: %s", intact.ID, got)
	}
	code, out, b := o.exportAndVerify(intact.CreatedAt)
	if code != 1 || !strings.Contains(out, "FAILED: 3 problem(s)") {
		t.Errorf("evidence verify after tampering: exit %d, want 1 with 3 problems:\n%s", code, out)
	}
	for _, r := range tampered {
		want := "output/" + r.ID + ".log: " + o.finding(r)
		if got := lines(out, r.ID); !slices.Equal(got, []string{want}) {
			t.Errorf("evidence verify on run %s:\n%s\nwant the one line\n%s", r.ID, strings.Join(got, "\n"), want)
		}
		if got := b.files["output/"+r.ID+".log"]; string(got) != string(o.stored(r.ID)) {
			t.Errorf("run %s exported as %q, want its output as stored", r.ID, got)
		}
	}
	if labelled, _ := pruned(t, b); len(labelled) != 0 {
		t.Errorf("the bundle labels %v pruned; no output was pruned", labelled)
	}

	// Retention removes what output is left, in audited batches.
	o.waitPruned(intact, partial, altered)
	code, out = o.auditVerify()
	if code != 1 || !strings.Contains(out, "FAILED: 1 problem(s)") || !strings.Contains(out, "output of 4 runs checked, 3 of them pruned") {
		t.Errorf("audit verify after pruning: exit %d, want 1 for the run whose output was deleted by hand, the 3 others pruned:\n%s", code, out)
	}
	if got := lines(out, gone.ID); !slices.Equal(got, []string{o.finding(gone)}) {
		t.Errorf("audit verify after pruning, on run %s:\n%s\nwant\n%s", gone.ID, strings.Join(got, "\n"), o.finding(gone))
	}
	code, out, b = o.exportAndVerify(intact.CreatedAt)
	if want := "output/" + gone.ID + ".log: " + o.finding(gone); code != 1 || !strings.Contains(out, "FAILED: 1 problem(s)") ||
		!slices.Equal(lines(out, "run_"), []string{want}) {
		t.Errorf("evidence verify after pruning: exit %d\n%s\nwant 1, naming only\n%s", code, out, want)
	}
	labelled, named := pruned(t, b)
	want := []string{intact.ID, partial.ID, altered.ID}
	slices.Sort(want)
	if !slices.Equal(labelled, want) || !slices.Equal(named, want) {
		t.Errorf("the bundle labels %v pruned and its pruning events name %v; want both %v", labelled, named, want)
	}
}

// TestPrunedOutputVerifies: output removed by retention passes audit
// verify and a bundle's verification, the period's and the run's own:
// each run is labelled pruned, and the bundle holds the pruning event
// that names it.
func TestPrunedOutputVerifies(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) { testPrunedOutput(t, driver) })
	}
}

func testPrunedOutput(t *testing.T, driver string) {
	o := newOutputServer(t, driver)
	first, second := o.finishedRun(), o.finishedRun()
	o.waitPruned(first, second)
	if code, out := o.auditVerify(); code != 0 || !strings.HasPrefix(out, "OK: ") {
		t.Fatalf("audit verify after pruning: exit %d\n%s", code, out)
	} else if !strings.Contains(out, "output of 2 runs checked, 2 of them pruned") {
		t.Errorf("audit verify after pruning does not say it checked the 2 runs and found them pruned:\n%s", out)
	}
	code, out, b := o.exportAndVerify(first.CreatedAt)
	if code != 0 || !strings.HasPrefix(out, "OK: ") {
		t.Fatalf("evidence verify after pruning: exit %d\n%s", code, out)
	}
	labelled, named := pruned(t, b)
	want := []string{first.ID, second.ID}
	slices.Sort(want)
	if !slices.Equal(labelled, want) || !slices.Equal(named, want) {
		t.Fatalf("the bundle labels %v pruned and its pruning events name %v; want both %v", labelled, named, want)
	}
	path := filepath.Join(t.TempDir(), "run.zip")
	if code, out, stderr := o.as("dana").run("evidence", "export", "--run", second.ID, "--out", path); code != 0 {
		t.Fatalf("export --run: %d %s %s", code, out, stderr)
	}
	if code, out, _ := runCLI(t, "", "evidence", "verify", path, "--key", o.key); code != 0 {
		t.Fatalf("evidence verify of the run's bundle: exit %d\n%s", code, out)
	}
	if labelled, named := pruned(t, readBundle(t, path)); !slices.Equal(labelled, []string{second.ID}) || !slices.Contains(named, second.ID) {
		t.Fatalf("the run's bundle labels %v pruned, its pruning events name %v; want %s in both", labelled, named, second.ID)
	}
}

// TestAuditVerifyChecksThousandsOfRuns: audit verify hashes the stored
// output of every finished run, a few thousand here, each read as one
// stream; it reports how many it checked. (How long it takes is logged,
// not asserted: bench/ measures.)
func TestAuditVerifyChecksThousandsOfRuns(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) { testManyRuns(t, driver) })
	}
}

func testManyRuns(t *testing.T, driver string) {
	ctx := context.Background()
	data := t.TempDir()
	var s store.Store
	var err error
	var url string
	switch driver {
	case "postgres":
		url = testenv.PostgresSchema(t)
		s, err = postgres.Open(ctx, url, postgres.Options{})
	default:
		s, err = sqlite.Open(ctx, filepath.Join(data, "airlock.db"))
	}
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const runs = 3000
	at := time.Now().UTC()
	proc := &store.Procedure{ID: airlock.NewID(airlock.PrefixProc, at), Name: "flush-cache", Owner: "payments", CreatedAt: at, UpdatedAt: at}
	update := func(fn func(tx store.Tx) error) {
		t.Helper()
		if err := s.Update(ctx, fn); err != nil {
			t.Fatal(err)
		}
	}
	update(func(tx store.Tx) error {
		if err := tx.ProcedureInsert(ctx, proc); err != nil {
			return err
		}
		return tx.AuditAppend(ctx, audit.New(ctx, at, audit.ProcedureCreate, audit.System, proc.ID, audit.Success, nil))
	})
	db := s.DBs()["sqlite_writer"]
	lit := func(b []byte) string { return "X'" + hex.EncodeToString(b) + "'" }
	if driver == "postgres" {
		db = s.DBs()["postgres"]
		lit = func(b []byte) string { return `'\x` + hex.EncodeToString(b) + `'::bytea` }
	}
	// A hundred runs a transaction, finished with their run.finish
	// events; their output, four chunks each, in one statement.
	start := time.Now()
	for batch := 0; batch < runs; batch += 100 {
		var rs []*store.Run
		var rows []string
		for i := range 100 {
			r := &store.Run{ID: airlock.NewID(airlock.PrefixRun, at), ProcedureID: proc.ID, ProcedureName: proc.Name, VersionID: "pv_x",
				Digest: "sha256:d", Environment: "staging", Params: []byte(`{}`), RequesterID: "usr_a", RequesterName: "alice",
				Status: store.RunSucceeded, Targets: []string{"web-1"}, Binding: "b", CreatedAt: at, QueuedAt: at, StartedAt: at, FinishedAt: at,
				WorkerID: "w1", Attempt: 1}
			h := sha256.New()
			for seq := range 4 {
				d := []byte(fmt.Sprintf("run %d: line %d of its output\n", batch+i, seq))
				h.Write(d)
				r.OutputBytes += int64(len(d))
				rows = append(rows, fmt.Sprintf("('%s', %d, 'web-1', 'stdout', %s, %d)", r.ID, seq+1, lit(d), at.UnixMicro()))
			}
			r.OutputDigest = "sha256:" + hex.EncodeToString(h.Sum(nil))
			rs = append(rs, r)
		}
		update(func(tx store.Tx) error {
			for _, r := range rs {
				if err := tx.RunInsert(ctx, r); err != nil {
					return err
				}
				if err := tx.AuditAppend(ctx, audit.New(ctx, at, audit.RunFinish, audit.System, r.ID, audit.Success,
					map[string]any{"output_bytes": r.OutputBytes, "output_digest": r.OutputDigest})); err != nil {
					return err
				}
			}
			return nil
		})
		if _, err := db.ExecContext(ctx, `INSERT INTO run_output (run_id, seq, node, stream, data, created_at) VALUES `+strings.Join(rows, ", ")); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%s: stored %d finished runs in %v", driver, runs, time.Since(start).Round(time.Millisecond))
	_, vkey, _, err := audit.LoadOrCreateKey(filepath.Join(data, "audit.key"), "airlock-test")
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"audit", "verify", "--data", data, "--key", vkey, "--allow-no-checkpoint"}
	if driver == "postgres" {
		t.Setenv("AIRLOCK_DATABASE_DRIVER", "postgres")
		t.Setenv("AIRLOCK_DATABASE_URL", url)
	}
	start = time.Now()
	code, out, stderr := runCLI(t, "", args...)
	t.Logf("%s: audit verify of %d runs took %v", driver, runs, time.Since(start).Round(time.Millisecond))
	if code != 0 {
		t.Fatalf("audit verify: exit %d\n%s\n%s", code, out, stderr)
	}
	if !strings.Contains(out, fmt.Sprintf("output of %d runs checked, 0 of them pruned", runs)) {
		t.Errorf("audit verify does not say it checked the output of the %d runs:\n%s", runs, out)
	}
	// One chunk deleted among them all is found, and only that run named.
	list, err := s.RunList(ctx, store.RunListParams{Limit: 1})
	if err != nil || len(list) != 1 {
		t.Fatalf("a run to tamper with: %v %v", list, err)
	}
	victim := list[0].ID
	if _, err := db.ExecContext(ctx, `DELETE FROM run_output WHERE run_id = '`+victim+`' AND seq = 4`); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runCLI(t, "", args...)
	if code != 1 || !strings.Contains(out, "FAILED: 1 problem(s)") || len(lines(out, "run_")) != 1 || len(lines(out, victim)) != 1 {
		t.Fatalf("audit verify after deleting a chunk of %s: exit %d\n%s", victim, code, out)
	}
}
