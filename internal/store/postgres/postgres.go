// Package postgres is the clustered storage driver: PostgreSQL through
// pgx v5. Several Airlock replicas may share one database; migrations take
// an advisory lock, and write transactions serialize on the audit_head
// row, which each takes first (see Dialect.SerializeWrites). Replicas
// tell each other what changed through LISTEN/NOTIFY (notify.go).
package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"strings"
	"syscall"

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
	// Every change appends to the audit log, whose head is one row: the
	// lock every writer needs anyway, taken first instead of last.
	SerializeWrites: `SELECT size FROM audit_head WHERE id = 1 FOR UPDATE`,
	ShareLock:       " FOR SHARE",
	Classify:        classify,
}

// classify sorts PostgreSQL's errors for sqlstore's retries.
func classify(err error) sqlstore.Class {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "40001", pe.Code == "40P01": // serialization_failure, deadlock_detected
			return sqlstore.Retry
		case pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03", pe.Code == "57P05":
			// admin_shutdown, crash_shutdown, cannot_connect_now,
			// idle_session_timeout: the server ended the session. An
			// open transaction rolled back with it; a COMMIT answered so
			// may have gone through, which sqlstore settles by looking.
			return sqlstore.Retry
		case pe.Code == "08001", pe.Code == "08004": // could not connect, connection refused by the server
			return sqlstore.Retry
		case pe.Code == "08000", pe.Code == "08003", pe.Code == "08006": // connection_exception, _does_not_exist, connection_failure
			return sqlstore.ConnLost
		case pe.Code == "53100": // disk_full
			return sqlstore.Full
		case strings.HasPrefix(pe.Code, "53"), pe.Code == "25006": // insufficient_resources, read_only_sql_transaction
			return sqlstore.Unavailable
		}
		return sqlstore.Other
	}
	var ce *pgconn.ConnectError
	switch {
	case errors.As(err, &ce), errors.Is(err, driver.ErrBadConn), pgconn.SafeToRetry(err):
		return sqlstore.Retry // nothing was sent
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EPIPE):
		return sqlstore.ConnLost
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return sqlstore.ConnLost
	}
	return sqlstore.Other
}

// Options tune Open.
type Options struct {
	// Schema, when set, is created if missing and put first on the
	// search_path; tests use it to isolate each database.
	Schema   string
	MaxConns int
	// ReadOnly opens the database for reading only: no migrations, and
	// every transaction read-only (for inspection such as audit verify).
	ReadOnly bool
	// Log receives what the notifier's background work cannot report to
	// a caller (a lost listening connection); nil discards it.
	Log *slog.Logger
}

// DB is the PostgreSQL store: sqlstore's SQL, and a store.Notifier.
type DB struct {
	*sqlstore.DB
	notifier *notifier
}

// Close stops the notifier, sending what it still holds, and closes the
// database.
func (db *DB) Close() error {
	db.notifier.stop()
	return db.DB.Close()
}

// Open connects to the database at url and applies pending migrations.
func Open(ctx context.Context, url string, opts Options) (*DB, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: database url: %w", err)
	}
	if opts.Schema != "" {
		cfg.RuntimeParams["search_path"] = opts.Schema
	}
	if opts.ReadOnly {
		cfg.RuntimeParams["default_transaction_read_only"] = "on"
	}
	db := stdlib.OpenDB(*cfg)
	if opts.MaxConns <= 0 {
		opts.MaxConns = 16
	}
	db.SetMaxOpenConns(opts.MaxConns)
	db.SetMaxIdleConns(opts.MaxConns)
	if opts.ReadOnly {
		if err := db.PingContext(ctx); err != nil {
			db.Close()
			return nil, fmt.Errorf("postgres: %w", err)
		}
		return open(ctx, db, cfg, opts)
	}
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
	return open(ctx, db, cfg, opts)
}

func open(ctx context.Context, db *sql.DB, cfg *pgx.ConnConfig, opts Options) (*DB, error) {
	n, err := newNotifier(ctx, db, cfg, opts)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return &DB{DB: sqlstore.New(db, db, Dialect, map[string]*sql.DB{"postgres": db}), notifier: n}, nil
}
