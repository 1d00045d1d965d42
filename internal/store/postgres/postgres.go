// Package postgres is the clustered storage driver: PostgreSQL through
// pgx v5. Several Airlock replicas may share one database; migrations take
// an advisory lock, and audit appends serialize on the audit_head row.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/airlockhq/airlock/internal/store/sqlstore"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Dialect is PostgreSQL's flavour of SQL for sqlstore.
var Dialect = sqlstore.Dialect{
	Numbered: true,
	IsUnique: func(err error) bool {
		var e *pgconn.PgError
		return errors.As(err, &e) && e.Code == "23505"
	},
}

// Options tune Open.
type Options struct {
	// Schema, when set, is created if missing and put first on the
	// search_path; tests use it to isolate each database.
	Schema   string
	MaxConns int
}

// Open connects to the database at url and applies pending migrations.
func Open(ctx context.Context, url string, opts Options) (*sqlstore.DB, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: database url: %w", err)
	}
	if opts.Schema != "" {
		cfg.RuntimeParams["search_path"] = opts.Schema
	}
	db := stdlib.OpenDB(*cfg)
	if opts.MaxConns <= 0 {
		opts.MaxConns = 16
	}
	db.SetMaxOpenConns(opts.MaxConns)
	db.SetMaxIdleConns(opts.MaxConns)
	if opts.Schema != "" {
		if _, err := db.ExecContext(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{opts.Schema}.Sanitize()); err != nil {
			db.Close()
			return nil, fmt.Errorf("postgres: create schema: %w", err)
		}
	}
	sub, _ := fs.Sub(migrationFS, "migrations")
	ms, err := sqlstore.LoadMigrations(sub)
	if err == nil {
		err = sqlstore.Migrate(ctx, db, Dialect, ms, `SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.airlock_migrate'))`)
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return sqlstore.New(db, db, Dialect, map[string]*sql.DB{"postgres": db}), nil
}
