package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/config"
	"github.com/airlockhq/airlock/internal/demo"
	"github.com/airlockhq/airlock/internal/run"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/testenv"
)

// fanOutNodes is how many local nodes the step batching tests fan out to.
const fanOutNodes = 8

// withFanOutNodes adds fanOutNodes local nodes in staging, tagged batch,
// to the demo's inventory.
func withFanOutNodes(c *config.Config) {
	inv := demo.Inventory
	for i := range fanOutNodes {
		inv += fmt.Sprintf("  - {name: batch-%d, environment: staging, transport: local, tags: [batch]}\n", i)
	}
	if err := os.WriteFile(c.InventoryFile, []byte(inv), 0o600); err != nil {
		panic(err)
	}
}

// fanOutGateProc runs on every batch node: a step, a gate the test opens
// (each node notes it reached it), and a last step.
const fanOutGateProc = `apiVersion: airlock/v1
kind: Procedure
name: fan-gate
owner: payments
risk: low
parameters:
  - {name: dir, type: string}
targets:
  tags: [batch]
  parallel: 8
steps:
  - name: first
    exec: ["echo", "first"]
  - name: gate
    script: |
      touch "$AIRLOCK_PARAM_DIR/at.$AIRLOCK_NODE"
      while [ ! -e "$AIRLOCK_PARAM_DIR/go" ]; do sleep 0.05; done
  - name: last
    exec: ["echo", "last"]
`

// startFanOutGate approves fan-gate and requests a run of it through
// svc, and waits until every node is at the gate.
func startFanOutGate(t *testing.T, d *testenv.Demo, svc *run.Service) *gate {
	t.Helper()
	ctx := context.Background()
	approveSource(t, d, "fan-gate.yaml", fanOutGateProc)
	g := &gate{t: t, d: d, dir: t.TempDir()}
	t.Cleanup(g.open)
	r, err := svc.Request(ctx, principal(t, d, "alice"), run.RequestParams{Procedure: "fan-gate", Environment: "staging",
		Params: map[string]any{"dir": g.dir}})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Targets) != fanOutNodes {
		t.Fatalf("the run targets %v, want the %d batch nodes", r.Targets, fanOutNodes)
	}
	g.run = r
	testenv.Eventually(t, "every node to reach the gate", func() bool {
		at, _ := filepath.Glob(filepath.Join(g.dir, "at.*"))
		return len(at) == fanOutNodes
	})
	return g
}

// stepEvents returns the run's run.step events by node and step index,
// failing on a step with two.
func stepEvents(t *testing.T, g *gate) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, e := range g.events("run.step") {
		var det map[string]any
		if err := json.Unmarshal(e.Details, &det); err != nil {
			t.Fatal(err)
		}
		k := fmt.Sprintf("%v/%v", det["node"], det["index"])
		if out[k] != nil {
			t.Errorf("step %s has two run.step events", k)
		}
		out[k] = det
	}
	return out
}

// stepsBeforeOutcome fails unless the run has one run.finish event and
// every run.step event comes before it.
func stepsBeforeOutcome(t *testing.T, g *gate) {
	t.Helper()
	finish := g.events("run.finish")
	if len(finish) != 1 {
		t.Fatalf("%d run.finish events", len(finish))
	}
	for _, e := range g.events("run.step") {
		if e.Seq > finish[0].Seq {
			t.Errorf("run.step event %d is after the run's outcome (%d)", e.Seq, finish[0].Seq)
		}
	}
}

// TestFanOutStepsRecordedEachWithItsEvent: the steps of a fan-out run's
// nodes, written together as they end, are each stored with a run.step
// event of their own, with every field, durable before their node goes
// on (so before the run's outcome), exactly as when written one by one.
func TestFanOutStepsRecordedEachWithItsEvent(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			d := testenv.DemoServer(t, testenv.UseDriver(t, driver), withFanOutNodes)
			d.Serve(t)
			g := startFanOutGate(t, d, d.Runs)
			ctx := context.Background()
			// Every node is at the gate: its first step is stored already.
			steps, err := d.Store.RunStepList(ctx, g.run.ID)
			if err != nil {
				t.Fatal(err)
			}
			if len(steps) != fanOutNodes || len(g.events("run.step")) != fanOutNodes {
				t.Fatalf("with every node at the gate: %d steps and %d run.step events stored, want %d of each (each node's first)",
					len(steps), len(g.events("run.step")), fanOutNodes)
			}
			g.open()
			if r := g.waitFinal(); r.Status != store.RunSucceeded {
				t.Fatalf("run ended %s: %s", r.Status, r.Error)
			}
			steps, _ = d.Store.RunStepList(ctx, g.run.ID)
			evs := stepEvents(t, g)
			if len(steps) != 3*fanOutNodes || len(evs) != 3*fanOutNodes {
				t.Fatalf("after the run: %d steps, %d run.step events; want %d of each", len(steps), len(evs), 3*fanOutNodes)
			}
			for _, st := range steps {
				det := evs[fmt.Sprintf("%s/%d", st.Node, st.Index)]
				if det == nil {
					t.Errorf("step %s/%d has no run.step event", st.Node, st.Index)
					continue
				}
				for _, f := range []string{"attempt", "node", "step", "index", "status", "exit_code", "started_at", "finished_at"} {
					if _, ok := det[f]; !ok {
						t.Errorf("the run.step event of %s/%d has no %s: %v", st.Node, st.Index, f, det)
					}
				}
				if det["step"] != st.Step || det["status"] != "succeeded" || st.Status != "succeeded" || st.Attempt != 1 {
					t.Errorf("step %s/%d stored as %+v, its event %v", st.Node, st.Index, st, det)
				}
			}
			stepsBeforeOutcome(t, g)
		})
	}
}

// errStepWrite is a write of steps that fails.
var errStepWrite = errors.New("test: the steps could not be written")

// failStepsStore fails every transaction that writes steps under a lease
// check of their own — the steps written as they end — while armed; the
// run's outcome (which writes the steps not yet recorded) goes through.
type failStepsStore struct {
	store.Store
	armed atomic.Bool
	hits  atomic.Int32
}

func (s *failStepsStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	return s.Store.Update(ctx, func(tx store.Tx) error { return fn(&failStepsTx{Tx: tx, s: s}) })
}

type failStepsTx struct {
	store.Tx
	s    *failStepsStore
	held bool
}

func (tx *failStepsTx) RunHeld(ctx context.Context, lease store.Lease) error {
	tx.held = true
	return tx.Tx.RunHeld(ctx, lease)
}

func (tx *failStepsTx) RunStepPut(ctx context.Context, st *store.RunStep) error {
	if tx.held && tx.s.armed.Load() {
		tx.s.hits.Add(1)
		return errStepWrite
	}
	return tx.Tx.RunStepPut(ctx, st)
}

// TestFailedStepBatchIsRecordedWithTheOutcome: when the write of steps
// as they end fails, none of those steps is lost: each is recorded with
// the run's outcome, once, with its event.
func TestFailedStepBatchIsRecordedWithTheOutcome(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			d := testenv.DemoServer(t, testenv.UseDriver(t, driver), withFanOutNodes)
			fs := &failStepsStore{Store: d.Store}
			fs.armed.Store(true)
			svc := replica(t, d, fs, time.Second, time.Hour)
			g := startFanOutGate(t, d, svc)
			ctx := context.Background()
			if steps, _ := d.Store.RunStepList(ctx, g.run.ID); len(steps) != 0 || fs.hits.Load() == 0 {
				t.Fatalf("the failing writes stored %d steps (%d writes failed)", len(steps), fs.hits.Load())
			}
			g.open()
			if r := g.waitFinal(); r.Status != store.RunSucceeded {
				t.Fatalf("run ended %s: %s", r.Status, r.Error)
			}
			steps, _ := d.Store.RunStepList(ctx, g.run.ID)
			evs := stepEvents(t, g)
			if len(steps) != 3*fanOutNodes || len(evs) != 3*fanOutNodes {
				t.Fatalf("after the run: %d steps, %d run.step events; want %d of each, recorded with the outcome", len(steps), len(evs), 3*fanOutNodes)
			}
			for _, st := range steps {
				if st.Status != "succeeded" || evs[fmt.Sprintf("%s/%d", st.Node, st.Index)] == nil {
					t.Errorf("step %+v: status or event missing", st)
				}
			}
		})
	}
}

// TestFanOutStepsOfALostAttemptAreNotRecorded: a fan-out attempt whose
// run was taken from it records none of the steps that end afterwards
// (the lease is checked in the transaction that writes them together),
// stops, and writes no outcome over the new owner's record.
func TestFanOutStepsOfALostAttemptAreNotRecorded(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			// No heartbeat in the test's time: the lease is found lost by
			// the step writes, not by the heartbeat.
			d := testenv.DemoServer(t, testenv.UseDriver(t, driver), withFanOutNodes, func(c *config.Config) {
				c.Runs.HeartbeatInterval, c.Runs.HeartbeatTimeout = time.Hour, 2*time.Hour
			})
			d.Serve(t)
			g := startFanOutGate(t, d, d.Runs)
			ctx := context.Background()
			now := time.Now().UTC()
			err := d.Store.Update(ctx, func(tx store.Tx) error {
				r, err := tx.RunGet(ctx, g.run.ID)
				if err != nil {
					return err
				}
				r.WorkerID, r.Attempt, r.HeartbeatAt = "wrk_other_replica", r.Attempt+1, now
				if err := tx.RunUpdate(ctx, r); err != nil {
					return err
				}
				return tx.AuditAppend(ctx, &store.AuditEvent{ID: airlock.NewID(airlock.PrefixEvent, now), Time: now, Type: "run.start",
					Subject: r.ID, ActorName: "test", Outcome: "success"})
			})
			if err != nil {
				t.Fatal(err)
			}
			g.open()
			testenv.Eventually(t, "the lost attempt's nodes to stop", func() bool { return executeChildren() == 0 })
			r := g.current()
			if r.Status != store.RunRunning || r.WorkerID != "wrk_other_replica" || r.Attempt != 2 {
				t.Fatalf("the old attempt wrote over the new owner's record: %+v", r)
			}
			if evs := g.events("run.finish"); len(evs) != 0 {
				t.Fatalf("the old attempt recorded an outcome: %s", evs[0].Details)
			}
			steps, _ := d.Store.RunStepList(ctx, g.run.ID)
			for _, s := range steps {
				if s.Step != "first" {
					t.Errorf("the old attempt recorded step %s of %s after losing the run", s.Step, s.Node)
				}
			}
			if len(steps) != fanOutNodes {
				t.Errorf("%d steps stored; want the %d first steps, stored before the run was taken", len(steps), fanOutNodes)
			}
			for _, e := range g.events("run.step") {
				if !strings.Contains(string(e.Details), `"step":"first"`) {
					t.Errorf("run.step event after the run was taken: %s", e.Details)
				}
			}
		})
	}
}

// fanOutLastProc: one step per node, so each node's step is its last;
// node batch-7's waits at a gate the test opens.
const fanOutLastProc = `apiVersion: airlock/v1
kind: Procedure
name: fan-last
owner: payments
risk: low
parameters:
  - {name: dir, type: string}
targets:
  tags: [batch]
  parallel: 8
steps:
  - name: only
    script: |
      if [ "$AIRLOCK_NODE" = batch-7 ]; then
        touch "$AIRLOCK_PARAM_DIR/at.$AIRLOCK_NODE"
        while [ ! -e "$AIRLOCK_PARAM_DIR/go" ]; do sleep 0.05; done
      fi
      echo done
`

// TestFanOutLastStepsRecordedWhileTheRunGoesOn: a node's last step does
// not hold its node while it is written, yet it is recorded while the
// run goes on (within the output's 100 ms, not at the run's end), each
// with its own event, once.
func TestFanOutLastStepsRecordedWhileTheRunGoesOn(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			d := testenv.DemoServer(t, testenv.UseDriver(t, driver), withFanOutNodes)
			d.Serve(t)
			ctx := context.Background()
			approveSource(t, d, "fan-last.yaml", fanOutLastProc)
			g := &gate{t: t, d: d, dir: t.TempDir()}
			t.Cleanup(g.open)
			r, err := d.Runs.Request(ctx, principal(t, d, "alice"), run.RequestParams{Procedure: "fan-last", Environment: "staging",
				Params: map[string]any{"dir": g.dir}})
			if err != nil {
				t.Fatal(err)
			}
			g.run = r
			testenv.Eventually(t, "the other nodes' steps to be stored while batch-7 is at its gate", func() bool {
				steps, err := d.Store.RunStepList(ctx, r.ID)
				return err == nil && len(steps) == fanOutNodes-1 && len(g.events("run.step")) == fanOutNodes-1
			})
			if _, err := os.Stat(filepath.Join(g.dir, "at.batch-7")); err != nil {
				t.Fatalf("batch-7 is not at its gate: %v", err)
			}
			if cur := g.current(); store.RunFinal(cur.Status) {
				t.Fatalf("the run ended (%s) with batch-7 at its gate", cur.Status)
			}
			g.open()
			if fin := g.waitFinal(); fin.Status != store.RunSucceeded {
				t.Fatalf("run ended %s: %s", fin.Status, fin.Error)
			}
			steps, _ := d.Store.RunStepList(ctx, r.ID)
			evs := stepEvents(t, g)
			if len(steps) != fanOutNodes || len(evs) != fanOutNodes {
				t.Fatalf("after the run: %d steps, %d run.step events; want %d of each", len(steps), len(evs), fanOutNodes)
			}
			stepsBeforeOutcome(t, g)
		})
	}
}

// unansweredStepsStore stores every transaction that writes steps under
// a lease check of their own, and then, while armed, answers it with an
// error, as a commit whose answer was lost is answered: the steps are
// stored, and their writer does not know it.
type unansweredStepsStore struct {
	store.Store
	armed atomic.Bool
	hits  atomic.Int32
}

func (s *unansweredStepsStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	held := false
	err := s.Store.Update(ctx, func(tx store.Tx) error {
		t := &failStepsTx{Tx: tx, s: &failStepsStore{}}
		err := fn(t)
		held = t.held
		return err
	})
	if err == nil && held && s.armed.Load() {
		s.hits.Add(1)
		return errors.New("test: the commit's answer was lost")
	}
	return err
}

// TestUnansweredStepWritesAreNotWrittenTwice: steps whose write was
// stored but answered with an error — a first step, a gate step, a last
// step written by the ticker — are written again with the outcome only
// if they are not stored: each has one run.step event.
func TestUnansweredStepWritesAreNotWrittenTwice(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			d := testenv.DemoServer(t, testenv.UseDriver(t, driver), withFanOutNodes)
			us := &unansweredStepsStore{Store: d.Store}
			us.armed.Store(true)
			svc := replica(t, d, us, time.Second, time.Hour)
			g := startFanOutGate(t, d, svc)
			g.open()
			if r := g.waitFinal(); r.Status != store.RunSucceeded {
				t.Fatalf("run ended %s: %s", r.Status, r.Error)
			}
			if us.hits.Load() == 0 {
				t.Fatal("no step write was answered with an error")
			}
			steps, _ := d.Store.RunStepList(context.Background(), g.run.ID)
			if evs := stepEvents(t, g); len(steps) != 3*fanOutNodes || len(evs) != 3*fanOutNodes {
				t.Fatalf("after the run: %d steps, %d run.step events; want %d of each", len(steps), len(evs), 3*fanOutNodes)
			}
			stepsBeforeOutcome(t, g)
		})
	}
}
