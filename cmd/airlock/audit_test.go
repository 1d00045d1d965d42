package main

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/config"
	"github.com/airlockhq/airlock/internal/demo"
	"github.com/airlockhq/airlock/internal/server"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/store/sqlite"

	_ "modernc.org/sqlite"
)

func TestAuditVerifyFromTheCLI(t *testing.T) {
	data := t.TempDir()
	cfg := config.Default()
	cfg.Data = data
	cfg.PolicyFile = filepath.Join(data, "policy.cedar")
	os.WriteFile(cfg.PolicyFile, []byte(demo.Policy), 0o600)
	s, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := demo.Seed(context.Background(), demo.Services{Store: s.Store, Identity: s.Identity, Review: s.Review}); err != nil {
		t.Fatal(err)
	}
	c, err := s.AuditLog.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(t.TempDir(), "checkpoints.txt")
	os.WriteFile(outside, []byte(c.Note+"\n"), 0o600)
	s.Close()

	code, out, stderr := runCLI(t, "", "audit", "verify", "--data", data, "--from-checkpoint", outside)
	if code != 0 || !strings.HasPrefix(out, "OK: ") || !strings.Contains(out, "2 checkpoints checked") {
		t.Fatalf("verify untouched: %d %s %s", code, out, stderr)
	}
	// Someone with database access edits event 5.
	db, err := sql.Open("sqlite", filepath.Join(data, "airlock.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`DROP TRIGGER audit_events_no_update`, `UPDATE audit_events SET actor_name = 'nobody' WHERE seq = 5`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	code, out, _ = runCLI(t, "", "audit", "verify", "--data", data, "--from-checkpoint", outside)
	if code != 1 || !strings.Contains(out, "position 5: edited") || !strings.Contains(out, "FAILED") {
		t.Fatalf("verify after tampering: %d %s", code, out)
	}
}

// TestAuditVerifyRefusesWhatItCannotVouchFor: verify reads, never
// creates: a data directory without a database is an error and stays
// empty; a log with no signed checkpoint to check fails unless the
// auditor accepts that with --allow-no-checkpoint.
func TestAuditVerifyRefusesWhatItCannotVouchFor(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-dir")
	code, _, stderr := runCLI(t, "", "audit", "verify", "--data", missing, "--key", "x")
	if code != 1 || !strings.Contains(stderr, "no Airlock database") {
		t.Fatalf("verify of a missing database: exit %d, stderr %q; want 1 saying there is no database", code, stderr)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Fatalf("verify created %s (%v)", missing, err)
	}

	data := t.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(data, "airlock.db"))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	if err := st.Update(context.Background(), func(tx store.Tx) error {
		return tx.AuditAppend(context.Background(), &store.AuditEvent{ID: airlock.NewID(airlock.PrefixEvent, at), Time: at,
			Type: "test.event", ActorName: "test", Outcome: "success"})
	}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	_, vkey, _, err := audit.LoadOrCreateKey(filepath.Join(data, "audit.key"), "airlock-test")
	if err != nil {
		t.Fatal(err)
	}
	code, out, _ := runCLI(t, "", "audit", "verify", "--data", data, "--key", vkey)
	if code != 1 || !strings.Contains(out, "no signed checkpoint was checked") || !strings.Contains(out, "FAILED") {
		t.Fatalf("verify of a never-signed log: exit %d %q; want 1 saying no checkpoint was checked", code, out)
	}
	if code, out, _ := runCLI(t, "", "audit", "verify", "--data", data, "--key", vkey, "--allow-no-checkpoint"); code != 0 || !strings.HasPrefix(out, "OK: 1 events, 0 checkpoints") {
		t.Fatalf("verify --allow-no-checkpoint: exit %d %q", code, out)
	}
}

// TestAuditKey: `airlock audit key` prints the verifier key from the
// data directory (what an operator pins) and from the server (for the
// logged-in auditor), without signing a checkpoint to read it; one
// without readAudit is refused.
func TestAuditKey(t *testing.T) {
	as := demoInProcess(t)
	code, fromServer, stderr := as("dana").run("audit", "key")
	if code != 0 || !strings.HasPrefix(fromServer, "airlock+") {
		t.Fatalf("audit key from the server: %d %q %s", code, fromServer, stderr)
	}
	if code, _, _ := as("alice").run("audit", "key"); code == 0 {
		t.Fatal("alice, without readAudit, read the key")
	}
	data := t.TempDir()
	cfg := config.Default()
	cfg.Data = data
	cfg.PolicyFile = filepath.Join(data, "policy.cedar")
	os.WriteFile(cfg.PolicyFile, []byte(demo.Policy), 0o600)
	s, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	want := s.AuditLog.VerifierKey
	s.Close()
	code, out, stderr := runCLI(t, "", "audit", "key", "--data", data)
	if code != 0 || strings.TrimSpace(out) != want {
		t.Fatalf("audit key --data: %d %q %s, want %s", code, out, stderr, want)
	}
}
