package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/config"
	"github.com/airlockhq/airlock/internal/executor"
	"github.com/airlockhq/airlock/internal/executor/contain"
	"github.com/airlockhq/airlock/internal/executor/local"
	"github.com/airlockhq/airlock/internal/run"
	"github.com/airlockhq/airlock/internal/secret"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/testenv"
)

// Attacks on the attempt fencing, found by a red-team review of f3df7d6:
// each sets up an interleaving that the promises of issue 13 rule out, and
// failed on f3df7d6.

// within is testenv.Within that reports instead of stopping the test.
func within(t *testing.T, limit time.Duration, cond func() bool) bool {
	t.Helper()
	deadline := time.After(limit)
	for !cond() {
		select {
		case <-deadline:
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
	return true
}

// executing counts the goroutines inside run.(*Service).execute itself
// (one per attempt executing in this process; its helpers are
// execute.funcN and do not count).
func executing() int {
	buf := make([]byte, 1<<24)
	n := runtime.Stack(buf, true)
	return strings.Count(string(buf[:n]), "internal/run.(*Service).execute(")
}

// executeChildren counts the goroutines execute started and that are
// still alive: its output flusher and one per node job.
func executeChildren() int {
	buf := make([]byte, 1<<24)
	n := runtime.Stack(buf, true)
	return strings.Count(string(buf[:n]), "created by github.com/airlockhq/airlock/internal/run.(*Service).execute in")
}

// storedOutput returns the run's stored output, concatenated.
func storedOutput(t *testing.T, st store.Store, id string) []byte {
	t.Helper()
	var all []byte
	for after := int64(0); ; {
		cs, err := st.RunOutputList(context.Background(), id, after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(cs) == 0 {
			return all
		}
		for _, c := range cs {
			after = c.Seq
			all = append(all, c.Data...)
		}
	}
}

// reaperRequeue does what reapBefore does to an idempotent run whose
// heartbeat went stale: lock released, queued again, audited.
func reaperRequeue(t *testing.T, st store.Store, id string) {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	err := st.Update(ctx, func(tx store.Tx) error {
		cur, err := tx.RunGet(ctx, id)
		if err != nil {
			return err
		}
		if err := tx.RunLockRelease(ctx, id); err != nil {
			return err
		}
		cur.Status, cur.WorkerID, cur.QueuedAt, cur.Error = store.RunQueued, "", now, "worker lost (red team); started again"
		if err := tx.RunUpdate(ctx, cur); err != nil {
			return err
		}
		return tx.AuditAppend(ctx, audit.New(ctx, now, audit.RunRequeue, audit.System, id, audit.Success, map[string]any{"attempt": cur.Attempt}))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestReclaimedRunStopsTheEarlierAttemptHere: a run executing here is
// requeued by a reaper (its heartbeat went stale while this worker's
// writes failed) and this same worker claims it again before its
// heartbeat loop looks. (On f3df7d6 the worker keyed its bookkeeping by
// run ID only:
// attempt 2 overwrites attempt 1's cancel function and lease, so
// attempt 1 is never stopped (two attempts execute at once), and when
// attempt 1 ends it deletes attempt 2's entries — attempt 2 then gets no
// heartbeat and cannot be canceled: a cancel is accepted and the run
// still runs every step and ends "succeeded".) Attempt 1 must stop before
// attempt 2 starts.
func TestReclaimedRunStopsTheEarlierAttemptHere(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			d := testenv.DemoServer(t, testenv.UseDriver(t, driver), func(c *config.Config) {
				// The heartbeat loop does not tick during the test, so
				// nothing depends on when it would.
				c.Runs.HeartbeatInterval, c.Runs.HeartbeatTimeout = time.Hour, 3*time.Hour
			})
			d.Serve(t)
			approveGate(t, d, "gated", true)
			g := startGate(t, d, "gated")
			t.Cleanup(g.open) // before Serve's cleanup: lets what still executes end
			ctx := context.Background()
			testenv.Eventually(t, "attempt 1's gate line to be stored", func() bool {
				return strings.Contains(string(storedOutput(t, d.Store, g.run.ID)), "at the gate")
			})
			pid1 := g.pid()
			reaperRequeue(t, d.Store, g.run.ID)
			d.Runs.Wake() // as reapBefore does
			testenv.Eventually(t, "attempt 2 to reach the gate", func() bool {
				r := g.current()
				return r.Status == store.RunRunning && r.Attempt == 2 && g.pid() != 0 && g.pid() != pid1
			})
			pid2 := g.pid()
			if !within(t, 10*time.Second, func() bool { return !processAlive(pid1) }) {
				t.Errorf("attempt 1 (pid %d) still executes 10 s after attempt 2 (pid %d) started on the same worker: two attempts at once", pid1, pid2)
				_ = syscall.Kill(pid1, syscall.SIGKILL)
			}
			testenv.Eventually(t, "attempt 1 to return", func() bool { return executing() == 1 })
			// A cancel now, on this replica.
			if _, err := d.Runs.Cancel(ctx, principal(t, d, "alice"), g.run.ID); err != nil {
				t.Fatal(err)
			}
			g.open()
			r := g.waitFinal()
			steps, _ := d.Store.RunStepList(ctx, g.run.ID)
			var after []string
			for _, s := range steps {
				if s.Attempt == 2 && s.Step != "first" {
					after = append(after, s.Step+"="+s.Status)
				}
			}
			if r.Status != store.RunCanceled {
				t.Errorf("the cancel of attempt 2 was accepted, yet the run ended %s (%q) and ran %v after it: attempt 1's end deleted attempt 2's cancel and lease "+
					"(and its work directory, shared by both attempts)",
					r.Status, r.Error, after)
			}
		})
	}
}

// TestCancelBeforeShutdownIsNotHandedBack: a cancel made on
// another replica (it commits cancel_requested; its local cancel reaches
// nothing here) and then a graceful shutdown here before this replica's
// heartbeat loop passed the cancel on. The run must end canceled, not
// be handed back to the queue and started again (as it was on f3df7d6,
// where the hand-back did not look at cancel_requested).
func TestCancelBeforeShutdownIsNotHandedBack(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			d := testenv.DemoServer(t, testenv.UseDriver(t, driver), func(c *config.Config) {
				c.Runs.HeartbeatInterval, c.Runs.HeartbeatTimeout = time.Hour, 3*time.Hour
			})
			approveGate(t, d, "again", true)
			ctx, stop := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); d.Runs.Start(ctx) }()
			t.Cleanup(func() { stop(); <-done })
			g := startGate(t, d, "again")
			t.Cleanup(g.open)
			// What Cancel on replica B commits for a running run whose
			// worker is alive (here).
			bob := principal(t, d, "bob")
			now := time.Now().UTC()
			err := d.Store.Update(context.Background(), func(tx store.Tx) error {
				r, err := tx.RunGet(context.Background(), g.run.ID)
				if err != nil {
					return err
				}
				r.CancelRequested, r.Error = true, "canceled by bob"
				if err := tx.RunUpdate(context.Background(), r); err != nil {
					return err
				}
				return tx.AuditAppend(context.Background(), audit.New(context.Background(), now, audit.RunCancel, bob.Actor(), r.ID, audit.Success,
					map[string]any{"procedure": r.ProcedureName, "status": r.Status}))
			})
			if err != nil {
				t.Fatal(err)
			}
			stop()
			select {
			case <-done:
			case <-time.After(time.Minute):
				t.Fatal("shutdown did not end")
			}
			r := g.current()
			if !store.RunFinal(r.Status) {
				t.Errorf("a run canceled before the shutdown is %s after it (cancel_requested=%v, %q)", r.Status, r.CancelRequested, r.Error)
			}
			// The next start executes it again.
			if err := os.Remove(filepath.Join(g.dir, "pid")); err != nil {
				t.Fatal(err)
			}
			d.Serve(t)
			testenv.Eventually(t, "the run to be final or at the gate again", func() bool {
				return store.RunFinal(g.current().Status) || g.pid() != 0
			})
			if g.pid() != 0 {
				r := g.current()
				t.Errorf("the canceled run was started again: attempt %d executes its steps (status %s)", r.Attempt, r.Status)
			}
		})
	}
}

// lostCommitStore reports one stored output batch as a commit of
// unknown outcome — the Unavailable error sqlstore returns when the
// connection broke during a COMMIT that went through — after holding
// that call until the test releases it.
type lostCommitStore struct {
	store.Store
	armed   atomic.Bool
	hit     chan struct{}
	release chan struct{}
}

func (s *lostCommitStore) RunOutputAppend(ctx context.Context, lease store.Lease, chunks []*store.OutputChunk) error {
	err := s.Store.RunOutputAppend(ctx, lease, chunks)
	if err == nil && s.armed.CompareAndSwap(true, false) {
		close(s.hit)
		<-s.release
		return &airlock.Error{Kind: airlock.Unavailable, Err: errors.New("commit: unexpected EOF"),
			Message: "the database connection was lost while the change was being committed, so it may or may not have been made"}
	}
	return err
}

// partitionStore is a replica's view of the database: while partitioned
// every read and write fails as unavailable.
type partitionStore struct {
	store.Store
	cut atomic.Bool
}

var errPartition = &airlock.Error{Kind: airlock.Unavailable, Message: "the database is unavailable; try again shortly", Err: errors.New("dial tcp: i/o timeout")}

func (s *partitionStore) Update(ctx context.Context, fn func(tx store.Tx) error) error {
	if s.cut.Load() {
		return errPartition
	}
	return s.Store.Update(ctx, fn)
}

func (s *partitionStore) RunGet(ctx context.Context, id string) (*store.Run, error) {
	if s.cut.Load() {
		return nil, errPartition
	}
	return s.Store.RunGet(ctx, id)
}

func (s *partitionStore) RunList(ctx context.Context, p store.RunListParams) ([]*store.Run, error) {
	if s.cut.Load() {
		return nil, errPartition
	}
	return s.Store.RunList(ctx, p)
}

func (s *partitionStore) RunHeartbeat(ctx context.Context, workerID string, ids []string, at time.Time) error {
	if s.cut.Load() {
		return errPartition
	}
	return s.Store.RunHeartbeat(ctx, workerID, ids, at)
}

func (s *partitionStore) RunOutputAppend(ctx context.Context, lease store.Lease, chunks []*store.OutputChunk) error {
	if s.cut.Load() {
		return errPartition
	}
	return s.Store.RunOutputAppend(ctx, lease, chunks)
}

// replica starts a run service of its own over st (a second worker on
// the demo's database), stopped at cleanup.
func replica(t *testing.T, d *testenv.Demo, st store.Store, interval, timeout time.Duration) *run.Service {
	t.Helper()
	svc, stop, done := startReplica(t, d, st, interval, timeout)
	t.Cleanup(func() { stop(); <-done })
	return svc
}

// startReplica starts a run service as replica does, and returns it
// with what stops it and what closes once it has stopped.
func startReplica(t *testing.T, d *testenv.Demo, st store.Store, interval, timeout time.Duration) (*run.Service, func(), <-chan struct{}) {
	t.Helper()
	key := make([]byte, secret.KeySize)
	kr, err := secret.NewKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	cm, err := contain.New(t.TempDir(), contain.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// After the replica has stopped (cleanups run last first): its
	// cgroups go with it.
	t.Cleanup(func() { _ = cm.Close() })
	svc := run.New(st, d.Authz, kr, map[string]executor.Executor{store.TransportLocal: local.Executor{Contain: cm}},
		run.Config{Workers: 2, ApprovalTTL: time.Hour, HeartbeatInterval: interval, HeartbeatTimeout: timeout, MaxOutputBytes: 1 << 20,
			MaxAttempts: 3, WorkDir: t.TempDir()}, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); svc.Start(ctx) }()
	return svc, stop, done
}

// TestLostCommitOfOutputIsSettledAlone: a flush whose COMMIT
// went through but was reported as of unknown outcome leaves the sink
// "unsure"; the next flush sends those chunks again together with newer
// ones, the first duplicate fails the whole transaction with Conflict,
// and the sink counted the whole batch — newer chunks included, which
// were rolled back — as stored (f3df7d6): run.finish certified bytes
// that are not stored. It must certify exactly what is stored.
func TestLostCommitOfOutputIsSettledAlone(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			d := testenv.DemoServer(t, testenv.UseDriver(t, driver))
			approveGate(t, d, "gated", false)
			ls := &lostCommitStore{Store: d.Store, hit: make(chan struct{}), release: make(chan struct{})}
			ls.armed.Store(true)
			svc := replica(t, d, ls, 2*time.Second, 20*time.Second)
			g := &gate{t: t, d: d, dir: t.TempDir()}
			t.Cleanup(g.open)
			r, err := svc.Request(context.Background(), principal(t, d, "alice"), run.RequestParams{Procedure: "gated", Environment: "staging",
				Params: map[string]any{"dir": g.dir}})
			if err != nil {
				t.Fatal(err)
			}
			g.run = r
			released := false
			defer func() {
				if !released {
					close(ls.release)
				}
			}()
			testenv.Eventually(t, "the first output batch to be stored", func() bool {
				select {
				case <-ls.hit:
					return true
				default:
					return false
				}
			})
			testenv.Eventually(t, "the gate", func() bool { return g.pid() != 0 })
			g.open()
			// Every node job has ended: all the run's output is pending in
			// the sink, behind the batch reported as lost. (The last step
			// of a one-node run is recorded with the outcome.)
			testenv.Eventually(t, "the jobs to end (only the blocked flusher left)", func() bool {
				steps, _ := d.Store.RunStepList(context.Background(), r.ID)
				return len(steps) == 2 && executeChildren() == 1
			})
			close(ls.release)
			released = true
			r = g.waitFinal()
			stored := storedOutput(t, d.Store, r.ID)
			sum := sha256.Sum256(stored)
			if digest := "sha256:" + hex.EncodeToString(sum[:]); r.OutputBytes != int64(len(stored)) || r.OutputDigest != digest {
				t.Errorf("run %s certifies %d bytes, %s; %d bytes are stored, %s. Stored:\n%s", r.Status, r.OutputBytes, r.OutputDigest,
					len(stored), digest, stored)
			}
		})
	}
}

// TestPartitionedWorkerStopsBeforeItsRunIsTaken: replica A loses the
// database. Its heartbeat fails, replica B reaps the run and starts
// attempt 2. A must stop attempt 1 once it could not renew its lease
// for half the heartbeat timeout — before B may reap the run — so that
// two attempts never execute at once (on f3df7d6 attempt 1 went on for
// as long as the partition lasted).
func TestPartitionedWorkerStopsBeforeItsRunIsTaken(t *testing.T) {
	d := testenv.DemoServer(t, testenv.UseDriver(t, "postgres"), func(c *config.Config) {
		c.Runs.HeartbeatInterval, c.Runs.HeartbeatTimeout = 100*time.Millisecond, time.Second
	})
	approveGate(t, d, "gated", true)
	ps := &partitionStore{Store: d.Store}
	a := replica(t, d, ps, 100*time.Millisecond, time.Second)
	g := &gate{t: t, d: d, dir: t.TempDir()}
	t.Cleanup(g.open)
	r, err := a.Request(context.Background(), principal(t, d, "alice"), run.RequestParams{Procedure: "gated", Environment: "staging",
		Params: map[string]any{"dir": g.dir}})
	if err != nil {
		t.Fatal(err)
	}
	g.run = r
	testenv.Eventually(t, "attempt 1 at the gate on replica A", func() bool { return g.pid() != 0 })
	pid1 := g.pid()
	t.Cleanup(func() { ps.cut.Store(false) }) // healed before A stops
	ps.cut.Store(true)
	d.Serve(t) // replica B
	testenv.Eventually(t, "replica B to run attempt 2 to the gate", func() bool {
		r := g.current()
		return r.Status == store.RunRunning && r.Attempt == 2 && g.pid() != 0 && g.pid() != pid1
	})
	// Attempt 1's lease ended more than a heartbeat timeout ago.
	if !within(t, 10*time.Second, func() bool { return !processAlive(pid1) }) {
		t.Errorf("attempt 1 (pid %d) still executes on partitioned replica A while attempt 2 (pid %d) runs on B", pid1, g.pid())
	}
}
