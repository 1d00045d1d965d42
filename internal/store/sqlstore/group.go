package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/airlockhq/airlock/internal/store"
)

// Group commit (Dialect.GroupCommit, SQLite): write transactions that
// queue for the single writer while one commits are run together in the
// next database transaction, each inside a savepoint of its own, and
// committed once. Pages they share (the audit head, index pages) are
// then written to the log once per group, not once per transaction.
//
// Each caller still sees its own transaction: an error from its fn
// rolls back to its savepoint and is its answer alone; nobody is
// answered before the COMMIT; a failed COMMIT is each member's commit
// error (settled as Update settles any). When the database aborts the
// whole transaction under a member (SQLite may on a full disk or an I/O
// error, or when a member's context ends during one of its writes, which
// interrupts it), that member gets its error and every other member
// errGroupAborted, which Update retries: their work was not applied. A
// member that panics aborts the group likewise, and its caller panics
// with the same value, as it would without group commit. The group's
// own statements (savepoints) run without any caller's cancellation; a
// caller whose context ends while queued is not run; a store that
// closes answers what is still queued.

// maxGroup bounds the transactions committed together.
const maxGroup = 64

// errGroupAborted: another member's failure aborted the group's
// transaction; this member's work was not applied and may run again.
var errGroupAborted = errors.New("store: the transaction was rolled back with the others committed with it; run again")

type groupReq struct {
	ctx       context.Context
	unaudited bool
	fn        func(store.Tx) error
	state     atomic.Int32 // queued, taken or abandoned
	done      chan error
}

const (
	reqQueued int32 = iota
	reqTaken
	reqAbandoned
)

// errClosed answers a write queued when the store closes.
var errClosed = errors.New("store: closed")

// groupCommitter runs the queued write transactions until quit closes;
// then it answers those still queued.
func (db *DB) groupCommitter(queue chan *groupReq, quit chan struct{}) {
	defer close(db.groupDone)
	for {
		var first *groupReq
		select {
		case first = <-queue:
		case <-quit:
			for {
				select {
				case r := <-queue:
					if r.state.CompareAndSwap(reqQueued, reqTaken) {
						r.done <- errClosed
					}
				default:
					return
				}
			}
		}
		batch := []*groupReq{first}
	more:
		for len(batch) < maxGroup {
			select {
			case r := <-queue:
				batch = append(batch, r)
			default:
				break more
			}
		}
		db.commitGroup(batch)
	}
}

// WritesQueued is how many write transactions wait for the group
// committer (0 without group commit).
func (db *DB) WritesQueued() int { return len(db.group) }

// submit queues fn for the committer and waits for its outcome.
func (db *DB) submit(ctx context.Context, unaudited bool, fn func(store.Tx) error) error {
	r := &groupReq{ctx: ctx, unaudited: unaudited, fn: fn, done: make(chan error, 1)}
	select {
	case <-db.groupQuit:
		return errClosed
	default:
	}
	select {
	case db.group <- r:
	case <-ctx.Done():
		return ctx.Err()
	case <-db.groupQuit:
		return errClosed
	}
	var err error
	select {
	case err = <-r.done:
	case <-ctx.Done():
		if !r.state.CompareAndSwap(reqQueued, reqAbandoned) {
			err = <-r.done // taken: it runs to its end
		} else {
			err = ctx.Err()
		}
	case <-db.groupQuit:
		if !r.state.CompareAndSwap(reqQueued, reqAbandoned) {
			err = <-r.done
		} else {
			err = errClosed
		}
	}
	if p, ok := err.(memberPanic); ok {
		panic(p.value) // in the caller's goroutine, as without group commit
	}
	return err
}

// memberPanic carries a member's panic back to its caller.
type memberPanic struct{ value any }

func (p memberPanic) Error() string { return fmt.Sprintf("panic: %v", p.value) }

// runMember runs fn, turning a panic into a memberPanic.
func runMember(fn func(store.Tx) error, tx *Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = memberPanic{value: p}
		}
	}()
	return fn(tx)
}

// commitGroup runs batch in one transaction and answers each member.
func (db *DB) commitGroup(batch []*groupReq) {
	var run []*groupReq
	for _, r := range batch {
		if r.state.CompareAndSwap(reqQueued, reqTaken) {
			run = append(run, r)
		}
	}
	if len(run) == 0 {
		return
	}
	results := make([]error, len(run))
	txs := make([]*Tx, len(run))
	var missed []string
	defer func() {
		for i, r := range run {
			r.done <- results[i]
		}
		// The writer connection is free: prepare what ran unprepared.
		for _, q := range missed {
			_, _ = db.writes.get(context.Background(), q)
		}
	}()
	sqlTx, err := db.writer.BeginTx(context.Background(), nil)
	if err != nil {
		for i := range results {
			results[i] = fmt.Errorf("begin: %w", err)
		}
		return
	}
	// abort ends the group when the transaction is gone or unusable:
	// member i gets err, the others whose work was in it run again.
	abort := func(i int, err error) {
		_ = sqlTx.Rollback()
		for j := range results {
			switch {
			case j == i:
				results[j] = err
			case results[j] == nil:
				results[j] = errGroupAborted
			}
		}
	}
	if len(run) == 1 {
		// Alone, a member's failure is the transaction's: no savepoint.
		tx := db.newTx(sqlTx, &missed, run[0].unaudited)
		err := runMember(run[0].fn, tx)
		if err == nil {
			err = tx.finish(context.WithoutCancel(run[0].ctx))
		}
		switch {
		case err != nil:
			_ = sqlTx.Rollback()
			results[0] = err
		default:
			if err := sqlTx.Commit(); err != nil {
				results[0] = tx.commitFailed(err)
			}
		}
		return
	}
	for i, r := range run {
		ctx := context.WithoutCancel(r.ctx)
		if _, err := sqlTx.ExecContext(ctx, "SAVEPOINT member"); err != nil {
			abort(i, fmt.Errorf("savepoint: %w", err))
			return
		}
		tx := db.newTx(sqlTx, &missed, r.unaudited)
		err := runMember(r.fn, tx)
		if _, ok := err.(memberPanic); ok {
			// Half done, in an unknown state: the whole transaction goes.
			abort(i, err)
			return
		}
		if err == nil {
			err = tx.finish(ctx)
		}
		if err != nil {
			results[i] = err
			// A statement error leaves the transaction open (or SQLite
			// rolled it back whole: then there is no savepoint).
			if _, rerr := sqlTx.ExecContext(ctx, "ROLLBACK TO member"); rerr != nil {
				abort(i, err)
				return
			}
		} else {
			txs[i] = tx
		}
		if _, err := sqlTx.ExecContext(ctx, "RELEASE member"); err != nil {
			abort(i, fmt.Errorf("release savepoint: %w", err))
			return
		}
	}
	if err := sqlTx.Commit(); err != nil {
		for i, tx := range txs {
			if tx != nil {
				results[i] = tx.commitFailed(err)
			}
		}
	}
}
