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
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	// SerializeWrites, when set, is the first statement of every write
	// transaction: it takes one lock that every writer takes before it
	// reads anything, so write transactions run one after another, as
	// SQLite's single writer makes them. Every change appends an audit
	// event and so serialises on the audit head at append time anyway;
	// taking that lock first makes each transaction's reads current, so
	// a decision made on them cannot be lost to a concurrent one.
	SerializeWrites string
	// ShareLock, appended to a SELECT of one row, keeps the row from
	// changing until the transaction ends (" FOR SHARE" on PostgreSQL;
	// empty where the single writer already does).
	ShareLock string
	// Classify tells retries what an error means; nil classifies every
	// error as Other.
	Classify func(error) Class
	// GroupCommit commits write transactions that queue for the writer
	// together (group.go): for a single writer connection.
	GroupCommit bool

	errs *errorCounts // the DB's, set by New
}

// DB implements store.Store.
type DB struct {
	writer  *sql.DB
	reader  *sql.DB
	dialect Dialect
	pools   map[string]*sql.DB
	writes  *stmtCache
	retries atomic.Int64
	errs    errorCounts
	// writeFailed holds the error of the last write that failed because
	// the database would not take it (unavailable, connection lost after
	// retries), until a write succeeds again. Ping reports it.
	writeFailed atomic.Pointer[error]
	// outbox holds the audit event types that notify (SetOutboxTypes).
	outbox atomic.Pointer[map[string]bool]
	// appended is told of each write of audit events (OnAuditWrite).
	appended atomic.Pointer[func(events int, d time.Duration)]
	queries  // reads go to the reader pool
	// scan reads whole-log scans (AuditLeaves), from a pool of its own
	// when SetScanner gave one.
	scan queries
	// group queues write transactions for the group committer, when
	// the dialect asks for group commit; closing groupQuit stops it,
	// and groupDone closes once it has.
	group     chan *groupReq
	groupQuit chan struct{}
	groupDone chan struct{}
	// background stops work a driver runs on the database (OnClose):
	// run once, first thing in Close.
	background []func()
	closing    sync.Once
}

// OnClose has Close call stop before it closes anything: a driver's
// background work on the database ends while its pools are still open.
func (db *DB) OnClose(stop func()) { db.background = append(db.background, stop) }

// SetScanner sends whole-log scans (audit verify, export) to a pool of
// their own, set up for long sequential reads.
func (db *DB) SetScanner(p *sql.DB) {
	db.scan = queries{q: p, d: &db.dialect, cache: newStmtCache(p)}
}

// AuditLeaves implements store.Store, on the scan pool.
func (db *DB) AuditLeaves(ctx context.Context, lo, hi int64, fn func(*store.LeafRow) error) error {
	return db.scan.AuditLeaves(ctx, lo, hi, fn)
}

// Statements lists the statements this store prepared so far (reads,
// and writes run often enough to be prepared), as the driver runs them:
// for tests that check their query plans.
func (db *DB) Statements() []string {
	var out []string
	for _, c := range db.caches() {
		c.mu.Lock()
		for q := range c.stmts {
			out = append(out, q)
		}
		c.mu.Unlock()
	}
	return out
}

// caches are the statement caches of the store's pools, each once.
func (db *DB) caches() []*stmtCache {
	var out []*stmtCache
	for _, c := range []*stmtCache{db.writes, db.queries.cache, db.scan.cache} {
		if c != nil && !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

// New returns a store over the given pools. writer and reader may be the
// same pool. pools names them for metrics.
func New(writer, reader *sql.DB, d Dialect, pools map[string]*sql.DB) *DB {
	db := &DB{writer: writer, reader: reader, dialect: d, pools: pools}
	db.dialect.errs = &db.errs
	db.writes = newStmtCache(writer)
	db.queries = queries{q: reader, d: &db.dialect, cache: newStmtCache(reader)}
	if reader == writer {
		db.queries.cache = db.writes
	}
	db.scan = db.queries
	if d.GroupCommit {
		db.group, db.groupQuit, db.groupDone = make(chan *groupReq, maxGroup), make(chan struct{}), make(chan struct{})
		go db.groupCommitter(db.group, db.groupQuit)
	}
	return db
}

type queryer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// queries runs statements against a pool or a transaction, through
// prepared statements cached per pool: SQLite would otherwise parse every
// statement on every call.
type queries struct {
	q     queryer
	d     *Dialect
	cache *stmtCache // of the pool q is, or (in a transaction) runs on
	// missed collects, in a transaction, statements to prepare once the
	// transaction is over.
	missed *[]string
}

// stmtCache holds one prepared statement per SQL text for one pool.
type stmtCache struct {
	db    *sql.DB
	mu    sync.Mutex
	stmts map[string]*sql.Stmt
}

func newStmtCache(db *sql.DB) *stmtCache { return &stmtCache{db: db, stmts: map[string]*sql.Stmt{}} }

func (c *stmtCache) get(ctx context.Context, query string) (*sql.Stmt, error) {
	if st := c.lookup(query); st != nil {
		return st, nil
	}
	// Prepare without holding the lock: preparing may wait for a
	// connection that a transaction holds, and that transaction may be
	// looking up statements.
	st, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	// Never call into database/sql while holding c.mu: closing a
	// statement takes its connection's lock, which a transaction may hold
	// while it waits for c.mu in lookup (a deadlock seen on PostgreSQL,
	// where transactions and reads share one pool).
	c.mu.Lock()
	have, ok := c.stmts[query]
	if !ok {
		c.stmts[query] = st
	}
	c.mu.Unlock()
	if ok {
		st.Close()
		return have, nil
	}
	return st, nil
}

// lookup returns the cached statement for query, or nil.
func (c *stmtCache) lookup(query string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stmts[query]
}

// stmt returns the prepared statement for query, or nil to run it
// unprepared. Inside a transaction it never prepares: SQLite's single
// writer connection is held by the transaction, and preparing on the pool
// would wait for it forever. Reads, the most frequent statements, go
// through the reader pool and are prepared once.
func (q queries) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if q.cache == nil {
		return nil, nil
	}
	if tx, ok := q.q.(*sql.Tx); ok {
		if st := q.cache.lookup(query); st != nil {
			return tx.StmtContext(ctx, st), nil
		}
		if q.missed != nil {
			*q.missed = append(*q.missed, query)
		}
		return nil, nil
	}
	return q.cache.get(ctx, query)
}

// inChunks calls fn for successive runs [lo, hi) of n items, each a
// power of two long and at most limit: a statement built per run length
// (an IN list, a multi-row INSERT) is prepared once per length, and the
// lengths stay few.
func inChunks(n, limit int, fn func(lo, hi int) error) error {
	for lo := 0; lo < n; {
		c := 1
		for c*2 <= min(n-lo, limit) {
			c *= 2
		}
		if err := fn(lo, lo+c); err != nil {
			return err
		}
		lo += c
	}
	return nil
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

// inTx reports whether q runs inside a transaction.
func (q queries) inTx() bool {
	_, ok := q.q.(*sql.Tx)
	return ok
}

func (q queries) exec(ctx context.Context, s string, args ...any) (sql.Result, error) {
	res, err := q.execOnce(ctx, s, args...)
	// Outside a transaction a statement is its own commit: run it again
	// only when it certainly did not run.
	for attempt := 1; err != nil && !q.inTx(); attempt++ {
		class := q.d.classify(err)
		q.d.note(class) // in a transaction, Update counts it
		if class != Retry || attempt >= maxReadAttempts || backoff(ctx, attempt) != nil {
			break
		}
		res, err = q.execOnce(ctx, s, args...)
	}
	if err != nil {
		return nil, q.conflict(err)
	}
	return res, nil
}

// conflict is err, as a Conflict when it is a unique-constraint
// violation.
func (q queries) conflict(err error) error {
	if err != nil && q.d.IsUnique != nil && q.d.IsUnique(err) {
		q.d.errs.add(ErrConflict)
		return &airlock.Error{Kind: airlock.Conflict, Message: "already exists", Err: err}
	}
	return err
}

func (q queries) execOnce(ctx context.Context, s string, args ...any) (sql.Result, error) {
	st, err := q.stmt(ctx, q.rebind(s))
	switch {
	case err != nil:
		return nil, err
	case st != nil:
		return st.ExecContext(ctx, args...)
	default:
		return q.q.ExecContext(ctx, q.rebind(s), args...)
	}
}

func (q queries) query(ctx context.Context, s string, args ...any) (rows *sql.Rows, err error) {
	err = q.read(ctx, func() error {
		rows, err = q.queryOnce(ctx, s, args...)
		return err
	})
	return rows, err
}

func (q queries) queryOnce(ctx context.Context, s string, args ...any) (*sql.Rows, error) {
	st, err := q.stmt(ctx, q.rebind(s))
	switch {
	case err != nil:
		return nil, err
	case st != nil:
		return st.QueryContext(ctx, args...)
	default:
		return q.q.QueryContext(ctx, q.rebind(s), args...)
	}
}

// row is one row to read. The query runs when Scan is called, so that a
// read outside a transaction can be tried again on another connection.
type row struct {
	q    queries
	ctx  context.Context
	s    string
	args []any
}

func (q queries) row(ctx context.Context, s string, args ...any) row {
	return row{q: q, ctx: ctx, s: s, args: args}
}

func (r row) Scan(dest ...any) error {
	q := r.q
	return q.read(r.ctx, func() error {
		st, err := q.stmt(r.ctx, q.rebind(r.s))
		if err != nil || st == nil {
			// A failed prepare reports itself through the plain call.
			return q.q.QueryRowContext(r.ctx, q.rebind(r.s), r.args...).Scan(dest...)
		}
		return st.QueryRowContext(r.ctx, r.args...).Scan(dest...)
	})
}

// write is one attempt of a write transaction running fn (Update's, or
// an unaudited one): committed with others (group commit) or on its
// own. unaudited: fn's writes need no audit event (run output, whose
// digest the run's final event certifies); its COMMIT failing still
// leaves open whether they were stored.
func (db *DB) write(ctx context.Context, unaudited bool, fn func(tx store.Tx) error) (err error) {
	if db.group != nil {
		return db.submit(ctx, unaudited, fn)
	}
	sqlTx, err := db.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	var missed []string
	tx := db.newTx(sqlTx, &missed, unaudited)
	defer func() {
		if err != nil {
			_ = sqlTx.Rollback()
		}
		// Now that the writer connection is free, prepare what the
		// transaction ran unprepared, for next time.
		for _, q := range missed {
			_, _ = db.writes.get(ctx, q)
		}
	}()
	// An unaudited write appends no event, so it need not queue behind
	// the audit head: what it decides on (a run's lease) it locks itself.
	if db.dialect.SerializeWrites != "" && !unaudited {
		if _, err = tx.exec(ctx, db.dialect.SerializeWrites); err != nil {
			return fmt.Errorf("serialize writes: %w", err)
		}
	}
	if err = fn(tx); err != nil {
		return err
	}
	if err = tx.finish(ctx); err != nil {
		return err
	}
	if err = sqlTx.Commit(); err != nil {
		return tx.commitFailed(err)
	}
	return nil
}

// OnAuditWrite has fn told, after each write of a transaction's audit
// events, how many it wrote and how long the writing took (its
// statements and the tree's hashes, under the log's lock): for metrics.
func (db *DB) OnAuditWrite(fn func(events int, d time.Duration)) { db.appended.Store(&fn) }

// newTx is fn's view of a write transaction on the writer connection.
func (db *DB) newTx(sqlTx *sql.Tx, missed *[]string, unaudited bool) *Tx {
	return &Tx{queries: queries{q: sqlTx, d: &db.dialect, cache: db.writes, missed: missed}, outbox: db.outbox.Load(),
		appended: db.appended.Load(), unaudited: unaudited}
}

// finish ends fn's work in the transaction: it writes the audit events
// appended, and refuses a transaction that changed state without one,
// unless it is an unaudited write.
func (tx *Tx) finish(ctx context.Context) error {
	if err := tx.flushAudit(ctx); err != nil {
		return err
	}
	if !tx.unaudited && tx.changes > 0 && tx.events == 0 {
		return errors.New("store: refusing to commit a state change without an audit event")
	}
	return nil
}

// commitFailed is the error of a COMMIT that failed: whether the
// transaction's work was stored is settled by its first event (retry.go).
func (tx *Tx) commitFailed(err error) error {
	return &commitError{err: err, event: tx.firstEvent, changed: tx.unaudited || tx.changes > 0 || tx.events > 0}
}

// Ping implements store.Store: every pool answers, and, when the last
// write failed because the database would not take it, a probe write
// succeeds — so readiness recovers by itself once the disk has room or
// the primary is back.
func (db *DB) Ping(ctx context.Context) error {
	for name, p := range db.pools {
		if err := p.PingContext(ctx); err != nil {
			return &airlock.Error{Kind: airlock.Unavailable, Message: "the database is unreachable", Err: fmt.Errorf("ping %s: %w", name, err)}
		}
	}
	if failed := db.writeFailed.Load(); failed != nil {
		w := queries{q: db.writer, d: &db.dialect, cache: db.writes}
		if _, err := w.exec(ctx, `INSERT INTO airlock_write_probe (id, at) VALUES (1, ?)
			ON CONFLICT (id) DO UPDATE SET at = excluded.at`, time.Now().UnixMicro()); err != nil {
			msg := "the database does not take writes"
			if db.dialect.classify(err) == Full {
				msg += ": storage full"
			}
			return &airlock.Error{Kind: airlock.Unavailable, Message: msg, Err: err}
		}
		db.writeFailed.CompareAndSwap(failed, nil)
	}
	return nil
}

// noteWrite records the outcome of a write for Ping: a write the
// database would not take (after the retries) marks it as not taking
// writes; any write that succeeds clears that.
func (db *DB) noteWrite(err error) {
	switch {
	case err == nil:
		if db.writeFailed.Load() != nil {
			db.writeFailed.Store(nil)
		}
	case airlock.ErrorKind(err) == airlock.Unavailable:
		db.writeFailed.Store(&err)
	}
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
	db.closing.Do(func() {
		for _, stop := range db.background {
			stop()
		}
	})
	if db.group != nil {
		select {
		case <-db.groupQuit:
		default:
			close(db.groupQuit)
		}
		<-db.groupDone
	}
	var errs []error
	for _, c := range db.caches() {
		c.mu.Lock()
		stmts := c.stmts
		c.stmts = map[string]*sql.Stmt{}
		c.mu.Unlock()
		for _, st := range stmts {
			errs = append(errs, st.Close())
		}
	}
	for _, p := range db.pools {
		errs = append(errs, p.Close())
	}
	return errors.Join(errs...)
}

// SessionTouch implements store.Store.
func (db *DB) SessionTouch(ctx context.Context, id string, at time.Time) error {
	w := queries{q: db.writer, d: &db.dialect, cache: db.writes}
	_, err := w.exec(ctx, `UPDATE sessions SET last_seen_at = ? WHERE id = ?`, micros(at), id)
	return err
}

// TokenTouch implements store.Store.
func (db *DB) TokenTouch(ctx context.Context, id string, at time.Time) error {
	w := queries{q: db.writer, d: &db.dialect, cache: db.writes}
	_, err := w.exec(ctx, `UPDATE api_tokens SET last_used_at = ? WHERE id = ?`, micros(at), id)
	return err
}

// Tx implements store.Tx.
type Tx struct {
	queries
	// outbox: the audit event types that put a row in the notification
	// outbox (nil: none).
	outbox *map[string]bool
	// appended: the DB's OnAuditWrite (nil: none).
	appended *func(events int, d time.Duration)
	// auditErr is the error of a write of pending that failed: the
	// transaction cannot commit (flushAudit).
	auditErr error
	changes  int
	events   int
	// pending are the audit events appended and not yet written
	// (flushAudit).
	pending []*store.AuditEvent
	// firstEvent is the ID of the first audit event appended: stored if
	// and only if the transaction committed.
	firstEvent string
	// unaudited: its writes need no audit event (see DB.write).
	unaudited bool
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
