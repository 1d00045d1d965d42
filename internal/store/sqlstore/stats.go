package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"sync/atomic"

	"github.com/airlockhq/airlock/internal/store"
)

// Stats implements store.Store. Each count is one read on an index
// (runs_status, notify_deliveries_due, notify_outbox_open, the
// checkpoints' primary key); they are not one snapshot, which metrics
// do not need.
func (db *DB) Stats(ctx context.Context) (*store.Stats, error) {
	var st store.Stats
	runs := map[string]*int64{store.RunQueued: &st.RunsQueued, store.RunPending: &st.RunsPending, store.RunRunning: &st.RunsRunning}
	if err := db.countBy(ctx, runs, `SELECT status, COUNT(*) FROM runs WHERE status IN (?, ?, ?) GROUP BY status`,
		store.RunQueued, store.RunPending, store.RunRunning); err != nil {
		return nil, err
	}
	deliveries := map[string]*int64{store.DeliveryPending: &st.DeliveriesPending, store.DeliveryDead: &st.DeliveriesDead}
	if err := db.countBy(ctx, deliveries, `SELECT status, COUNT(*) FROM notify_deliveries WHERE status IN (?, ?) GROUP BY status`,
		store.DeliveryPending, store.DeliveryDead); err != nil {
		return nil, err
	}
	if err := db.row(ctx, `SELECT COUNT(*) FROM notify_outbox WHERE expanded_at IS NULL`).Scan(&st.OutboxOpen); err != nil {
		return nil, err
	}
	var err error
	if st.AuditSize, err = db.AuditSize(ctx); err != nil {
		return nil, err
	}
	var at sql.NullInt64
	err = db.row(ctx, `SELECT size, created_at FROM audit_checkpoints ORDER BY size DESC LIMIT 1`).Scan(&st.CheckpointSize, &at)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return nil, err
	default:
		st.CheckpointAt = fromMicros(at)
	}
	return &st, nil
}

// countBy runs a "SELECT key, COUNT(*) … GROUP BY key" and stores each
// count where into says.
func (db *DB) countBy(ctx context.Context, into map[string]*int64, s string, args ...any) error {
	return db.read(ctx, func() error {
		for _, p := range into {
			*p = 0 // read may run this again
		}
		rows, err := db.queryOnce(ctx, s, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var k string
			var n int64
			if err := rows.Scan(&k, &n); err != nil {
				return err
			}
			if p := into[k]; p != nil {
				*p = n
			}
		}
		return rows.Err()
	})
}

// The kinds of database error ErrorCounts counts.
const (
	// ErrRetry: a serialization failure, a deadlock, or a connection dead
	// before the statement ran — the work was certainly not applied, and
	// was run again (or given up after the bounded retries).
	ErrRetry = "retry"
	// ErrConnLost: the connection broke with a statement in flight.
	ErrConnLost = "conn_lost"
	// ErrUnavailable: the database refused the work (read-only, out of
	// connections or memory).
	ErrUnavailable = "unavailable"
	// ErrFull: the database's storage is full.
	ErrFull = "full"
	// ErrCommitUnknown: a COMMIT failed and whether it took effect could
	// not be told; the caller was told so.
	ErrCommitUnknown = "commit_unknown"
	// ErrConflict: a unique constraint refused a write (often a caller's
	// duplicate, such as an Idempotency-Key sent twice).
	ErrConflict = "conflict"
)

// ErrorKinds lists the kinds ErrorCounts reports, in a fixed order.
var ErrorKinds = []string{ErrRetry, ErrConnLost, ErrUnavailable, ErrFull, ErrCommitUnknown, ErrConflict}

// errorCounts counts database errors by kind since the store opened.
type errorCounts struct {
	byKind [6]atomic.Int64 // in ErrorKinds order
}

func (c *errorCounts) add(kind string) {
	if c == nil {
		return // a Dialect outside a DB (migrations)
	}
	for i, k := range ErrorKinds {
		if k == kind {
			c.byKind[i].Add(1)
			return
		}
	}
}

// note counts an error of the given class, if it is a database error
// worth counting (Other is the caller's).
func (d *Dialect) note(class Class) {
	switch class {
	case Retry:
		d.errs.add(ErrRetry)
	case ConnLost:
		d.errs.add(ErrConnLost)
	case Unavailable:
		d.errs.add(ErrUnavailable)
	case Full:
		d.errs.add(ErrFull)
	}
}

// ErrorCounts reports how many errors of each kind (ErrorKinds) the
// database gave this process since the store opened: every occurrence,
// including those a retry then overcame.
func (db *DB) ErrorCounts() map[string]int64 {
	out := make(map[string]int64, len(ErrorKinds))
	for i, k := range ErrorKinds {
		out[k] = db.errs.byKind[i].Load()
	}
	return out
}
