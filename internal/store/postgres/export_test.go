package postgres

import (
	"io/fs"

	"github.com/airlockhq/airlock/internal/store/sqlstore"
)

// Migrations returns the embedded migrations, for upgrade tests.
func Migrations() ([]sqlstore.Migration, error) {
	sub, err := fs.Sub(migrationFS, "migrations")
	if err != nil {
		return nil, err
	}
	return sqlstore.LoadMigrations(sub)
}

// MigrateLock is the lock Open takes around migrations.
const MigrateLock = `SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.airlock_migrate'))`
