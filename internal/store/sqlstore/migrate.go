package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Migration is one numbered schema step.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// LoadMigrations reads NNN_name.sql files from fsys, in order. Numbers
// must start at 1 and have no gaps.
func LoadMigrations(fsys fs.FS) ([]Migration, error) {
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return nil, err
	}
	var ms []Migration
	for _, n := range names {
		num, rest, ok := strings.Cut(n, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration %s: name must be NNN_name.sql", n)
		}
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		ms = append(ms, Migration{Version: v, Name: strings.TrimSuffix(rest, ".sql"), SQL: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i, m := range ms {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migration %d_%s: expected number %d", m.Version, m.Name, i+1)
		}
	}
	return ms, nil
}

// Migrate applies the pending migrations in one transaction. lock, when
// set, runs first inside that transaction so that replicas starting at
// once migrate one after the other. It refuses a database whose schema is
// newer than the newest migration it knows: an older binary must not run
// against a schema it does not understand.
func Migrate(ctx context.Context, db *sql.DB, d Dialect, ms []Migration, lock string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	q := queries{q: tx, d: &d}
	if lock != "" {
		if _, err := q.exec(ctx, lock); err != nil {
			return fmt.Errorf("migrate: lock: %w", err)
		}
	}
	if _, err := q.exec(ctx, `CREATE TABLE IF NOT EXISTS airlock_schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var current sql.NullInt64
	if err := q.row(ctx, `SELECT MAX(version) FROM airlock_schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("migrate: read version: %w", err)
	}
	latest := len(ms)
	if int(current.Int64) > latest {
		return fmt.Errorf("database schema version %d is newer than this Airlock supports (%d): upgrade Airlock, do not downgrade it", current.Int64, latest)
	}
	for _, m := range ms[current.Int64:] {
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			return fmt.Errorf("migration %03d_%s: %w", m.Version, m.Name, err)
		}
		if _, err := q.exec(ctx, `INSERT INTO airlock_schema_migrations (version, name, applied_at) VALUES (?,?,?)`,
			m.Version, m.Name, time.Now().UnixMicro()); err != nil {
			return fmt.Errorf("migration %03d_%s: record: %w", m.Version, m.Name, err)
		}
	}
	return tx.Commit()
}
