package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/store/sqlite"
)

// TestFullDiskIsUnavailableAndRecovers fills the database (max_page_count
// stands in for the disk): the write is refused as unavailable, not as
// an internal error, and nothing of it is stored. A database that takes
// no write at all (query_only stands in for a read-only file system)
// fails Ping, and both recover by themselves once writes are possible.
func TestFullDiskIsUnavailableAndRecovers(t *testing.T) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "airlock.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w := s.DBs()["sqlite_writer"] // one connection: the pragma stays on it
	var pages int
	if err := w.QueryRow(`PRAGMA page_count`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Exec(fmt.Sprintf(`PRAGMA max_page_count = %d`, pages)); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	insert := func(name string) error {
		u := &store.User{ID: airlock.NewID(airlock.PrefixUser, at), Username: name, DisplayName: strings.Repeat("x", 64<<10),
			PasswordHash: "$argon2id$x", CreatedAt: at, UpdatedAt: at}
		return s.Update(ctx, func(tx store.Tx) error {
			if err := tx.UserInsert(ctx, u); err != nil {
				return err
			}
			return tx.AuditAppend(ctx, &store.AuditEvent{ID: airlock.NewID(airlock.PrefixEvent, at), Time: at, Type: "user.create",
				Subject: u.ID, ActorName: "test", Outcome: "success"})
		})
	}
	err = insert("big")
	if airlock.ErrorKind(err) != airlock.Unavailable || !strings.HasPrefix(airlock.ErrorMessage(err), "storage full") {
		t.Fatalf("write to a full database: %v (kind %q), want unavailable saying storage full", err, airlock.ErrorKind(err))
	}
	if _, err := s.UserGetByUsername(ctx, "big"); airlock.ErrorKind(err) != airlock.NotFound {
		t.Fatalf("the refused write left a user: %v", err)
	}
	if _, err := w.Exec(`PRAGMA query_only = 1`); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err == nil || !strings.Contains(err.Error(), "does not take writes") {
		t.Fatalf("ping with a database that takes no writes: %v, want an error saying so", err)
	}
	if _, err := w.Exec(`PRAGMA query_only = 0`); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Exec(`PRAGMA max_page_count = 1073741823`); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("ping once writes are possible: %v", err)
	}
	if err := insert("big"); err != nil {
		t.Fatalf("write once there is room: %v", err)
	}
}
