package server_test

import (
	"context"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/config"
	"github.com/airlockhq/airlock/internal/procedure"
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
	ctx := context.Background()
	procs, err := procedure.Parse("free-gate.yaml", []byte(freeGateProc))
	if err != nil {
		t.Fatal(err)
	}
	res, err := d.Review.Propose(ctx, principal(t, d, "alice"), procs[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Review.Review(ctx, principal(t, d, "bob"), res.Version.ID, res.Version.Digest, "approve", "ok"); err != nil {
		t.Fatal(err)
	}
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
