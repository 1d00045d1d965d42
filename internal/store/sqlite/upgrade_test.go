package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/store/sqlite"
	"github.com/airlockhq/airlock/internal/store/sqlstore"
	"golang.org/x/mod/sumdb/note"
)

// TestUpgradeRebuildsAuditTables appends events under the schema before
// migration 6 (seq and idx as plain primary keys), upgrades, and checks
// that the log still verifies, appends continue, and the rebuilt tables
// keep their append-only triggers.
func TestUpgradeRebuildsAuditTables(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "airlock.db")
	ms, err := sqlite.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", sqlite.WriterDSN(path))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	if err := sqlstore.Migrate(ctx, db, sqlite.Dialect, ms[:5], ""); err != nil {
		t.Fatal(err)
	}
	old := sqlstore.New(db, db, sqlite.Dialect, nil)
	appendN := func(s store.Store, n int) {
		t.Helper()
		for i := 0; i < n; i++ {
			now := time.Now()
			if err := s.Update(ctx, func(tx store.Tx) error {
				return tx.AuditAppend(ctx, &store.AuditEvent{ID: airlock.NewID(airlock.PrefixEvent, now), Time: now, Type: "test.event", ActorName: "t"})
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	appendN(old, 300)
	old.Close()

	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	appendN(s, 20)
	_, vkey, _ := audit.GenerateKey("upgrade")
	v, _ := note.NewVerifier(vkey)
	rep, err := audit.Verify(ctx, s, v, nil)
	if err != nil || !rep.OK() || rep.Events != 320 {
		t.Fatalf("after upgrade: %v %+v", err, rep)
	}
	w := s.DBs()["sqlite_writer"]
	for table, col := range map[string]string{"audit_events": "seq INTEGER PRIMARY KEY", "audit_hashes": "idx INTEGER PRIMARY KEY"} {
		var ddl string
		if err := w.QueryRow(`SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?`, table).Scan(&ddl); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(ddl, col) {
			t.Errorf("%s: %s", table, ddl)
		}
		if _, err := w.Exec(`DELETE FROM ` + table); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("delete from %s after upgrade: %v", table, err)
		}
	}
}
