package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/run"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/testenv"
)

// freeGateProc is gateProc without a lock: a run that a request may
// start itself.
const freeGateProc = `apiVersion: airlock/v1
kind: Procedure
name: free-gate
title: Wait at a gate, without a lock
owner: payments
risk: low
parameters:
  - {name: dir, type: string}
steps:
  - name: first
    exec: ["echo", "first step done"]
  - name: gate
    script: |
      echo $$ > "$AIRLOCK_PARAM_DIR/pid.tmp" && mv "$AIRLOCK_PARAM_DIR/pid.tmp" "$AIRLOCK_PARAM_DIR/pid"
      echo "at the gate"
      while [ ! -e "$AIRLOCK_PARAM_DIR/go" ]; do sleep 0.05; done
`

// TestRequestStartsItsRunWhenAWorkerIsFree: a run that may start now,
// requested on a replica with a free worker, is stored claimed in the
// request's own transaction — running, attempt 1, with run.request
// (saying it was queued) then run.start, the events a claim by the
// dispatcher leaves. With every worker busy it is queued, and the
// dispatcher starts it once a worker is free. Either way its last output
// is stored with its outcome, which certifies exactly what is stored.
func TestRequestStartsItsRunWhenAWorkerIsFree(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			var offset atomic.Int64
			d := freeGateServer(t, driver, &offset)
			ctx := context.Background()
			request := func() *gate {
				g := &gate{t: t, d: d, dir: t.TempDir()}
				t.Cleanup(g.open)
				rctx := audit.WithMeta(ctx, audit.Meta{RequestID: "req-" + g.dir, SourceAddr: "192.0.2.7"})
				r, err := d.Runs.Request(rctx, principal(t, d, "alice"), run.RequestParams{Procedure: "free-gate", Environment: "staging",
					Params: map[string]any{"dir": g.dir}})
				if err != nil {
					t.Fatal(err)
				}
				g.run = r
				return g
			}

			first := request()
			if got := first.current(); got.Status != store.RunRunning || got.Attempt != 1 || got.WorkerID == "" || got.StartedAt.IsZero() {
				t.Fatalf("run requested with a free worker is stored %s, attempt %d, worker %q, started %v; want running, attempt 1, claimed",
					got.Status, got.Attempt, got.WorkerID, got.StartedAt)
			}
			evs := first.events("")
			if len(evs) < 2 || evs[0].Type != "run.request" || evs[1].Type != "run.start" {
				t.Fatalf("events of a run started by its request: %v; want run.request then run.start", types(evs))
			}
			var req, start map[string]any
			if err := json.Unmarshal(evs[0].Details, &req); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(evs[1].Details, &start); err != nil {
				t.Fatal(err)
			}
			if evs[0].RequestID != "req-"+first.dir || evs[1].RequestID != "" || evs[1].SourceAddr != "" || evs[1].ActorName != "system" {
				t.Errorf("run.start of a run its request started carries request %q from %q by %q; want the system's act, as a claim's",
					evs[1].RequestID, evs[1].SourceAddr, evs[1].ActorName)
			}
			if req["status"] != store.RunQueued || start["attempt"] != float64(1) || start["worker"] != first.current().WorkerID {
				t.Errorf("run.request says status %v; run.start says attempt %v on %v: want queued, then attempt 1 on the run's worker",
					req["status"], start["attempt"], start["worker"])
			}
			testenv.Eventually(t, "the first run to reach its gate", func() bool { return first.pid() != 0 })

			// The one worker is busy: the next request is queued.
			second := request()
			if got := second.current(); got.Status != store.RunQueued || got.Attempt != 0 {
				t.Fatalf("run requested with every worker busy is stored %s, attempt %d; want queued", got.Status, got.Attempt)
			}
			first.open()
			testenv.Eventually(t, "the queued run to reach its gate", func() bool { return second.pid() != 0 })
			second.open()
			for _, g := range []*gate{first, second} {
				r := g.waitFinal()
				stored := storedOutput(t, d.Store, r.ID)
				sum := sha256.Sum256(stored)
				if r.Status != store.RunSucceeded || r.OutputBytes != int64(len(stored)) || r.OutputDigest != "sha256:"+hex.EncodeToString(sum[:]) {
					t.Errorf("run %s ended %s certifying %d bytes, %s; %d bytes are stored:\n%s", r.ID, r.Status, r.OutputBytes, r.OutputDigest, len(stored), stored)
				}
				if got := types(g.events("")); len(got) != 5 || got[0] != "run.request" || got[1] != "run.start" || got[4] != "run.finish" {
					t.Errorf("events of run %s: %v; want run.request, run.start, two run.step, run.finish", r.ID, got)
				}
			}
		})
	}
}

// heldStore holds the first Update after it is armed until released,
// before it begins.
type heldStore struct {
	store.Store
	armed   atomic.Bool
	hit     chan struct{}
	release chan struct{}
}

func (s *heldStore) Update(ctx context.Context, fn func(tx store.Tx) error) error {
	if s.armed.CompareAndSwap(true, false) {
		close(s.hit)
		<-s.release
	}
	return s.Store.Update(ctx, fn)
}

// TestShutdownHandsBackARunItsRequestStarted: a request that took a
// worker before the replica began shutting down commits its run started
// after it did. The attempt is stopped as it registers, before any job:
// having done nothing, the run goes back to the queue (run.requeue),
// although it is not idempotent, instead of failing as interrupted.
func TestShutdownHandsBackARunItsRequestStarted(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			d := testenv.DemoServer(t, testenv.UseDriver(t, driver))
			approveFreeGate(t, d)
			hs := &heldStore{Store: d.Store, hit: make(chan struct{}), release: make(chan struct{})}
			svc, stop, stopped := startReplica(t, d, hs, 2*time.Second, 20*time.Second)
			released := false
			t.Cleanup(func() {
				if !released {
					close(hs.release)
				}
				stop()
				<-stopped
			})
			warmUp(t, d, svc)

			hs.armed.Store(true)
			g := &gate{t: t, d: d, dir: t.TempDir()}
			t.Cleanup(g.open)
			requested := make(chan error, 1)
			alice := principal(t, d, "alice")
			go func() {
				r, err := svc.Request(context.Background(), alice, run.RequestParams{Procedure: "free-gate", Environment: "staging",
					Params: map[string]any{"dir": g.dir}})
				if err == nil {
					g.run = r
				}
				requested <- err
			}()
			testenv.Eventually(t, "the request to reach its transaction, a worker taken", func() bool {
				select {
				case <-hs.hit:
					return true
				default:
					return false
				}
			})
			stop()
			testenv.Eventually(t, "the replica to begin shutting down", func() bool { return !svc.Working() })
			close(hs.release)
			released = true
			if err := <-requested; err != nil {
				t.Fatal(err)
			}
			testenv.Eventually(t, "the replica to stop", func() bool {
				select {
				case <-stopped:
					return true
				default:
					return false
				}
			})
			r := g.current()
			if r.Status != store.RunQueued || !strings.Contains(r.Error, "handed back") || g.pid() != 0 {
				t.Fatalf("run started by its request as the replica stopped: %s (%s), gate reached: %v; want queued, handed back, nothing run",
					r.Status, r.Error, g.pid() != 0)
			}
			if got := types(g.events("")); len(got) != 3 || got[0] != "run.request" || got[1] != "run.start" || got[2] != "run.requeue" {
				t.Errorf("events: %v; want run.request, run.start, run.requeue", got)
			}
		})
	}
}

// refusingOutputStore refuses every output batch written on its own
// (an error that is no lost commit: the batch stays pending).
type refusingOutputStore struct{ store.Store }

func (refusingOutputStore) RunOutputAppend(context.Context, store.Lease, []*store.OutputChunk) error {
	return errors.New("output batches refused")
}

// TestLastOutputIsStoredWithTheOutcome: what a run printed and had not
// stored when it ended goes into the transaction of its run.finish
// event, not a write of its own. Here every write of its own is refused:
// the output is stored all the same, the run succeeds, and its digest is
// over what is stored. (Written apart, it would be lost and the run
// failed for it.)
func TestLastOutputIsStoredWithTheOutcome(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			d := testenv.DemoServer(t, testenv.UseDriver(t, driver))
			approveFreeGate(t, d)
			svc := replica(t, d, refusingOutputStore{d.Store}, 2*time.Second, 20*time.Second)
			g := requestFreeGateOn(t, d, svc, "")
			g.open()
			r := g.waitFinal()
			stored := storedOutput(t, d.Store, r.ID)
			sum := sha256.Sum256(stored)
			if r.Status != store.RunSucceeded || !strings.Contains(string(stored), "at the gate") ||
				r.OutputBytes != int64(len(stored)) || r.OutputDigest != "sha256:"+hex.EncodeToString(sum[:]) {
				t.Fatalf("run %s (%s) certifies %d bytes, %s; %d stored:\n%s", r.Status, r.Error, r.OutputBytes, r.OutputDigest, len(stored), stored)
			}
		})
	}
}

func types(evs []*store.AuditEvent) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Type)
	}
	return out
}
