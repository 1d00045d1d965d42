package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/store/sqlite"
	"github.com/airlockhq/airlock/internal/store/sqlstore"
	"github.com/airlockhq/airlock/internal/store/storetest"
)

func TestMain(m *testing.M) {
	storetest.MaybeCrashChild(func(ctx context.Context, loc string) (store.Store, error) { return sqlite.Open(ctx, loc) })
	os.Exit(m.Run())
}

func TestConformance(t *testing.T) {
	storetest.Run(t, harness(func(t *testing.T, s *sqlstore.DB) { t.Cleanup(func() { s.Close() }) }))
}

// harness opens each store in a temporary directory and hands it to
// opened (which closes it at the end).
func harness(opened func(*testing.T, *sqlstore.DB)) storetest.Harness {
	return storetest.Harness{
		New: func(t *testing.T) (store.Store, string) {
			path := filepath.Join(t.TempDir(), "airlock.db")
			s, err := sqlite.Open(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			opened(t, s)
			return s, path
		},
		Open:       func(ctx context.Context, loc string) (store.Store, error) { return sqlite.Open(ctx, loc) },
		OneProcess: true, // docs/operations.md: one Airlock process per database
		Exec: func(t *testing.T, s store.Store, q string) error {
			_, err := s.DBs()["sqlite_writer"].ExecContext(context.Background(), q)
			return err
		},
		DisableAppendOnly: func(t *testing.T, s store.Store) {
			for _, tr := range []string{"audit_events_no_update", "audit_events_no_delete", "audit_hashes_no_update", "audit_hashes_no_delete"} {
				if _, err := s.DBs()["sqlite_writer"].Exec(`DROP TRIGGER ` + tr); err != nil {
					t.Fatal(err)
				}
			}
		},
	}
}
