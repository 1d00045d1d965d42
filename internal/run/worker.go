package run

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/executor"
	"github.com/airlockhq/airlock/internal/inventory"
	"github.com/airlockhq/airlock/internal/procedure"
	"github.com/airlockhq/airlock/internal/secret"
	"github.com/airlockhq/airlock/internal/secretstore"
	"github.com/airlockhq/airlock/internal/store"
)

var (
	errCanceled = errors.New("canceled")
	errTimeout  = errors.New("timed out")
	errShutdown = errors.New("the server is shutting down")
	// errLeaseLost: the run was reaped, requeued or finished by someone
	// else; this attempt stops and records nothing more.
	errLeaseLost = errors.New("this worker no longer holds the run")
	// errLeaseExpired: this worker could not renew the lease (the
	// database was unreachable) for so long that another replica may
	// reap the run; the attempt stops before that can happen.
	errLeaseExpired = fmt.Errorf("%w: its lease could not be renewed", errLeaseLost)
)

// attemptKey names an attempt executing here.
type attemptKey struct {
	run     string
	attempt int
}

// attemptState is an attempt executing here.
type attemptState struct {
	cancel  context.CancelCauseFunc
	done    chan struct{} // closed once the attempt is recorded (or given up)
	claimed time.Time     // monotonic: the claim renewed the lease
}

// Start runs the dispatcher, the heartbeat and the reaper until ctx ends,
// then cancels the runs in progress and waits for them to be recorded.
func (s *Service) Start(ctx context.Context) {
	s.mu.Lock()
	s.stopping = false // a service stopped before starts again
	s.mu.Unlock()
	if s.cfg.SingleNode {
		// Before anything is claimed: every running run is a previous
		// process's.
		s.reapBefore(ctx, s.now().UTC().Add(time.Microsecond))
	}
	s.mu.Lock()
	s.working = ctx
	s.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); s.dispatch(ctx) }()
	go func() { defer wg.Done(); s.maintain(ctx) }()
	<-ctx.Done()
	wg.Wait()
	s.mu.Lock()
	// An attempt that registers after this (dispatched, or started by a
	// request, just before the dispatcher stopped) is stopped as it
	// registers.
	s.stopping, s.working = true, nil
	for _, a := range s.attempts {
		a.cancel(errShutdown)
	}
	s.mu.Unlock()
	s.active.Wait()
}

// dispatch claims queued runs while there is a free worker slot. It is
// woken at once by requests and approvals in this process, and looks
// every second for runs queued by other replicas.
func (s *Service) dispatch(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		for {
			// Most wake-ups find nothing queued (a run ended, the ticker):
			// ask the reader first rather than take a worker and the
			// writer for nothing. A run queued after this read wakes the
			// dispatcher again.
			queued, err := s.store.RunQueued(ctx)
			if err == nil && queued {
				select {
				case s.slots <- struct{}{}:
				case <-ctx.Done():
					return
				}
				s.active.Add(1)
				var r *store.Run
				if r, err = s.claim(ctx); err == nil && r != nil {
					go s.work(context.WithoutCancel(ctx), r, nil)
					continue
				}
				s.release()
			}
			if err != nil && ctx.Err() == nil {
				s.log.Error("claim run", "err", err)
			}
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-tick.C:
		}
	}
}

// reserve takes a worker slot for a run a request starts itself, and
// returns the context its attempt executes in; nil when this replica
// does not work the queue now or every worker is busy. release gives
// the slot back.
func (s *Service) reserve(ctx context.Context) context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.working == nil || s.working.Err() != nil || ctx.Err() != nil {
		return nil
	}
	select {
	case s.slots <- struct{}{}:
	default:
		return nil
	}
	s.active.Add(1) // before Start's shutdown waits: it holds s.mu to stop
	return context.WithoutCancel(s.working)
}

func (s *Service) release() {
	<-s.slots
	s.active.Done()
}

// WorkersBusy is the number of worker slots taken on this replica: runs
// executing, or being claimed.
func (s *Service) WorkersBusy() int { return len(s.slots) }

// Working reports whether this replica works the queue now: Start runs
// and is not shutting down.
func (s *Service) Working() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.working != nil
}

// work executes a run in a worker slot taken for it, then frees the
// slot. def, when set, is the run's definition as verified when it was
// claimed. A dispatcher waiting for a slot gets this one; one that found
// nothing claimable is woken when this run held a lock, which queued runs
// may have waited for (anything else that queues a run wakes it).
func (s *Service) work(base context.Context, r *store.Run, def *procedure.Procedure) {
	defer func() {
		s.release()
		if r.LockKey != "" {
			s.Wake()
		}
	}()
	s.execute(base, r, def)
}

// startEvent is the run.start event of a claim.
func (s *Service) startEvent(ctx context.Context, r *store.Run) *store.AuditEvent {
	return audit.New(ctx, s.now(), audit.RunStart, audit.System, r.ID, audit.Success,
		map[string]any{"procedure": r.ProcedureName, "digest": r.Digest, "worker": s.workerID, "attempt": r.Attempt, "targets": r.Targets})
}

// claim takes the oldest claimable queued run for this worker; nil when
// there is none.
func (s *Service) claim(ctx context.Context) (*store.Run, error) {
	var r *store.Run
	err := s.store.Update(ctx, func(tx store.Tx) error {
		var err error
		if r, err = tx.RunClaim(ctx, s.workerID, s.now().UTC()); err != nil || r == nil {
			return err
		}
		return tx.AuditAppend(ctx, s.startEvent(ctx, r))
	})
	if err != nil {
		return nil, err // the claim did not commit: the run is not this worker's
	}
	if r != nil {
		s.cfg.Observer.RunStarted(r)
	}
	return r, nil
}

// maintain beats the heart of this worker's runs, passes on cancel
// requests made on other replicas, marks runs whose worker died, and
// expires pending approvals.
func (s *Service) maintain(ctx context.Context) {
	tick := time.NewTicker(s.cfg.HeartbeatInterval)
	defer tick.Stop()
	s.reap(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		s.renew(ctx)
		// Bounded: a database that does not answer must not hold up the
		// next lease check.
		rctx, cancel := context.WithTimeout(ctx, max(s.cfg.HeartbeatTimeout/4, time.Second))
		s.reap(rctx)
		cancel()
	}
}

// renew beats the heart of the runs executing here, and only those (a
// run whose outcome could not be recorded must go stale and be reaped);
// stops each attempt whose run was taken from it, or whose cancel was
// asked for on another replica; and, with several replicas, stops the
// attempts whose lease it could not renew for half the heartbeat
// timeout — before any other replica may reap them, so that two attempts
// never execute at once (replicas' clocks must agree to well within
// that margin).
func (s *Service) renew(ctx context.Context) {
	s.mu.Lock()
	held := make(map[attemptKey]*attemptState, len(s.attempts))
	var ids []string
	for k, a := range s.attempts {
		if !slices.Contains(ids, k.run) {
			ids = append(ids, k.run)
		}
		held[k] = a
	}
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, max(s.cfg.HeartbeatTimeout/4, time.Second))
	defer cancel()
	began := time.Now()
	if err := s.store.RunHeartbeat(ctx, s.workerID, ids, s.now().UTC()); err != nil {
		if ctx.Err() == nil || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			s.log.Error("run heartbeat", "err", err)
		}
	} else {
		s.mu.Lock()
		s.beat = began
		s.mu.Unlock()
	}
	s.mu.Lock()
	lastBeat := s.beat
	s.mu.Unlock()
	for k, a := range held {
		renewed := a.claimed
		if lastBeat.After(renewed) {
			renewed = lastBeat
		}
		if !s.cfg.SingleNode && time.Since(renewed) > s.cfg.HeartbeatTimeout/2 {
			s.log.Error("lease not renewed: stopping the attempt before another replica may take the run", "run_id", k.run,
				"attempt", k.attempt, "renewed", time.Since(renewed).Round(time.Millisecond))
			a.cancel(errLeaseExpired)
			continue
		}
		r, err := s.store.RunGet(ctx, k.run)
		switch {
		case err != nil:
		case !s.holds(r, k.attempt):
			// Reaped (its heartbeat went stale while writes failed),
			// requeued, claimed again or finished elsewhere: stop it.
			a.cancel(errLeaseLost)
		case r.CancelRequested:
			a.cancel(errCanceled)
		}
	}
}

// prune deletes output past its retention, keeping the digests. Each
// batch is audited with the runs it names: output is only ever removed
// this way, and a run whose stored output no longer matches its digest
// without such an event is reported by verification.
func (s *Service) prune(ctx context.Context, now time.Time) {
	if s.cfg.OutputRetention <= 0 {
		return
	}
	cutoff := now.Add(-s.cfg.OutputRetention)
	for range 20 { // at most 20 batches a pass; the next pass goes on
		var pruned []string
		err := s.store.Update(ctx, func(tx store.Tx) error {
			ids, n, err := tx.RunOutputPrune(ctx, cutoff, 200)
			if pruned = ids; err != nil || len(ids) == 0 {
				return err
			}
			return tx.AuditAppend(ctx, audit.New(ctx, now, audit.RunOutputPrune, audit.System, "", audit.Success,
				map[string]any{"runs": ids, "chunks": n, "finished_before": cutoff, "retention": s.cfg.OutputRetention.String()}))
		})
		if err != nil && ctx.Err() == nil {
			s.log.Error("prune run output", "err", err)
		}
		if err != nil || len(pruned) < 200 {
			return
		}
	}
}

// reap handles runs whose worker stopped beating, and expired requests.
func (s *Service) reap(ctx context.Context) {
	now := s.now().UTC()
	s.prune(ctx, now)
	s.reapBefore(ctx, now.Add(-s.cfg.HeartbeatTimeout))
}

// reapBefore fails or requeues the running runs whose last heartbeat is
// older than cutoff, and expires pending requests.
func (s *Service) reapBefore(ctx context.Context, cutoff time.Time) {
	now := s.now().UTC()
	stale, err := s.store.RunList(ctx, store.RunListParams{HeartbeatBefore: cutoff, Limit: 100})
	if err != nil {
		return
	}
	for _, r := range stale {
		var ended *store.Run
		err := s.store.Update(ctx, func(tx store.Tx) error {
			ended = nil // Update may run this again
			cur, err := tx.RunGet(ctx, r.ID)
			if err != nil || cur.Status != store.RunRunning || !cur.HeartbeatAt.Equal(r.HeartbeatAt) {
				return err // finished or beaten meanwhile
			}
			if err := releaseLock(ctx, tx, cur); err != nil {
				return err
			}
			lost := fmt.Sprintf("worker lost: %s stopped heartbeating at %s while running attempt %d",
				cur.WorkerID, cur.HeartbeatAt.Format(time.RFC3339), cur.Attempt)
			if cur.Idempotent && cur.Attempt < s.cfg.MaxAttempts && !cur.CancelRequested {
				cur.Status, cur.WorkerID, cur.QueuedAt, cur.Error = store.RunQueued, "", now, lost+"; started again (the procedure is idempotent)"
				if err := tx.RunUpdate(ctx, cur); err != nil {
					return err
				}
				return tx.AuditAppend(ctx, audit.New(ctx, now, audit.RunRequeue, audit.System, cur.ID, audit.Success,
					map[string]any{"reason": lost, "attempt": cur.Attempt}))
			}
			status, reason := store.RunFailed, lost+"; not started again"
			switch {
			case cur.CancelRequested:
				status, reason = store.RunCanceled, cur.Error+"; "+lost
			case !cur.Idempotent:
				reason += " (the procedure is not declared idempotent)"
			}
			ended = cur
			return endLost(ctx, tx, cur, now, status, reason)
		})
		if err != nil {
			s.log.Error("reap run", "run_id", r.ID, "err", err)
		} else if ended != nil {
			s.cfg.Observer.RunFinished(ended)
		}
		s.broker.notify(r.ID)
		s.WakeReplicas()
	}
	pending, err := s.store.RunList(ctx, store.RunListParams{Status: store.RunPending, Limit: 500})
	if err != nil {
		return
	}
	for _, r := range pending {
		if r.ExpiresAt.IsZero() || now.Before(r.ExpiresAt) {
			continue
		}
		var expired *store.Run
		err := s.store.Update(ctx, func(tx store.Tx) error {
			expired = nil // Update may run this again
			cur, err := tx.RunGet(ctx, r.ID)
			if err != nil || cur.Status != store.RunPending {
				return err
			}
			cur.Status, cur.FinishedAt, cur.SecretParams, cur.Error = store.RunExpired, now, nil, "no approval before "+cur.ExpiresAt.Format(time.RFC3339)
			if err := tx.RunUpdate(ctx, cur); err != nil {
				return err
			}
			expired = cur
			return tx.AuditAppend(ctx, audit.New(ctx, now, audit.RunExpire, audit.System, cur.ID, audit.Success,
				map[string]any{"expired_at": cur.ExpiresAt}))
		})
		if err == nil && expired != nil {
			s.cfg.Observer.RunFinished(expired)
		}
		s.broker.notify(r.ID)
	}
}

// endLost finishes a run whose attempt executes nowhere any more (its
// worker stopped heartbeating): the lock released, and the output the
// lost attempt stored certified, as stored, by the run.finish event.
func endLost(ctx context.Context, tx store.Tx, cur *store.Run, now time.Time, status, reason string) error {
	cur.Status, cur.FinishedAt, cur.SecretParams, cur.Error = status, now, nil, reason
	// Written first: it takes the run's row, so no output write of the
	// lost attempt can commit after the output is read.
	if err := tx.RunUpdate(ctx, cur); err != nil {
		return err
	}
	digest := sha256.New()
	var n int64
	for after := int64(0); ; {
		chunks, err := tx.RunOutputList(ctx, cur.ID, after, 1000)
		if err != nil {
			return err
		}
		if len(chunks) == 0 {
			break
		}
		for _, c := range chunks {
			after, n = c.Seq, n+int64(len(c.Data))
			digest.Write(c.Data)
		}
	}
	cur.OutputBytes, cur.OutputDigest = n, "sha256:"+hex.EncodeToString(digest.Sum(nil))
	if err := tx.RunUpdate(ctx, cur); err != nil {
		return err
	}
	if err := releaseLock(ctx, tx, cur); err != nil {
		return err
	}
	return tx.AuditAppend(ctx, audit.New(ctx, now, audit.RunFinish, audit.System, cur.ID, outcome(status),
		map[string]any{"procedure": cur.ProcedureName, "digest": cur.Digest, "status": status, "reason": reason, "attempt": cur.Attempt,
			"output_bytes": n, "output_truncated": false, "output_digest": cur.OutputDigest}))
}

// verify re-checks at start that the run executes what was approved: its
// version is still the approved, active one with the recorded digest, the
// procedure is not retired, and the approvals it needs still bind.
func (s *Service) verify(ctx context.Context, r *store.Run) (*procedure.Procedure, error) {
	proc, err := s.store.ProcedureGetByID(ctx, r.ProcedureID)
	if err != nil {
		return nil, err
	}
	v, err := s.store.ProcedureVersionGet(ctx, r.VersionID)
	if err != nil {
		return nil, err
	}
	switch {
	case !proc.RetiredAt.IsZero():
		return nil, fmt.Errorf("refused at start: %s was retired", proc.Name)
	case v.Digest != r.Digest:
		return nil, fmt.Errorf("refused at start: version %d has digest %s, not the %s this run was approved for", v.Number, v.Digest, r.Digest)
	case r.Try && !slices.Contains(s.cfg.TryEnvironments, r.Environment):
		return nil, fmt.Errorf("refused at start: %s no longer takes try runs", r.Environment)
	case r.Try && v.Status != store.VersionProposed && v.Status != store.VersionApproved:
		return nil, fmt.Errorf("refused at start: version %d of %s is %s; a try run runs only a proposed version", v.Number, proc.Name, v.Status)
	case r.Try:
	case v.Status != store.VersionApproved || proc.ActiveVersionID != v.ID:
		return nil, fmt.Errorf("refused at start: version %d of %s is %s, no longer the active approved version; request the run again", v.Number, proc.Name, v.Status)
	}
	def, err := procedure.FromCanonical(v.Definition)
	if err != nil {
		return nil, err
	}
	if def.Digest() != r.Digest {
		return nil, fmt.Errorf("refused at start: the stored definition does not hash to %s", r.Digest)
	}
	if r.Try && len(r.SecretParams) > 0 {
		return nil, fmt.Errorf("refused at start: a try run gets no secrets")
	}
	if r.Try {
		if err := tryWithoutSecrets(proc.Name, v.Number, def, nil); err != nil {
			return nil, fmt.Errorf("refused at start: %v", err)
		}
	}
	if r.ApprovalsRequired > 0 {
		as, err := s.store.RunApprovalList(ctx, r.ID)
		if err != nil {
			return nil, err
		}
		if got := countApprovals(r, as); got < r.ApprovalsRequired {
			return nil, fmt.Errorf("refused at start: %d of %d required approvals bind to this run", got, r.ApprovalsRequired)
		}
		// The approvals name the nodes as they were: a node moved to
		// another address, port, user or host key since does not get the
		// run.
		var params map[string]any
		if err := json.Unmarshal(r.Params, &params); err != nil {
			return nil, err
		}
		nodes, missing, err := s.targetNodes(ctx, r, def)
		switch {
		case err != nil:
			return nil, err
		case missing != "":
			return nil, fmt.Errorf("refused at start: node %s is no longer in the inventory", missing)
		}
		if binding(r.Digest, r.Environment, params, nodes) != r.Binding && bindingByName(r.Digest, r.Environment, params, r.Targets) != r.Binding {
			return nil, fmt.Errorf("refused at start: a target node's address, port, user or host key changed since the run was approved; request it again")
		}
	}
	return def, nil
}

// execute runs a claimed run to its end and records the outcome. def,
// when set, is the run's definition verified as the run was claimed (a
// run its request started); otherwise the start verifies it.
func (s *Service) execute(base context.Context, r *store.Run, def *procedure.Procedure) {
	ctx, cancel := context.WithCancelCause(base)
	defer cancel(nil)
	key, me := attemptKey{r.ID, r.Attempt}, &attemptState{cancel: cancel, done: make(chan struct{}), claimed: time.Now()}
	var earlier []*attemptState
	s.mu.Lock()
	for k, a := range s.attempts {
		if k.run == r.ID {
			// An earlier attempt of this run, still executing here: the
			// reaper took the run from it and this worker claimed it
			// again. It stops before this one starts.
			a.cancel(errLeaseLost)
			earlier = append(earlier, a)
		}
	}
	s.attempts[key] = me
	if s.stopping {
		cancel(errShutdown)
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.attempts, key)
		s.mu.Unlock()
		close(me.done)
	}()
	for _, a := range earlier {
		select {
		case <-a.done:
		case <-time.After(time.Minute):
			s.log.Error("an earlier attempt of the run did not stop within a minute", "run_id", r.ID, "attempt", r.Attempt)
		}
	}
	lease := store.Lease{RunID: r.ID, WorkerID: s.workerID, Attempt: r.Attempt}
	out := newSink(lease, s.store, s.broker, s.log, s.cfg.MaxOutputBytes, nil)
	out.leaseLost = func() { cancel(errLeaseLost) }
	// An attempt stopped by a shutdown before any of its jobs began (it
	// was claimed, or started by its request, just as Airlock stopped)
	// has done nothing: it goes back to the queue, idempotent or not,
	// rather than failing — a read the stop cut short included.
	handBack := func() bool {
		if !errors.Is(context.Cause(ctx), errShutdown) {
			return false
		}
		s.finish(base, r, out, store.RunQueued, fmt.Sprintf("handed back: Airlock shut down before attempt %d began", r.Attempt), nil)
		return true
	}
	if r.Attempt > 1 {
		if err := out.resume(ctx, r.Attempt); err != nil {
			if handBack() {
				return
			}
			s.log.Error("read an earlier attempt's output", "run_id", r.ID, "err", err)
			s.finish(base, r, out, store.RunFailed, "could not read the earlier attempt's output to continue it", nil)
			return
		}
	}
	if def == nil {
		var err error
		if def, err = s.verify(ctx, r); err != nil {
			if handBack() {
				return
			}
			out.note("airlock", "%v", err)
			s.finish(base, r, out, store.RunFailed, err.Error(), nil)
			return
		}
	}
	jobs, secrets, err := s.jobs(ctx, r, def)
	if err != nil {
		if handBack() {
			return
		}
		var refused *useRefused
		if errors.As(err, &refused) {
			s.recordUseRefused(base, r, refused)
		}
		out.setSecrets(secrets)
		out.note("airlock", "%v", err)
		s.finish(base, r, out, store.RunFailed, err.Error(), nil)
		return
	}
	out.setSecrets(secrets)
	if handBack() {
		return
	}
	timeout := time.Duration(def.Timeout)
	tctx, tcancel := context.WithTimeoutCause(ctx, timeout, errTimeout)
	defer tcancel()

	// Steps not yet recorded: each is written when it ends; one whose
	// write failed, and the last of a one-node run, are written with the
	// outcome.
	var steps []*store.RunStep
	var stepsMu sync.Mutex
	rec := s.newStepRecorder(base, r)
	stopFlush := make(chan struct{})
	flushed := make(chan struct{})
	go func() {
		defer close(flushed)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopFlush:
				return
			case <-t.C:
				out.flush(base)
				switch err := rec.writeLater(); {
				case errors.Is(err, errLeaseLost):
					cancel(errLeaseLost)
				case err != nil:
					s.log.Error("record steps; they and the steps that end after them are recorded with the run's outcome", "run_id", r.ID, "err", err)
				}
			}
		}
	}()

	parallel := 1
	if def.Targets != nil {
		parallel = max(1, def.Targets.Parallel)
	}
	sem := make(chan struct{}, parallel)
	results := make([]*store.RunNode, len(jobs))
	var wg sync.WaitGroup
	for i, job := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-tctx.Done():
				results[i] = &store.RunNode{RunID: r.ID, Node: job.Node.Name, Status: executor.Canceled, ExitCode: -1, Error: "not started"}
				return
			}
			defer func() { <-sem }()
			started := s.now().UTC()
			if len(jobs) > 1 {
				s.nodeProgress(&store.RunNode{RunID: r.ID, Node: job.Node.Name, Status: store.RunRunning, StartedAt: started})
			}
			stdout, stderr := out.writer(job.Node.Name, store.StreamStdout), out.writer(job.Node.Name, store.StreamStderr)
			job.Stdout, job.Stderr = stdout, stderr
			job.StepDone = func(sr executor.StepResult) {
				st := &store.RunStep{RunID: r.ID, Attempt: r.Attempt, Node: job.Node.Name, Index: sr.Index, Step: sr.Name, Status: sr.Status,
					ExitCode: sr.ExitCode, StartedAt: sr.StartedAt.UTC(), FinishedAt: sr.FinishedAt.UTC()}
				last := len(job.Steps) > 0 && sr.Index == job.Steps[len(job.Steps)-1].Index
				switch {
				case last && len(jobs) == 1:
					// The run ends as its last step does: the step is
					// recorded with the outcome, in one transaction
					// rather than two.
					stepsMu.Lock()
					steps = append(steps, st)
					stepsMu.Unlock()
					return
				case last:
					// Nothing runs on the node after it: recorded within
					// 100 ms, as its output is, or with the outcome.
					rec.recordLater(st)
					return
				}
				switch err := rec.record(st); {
				case errors.Is(err, errLeaseLost):
					cancel(errLeaseLost)
				case err != nil:
					rec.markUnsure(st)
					s.log.Error("record step; it is recorded with the run's outcome", "run_id", r.ID, "step", st.Step, "node", st.Node, "err", err)
					stepsMu.Lock()
					steps = append(steps, st)
					stepsMu.Unlock()
				}
			}
			ex := s.executors[job.Node.Transport]
			var res executor.Result
			if ex == nil {
				res = executor.Result{Status: executor.Failed, ExitCode: -1, Error: "no executor for transport " + job.Node.Transport}
			} else {
				res = ex.Run(tctx, job)
			}
			_ = stdout.Flush()
			_ = stderr.Flush()
			if res.Error != "" {
				out.note(job.Node.Name, "node %s: %s", job.Node.Name, res.Error)
			}
			results[i] = &store.RunNode{RunID: r.ID, Node: job.Node.Name, Status: res.Status, ExitCode: res.ExitCode,
				Error: res.Error, StartedAt: started, FinishedAt: s.now().UTC()}
			if len(jobs) > 1 {
				s.nodeProgress(results[i])
			}
		}()
	}
	wg.Wait()
	close(stopFlush)
	<-flushed
	steps = append(steps, rec.takeLater()...)

	status, reason := store.RunSucceeded, ""
	var failedNodes []string
	for _, n := range results {
		if n.Status != executor.Succeeded {
			failedNodes = append(failedNodes, n.Node)
		}
	}
	switch cause := context.Cause(tctx); {
	case errors.Is(cause, errTimeout):
		status, reason = store.RunTimedOut, fmt.Sprintf("timed out after %s", timeout)
	case errors.Is(cause, errCanceled):
		status, reason = store.RunCanceled, r.Error
		if cur, err := s.store.RunGet(base, r.ID); err == nil && cur.Error != "" {
			reason = cur.Error
		}
	case errors.Is(cause, errShutdown):
		status, reason = store.RunFailed, "interrupted: Airlock shut down during the run"
		if r.Idempotent && r.Attempt < s.cfg.MaxAttempts {
			// Handed back: another replica, or this one restarted,
			// starts it again.
			status, reason = store.RunQueued, fmt.Sprintf("handed back: Airlock shut down during attempt %d; started again (the procedure is idempotent)", r.Attempt)
		}
	case errors.Is(cause, errLeaseLost):
		// Whoever holds the run now records it; output still pending
		// here is not written.
		s.log.Warn("run taken from this worker; its attempt was stopped", "run_id", r.ID, "attempt", r.Attempt)
		s.forget(r.ID)
		return
	case len(failedNodes) > 0:
		status, reason = store.RunFailed, fmt.Sprintf("failed on %d of %d nodes: %s", len(failedNodes), len(results), strings.Join(failedNodes, ", "))
	}
	s.finishWith(base, r, out, status, reason, results, steps, rec.isUnsure)
}

// targetNodes reads r's target nodes as stored now, in r.Targets'
// order (Airlock itself for a procedure without targets); missing names
// the first that is no longer in the inventory.
func (s *Service) targetNodes(ctx context.Context, r *store.Run, def *procedure.Procedure) (nodes []*store.Node, missing string, err error) {
	local := func(name string) bool { return def.Targets == nil && name == "airlock" }
	var names []string
	for _, name := range r.Targets {
		if !local(name) {
			names = append(names, name)
		}
	}
	named := map[string]*store.Node{}
	if len(names) > 0 {
		if named, err = s.store.NodesNamed(ctx, names); err != nil {
			return nil, "", err
		}
	}
	for _, name := range r.Targets {
		switch n := named[name]; {
		case local(name):
			nodes = append(nodes, inventory.Local(r.Environment))
		case n == nil:
			return nil, name, nil
		default:
			nodes = append(nodes, n)
		}
	}
	return nodes, "", nil
}

// jobs builds one job per target node: expanded steps, the environment,
// secrets resolved, credentials for SSH. It also returns every secret
// value involved, for redaction.
func (s *Service) jobs(ctx context.Context, r *store.Run, def *procedure.Procedure) ([]*executor.Job, [][]byte, error) {
	var params map[string]any
	if err := json.Unmarshal(r.Params, &params); err != nil {
		return nil, nil, err
	}
	values := map[string]string{}
	for k, v := range params {
		values[k] = jsonStr(v)
	}
	var redact [][]byte
	if len(r.SecretParams) > 0 {
		b, err := s.keyring.Open(r.SecretParams, []byte(r.ID))
		if err != nil {
			return nil, nil, fmt.Errorf("secret parameters: %w", err)
		}
		var sp map[string]any
		if err := json.Unmarshal(b, &sp); err != nil {
			return nil, nil, err
		}
		for k, v := range sp {
			values[k] = jsonStr(v)
			redact = append(redact, []byte(values[k]))
		}
	}
	type opened struct {
		rec   *store.SecretRecord
		value []byte
	}
	secretCache := map[string]opened{}
	resolve := func(ref string) (opened, error) {
		if o, ok := secretCache[ref]; ok {
			return o, nil
		}
		rec, err := s.store.SecretGet(ctx, ref)
		if err != nil {
			return opened{}, fmt.Errorf("secret %q: %w", ref, err)
		}
		v, err := s.keyring.Open(rec.Ciphertext, []byte(ref))
		if err != nil {
			return opened{}, fmt.Errorf("secret %q: %w", ref, err)
		}
		secretCache[ref] = opened{rec, v}
		redact = append(redact, v)
		return secretCache[ref], nil
	}
	// A step gets a secret only if the secret's scope, as stored now,
	// covers the procedure: a scope narrowed after the version was
	// approved refuses the run here. A node's credential is Airlock's
	// own and no step sees it, so it is not a step's use.
	stepSecret := func(i int, st procedure.Step, env, ref string) ([]byte, error) {
		o, err := resolve(ref)
		switch {
		case airlock.ErrorKind(err) == airlock.NotFound:
			return nil, &useRefused{Refusal: &secretstore.Refusal{Step: i, StepName: st.Name, Env: env, Secret: ref, Missing: true,
				Scope: secret.Scope{Teams: []string{}, Procedures: []string{}}}, procedure: r.ProcedureName, owner: def.Owner}
		case err != nil:
			return nil, err
		case !secretstore.ScopeOf(o.rec).Permits(r.ProcedureName, def.Owner):
			return nil, &useRefused{Refusal: &secretstore.Refusal{Step: i, StepName: st.Name, Env: env, Secret: ref,
				Scope: secretstore.ScopeOf(o.rec)}, procedure: r.ProcedureName, owner: def.Owner}
		}
		return o.value, nil
	}
	env := map[string]string{"PATH": executor.SafePath, "AIRLOCK_RUN_ID": r.ID, "AIRLOCK_ENVIRONMENT": r.Environment,
		"AIRLOCK_PROCEDURE": r.ProcedureName, "AIRLOCK_REQUESTER": r.RequesterName}
	for k, v := range values {
		env[EnvName(k)] = v
	}
	nodes, missing, err := s.targetNodes(ctx, r, def)
	switch {
	case err != nil:
		return nil, redact, fmt.Errorf("read the target nodes: %w", err)
	case missing != "":
		return nil, redact, fmt.Errorf("node %s is no longer in the inventory", missing)
	}
	var jobs []*executor.Job
	for _, node := range nodes {
		if node.Environment != r.Environment {
			return nil, redact, fmt.Errorf("node %s moved to %s; the run was approved for %s", node.Name, node.Environment, r.Environment)
		}
		vars := procedure.Vars{Params: values, Environment: r.Environment,
			Run:        map[string]string{"id": r.ID, "requester": r.RequesterName, "environment": r.Environment},
			Node:       map[string]string{"name": node.Name, "address": node.Address, "port": fmt.Sprint(node.Port), "user": node.User, "environment": node.Environment},
			Attributes: node.Attributes}
		job := &executor.Job{RunID: r.ID, Node: node, Env: maps(env, map[string]string{"AIRLOCK_NODE": node.Name})}
		for i, st := range def.Steps {
			es := executor.Step{Index: i, Name: st.Name, Script: st.Script, Shell: st.Shell, Timeout: time.Duration(st.Timeout),
				ContinueOnError: st.ContinueOnError, Env: map[string]string{}}
			if interp := procedure.Interpreter(st.Exec); interp != "" && slices.ContainsFunc(st.Exec[1:], procedure.HasTemplate) {
				// Approved before validation refused it: still never run.
				return nil, redact, fmt.Errorf("refused at start: step %s passes a template to %s, which would parse the value as code", st.Name, interp)
			}
			if st.Exec != nil {
				for _, a := range st.Exec {
					v, err := procedure.Expand(a, vars)
					if err != nil {
						return nil, redact, fmt.Errorf("step %s: %w", st.Name, err)
					}
					es.Argv = append(es.Argv, v)
				}
			}
			for _, envName := range slices.Sorted(mapKeys(st.Secrets)) {
				v, err := stepSecret(i, st, envName, st.Secrets[envName])
				var refused *useRefused
				switch {
				case errors.As(err, &refused):
					return nil, redact, err
				case err != nil:
					return nil, redact, fmt.Errorf("step %s: %w", st.Name, err)
				}
				es.Env[envName] = string(v)
			}
			job.Steps = append(job.Steps, es)
		}
		switch node.Transport {
		case store.TransportLocal:
			// One directory per run, attempt and node, made and removed
			// by the executor (a run ID has no dot, an attempt is a
			// number).
			job.WorkDir = filepath.Join(s.cfg.WorkDir, fmt.Sprintf("%s.%d.%s", r.ID, r.Attempt, node.Name))
		case store.TransportSSH:
			cred, err := resolve(node.Credential)
			if err != nil {
				return nil, redact, fmt.Errorf("node %s credential: %w", node.Name, err)
			}
			job.Credential = cred.value
		}
		jobs = append(jobs, job)
	}
	return jobs, redact, nil
}

// useRefused is a run refused at start because a step names a secret its
// procedure may not use now.
type useRefused struct {
	*secretstore.Refusal
	procedure, owner string
}

func (e *useRefused) Error() string {
	return fmt.Sprintf("refused at start: step %s names secret %s, which %s (team %s) may not use: the secret's scope no longer "+
		"covers it, or the secret is gone; ask whoever manages secrets to add team %s or procedure %s to its scope "+
		"(airlock secrets scope %s --team %s), then request the run again",
		e.StepName, e.Secret, e.procedure, e.owner, e.owner, e.procedure, e.Secret, e.owner)
}

// recordUseRefused audits a refusal at start on the run, naming the
// secret, the step and the scope that refused it.
func (s *Service) recordUseRefused(ctx context.Context, r *store.Run, e *useRefused) {
	now := s.now().UTC()
	err := s.store.Update(ctx, func(tx store.Tx) error {
		return tx.AuditAppend(ctx, audit.New(ctx, now, audit.SecretUseDenied, audit.System, r.ID, audit.Denied, map[string]any{
			"procedure": r.ProcedureName, "owner": e.owner, "digest": r.Digest, "step": e.StepName, "env": e.Env,
			"secret": e.Secret, "missing": e.Missing, "scope": e.Scope}))
	})
	if err != nil {
		s.log.Error("audit a refused secret use", "run_id", r.ID, "secret", e.Secret, "err", err)
	}
}

func mapKeys(m map[string]string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func jsonStr(v any) string {
	switch x := v.(type) {
	case float64:
		return fmt.Sprint(int64(x))
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = fmt.Sprint(e)
		}
		return strings.Join(parts, ",")
	}
	return str(v)
}

func maps(a, b map[string]string) map[string]string {
	out := make(map[string]string, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

func (s *Service) finish(ctx context.Context, r *store.Run, out *sink, status, reason string, nodes []*store.RunNode) {
	s.finishWith(ctx, r, out, status, reason, nodes, nil, nil)
}

// holds reports whether r, as stored, is still the attempt this worker
// runs: running, under this worker, with the same attempt number.
func (s *Service) holds(r *store.Run, attempt int) bool {
	return r.Status == store.RunRunning && r.WorkerID == s.workerID && r.Attempt == attempt
}

// forget drops what this replica keeps in memory about a run.
func (s *Service) forget(id string) {
	s.mu.Lock()
	delete(s.live, id)
	s.mu.Unlock()
	s.broker.notify(id)
}

// finishWith records the outcome in one transaction: the run, its nodes
// and steps, the lock released, and the events, the last of which
// carries the digest of the output. The write names the attempt: a run
// another worker took over (or the reaper finished) is left alone. When
// the write fails — a full disk, a database that went away — it is tried
// again with backoff for as long as this worker's lease can last (the
// run stays in its heartbeat meanwhile); after that the reaper, here or
// on another replica, finishes the run.
func (s *Service) finishWith(ctx context.Context, r *store.Run, out *sink, status, reason string, nodes []*store.RunNode, steps []*store.RunStep,
	unsure func(*store.RunStep) bool) {
	defer s.forget(r.ID)
	final, lost, outErr := out.close(ctx)
	if lost > 0 {
		s.log.Error("run output could not be stored", "run_id", r.ID, "lost_bytes", lost, "err", outErr)
	}
	giveUp := time.Now().Add(2 * s.cfg.HeartbeatTimeout)
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		st, why := status, reason
		if lost > 0 {
			// The record claims only what was stored: the digest is over
			// the stored bytes, and a run whose output was partly lost is
			// not reported as a success.
			if st == store.RunSucceeded {
				st = store.RunFailed
			}
			why = strings.TrimPrefix(why+fmt.Sprintf("; %d bytes of output could not be stored", lost), "; ")
		}
		n, truncated, digest, whole := out.certify(final)
		if lost > 0 {
			whole = nil
		}
		err := s.recordOutcome(ctx, r, st, why, nodes, steps, unsure, out.lease, final, n, truncated, digest, whole)
		switch {
		case err == nil:
			return
		case errors.Is(err, errLeaseLost):
			s.log.Warn("run outcome not recorded: the run was taken from this worker", "run_id", r.ID, "attempt", r.Attempt, "status", st)
			return
		case airlock.ErrorKind(err) == airlock.Conflict && len(final) > 0:
			// The last output's positions are taken: storing it again
			// cannot help. The outcome goes in without it, not claiming it.
			for _, c := range final {
				lost += int64(len(c.Data))
			}
			s.log.Error("run output could not be stored", "run_id", r.ID, "lost_bytes", lost, "err", err)
			final = nil
			continue
		case time.Now().After(giveUp) || ctx.Err() != nil:
			s.log.Error("record run outcome: giving up; the reaper will finish the run", "run_id", r.ID, "err", err)
			return
		}
		s.log.Error("record run outcome; trying again", "run_id", r.ID, "err", err, "in", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
}

// recordOutcome stores the outcome with the attempt's last output
// (final) and its steps not yet recorded, if the attempt still holds the
// run. whole, when not nil, is the run's whole output with final: it is
// handed to those awaiting the run's end.
func (s *Service) recordOutcome(ctx context.Context, r *store.Run, status, reason string, nodes []*store.RunNode, steps []*store.RunStep,
	unsure func(*store.RunStep) bool, lease store.Lease, final []*store.OutputChunk, n int64, truncated bool, digest string, whole []*store.OutputChunk) error {
	now := s.now().UTC()
	var ended *store.Run
	err := s.store.Update(ctx, func(tx store.Tx) error {
		ended = nil // Update may run this again
		cur, err := tx.RunGet(ctx, r.ID)
		if err != nil {
			return err
		}
		if !s.holds(cur, r.Attempt) {
			return errLeaseLost
		}
		if err := tx.RunOutputPut(ctx, lease, final); err != nil {
			return err
		}
		if err := putSteps(ctx, tx, now, r, steps, unsure); err != nil {
			return err
		}
		if status == store.RunQueued && cur.CancelRequested {
			// Cancelled (on another replica) before the hand-back: it
			// ends here instead of running again.
			status = store.RunCanceled
			reason = strings.TrimPrefix(cur.Error+"; "+reason, "; ")
		}
		if status == store.RunQueued {
			cur.Status, cur.WorkerID, cur.QueuedAt, cur.Error = store.RunQueued, "", now, reason
			if err := tx.RunUpdate(ctx, cur); err != nil {
				return err
			}
			if err := releaseLock(ctx, tx, cur); err != nil {
				return err
			}
			return tx.AuditAppend(ctx, audit.New(ctx, now, audit.RunRequeue, audit.System, cur.ID, audit.Success,
				map[string]any{"reason": reason, "attempt": cur.Attempt, "output_bytes": n, "output_digest": digest}))
		}
		cur.Status, cur.FinishedAt, cur.SecretParams, cur.Error = status, now, nil, reason
		cur.OutputBytes, cur.OutputTruncated, cur.OutputDigest = n, truncated, digest
		if err := tx.RunUpdate(ctx, cur); err != nil {
			return err
		}
		if err := releaseLock(ctx, tx, cur); err != nil {
			return err
		}
		for _, nd := range nodes {
			if err := tx.RunNodePut(ctx, nd); err != nil {
				return err
			}
		}
		summary := map[string]string{}
		for _, nd := range nodes {
			summary[nd.Node] = nd.Status
		}
		ended = cur
		return tx.AuditAppend(ctx, audit.New(ctx, now, audit.RunFinish, audit.System, cur.ID, outcome(status),
			map[string]any{"procedure": cur.ProcedureName, "digest": cur.Digest, "status": status, "reason": reason, "nodes": summary,
				"output_bytes": n, "output_truncated": truncated, "output_digest": digest}))
	})
	if err != nil {
		return err
	}
	for _, st := range steps {
		s.cfg.Observer.StepFinished(r.ProcedureName, st)
	}
	if ended != nil {
		s.cfg.Observer.RunFinished(ended)
		s.endings.end(ended, nodes, whole)
	}
	return nil
}

// releaseLock frees r's lock. A run without a lock key never holds one:
// nothing to delete.
func releaseLock(ctx context.Context, tx store.Tx, r *store.Run) error {
	if r.LockKey == "" {
		return nil
	}
	return tx.RunLockRelease(ctx, r.ID)
}

func putStep(ctx context.Context, tx store.Tx, now time.Time, st *store.RunStep) error {
	if err := tx.RunStepPut(ctx, st); err != nil {
		return err
	}
	return tx.AuditAppend(ctx, audit.New(ctx, now, audit.RunStep, audit.System, st.RunID, outcome(st.Status),
		map[string]any{"attempt": st.Attempt, "node": st.Node, "step": st.Step, "index": st.Index, "status": st.Status, "exit_code": st.ExitCode,
			"started_at": st.StartedAt, "finished_at": st.FinishedAt}))
}

func outcome(status string) string {
	if status == store.RunSucceeded || status == executor.Succeeded {
		return audit.Success
	}
	return audit.Failure
}
