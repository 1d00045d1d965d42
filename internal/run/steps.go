package run

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/airlockhq/airlock/internal/store"
)

// maxStepBatch bounds the steps recorded in one transaction.
const maxStepBatch = 256

// stepRecorder records the steps of one attempt as they end: each
// step's result and its run.step event, durable before the step's node
// goes on (record returns once they are committed). Steps that end while
// a write is in flight — a fan-out run's nodes end their steps together —
// are written together in the next transaction, under one lease check,
// rather than one transaction each. Every step still gets its own row
// and its own event, exactly as when written alone. A node's last step
// is queued instead (recordLater): nothing on its node waits for it.
type stepRecorder struct {
	s   *Service
	r   *store.Run
	ctx context.Context

	mu sync.Mutex
	// queue holds full batches, next the one steps join; flush writes
	// them in that order.
	queue    []*stepBatch
	next     *stepBatch
	flushing bool // a goroutine writes batches
	// later holds the steps recorded without waiting (later), for the
	// next writeLater; laterFailed, once a writeLater failed, leaves
	// them to the outcome.
	later       []*store.RunStep
	laterFailed bool
	// unsure are steps a write of which failed: that write may have
	// been stored all the same (its commit unanswered), so the next
	// writes them only if they are not (written).
	unsure map[*store.RunStep]bool
}

// stepBatch is steps written in one transaction, and its outcome.
type stepBatch struct {
	steps []*store.RunStep
	done  chan struct{} // closed once err is set
	err   error
}

func (s *Service) newStepRecorder(ctx context.Context, r *store.Run) *stepRecorder {
	return &stepRecorder{s: s, r: r, ctx: ctx}
}

// record writes st with the steps that end meanwhile, and returns the
// outcome of their write: nil once committed; errLeaseLost when this
// attempt no longer holds the run (nothing of the batch is written);
// another error when the write failed — the step is then to be recorded
// with the run's outcome, as every step of the batch is.
func (sr *stepRecorder) record(st *store.RunStep) error {
	sr.mu.Lock()
	if sr.next == nil || len(sr.next.steps) >= maxStepBatch {
		if sr.next != nil {
			// Full: it is written before this one (flush takes them in order).
			sr.queue = append(sr.queue, sr.next)
		}
		sr.next = &stepBatch{done: make(chan struct{})}
	}
	b := sr.next
	b.steps = append(b.steps, st)
	if !sr.flushing {
		sr.flushing = true
		go sr.flush()
	}
	sr.mu.Unlock()
	<-b.done
	return b.err
}

// recordLater queues st for the next writeLater, and returns at once:
// for a node's last step, after which nothing runs on the node that its
// record must precede. A fan-out's nodes end their last steps a few
// hundred microseconds apart, too far apart for record's batches to
// form; written every 100 ms instead, as the output is, they are a few
// transactions, not one per node.
func (sr *stepRecorder) recordLater(st *store.RunStep) {
	sr.mu.Lock()
	sr.later = append(sr.later, st)
	sr.mu.Unlock()
}

// writeLater writes the steps queued by recordLater, at most
// maxStepBatch per transaction. It returns errLeaseLost when this
// attempt no longer holds the run; after another error, the steps it
// could not write are back in the queue, for the run's outcome.
func (sr *stepRecorder) writeLater() error {
	for {
		sr.mu.Lock()
		if sr.laterFailed {
			sr.mu.Unlock()
			return nil
		}
		b := sr.later[:min(len(sr.later), maxStepBatch)]
		sr.later = sr.later[len(b):]
		sr.mu.Unlock()
		if len(b) == 0 {
			return nil
		}
		if err := sr.s.recordSteps(sr.ctx, sr.r, b, sr.isUnsure); err != nil {
			if !errors.Is(err, errLeaseLost) {
				sr.markUnsure(b...)
				sr.mu.Lock()
				sr.later = append(b, sr.later...)
				sr.laterFailed = true
				sr.mu.Unlock()
			}
			return err
		}
	}
}

// markUnsure notes that a write of steps failed (unsure).
func (sr *stepRecorder) markUnsure(steps ...*store.RunStep) {
	sr.mu.Lock()
	defer sr.mu.Unlock()
	if sr.unsure == nil {
		sr.unsure = map[*store.RunStep]bool{}
	}
	for _, st := range steps {
		sr.unsure[st] = true
	}
}

// isUnsure reports whether a write of st failed.
func (sr *stepRecorder) isUnsure(st *store.RunStep) bool {
	sr.mu.Lock()
	defer sr.mu.Unlock()
	return sr.unsure[st]
}

// takeLater returns the steps queued by recordLater and not yet
// written: they are recorded with the run's outcome.
func (sr *stepRecorder) takeLater() []*store.RunStep {
	sr.mu.Lock()
	defer sr.mu.Unlock()
	out := sr.later
	sr.later = nil
	return out
}

// flush writes the waiting batches, one transaction each, until none is
// left.
func (sr *stepRecorder) flush() {
	sr.mu.Lock()
	for {
		var b *stepBatch
		switch {
		case len(sr.queue) > 0:
			b, sr.queue = sr.queue[0], sr.queue[1:]
		case sr.next != nil:
			b, sr.next = sr.next, nil
		default:
			sr.flushing = false
			sr.mu.Unlock()
			return
		}
		sr.mu.Unlock()
		b.err = sr.s.recordSteps(sr.ctx, sr.r, b.steps, sr.isUnsure)
		close(b.done)
		sr.mu.Lock()
	}
}

// recordSteps writes steps' results and their run.step events in one
// transaction, if this attempt still holds the run (errLeaseLost
// otherwise). A write that fails is not waited for beyond a few seconds:
// the steps are then recorded with the outcome.
func (s *Service) recordSteps(ctx context.Context, r *store.Run, steps []*store.RunStep, unsure func(*store.RunStep) bool) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	now := s.now().UTC()
	err := s.store.Update(ctx, func(tx store.Tx) error {
		if err := tx.RunHeld(ctx, store.Lease{RunID: r.ID, WorkerID: s.workerID, Attempt: r.Attempt}); err != nil {
			if errors.Is(err, store.ErrLeaseLost) {
				return errLeaseLost
			}
			return err
		}
		return putSteps(ctx, tx, now, r, steps, unsure)
	})
	if err == nil {
		for _, st := range steps {
			s.cfg.Observer.StepFinished(r.ProcedureName, st)
		}
	}
	return err
}

// putSteps writes steps, each with its run.step event — but not a step
// unsure says an earlier write may have stored already and that is
// stored: an unanswered commit is not written twice.
func putSteps(ctx context.Context, tx store.Tx, now time.Time, r *store.Run, steps []*store.RunStep, unsure func(*store.RunStep) bool) error {
	var stored map[stepKey]bool
	for _, st := range steps {
		if unsure != nil && unsure(st) {
			if stored == nil {
				all, err := tx.RunStepList(ctx, r.ID)
				if err != nil {
					return err
				}
				stored = map[stepKey]bool{}
				for _, x := range all {
					stored[keyOf(x)] = true
				}
			}
			if stored[keyOf(st)] {
				continue
			}
		}
		if err := putStep(ctx, tx, now, st); err != nil {
			return err
		}
	}
	return nil
}

// stepKey names a step's record: its attempt, node and index.
type stepKey struct {
	attempt, index int
	node           string
}

func keyOf(st *store.RunStep) stepKey { return stepKey{st.Attempt, st.Index, st.Node} }
