package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/store"
)

// Class is what an error from the database means for the statement or
// transaction that got it. The driver's Dialect.Classify decides.
type Class int

const (
	// Other errors are the caller's: constraint violations, bad SQL,
	// context cancellation.
	Other Class = iota
	// Retry: the work was certainly not applied and may run again as it
	// is — a serialization failure, a deadlock, a connection that was
	// dead or closed by the server before the statement ran.
	Retry
	// ConnLost: the connection broke while a statement was in flight. A
	// transaction that was not committing was rolled back with it and
	// may run again; a COMMIT (or a statement outside a transaction) may
	// or may not have taken effect.
	ConnLost
	// Unavailable: the database refuses the work for now — read-only,
	// out of connections or memory.
	Unavailable
	// Full: the database's storage is full.
	Full
)

// Update retries: attempts and the backoff between them (doubling from
// retryBase, full jitter, at most retryCap). Twelve attempts wait about
// two seconds in all: long enough for a failover's reconnect or a burst
// of deadlocks, short enough that a caller gets a 503 it can act on.
const (
	maxUpdateAttempts = 12
	maxReadAttempts   = 4
	retryBase         = 2 * time.Millisecond
	retryCap          = 400 * time.Millisecond
)

// commitError marks a failure of COMMIT itself: the one point where the
// outcome may be unknown. PostgreSQL can even answer a COMMIT that
// went through with an error (a backend terminated right after writing
// the commit record reports FATAL 57P01), so no class of error at COMMIT
// proves a rollback by itself.
type commitError struct {
	err error
	// event is the ID of the transaction's first audit event, if any: it
	// is stored exactly when the transaction committed.
	event string
	// changed: the transaction wrote something.
	changed bool
}

func (e *commitError) Error() string { return "commit: " + e.err.Error() }
func (e *commitError) Unwrap() error { return e.err }

func (d *Dialect) classify(err error) Class {
	if errors.Is(err, errGroupAborted) {
		return Retry
	}
	if err == nil || d.Classify == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return Other
	}
	return d.Classify(err)
}

// backoff sleeps before attempt n+1, or returns the context's error.
func backoff(ctx context.Context, n int) error {
	d := min(retryBase<<min(n-1, 16), retryCap)
	d = d/2 + rand.N(d/2+1) // jitter: replicas that collided do not collide again in step
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Update implements store.Store. It runs fn in a write transaction and
// runs it again — from the start, on a fresh transaction — when the
// database says the attempt was rolled back and may be retried
// (serialization failure, deadlock, connection lost before COMMIT), with
// a bounded, jittered backoff. fn must therefore only read and write
// through tx and set what it returns afresh on each call. A connection
// lost during COMMIT is settled by looking for the transaction's first
// audit event (committed); when that cannot tell, the caller is told the
// change may or may not have been made.
func (db *DB) Update(ctx context.Context, fn func(tx store.Tx) error) error {
	return db.retry(ctx, func() error { return db.write(ctx, false, fn) })
}

// retry runs one write transaction, attempt, until it commits, fails
// for a reason of its own, or may not be run again (see Update).
func (db *DB) retry(ctx context.Context, attempt func() error) (final error) {
	defer func() { db.noteWrite(final) }()
	for n := 1; ; n++ {
		err := attempt()
		if err == nil {
			return nil
		}
		class := db.dialect.classify(err)
		db.dialect.note(class)
		var ce *commitError
		if errors.As(err, &ce) && (class == Retry || class == ConnLost) {
			switch db.committed(ctx, ce, class) {
			case outcomeCommitted:
				return nil
			case outcomeUnknown:
				db.errs.add(ErrCommitUnknown)
				return &airlock.Error{Kind: airlock.Unavailable, Err: err,
					Message: "the database connection was lost while the change was being committed, so it may or may not have been made: " +
						"look before trying again (a run request sent again with the same Idempotency-Key is safe)"}
			}
		}
		switch {
		case class == Other:
			return err
		case class == Unavailable || class == Full:
			return db.dialect.unavailable(err)
		case n >= maxUpdateAttempts:
			return db.dialect.unavailable(fmt.Errorf("after %d attempts: %w", n, err))
		}
		db.retries.Add(1)
		if berr := backoff(ctx, n); berr != nil {
			return err
		}
	}
}

type outcome int

const (
	outcomeRolledBack outcome = iota
	outcomeCommitted
	outcomeUnknown
)

// committed finds out what became of a transaction whose COMMIT failed.
// One that wrote nothing may simply run again. One that appended an
// audit event committed exactly when that event is stored; when the
// server ended the session (Retry: a terminated backend, or a refused
// commit) its transaction is settled either way, so a missing event
// means it rolled back. A connection that broke (ConnLost) may belong to
// a backend still finishing the commit: a missing event proves nothing
// yet. Without an event to look for, a change's outcome is unknown.
func (db *DB) committed(ctx context.Context, ce *commitError, class Class) outcome {
	switch {
	case !ce.changed:
		return outcomeRolledBack
	case ce.event == "":
		return outcomeUnknown
	}
	var n int
	if err := db.row(ctx, `SELECT COUNT(*) FROM audit_events WHERE id = ?`, ce.event).Scan(&n); err != nil {
		return outcomeUnknown
	}
	switch {
	case n > 0:
		return outcomeCommitted
	case class == Retry:
		return outcomeRolledBack
	}
	return outcomeUnknown
}

// read runs a read outside a transaction, trying again on another
// connection when the one it got had been closed by the server (a
// restart, a failover, a terminated backend): reads are safe to repeat.
// Inside a transaction it runs once; Update retries the whole of it.
func (q queries) read(ctx context.Context, f func() error) error {
	if q.inTx() {
		return f()
	}
	for attempt := 1; ; attempt++ {
		err := f()
		class := q.d.classify(err)
		q.d.note(class)
		switch {
		case err == nil || class == Other:
			return err
		case class == Unavailable || class == Full || attempt >= maxReadAttempts:
			return q.d.unavailable(err)
		}
		if backoff(ctx, attempt) != nil {
			return err
		}
	}
}

// unavailable is the error a caller gets when the database would not do
// the work: 503, saying "storage full" when that is why.
func (d *Dialect) unavailable(err error) error {
	if d.classify(err) == Full {
		return &airlock.Error{Kind: airlock.Unavailable, Message: "storage full: the database cannot store more until space is freed", Err: err}
	}
	return &airlock.Error{Kind: airlock.Unavailable, Message: "the database is unavailable; try again shortly", Err: err}
}

// Retries counts the write transactions Update has run again.
func (db *DB) Retries() int64 { return db.retries.Load() }
