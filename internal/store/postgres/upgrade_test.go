package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/store/postgres"
	"github.com/airlockhq/airlock/internal/store/storetest"
	"github.com/airlockhq/airlock/internal/testenv"
)

// upgrade hands check an empty schema of its own (dropped afterwards) to
// migrate part-way and fill as an older Airlock would, and a way to open
// it with every migration applied.
func upgrade(t *testing.T, check storetest.UpgradeCheck) {
	ctx := context.Background()
	url := testenv.PostgresURL(t)
	b := make([]byte, 6)
	rand.Read(b)
	schema := "airlock_test_" + hex.EncodeToString(b)
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["search_path"] = schema
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	if _, err := db.ExecContext(ctx, `CREATE SCHEMA `+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		admin := stdlib.OpenDB(*cfg)
		admin.Exec(`DROP SCHEMA ` + pgx.Identifier{schema}.Sanitize() + ` CASCADE`)
		admin.Close()
	})
	ms, err := postgres.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	check(t, db, postgres.Dialect, ms, postgres.MigrateLock, func(t *testing.T) store.Store {
		s, err := postgres.Open(ctx, url, postgres.Options{Schema: schema})
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
