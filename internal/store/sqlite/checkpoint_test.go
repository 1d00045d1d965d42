package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/store/sqlite"
	"github.com/airlockhq/airlock/internal/testenv"
)

// TestLogIsCheckpointedInTheBackground: commits no longer copy the
// write-ahead log into the database file themselves until 40 MB of it
// (the backstop); the background checkpointer does, soon after. Here
// 2 MB are committed: the database file grows to hold them without
// another commit, and the writer's own threshold is the backstop.
func TestLogIsCheckpointedInTheBackground(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "airlock.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var backstop int
	if err := s.DBs()["sqlite_writer"].QueryRow(`PRAGMA wal_autocheckpoint`).Scan(&backstop); err != nil {
		t.Fatal(err)
	}
	if backstop != 10000 {
		t.Fatalf("the writer checkpoints past %d pages; want the 10,000-page backstop", backstop)
	}
	before := fileSize(t, path)
	at := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	for i := range 32 {
		u := &store.User{ID: airlock.NewID(airlock.PrefixUser, at), Username: "u" + strings.Repeat("x", i+1),
			DisplayName: strings.Repeat("x", 64<<10), PasswordHash: "$argon2id$x", CreatedAt: at, UpdatedAt: at}
		if err := s.Update(ctx, func(tx store.Tx) error {
			if err := tx.UserInsert(ctx, u); err != nil {
				return err
			}
			return tx.AuditAppend(ctx, audit.New(ctx, at, audit.UserCreate, audit.System, u.ID, audit.Success, nil))
		}); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, "the database file to take the 2 MB committed to the log", func() bool {
		return fileSize(t, path) >= before+2<<20
	})
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
