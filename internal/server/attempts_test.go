package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/config"
	"github.com/airlockhq/airlock/internal/run"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/testenv"
)

// gateProc has a step that ends at once, then one that writes its PID
// and waits until the test creates the file "go" in its directory, then
// a last one. idempotent is filled in.
const gateProc = `apiVersion: airlock/v1
kind: Procedure
name: %s
title: Wait at a gate
owner: payments
risk: low
idempotent: %v
lock: gate-%s
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
  - name: last
    exec: ["echo", "last step done"]
`

// gate is one run of a gate procedure in progress.
type gate struct {
	t   *testing.T
	d   *testenv.Demo
	dir string
	run *store.Run
}

// approveGate proposes and approves a gate procedure named name.
func approveGate(t *testing.T, d *testenv.Demo, name string, idempotent bool) {
	t.Helper()
	approveSource(t, d, name+".yaml", fmt.Sprintf(gateProc, name, idempotent, name))
}

// startGate requests a run of the gate procedure name and waits until it
// is at the gate.
func startGate(t *testing.T, d *testenv.Demo, name string) *gate {
	t.Helper()
	g := &gate{t: t, d: d, dir: t.TempDir()}
	r, err := d.Runs.Request(context.Background(), principal(t, d, "alice"), run.RequestParams{Procedure: name, Environment: "staging",
		Params: map[string]any{"dir": g.dir}})
	if err != nil {
		t.Fatal(err)
	}
	g.run = r
	testenv.Eventually(t, "run "+r.ID+" to reach the gate step", func() bool { return g.pid() != 0 })
	return g
}

// pid is the gate step's shell, 0 until it has started.
func (g *gate) pid() int {
	b, err := os.ReadFile(filepath.Join(g.dir, "pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

func (g *gate) open() {
	if err := os.WriteFile(filepath.Join(g.dir, "go"), nil, 0o600); err != nil {
		g.t.Fatal(err)
	}
}

// current reads the run as stored.
func (g *gate) current() *store.Run {
	g.t.Helper()
	r, err := g.d.Store.RunGet(context.Background(), g.run.ID)
	if err != nil {
		g.t.Fatal(err)
	}
	return r
}

// waitFinal waits for the run to be final and returns it.
func (g *gate) waitFinal() *store.Run {
	g.t.Helper()
	var r *store.Run
	testenv.Eventually(g.t, "run "+g.run.ID+" to end", func() bool {
		r = g.current()
		return store.RunFinal(r.Status)
	})
	return r
}

func (g *gate) events(typ string) []*store.AuditEvent {
	g.t.Helper()
	evs, err := g.d.Store.AuditList(context.Background(), store.AuditListParams{After: -1, Subject: g.run.ID, Type: typ, Limit: 1000})
	if err != nil {
		g.t.Fatal(err)
	}
	return evs
}

// processAlive reports whether pid is a running (not zombie) process.
func processAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

// TestStepsRecordedAsTheyEnd: each step's result and its run.step event
// are stored when the step ends, not at the end of the run — a crash
// after it cannot lose them.
func TestStepsRecordedAsTheyEnd(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			d := testenv.DemoServer(t, testenv.UseDriver(t, driver))
			d.Serve(t)
			approveGate(t, d, "gated", false)
			g := startGate(t, d, "gated")
			steps, err := d.Store.RunStepList(context.Background(), g.run.ID)
			if err != nil {
				t.Fatal(err)
			}
			if len(steps) != 1 || steps[0].Step != "first" || steps[0].Status != "succeeded" || steps[0].Attempt != 1 {
				t.Fatalf("while the second step runs, the stored steps are %+v; want the first, succeeded, attempt 1", steps)
			}
			if evs := g.events("run.step"); len(evs) != 1 || !strings.Contains(string(evs[0].Details), `"step":"first"`) {
				t.Fatalf("while the second step runs, run.step events: %d", len(evs))
			}
			g.open()
			if r := g.waitFinal(); r.Status != store.RunSucceeded {
				t.Fatalf("run ended %s: %s", r.Status, r.Error)
			}
			steps, _ = d.Store.RunStepList(context.Background(), g.run.ID)
			if len(steps) != 3 || len(g.events("run.step")) != 3 {
				t.Fatalf("after the run: %d steps, %d run.step events; want 3 and 3", len(steps), len(g.events("run.step")))
			}
		})
	}
}

// TestAttemptThatLostItsRunStops: when the run is taken from a live
// worker (reaped while its writes failed, finished elsewhere), the
// worker kills the attempt's processes and writes nothing more: no
// output, no step, no outcome over the new owner's record.
func TestAttemptThatLostItsRunStops(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			d := testenv.DemoServer(t, testenv.UseDriver(t, driver), func(c *config.Config) {
				c.Runs.HeartbeatInterval, c.Runs.HeartbeatTimeout = 50*time.Millisecond, time.Hour
			})
			d.Serve(t)
			approveGate(t, d, "gated", true)
			g := startGate(t, d, "gated")
			ctx := context.Background()
			// Another replica's reaper takes the run: requeued for attempt
			// 2 and claimed by a worker that is not this one.
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
			pid := g.pid()
			testenv.Eventually(t, fmt.Sprintf("the lost attempt's gate step (pid %d) to be killed", pid), func() bool { return !processAlive(pid) })
			// Opening the gate now lets nothing of the old attempt go on.
			g.open()
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
					t.Fatalf("the old attempt recorded step %s after losing the run", s.Step)
				}
			}
			// Its output writes are refused from now on.
			if err := d.Store.RunOutputAppend(ctx, store.Lease{RunID: g.run.ID, WorkerID: "wrk_not_the_owner", Attempt: 1},
				[]*store.OutputChunk{{RunID: g.run.ID, Seq: 1000, Node: "airlock", Stream: store.StreamStdout, Data: []byte("late\n"), CreatedAt: now}}); !errors.Is(err, store.ErrLeaseLost) {
				t.Fatalf("output of a lost attempt: %v; want ErrLeaseLost", err)
			}
		})
	}
}

// TestCancelOfRunWhoseWorkerIsGone: a run whose worker stopped
// heartbeating is finished by the cancel itself — canceled, its lock
// free, its stored output certified — instead of waiting for a worker
// that will never answer.
func TestCancelOfRunWhoseWorkerIsGone(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			d := testenv.DemoServer(t, testenv.UseDriver(t, driver), func(c *config.Config) { c.Runs.HeartbeatTimeout = time.Minute })
			ctx := context.Background()
			approveGate(t, d, "gated", false)
			// Two queued runs of one lock; a worker of a process that died
			// claimed the first two minutes ago and stored some output.
			var ids []string
			for range 2 {
				r, err := d.Runs.Request(ctx, principal(t, d, "alice"), run.RequestParams{Procedure: "gated", Environment: "staging",
					Params: map[string]any{"dir": t.TempDir()}})
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, r.ID)
			}
			then := time.Now().UTC().Add(-2 * time.Minute)
			var claimed *store.Run
			err := d.Store.Update(ctx, func(tx store.Tx) error {
				var err error
				if claimed, err = tx.RunClaim(ctx, "wrk_dead", then); err != nil || claimed == nil {
					return fmt.Errorf("claim: %v %v", claimed, err)
				}
				return tx.AuditAppend(ctx, &store.AuditEvent{ID: airlock.NewID(airlock.PrefixEvent, then), Time: then, Type: "run.start",
					Subject: claimed.ID, ActorName: "test", Outcome: "success"})
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := d.Store.RunOutputAppend(ctx, store.Lease{RunID: claimed.ID, WorkerID: "wrk_dead", Attempt: claimed.Attempt},
				[]*store.OutputChunk{{RunID: claimed.ID, Seq: 1, Node: "airlock", Stream: store.StreamStdout, Data: []byte("first step done\n"), CreatedAt: then}}); err != nil {
				t.Fatal(err)
			}
			r, err := d.Runs.Cancel(ctx, principal(t, d, "alice"), claimed.ID)
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != store.RunCanceled || !strings.Contains(r.Error, "stopped heartbeating") || r.OutputBytes != 16 || r.OutputDigest == "" {
				t.Fatalf("cancel of a run whose worker is gone: %s (%s), output %d %s", r.Status, r.Error, r.OutputBytes, r.OutputDigest)
			}
			// The lock is free: the second run is claimed.
			var next *store.Run
			err = d.Store.Update(ctx, func(tx store.Tx) error {
				var err error
				if next, err = tx.RunClaim(ctx, "wrk_live", time.Now().UTC()); err != nil || next == nil {
					return fmt.Errorf("claim after cancel: %v %v", next, err)
				}
				return tx.AuditAppend(ctx, &store.AuditEvent{ID: airlock.NewID(airlock.PrefixEvent, time.Now()), Time: time.Now().UTC(),
					Type: "run.start", Subject: next.ID, ActorName: "test", Outcome: "success"})
			})
			if err != nil || claimed.ID != ids[0] || next.ID != ids[1] {
				t.Fatalf("the canceled run's lock is still held: %v", err)
			}
		})
	}
}

// TestShutdownHandsBackItsRuns: a graceful shutdown stops the runs it
// executes and records each: an idempotent one is handed back to the
// queue (and finished by the next start), one that is not is failed
// with the reason. None is left running.
func TestShutdownHandsBackItsRuns(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			d := testenv.DemoServer(t, testenv.UseDriver(t, driver))
			approveGate(t, d, "again", true)
			approveGate(t, d, "once", false)
			ctx, stop := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); d.Runs.Start(ctx) }()
			again, once := startGate(t, d, "again"), startGate(t, d, "once")
			stop()
			select {
			case <-done:
			case <-time.After(time.Minute):
				t.Fatal("waited a minute for the run service to shut down")
			}
			for _, pid := range []int{again.pid(), once.pid()} {
				if processAlive(pid) {
					t.Fatalf("a step (pid %d) outlived the shutdown", pid)
				}
			}
			if r := once.current(); r.Status != store.RunFailed || !strings.Contains(r.Error, "shut down") {
				t.Fatalf("non-idempotent run after shutdown: %s (%s)", r.Status, r.Error)
			}
			if r := again.current(); r.Status != store.RunQueued || !strings.Contains(r.Error, "handed back") {
				t.Fatalf("idempotent run after shutdown: %s (%s)", r.Status, r.Error)
			}
			if len(again.events("run.requeue")) != 1 {
				t.Fatal("the hand-back is not audited")
			}
			// The next start runs it again, as attempt 2, to the end.
			again.open()
			if err := os.Remove(filepath.Join(again.dir, "pid")); err != nil {
				t.Fatal(err)
			}
			d.Serve(t)
			r := again.waitFinal()
			if r.Status != store.RunSucceeded || r.Attempt != 2 {
				t.Fatalf("handed-back run: %s at attempt %d (%s)", r.Status, r.Attempt, r.Error)
			}
			steps, _ := d.Store.RunStepList(context.Background(), r.ID)
			var per [3]int
			for _, s := range steps {
				per[s.Attempt]++
			}
			if per[1] < 1 || per[2] != 3 {
				t.Fatalf("steps per attempt %v: want attempt 1's first step and attempt 2's three", per)
			}
		})
	}
}
