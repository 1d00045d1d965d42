package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/api"
	"github.com/airlockhq/airlock/internal/config"
	"github.com/airlockhq/airlock/internal/evidence"
	"github.com/airlockhq/airlock/internal/testenv"
)

// demoInProcess starts a server on the demo data with its workers, and
// returns the in-process CLI as each demo user.
func demoInProcess(t *testing.T) func(user string) cli {
	t.Helper()
	return serveDemo(t, testenv.DemoServer(t))
}

// serveDemo serves d with its workers and returns the in-process CLI as
// each demo user.
func serveDemo(t *testing.T, d *testenv.Demo) func(user string) cli {
	t.Helper()
	url := d.Serve(t)
	ctx := context.Background()
	tokens := map[string]string{}
	for name := range d.Passwords {
		u, err := d.Store.UserGetByUsername(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		tok, _, err := d.Identity.IssueLoginToken(ctx, u, "test")
		if err != nil {
			t.Fatal(err)
		}
		tokens[name] = tok
	}
	return loginProfiles(t, url, tokens)
}

// runOf decodes the run that `-o json` printed.
func runOf(t *testing.T, out string) api.RunJSON {
	t.Helper()
	var r api.RunJSON
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.ID == "" {
		t.Fatalf("not a run as JSON (%v): %q", err, out)
	}
	return r
}

func TestRunFollowApproveAndExitCodes(t *testing.T) {
	as := demoInProcess(t)
	alice, bob, carol := as("alice"), as("bob"), as("carol")
	code, out, stderr := alice.run("run", "flush-cache", "--env", "staging", "-p", "cache=sessions", "--follow")
	if code != 0 || !strings.Contains(out, "flushing the sessions cache") || !strings.Contains(stderr, "succeeded") {
		t.Fatalf("run --follow: %d\n%s\n%s", code, out, stderr)
	}
	// Waiting long enough, the answer is the ended run with its output;
	// not waiting, the output streams: the same either way.
	for _, wait := range []string{"60s", "0"} {
		code, out, stderr = alice.run("run", "flush-cache", "--env", "staging", "-p", "cache=sessions", "--follow", "--wait", wait)
		if code != 0 || !strings.Contains(out, "flushing the sessions cache") || !strings.Contains(stderr, "succeeded") ||
			strings.Contains(stderr, "ran on") != (wait == "60s") {
			t.Fatalf("run --follow --wait %s: %d\n%s\n%s", wait, code, out, stderr)
		}
	}
	code, out, _ = alice.run("run", "flush-cache", "--env", "production", "-p", "cache=catalog", "--dry-run")
	if code != 0 || !strings.Contains(out, "in production: request (1 approval(s) from someone else)") || !strings.Contains(out, "airlock\tlocal") {
		t.Fatalf("dry run: %d %s", code, out)
	}
	code, out, _ = alice.run("run", "flush-cache", "--env", "production", "-p", "cache=catalog", "-o", "json")
	if code != 0 || !strings.Contains(out, `"status": "pending_approval"`) {
		t.Fatalf("request: %d %s", code, out)
	}
	id := runOf(t, out).ID
	// alice follows her pending run while bob approves it. bob approves
	// once her stream is open and has told her the run waits, so the
	// approval reaches a follower already connected.
	follower := alice.start("runs", "logs", id, "-f")
	t.Cleanup(func() {
		// On failure, end the run so the follower's stream ends before
		// the server closes (which waits for open requests).
		select {
		case <-follower.done:
		default:
			alice.run("runs", "cancel", id)
			follower.wait(t, 60*time.Second)
		}
	})
	follower.waitStderr(t, "waiting for approval…", 30*time.Second)
	if code, _, stderr := bob.run("approve", id, "-m", "fine"); code != 0 {
		t.Fatalf("approve: %d %s", code, stderr)
	}
	code, out, stderr = follower.wait(t, 60*time.Second)
	if code != 0 || !strings.Contains(out, "flushing the catalog cache") || !strings.Contains(stderr, id+" succeeded") {
		t.Fatalf("follow after approval: %d %q %q", code, out, stderr)
	}
	// A denied run exits 3.
	_, out, _ = alice.run("run", "rotate-logs", "--env", "production", "-o", "json")
	id = runOf(t, out).ID
	if code, _, stderr := bob.run("deny", id, "-m", "not now"); code != 0 {
		t.Fatalf("deny: %d %s", code, stderr)
	}
	if code, _, _ := alice.run("runs", "logs", id, "-f"); code != 3 {
		t.Fatalf("follow a denied run: exit %d, want 3", code)
	}
	if code, out, _ := alice.run("runs", "list", "--mine"); code != 0 || strings.Count(out, "run_") != 5 {
		t.Fatalf("runs list: %d %s", code, out)
	}
	// A failing run exits 1; carol may not run at all (exit 1, refused).
	if code, _, stderr := carol.run("run", "flush-cache", "--env", "staging", "-p", "cache=sessions"); code != 1 || !strings.Contains(stderr, "not permitted") {
		t.Fatalf("carol: %d %s", code, stderr)
	}
}

// bundle is what an evidence bundle holds, read without the verifier.
type bundle struct {
	manifest evidence.Manifest
	runs     []struct{ ID, Status string }
	events   []evidence.EventRecord
	files    map[string][]byte
}

func readBundle(t *testing.T, path string) bundle {
	t.Helper()
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	b := bundle{files: map[string][]byte{}}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("%s in %s: %v", f.Name, path, err)
		}
		b.files[f.Name] = data
	}
	if err := json.Unmarshal(b.files["manifest.json"], &b.manifest); err != nil {
		t.Fatalf("manifest.json in %s: %v", path, err)
	}
	if err := json.Unmarshal(b.files["runs.json"], &b.runs); err != nil {
		t.Fatalf("runs.json in %s: %v", path, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b.files["events.jsonl"]))
	for dec.More() {
		var e evidence.EventRecord
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("events.jsonl in %s: %v", path, err)
		}
		b.events = append(b.events, e)
	}
	return b
}

// eventsOf lists the types of the bundle's events about subject, in order.
func (b bundle) eventsOf(subject string) []string {
	var types []string
	for _, e := range b.events {
		if e.Subject == subject {
			types = append(types, e.Type)
		}
	}
	return types
}

// checkHoldsRun fails unless the bundle holds exactly the one run id, as
// it ended, with its output and its audit trail from request to finish.
func (b bundle) checkHoldsRun(t *testing.T, name, id string) {
	t.Helper()
	if len(b.runs) != 1 || b.runs[0].ID != id || b.runs[0].Status != "succeeded" {
		t.Errorf("%s: runs %+v, want only %s, succeeded", name, b.runs, id)
	}
	if out := string(b.files["output/"+id+".log"]); !strings.Contains(out, "flushing the sessions cache") {
		t.Errorf("%s: output of %s: %q", name, id, out)
	}
	if types := b.eventsOf(id); !slices.Contains(types, "run.request") || !slices.Contains(types, "run.finish") {
		t.Errorf("%s: events about %s: %v, want its run.request to its run.finish", name, id, types)
	}
}

func TestEvidenceExportAndVerifyFromTheCLI(t *testing.T) {
	as := demoInProcess(t)
	alice, dana := as("alice"), as("dana")
	code, out, stderr := alice.run("run", "flush-cache", "--env", "staging", "-p", "cache=sessions", "-o", "json")
	if code != 0 {
		t.Fatalf("run: %d %s %s", code, out, stderr)
	}
	id := runOf(t, out).ID
	if code, out, stderr := alice.run("runs", "logs", id, "-f"); code != 0 {
		t.Fatalf("follow %s: %d %s %s", id, code, out, stderr)
	}
	code, out, _ = alice.run("runs", "show", id, "-o", "json")
	if code != 0 {
		t.Fatalf("show %s: %d %s", id, code, out)
	}
	r := runOf(t, out)
	// The period is the days the server dated the run, from its request
	// to its end: not today by this test's clock, which may have passed
	// midnight since.
	from, to := r.CreatedAt.UTC().Format(time.DateOnly), r.FinishedAt.UTC().Format(time.DateOnly)
	period := filepath.Join(t.TempDir(), "period.zip")
	if code, o, e := dana.run("evidence", "export", "--from", from, "--to", to, "--out", period); code != 0 {
		t.Fatalf("export %s to %s (run %s created %s, finished %s): %d %s %s", from, to, id, r.CreatedAt, r.FinishedAt, code, o, e)
	}
	readBundle(t, period).checkHoldsRun(t, "the period's bundle", id)
	// One run's bundle, by its ID; a run and a period together are a
	// usage error.
	runOut := filepath.Join(t.TempDir(), "run.zip")
	if code, o, e := dana.run("evidence", "export", "--run", id, "--out", runOut); code != 0 {
		t.Fatalf("export --run: %d %s %s", code, o, e)
	}
	readBundle(t, runOut).checkHoldsRun(t, "the run's bundle", id)
	if code, _, e := dana.run("evidence", "export", "--run", id, "--from", from, "--out", runOut); code != 2 || !strings.Contains(e, "--run exports one run") {
		t.Fatalf("--run with --from: %d %s", code, e)
	}
	code, keyJSON, _ := dana.run("audit", "checkpoint", "-o", "json")
	var cp struct{ Key string }
	if err := json.Unmarshal([]byte(keyJSON), &cp); code != 0 || err != nil || cp.Key == "" {
		t.Fatalf("checkpoint: %d %v %s", code, err, keyJSON)
	}
	// Verifying needs no server: without --profile the CLI has none.
	code, o, e := runCLI(t, "", "evidence", "verify", period, "--key", cp.Key, "-o", "json")
	var res evidence.Result
	if err := json.Unmarshal([]byte(o), &res); code != 0 || err != nil || !res.OK() || res.Runs != 1 || res.Events == 0 {
		t.Fatalf("verify the period's bundle: %d %v %s %s", code, err, o, e)
	}
	if code, o, e := runCLI(t, "", "evidence", "verify", runOut, "--key", cp.Key); code != 0 || !strings.HasPrefix(o, "OK: ") || !strings.Contains(o, ", 1 runs") {
		t.Fatalf("verify the run's bundle: %d %s %s", code, o, e)
	}
	// An edited file is named.
	edited := filepath.Join(t.TempDir(), "edited.zip")
	editBundle(t, period, edited, "runs.json", func(b []byte) []byte {
		return bytes.Replace(b, []byte(`"succeeded"`), []byte(`"failed"`), 1)
	})
	if code, o, _ := runCLI(t, "", "evidence", "verify", edited, "--key", cp.Key); code != 1 || !strings.Contains(o, "runs.json: edited") || !strings.Contains(o, "FAILED") {
		t.Fatalf("an edited bundle: %d %s", code, o)
	}
}

// editBundle copies the bundle at src to dst with one file changed by edit.
func editBundle(t *testing.T, src, dst, name string, edit func([]byte) []byte) {
	t.Helper()
	b := readBundle(t, src)
	changed := edit(b.files[name])
	if bytes.Equal(changed, b.files[name]) {
		t.Fatalf("the edit left %s unchanged", name)
	}
	b.files[name] = changed
	f, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for n, data := range b.files {
		w, err := zw.Create(n)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestTryRunFromTheCLI: `airlock run NAME@N --env sandbox` tries a
// proposed version and says it is unreviewed; a bad version is a usage
// error.
func TestTryRunFromTheCLI(t *testing.T) {
	d := testenv.DemoServer(t, func(c *config.Config) {
		c.Environments = append(c.Environments, "sandbox")
		c.TryEnvironments = []string{"sandbox"}
	})
	as := serveDemo(t, d)
	src := filepath.Join(t.TempDir(), "rotate-logs.yaml")
	b, err := os.ReadFile(filepath.Join("..", "..", "internal", "demo", "catalog", "rotate-logs.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(src, append(b, []byte("  - name: tried\n    script: echo trying\n")...), 0o600)
	if code, out, stderr := as("alice").run("propose", src); code != 0 {
		t.Fatalf("propose: %d %s %s", code, out, stderr)
	}
	code, out, stderr := as("alice").run("run", "rotate-logs@2", "--env", "sandbox")
	if code != 0 || !strings.Contains(out, "try run of an unreviewed version") {
		t.Fatalf("try: %d %s %s", code, out, stderr)
	}
	if code, _, stderr := as("alice").run("run", "rotate-logs@two", "--env", "sandbox"); code != 2 || !strings.Contains(stderr, "a version number") {
		t.Fatalf("a bad version: %d %s", code, stderr)
	}
}
