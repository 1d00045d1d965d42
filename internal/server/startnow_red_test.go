package server_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/config"
	"github.com/airlockhq/airlock/internal/run"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/testenv"
)

// Attacks on a request that starts its run itself (4bb9582), by a
// red-team review.

// goroutineWith reports whether some goroutine's stack mentions every
// one of frames.
func goroutineWith(frames ...string) bool {
	buf := make([]byte, 1<<24)
	n := runtime.Stack(buf, true)
	for _, g := range strings.Split(string(buf[:n]), "\n\n") {
		all := true
		for _, f := range frames {
			all = all && strings.Contains(g, f)
		}
		if all {
			return true
		}
	}
	return false
}

// freeGateServer is a demo server with one worker, the free-gate
// procedure approved, its workers started and free, and its clock
// offset by what offset holds.
func freeGateServer(t *testing.T, driver string, offset *atomic.Int64, mutate ...func(*config.Config)) *testenv.Demo {
	t.Helper()
	d := testenv.DemoServer(t, append([]func(*config.Config){testenv.UseDriver(t, driver), func(c *config.Config) { c.Runs.Workers = 1 }}, mutate...)...)
	d.Now = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	approveFreeGate(t, d)
	d.Serve(t)
	warmUp(t, d, d.Runs)
	return d
}

// approveFreeGate proposes and approves the free-gate procedure.
func approveFreeGate(t *testing.T, d *testenv.Demo) {
	t.Helper()
	approveSource(t, d, "free-gate.yaml", freeGateProc)
}

// warmUp runs one free-gate run to its end on svc: its workers run once
// a run ends (they are started without waiting), and are free once its
// worker is.
func warmUp(t *testing.T, d *testenv.Demo, svc *run.Service) {
	t.Helper()
	warm := requestFreeGateOn(t, d, svc, "")
	warm.open()
	warm.waitFinal()
	testenv.Eventually(t, "the workers to be free", func() bool { return svc.WorkersBusy() == 0 })
}

func requestFreeGate(t *testing.T, d *testenv.Demo) *gate {
	t.Helper()
	return requestFreeGateOn(t, d, d.Runs, "")
}

// requestFreeGateOn requests a free-gate run on svc with the
// Idempotency-Key key (none when empty).
func requestFreeGateOn(t *testing.T, d *testenv.Demo, svc *run.Service, key string) *gate {
	t.Helper()
	g := &gate{t: t, d: d, dir: t.TempDir()}
	t.Cleanup(g.open)
	r, err := svc.Request(context.Background(), principal(t, d, "alice"), run.RequestParams{Procedure: "free-gate", Environment: "staging",
		Params: map[string]any{"dir": g.dir}, IdempotencyKey: key})
	if err != nil {
		t.Fatal(err)
	}
	g.run = r
	return g
}

// TestRequestStartedRunLeaseBeginsInItsTransaction: a run its request
// starts is claimed by the request's transaction, so its lease (the
// heartbeat another replica's reaper reads) and its start must be the
// time of that transaction, as a claim's are — not the time the request
// was planned, before it waited for the writer. Here the request waits
// behind another write while the clock passes twice the heartbeat
// timeout: a lease dated from before that wait is stale as it commits,
// and any reaper may take the run from the worker about to execute it.
func TestRequestStartedRunLeaseBeginsInItsTransaction(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			var offset atomic.Int64
			d := freeGateServer(t, driver, &offset, func(c *config.Config) {
				// The heartbeat loop does not tick during the test.
				c.Runs.HeartbeatInterval, c.Runs.HeartbeatTimeout = time.Hour, 3*time.Hour
			})
			ctx := context.Background()
			// Another write holds the writer.
			entered, release, held := make(chan struct{}), make(chan struct{}), make(chan error, 1)
			go func() {
				held <- d.Store.Update(ctx, func(store.Tx) error {
					select {
					case <-entered:
					default:
						close(entered)
					}
					<-release
					return nil
				})
			}()
			<-entered
			requested := make(chan *gate, 1)
			go func() { requested <- requestFreeGate(t, d) }()
			testenv.Eventually(t, "the request to wait for the writer", func() bool {
				return goroutineWith("internal/run.(*Service).Request(", "internal/store/sqlstore.(*DB).retry(")
			})
			offset.Store(int64(6 * time.Hour)) // the wait, as the clock sees it
			began := d.Now().UTC().Truncate(time.Microsecond)
			close(release)
			if err := <-held; err != nil {
				t.Fatal(err)
			}
			var g *gate
			select {
			case g = <-requested:
			case <-time.After(time.Minute):
				t.Fatal("the request did not return within a minute of the writer's release")
			}
			got := g.current()
			if got.Status != store.RunRunning {
				t.Fatalf("run requested with a free worker is stored %s; want running", got.Status)
			}
			if got.HeartbeatAt.Before(began) || got.StartedAt.Before(began) {
				t.Errorf("run started by its request's transaction (which ran at %s or later) is stored started %s, heartbeat %s: "+
					"its lease is dated from before the transaction, %s stale as it commits (heartbeat timeout 3h)",
					began.Format(time.RFC3339), got.StartedAt.Format(time.RFC3339), got.HeartbeatAt.Format(time.RFC3339), began.Sub(got.HeartbeatAt))
			}
		})
	}
}

// unknownFateStore reports the next committed transaction that stores a
// run as a commit of unknown fate — what sqlstore answers when the
// connection broke during a COMMIT that went through and the look for
// its first event could not tell.
type unknownFateStore struct {
	store.Store
	armed atomic.Bool
}

func (s *unknownFateStore) Update(ctx context.Context, fn func(tx store.Tx) error) error {
	var inserted bool
	err := s.Store.Update(ctx, func(tx store.Tx) error {
		inserted = false // Update may run this again
		return fn(&insertSpy{Tx: tx, inserted: &inserted})
	})
	if err == nil && inserted && s.armed.CompareAndSwap(true, false) {
		return &airlock.Error{Kind: airlock.Unavailable, Err: errors.New("commit: unexpected EOF"),
			Message: "the database connection was lost while the change was being committed, so it may or may not have been made: " +
				"look before trying again (a run request sent again with the same Idempotency-Key is safe)"}
	}
	return err
}

type insertSpy struct {
	store.Tx
	inserted *bool
}

func (t *insertSpy) RunInsert(ctx context.Context, r *store.Run) error {
	*t.inserted = true
	return t.Tx.RunInsert(ctx, r)
}

// TestRequestStartedRunOfUnknownFateIsExecuted: the commit of a request
// that started its run is lost, of unknown fate, though it went through.
// The requester is told to look, or to send the request again with its
// Idempotency-Key, which returns the run. Stored running under this
// worker, attempt 1, the run is this worker's to execute — no other
// worker claims a running run. It must execute (as a queued run would
// have been claimed), not sit unheartbeaten until a reaper fails it as
// "worker lost" without ever having started a step.
func TestRequestStartedRunOfUnknownFateIsExecuted(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			d := testenv.DemoServer(t, testenv.UseDriver(t, driver))
			approveFreeGate(t, d)
			us := &unknownFateStore{Store: d.Store}
			svc := replica(t, d, us, 100*time.Millisecond, 2*time.Second)
			warmUp(t, d, svc)
			us.armed.Store(true)
			ctx := context.Background()
			g := &gate{t: t, d: d, dir: t.TempDir()}
			t.Cleanup(g.open)
			rp := run.RequestParams{Procedure: "free-gate", Environment: "staging", Params: map[string]any{"dir": g.dir}, IdempotencyKey: "lost-1"}
			if _, err := svc.Request(ctx, principal(t, d, "alice"), rp); err != nil && airlock.ErrorKind(err) != airlock.Unavailable {
				t.Fatal(err)
			}
			// Sent again, as the answer advises: the run is there.
			r, err := svc.Request(ctx, principal(t, d, "alice"), rp)
			if err != nil {
				t.Fatal(err)
			}
			g.run = r
			testenv.Eventually(t, "the run to reach its gate or end", func() bool { return g.pid() != 0 || store.RunFinal(g.current().Status) })
			g.open()
			if got := g.waitFinal(); got.Status != store.RunSucceeded {
				steps, _ := d.Store.RunStepList(ctx, r.ID)
				t.Errorf("run stored started by its request, the commit's fate unknown to it, ended %s (%q) after %d steps: "+
					"nothing executed it", got.Status, got.Error, len(steps))
			}
		})
	}
}
