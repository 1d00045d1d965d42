// Package sqlstore implements store.Store over database/sql. The drivers
// (store/sqlite, store/postgres) own connections, pragmas, locking and
// migrations, and hand this package their pools and a Dialect: the SQL
// itself is written once, so both drivers run the same statements.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/store"
)

// Dialect is what differs between the SQL engines.
type Dialect struct {
	// Placeholders: false writes "?" (SQLite), true rewrites them to $1..
	// (PostgreSQL).
	Numbered bool
	// IsUnique reports whether err is a unique-constraint violation.
	IsUnique func(error) bool
}

// DB implements store.Store.
type DB struct {
	writer  *sql.DB
	reader  *sql.DB
	dialect Dialect
	pools   map[string]*sql.DB
	queries // reads go to the reader pool
}

// New returns a store over the given pools. writer and reader may be the
// same pool. pools names them for metrics.
func New(writer, reader *sql.DB, d Dialect, pools map[string]*sql.DB) *DB {
	db := &DB{writer: writer, reader: reader, dialect: d, pools: pools}
	db.queries = queries{q: reader, d: &db.dialect}
	return db
}

type queryer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// queries runs statements against a pool or a transaction.
type queries struct {
	q queryer
	d *Dialect
}

func (q queries) rebind(s string) string {
	if !q.d.Numbered {
		return s
	}
	var b strings.Builder
	n := 0
	for _, r := range s {
		if r == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (q queries) exec(ctx context.Context, s string, args ...any) (sql.Result, error) {
	res, err := q.q.ExecContext(ctx, q.rebind(s), args...)
	if err != nil && q.d.IsUnique != nil && q.d.IsUnique(err) {
		return nil, &airlock.Error{Kind: airlock.Conflict, Message: "already exists", Err: err}
	}
	return res, err
}

func (q queries) query(ctx context.Context, s string, args ...any) (*sql.Rows, error) {
	return q.q.QueryContext(ctx, q.rebind(s), args...)
}

func (q queries) row(ctx context.Context, s string, args ...any) *sql.Row {
	return q.q.QueryRowContext(ctx, q.rebind(s), args...)
}

// Update implements store.Store.
func (db *DB) Update(ctx context.Context, fn func(tx store.Tx) error) (err error) {
	sqlTx, err := db.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	tx := &Tx{queries: queries{q: sqlTx, d: &db.dialect}}
	defer func() {
		if err != nil {
			_ = sqlTx.Rollback()
		}
	}()
	if err = fn(tx); err != nil {
		return err
	}
	if tx.changes > 0 && tx.events == 0 {
		return errors.New("store: refusing to commit a state change without an audit event")
	}
	if err = sqlTx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Ping implements store.Store.
func (db *DB) Ping(ctx context.Context) error {
	for name, p := range db.pools {
		if err := p.PingContext(ctx); err != nil {
			return fmt.Errorf("ping %s: %w", name, err)
		}
	}
	return nil
}

// SchemaVersion implements store.Store.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v sql.NullInt64
	err := db.row(ctx, `SELECT MAX(version) FROM airlock_schema_migrations`).Scan(&v)
	return int(v.Int64), err
}

// DBs implements store.Store.
func (db *DB) DBs() map[string]*sql.DB { return db.pools }

// Close implements store.Store.
func (db *DB) Close() error {
	var errs []error
	for _, p := range db.pools {
		errs = append(errs, p.Close())
	}
	return errors.Join(errs...)
}

// SessionTouch implements store.Store.
func (db *DB) SessionTouch(ctx context.Context, id string, at time.Time) error {
	w := queries{q: db.writer, d: &db.dialect}
	_, err := w.exec(ctx, `UPDATE sessions SET last_seen_at = ? WHERE id = ?`, micros(at), id)
	return err
}

// TokenTouch implements store.Store.
func (db *DB) TokenTouch(ctx context.Context, id string, at time.Time) error {
	w := queries{q: db.writer, d: &db.dialect}
	_, err := w.exec(ctx, `UPDATE api_tokens SET last_used_at = ? WHERE id = ?`, micros(at), id)
	return err
}

// Tx implements store.Tx.
type Tx struct {
	queries
	changes int
	events  int
}

// change runs a state-changing statement and counts it when it changed
// a row.
func (tx *Tx) change(ctx context.Context, s string, args ...any) (sql.Result, error) {
	res, err := tx.exec(ctx, s, args...)
	if err == nil {
		if n, nerr := res.RowsAffected(); nerr != nil || n > 0 {
			tx.changes++
		}
	}
	return res, err
}

func micros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

func fromMicros(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMicro(v.Int64).UTC()
}

func notFound(what string, err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return &airlock.Error{Kind: airlock.NotFound, Message: what + " not found"}
	}
	return err
}

func expectOne(res sql.Result, what string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return &airlock.Error{Kind: airlock.NotFound, Message: what + " not found"}
	}
	return nil
}

var (
	_ store.Store = (*DB)(nil)
	_ store.Tx    = (*Tx)(nil)
)
