package main

import (
	"context"
	"github.com/airlockhq/airlock/internal/testenv"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// demoInProcess starts a server on the demo data with its workers, and
// returns a function that makes the CLI act as a demo user.
func demoInProcess(t *testing.T) func(user string) {
	t.Helper()
	d := testenv.DemoServer(t)
	url := d.Serve(t)
	s, ctx := d.Server, context.Background()
	t.Setenv("AIRLOCK_CONFIG_DIR", t.TempDir())
	t.Setenv("AIRLOCK_SERVER", url)
	tokens := map[string]string{}
	for name := range d.Passwords {
		su, _ := s.Store.UserGetByUsername(ctx, name)
		tok, _, err := s.Identity.IssueLoginToken(ctx, su, "test")
		if err != nil {
			t.Fatal(err)
		}
		tokens[name] = tok
	}
	return func(user string) { t.Setenv("AIRLOCK_TOKEN", tokens[user]) }
}

func TestRunFollowApproveAndExitCodes(t *testing.T) {
	as := demoInProcess(t)
	as("alice")
	code, out, stderr := runCLI(t, "", "run", "flush-cache", "--env", "staging", "-p", "cache=sessions", "--follow")
	if code != 0 || !strings.Contains(out, "flushing the sessions cache") || !strings.Contains(stderr, "succeeded") {
		t.Fatalf("run --follow: %d\n%s\n%s", code, out, stderr)
	}
	code, out, _ = runCLI(t, "", "run", "flush-cache", "--env", "production", "-p", "cache=catalog", "--dry-run")
	if code != 0 || !strings.Contains(out, "in production: request (1 approval(s) from someone else)") || !strings.Contains(out, "airlock\tlocal") {
		t.Fatalf("dry run: %d %s", code, out)
	}
	code, out, _ = runCLI(t, "", "run", "flush-cache", "--env", "production", "-p", "cache=catalog", "-o", "json")
	if code != 0 || !strings.Contains(out, `"status": "pending_approval"`) {
		t.Fatalf("request: %d %s", code, out)
	}
	id := strings.Split(strings.Split(out, `"id": "`)[1], `"`)[0]
	// alice follows her pending run while bob approves it.
	type result struct {
		code        int
		out, stderr string
	}
	followed := make(chan result, 1)
	go func() {
		c, o, e := runCLI(t, "", "runs", "logs", id, "-f")
		followed <- result{c, o, e}
	}()
	time.Sleep(300 * time.Millisecond)
	as("bob")
	// As a different user for the follower goroutine's later requests is
	// fine: it authenticated its stream already.
	if code, _, stderr := runCLI(t, "", "approve", id, "-m", "fine"); code != 0 {
		t.Fatalf("approve: %d %s", code, stderr)
	}
	r := <-followed
	if r.code != 0 || !strings.Contains(r.out, "flushing the catalog cache") {
		t.Fatalf("follow after approval: %d %q %q", r.code, r.out, r.stderr)
	}
	// A denied run exits 3.
	as("alice")
	_, out, _ = runCLI(t, "", "run", "rotate-logs", "--env", "production", "-o", "json")
	id = strings.Split(strings.Split(out, `"id": "`)[1], `"`)[0]
	as("bob")
	if code, _, stderr := runCLI(t, "", "deny", id, "-m", "not now"); code != 0 {
		t.Fatalf("deny: %d %s", code, stderr)
	}
	as("alice")
	if code, _, _ := runCLI(t, "", "runs", "logs", id, "-f"); code != 3 {
		t.Fatalf("follow a denied run: exit %d, want 3", code)
	}
	if code, out, _ := runCLI(t, "", "runs", "list", "--mine"); code != 0 || strings.Count(out, "run_") != 3 {
		t.Fatalf("runs list: %d %s", code, out)
	}
	// A failing run exits 1; carol may not run at all (exit 1, refused).
	as("carol")
	if code, _, stderr := runCLI(t, "", "run", "flush-cache", "--env", "staging", "-p", "cache=sessions"); code != 1 || !strings.Contains(stderr, "not permitted") {
		t.Fatalf("carol: %d %s", code, stderr)
	}
}

func TestEvidenceExportAndVerifyFromTheCLI(t *testing.T) {
	as := demoInProcess(t)
	as("alice")
	runCLI(t, "", "run", "flush-cache", "--env", "staging", "-p", "cache=sessions", "--follow")
	as("dana")
	out := filepath.Join(t.TempDir(), "day.zip")
	day := time.Now().UTC().Format("2006-01-02")
	if code, o, e := runCLI(t, "", "evidence", "export", "--from", day, "--to", day, "--out", out); code != 0 {
		t.Fatalf("export: %d %s %s", code, o, e)
	}
	// One run's bundle, by its ID; a run and a period together are a
	// usage error.
	_, list, _ := runCLI(t, "", "runs", "list", "-o", "json")
	runID := strings.Split(strings.Split(list, `"id": "`)[1], `"`)[0]
	runOut := filepath.Join(t.TempDir(), "run.zip")
	if code, o, e := runCLI(t, "", "evidence", "export", "--run", runID, "--out", runOut); code != 0 {
		t.Fatalf("export --run: %d %s %s", code, o, e)
	}
	if code, _, e := runCLI(t, "", "evidence", "export", "--run", runID, "--from", day, "--out", runOut); code != 2 || !strings.Contains(e, "--run exports one run") {
		t.Fatalf("--run with --from: %d %s", code, e)
	}
	code, keyJSON, _ := runCLI(t, "", "audit", "checkpoint", "-o", "json")
	if code != 0 {
		t.Fatal("checkpoint")
	}
	key := strings.Split(strings.Split(keyJSON, `"key": "`)[1], `"`)[0]
	t.Setenv("AIRLOCK_SERVER", "http://127.0.0.1:1") // offline
	if code, o, e := runCLI(t, "", "evidence", "verify", out, "--key", key); code != 0 || !strings.HasPrefix(o, "OK: ") {
		t.Fatalf("verify: %d %s %s", code, o, e)
	}
	if code, o, e := runCLI(t, "", "evidence", "verify", runOut, "--key", key); code != 0 || !strings.Contains(o, ", 1 runs") {
		t.Fatalf("verify the run's bundle: %d %s %s", code, o, e)
	}
	b, _ := os.ReadFile(out)
	b[len(b)/3] ^= 0xff
	os.WriteFile(out, b, 0o600)
	if code, _, _ := runCLI(t, "", "evidence", "verify", out, "--key", key); code == 0 {
		t.Fatal("a corrupted bundle verified")
	}
}
