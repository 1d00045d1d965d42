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

	"github.com/airlockhq/airlock/internal/config"
	"github.com/airlockhq/airlock/internal/demo"
	"github.com/airlockhq/airlock/internal/server"

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
