package sqlite

import "github.com/airlockhq/airlock/internal/store/sqlstore"

// Migrations returns the embedded migrations, for upgrade tests.
func Migrations() ([]sqlstore.Migration, error) { return sqlstore.LoadMigrations(sub(migrationFS)) }

// WriterDSN is the connection string of Open's writer.
func WriterDSN(path string) string { return dsn(path, writeConn) }
