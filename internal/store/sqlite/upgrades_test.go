package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/store/sqlite"
	"github.com/airlockhq/airlock/internal/store/storetest"
)

// upgrade runs check on a fresh database file, opened afterwards with
// every migration applied.
func upgrade(t *testing.T, check storetest.UpgradeCheck) {
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
	defer db.Close()
	check(t, db, sqlite.Dialect, ms, "", func(t *testing.T) store.Store {
		db.Close()
		s, err := sqlite.Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestUpgradeScopesSecrets: secrets stored before scopes existed are
// scoped, at the upgrade, to the procedures whose approved versions name
// them, and to nothing else.
func TestUpgradeScopesSecrets(t *testing.T) { upgrade(t, storetest.SecretScopesUpgrade) }

func TestUpgradeLinksAccountsToTheirCreators(t *testing.T) { upgrade(t, storetest.AccountLinksUpgrade) }
