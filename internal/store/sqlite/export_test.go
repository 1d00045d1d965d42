package sqlite

import "github.com/airlockhq/airlock/internal/store/sqlstore"

// Migrations returns the embedded migrations, for upgrade tests.
func Migrations() ([]sqlstore.Migration, error) { return sqlstore.LoadMigrations(sub(migrationFS)) }

// DSN is the connection string Open uses.
var DSN = dsn
