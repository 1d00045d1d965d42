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

// ListenerPID is the backend of db's listening connection, 0 before it
// first connects.
func ListenerPID(db *DB) uint32 { return db.notifier.listenPID.Load() }

// Channel is the channel db's notices go on.
func Channel(db *DB) string { return db.notifier.channel }
