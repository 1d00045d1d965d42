package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/config"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/server"
)

// inProcess starts a server with users alice, bob, carol, root1 and
// root2, and returns the in-process CLI as each of them.
func inProcess(t *testing.T) func(user string) cli {
	t.Helper()
	return inProcessWith(t, "")
}

// inProcessWith is inProcess with a configuration file (empty: none),
// and the notification dispatcher running when it configures a channel.
func inProcessWith(t *testing.T, file string) func(user string) cli {
	t.Helper()
	cfg, err := config.Load(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Data = t.TempDir()
	s, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	dctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if s.Notify != nil {
			s.Notify.Run(dctx)
		}
	}()
	t.Cleanup(func() { hs.Close(); stop(); <-done; s.Close() })
	// alice is also in ops, so that policy lets her review: separation of
	// duties must still stop her reviewing her own versions.
	users := map[string][]string{"alice": {"dev", "payments", "ops"}, "bob": {"ops"}, "carol": {"security"},
		"root1": {"admins"}, "root2": {"admins"}}
	tokens := map[string]string{}
	ctx := context.Background()
	for name, groups := range users {
		u, err := s.Identity.CreateUser(ctx, audit.System, identity.CreateUserParams{Username: name, Password: name + "-password-1", Groups: groups})
		if err != nil {
			t.Fatal(err)
		}
		secret, _, err := s.Identity.IssueLoginToken(ctx, u, "test")
		if err != nil {
			t.Fatal(err)
		}
		tokens[name] = secret
	}
	return loginProfiles(t, hs.URL, tokens)
}

const flushV1 = `apiVersion: airlock/v1
kind: Procedure
name: flush-cache
owner: payments
risk: low
steps:
  - name: flush
    exec: [redis-cli, FLUSHDB]
`

func TestProposeIsIdempotent(t *testing.T) {
	as := inProcess(t)
	alice, bob := as("alice"), as("bob")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "flush.yaml"), []byte(flushV1), 0o600)
	os.WriteFile(filepath.Join(dir, "restart.yaml"), []byte(strings.NewReplacer("flush-cache", "restart-api", "redis-cli, FLUSHDB", "systemctl, restart, api", "low", "medium").Replace(flushV1)), 0o600)
	code, out, stderr := alice.run("propose", dir)
	if code != 0 || !strings.Contains(out, "2 proposed, 0 unchanged") {
		t.Fatalf("first propose: %d\n%s%s", code, out, stderr)
	}
	code, out, _ = alice.run("propose", dir, "-o", "json")
	var rep ProposeReport
	json.Unmarshal([]byte(out), &rep)
	if code != 0 || len(rep.Results) != 2 || rep.Results[0].Status != "unchanged" || rep.Results[1].Status != "unchanged" {
		t.Fatalf("second propose proposed something: %d %s", code, out)
	}

	// Review from the CLI: the author cannot, ops can.
	if code, _, stderr := alice.run("review", "approve", "flush-cache@1"); code != 1 || !strings.Contains(stderr, "your own version") {
		t.Fatalf("self approval: %d %s", code, stderr)
	}
	code, out, _ = bob.run("review", "list")
	if code != 0 || !strings.Contains(out, "flush-cache") || !strings.Contains(out, "restart-api") {
		t.Fatalf("bob's review list: %s", out)
	}
	if code, out, _ := bob.run("review", "approve", "flush-cache@1", "-m", "ok"); code != 0 || !strings.Contains(out, "now the active version") {
		t.Fatalf("bob approves: %d %s", code, out)
	}
	if code, _, stderr := bob.run("review", "approve", "restart-api@1", "--digest", "sha256:0000"); code != 1 || !strings.Contains(stderr, "digest") {
		t.Fatalf("approval with a stale digest: %d %s", code, stderr)
	}

	// A change proposes v2; diff shows it.
	os.WriteFile(filepath.Join(dir, "flush.yaml"), []byte(strings.Replace(flushV1, "FLUSHDB", "FLUSHALL", 1)), 0o600)
	code, out, _ = alice.run("propose", dir)
	if code != 0 || !strings.Contains(out, "proposed   flush-cache v2") || !strings.Contains(out, "1 proposed, 1 unchanged") {
		t.Fatalf("propose change: %d\n%s", code, out)
	}
	code, out, _ = alice.run("procedures", "diff", "flush-cache")
	if code != 0 || !strings.Contains(out, "-      - FLUSHDB\n+      - FLUSHALL") {
		t.Fatalf("diff: %d\n%s", code, out)
	}
	code, out, _ = alice.run("procedures", "history", "flush-cache", "-o", "json")
	if code != 0 || strings.Count(out, `"number"`) != 2 {
		t.Fatalf("history: %s", out)
	}
}

func TestValidateOffline(t *testing.T) {
	// No profile and no AIRLOCK_SERVER: a command that called a server
	// would fail for want of one.
	loginProfiles(t, "", nil)
	code, out, _ := runCLI(t, "", "procedure", "validate", "../../internal/procedure/testdata/good")
	if code != 0 || !strings.Contains(out, "2 valid, 0 errors") {
		t.Fatalf("good: %d %s", code, out)
	}
	code, out, _ = runCLI(t, "", "procedure", "validate", "-o", "json", "../../internal/procedure/testdata/bad/unknown-field.yaml")
	var rep ValidateReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if code != 1 || rep.Valid || len(rep.Errors) != 1 || rep.Errors[0].Line != 9 || rep.Errors[0].Column != 5 || rep.Errors[0].Path != "steps[0].exce" {
		t.Fatalf("bad: %d %+v", code, rep)
	}
	// Nothing is proposed when anything is invalid.
	code, _, stderr := runCLI(t, "", "propose", "../../internal/procedure/testdata/bad/unknown-field.yaml")
	if code != 1 || !strings.Contains(stderr, "nothing was proposed") {
		t.Fatalf("propose invalid: %d %s", code, stderr)
	}
}
