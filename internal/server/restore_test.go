package server_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/run"
	"github.com/airlockhq/airlock/internal/server"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/testenv"
)

// TestBackupAndRestore follows docs/operations.md's Backup section: an
// online copy of the SQLite database (VACUUM INTO), the two keys and the
// configuration's files, restored into a new data directory. The
// restored server starts (its keys fit: the newest checkpoint verifies,
// the stored secret opens), its log verifies, and it has the runs.
func TestBackupAndRestore(t *testing.T) {
	d := testenv.DemoServer(t)
	d.Serve(t)
	ctx := context.Background()
	if _, err := d.Secrets.Put(ctx, principal(t, d, "bob"), "payments/api-token", []byte("s3cret-value")); err != nil {
		t.Fatal(err)
	}
	r, err := d.Runs.Request(ctx, principal(t, d, "alice"), run.RequestParams{Procedure: "flush-cache", Environment: "staging",
		Params: map[string]any{"cache": "sessions"}})
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "the run to end", func() bool {
		got, err := d.Store.RunGet(ctx, r.ID)
		return err == nil && store.RunFinal(got.Status)
	})
	if _, err := d.AuditLog.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}

	// The backup: the database copied online, and the files beside it.
	backup := t.TempDir()
	if _, err := d.Store.DBs()["sqlite_writer"].ExecContext(ctx, `VACUUM INTO ?`, filepath.Join(backup, "airlock.db")); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"master.key", "audit.key", "policy.cedar", "inventory.yaml"} {
		copyFile(t, filepath.Join(d.Config.Data, f), filepath.Join(backup, f))
	}

	// The restore: a new data directory holding what the backup holds.
	cfg := d.Config
	cfg.Data = t.TempDir()
	cfg.PolicyFile, cfg.InventoryFile = filepath.Join(cfg.Data, "policy.cedar"), filepath.Join(cfg.Data, "inventory.yaml")
	for _, f := range []string{"airlock.db", "master.key", "audit.key", "policy.cedar", "inventory.yaml"} {
		copyFile(t, filepath.Join(backup, f), filepath.Join(cfg.Data, f))
	}
	restored, err := server.New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("the restored server does not start: %v", err)
	}
	defer restored.Close()
	rep, err := audit.Verify(ctx, restored.Store, restored.AuditLog.Verifier, nil)
	if err != nil || !rep.OK() || rep.Checkpoints == 0 {
		t.Fatalf("the restored log: %+v %v", rep, err)
	}
	got, err := restored.Store.RunGet(ctx, r.ID)
	if err != nil || got.Status != store.RunSucceeded || got.OutputDigest == "" {
		t.Fatalf("the restored run: %+v %v", got, err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
