package run

import "github.com/airlockhq/airlock/internal/store"

// Observer is told what runs do, for metrics. It is called after the
// change it reports has committed, with what the run path holds at that
// moment: observing costs no database round trip. Its methods must not
// block, and must not keep the runs they are given.
type Observer interface {
	// RunQueued: an approval completed a pending run's approvals; the
	// run went from CreatedAt (requested) to QueuedAt.
	RunQueued(r *store.Run)
	// RunStarted: this worker claimed r; StartedAt and Attempt are set.
	RunStarted(r *store.Run)
	// StepFinished: a step of a run of procedure ended on a node and is
	// recorded.
	StepFinished(procedure string, st *store.RunStep)
	// RunFinished: r reached its final status (succeeded, failed,
	// timed_out, canceled, denied or expired), here — by this worker, this
	// reaper, or a person's decision made through this replica.
	RunFinished(r *store.Run)
}

type nopObserver struct{}

func (nopObserver) RunQueued(*store.Run)                {}
func (nopObserver) RunStarted(*store.Run)               {}
func (nopObserver) StepFinished(string, *store.RunStep) {}
func (nopObserver) RunFinished(*store.Run)              {}
