package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/store/postgres"
	"github.com/airlockhq/airlock/internal/store/storetest"
	"github.com/airlockhq/airlock/internal/testenv"
)

// The locator is "schema|url".
func open(ctx context.Context, loc string) (store.Store, error) {
	schema, url, _ := strings.Cut(loc, "|")
	return postgres.Open(ctx, url, postgres.Options{Schema: schema})
}

func TestMain(m *testing.M) {
	storetest.MaybeCrashChild(open)
	os.Exit(m.Run())
}

func TestConformance(t *testing.T) {
	url := testenv.PostgresURL(t)
	storetest.Run(t, storetest.Harness{
		New: func(t *testing.T) (store.Store, string) {
			b := make([]byte, 6)
			rand.Read(b)
			schema := "airlock_test_" + hex.EncodeToString(b)
			s, err := postgres.Open(context.Background(), url, postgres.Options{Schema: schema})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				s.DBs()["postgres"].Exec(`DROP SCHEMA ` + pgx.Identifier{schema}.Sanitize() + ` CASCADE`)
				s.Close()
			})
			return s, schema + "|" + url
		},
		Open: open,
		Exec: func(t *testing.T, s store.Store, q string) error {
			_, err := s.DBs()["postgres"].ExecContext(context.Background(), q)
			return err
		},
		DisableAppendOnly: func(t *testing.T, s store.Store) {
			for _, q := range []string{`ALTER TABLE audit_events DISABLE TRIGGER USER`, `ALTER TABLE audit_hashes DISABLE TRIGGER USER`} {
				if _, err := s.DBs()["postgres"].Exec(q); err != nil {
					t.Fatal(err)
				}
			}
		},
	})
}
