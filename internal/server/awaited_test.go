package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/procedure"
	"github.com/airlockhq/airlock/internal/run"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/testenv"
)

// speakProc prints as many bytes as asked, on both streams.
const speakProc = `apiVersion: airlock/v1
kind: Procedure
name: speak
title: Print some output
owner: payments
risk: low
parameters:
  - {name: bytes, type: int}
steps:
  - name: speak
    script: |
      echo "to stderr" >&2
      head -c "$AIRLOCK_PARAM_BYTES" /dev/zero | tr '\0' y
      echo
  - name: again
    exec: ["echo", "done"]
`

// TestAwaitedRunIsTheRunAsStored: a run requested and awaited in one
// call (what POST /api/v1/runs with Prefer: wait does) is answered with
// the run, its nodes and its output exactly as they are stored — whether
// its output was short enough to be handed over from memory or had to be
// read back — and no more output than asked, saying there is more.
func TestAwaitedRunIsTheRunAsStored(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			d := testenv.DemoServer(t, testenv.UseDriver(t, driver))
			ctx := context.Background()
			approveSource(t, d, "speak.yaml", speakProc)
			d.Serve(t)
			alice := principal(t, d, "alice")
			for _, tc := range []struct {
				bytes, limit int
			}{{10, 1000}, {40 << 10, 1000}, {10, 2}, {40 << 10, 3}} {
				t.Run(fmt.Sprintf("%d bytes, limit %d", tc.bytes, tc.limit), func(t *testing.T) {
					a, err := d.Runs.RequestAndAwait(ctx, alice, run.RequestParams{Procedure: "speak", Environment: "staging",
						Params: map[string]any{"bytes": tc.bytes}}, time.Minute, tc.limit)
					if err != nil {
						t.Fatal(err)
					}
					if !a.Waited || !a.Ended || a.Run.Status != store.RunSucceeded {
						t.Fatalf("awaited run: waited %v, ended %v, status %s; want a run that succeeded within the wait", a.Waited, a.Ended, a.Run.Status)
					}
					stored, err := d.Store.RunGet(ctx, a.Run.ID)
					if err != nil {
						t.Fatal(err)
					}
					sameJSON(t, "run", a.Run, stored)
					nodes, err := d.Store.RunNodeList(ctx, a.Run.ID)
					if err != nil {
						t.Fatal(err)
					}
					sameJSON(t, "nodes", a.Nodes, nodes)
					out, err := d.Store.RunOutputList(ctx, a.Run.ID, 0, tc.limit)
					if err != nil {
						t.Fatal(err)
					}
					sameJSON(t, "output", a.Output, out)
					if more := len(out) == tc.limit; a.More != more {
						t.Errorf("more output: %v; want %v (%d chunks stored, limit %d)", a.More, more, len(out), tc.limit)
					}
				})
			}
		})
	}
}

// approveSource proposes the procedure in src (as alice) and approves it
// (as bob), returning the version.
func approveSource(t *testing.T, d *testenv.Demo, file, src string) *store.ProcedureVersion {
	t.Helper()
	ctx := context.Background()
	procs, err := procedure.Parse(file, []byte(src))
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
	return res.Version
}

// sameJSON fails t when got and want differ as JSON.
func sameJSON(t *testing.T, what string, got, want any) {
	t.Helper()
	g, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	w, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if string(g) != string(w) {
		t.Errorf("%s in the answer:\n%s\nstored:\n%s", what, g, w)
	}
}

// TestARequestOnAStaleCatalogPlansAgain: requests of a procedure are
// planned on the procedure and active version the last request read.
// Once that is stale — a new version approved, the procedure retired,
// here or on another replica — the next request runs the new version,
// or is refused because the procedure is retired, as a plan read from
// the store decides; never on what was cached.
func TestARequestOnAStaleCatalogPlansAgain(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			d := testenv.DemoServer(t, testenv.UseDriver(t, driver))
			ctx := context.Background()
			v1 := approveSource(t, d, "speak.yaml", speakProc)
			d.Serve(t)
			alice := principal(t, d, "alice")
			speak := func() (*run.Awaited, error) {
				return d.Runs.RequestAndAwait(ctx, alice, run.RequestParams{Procedure: "speak", Environment: "staging",
					Params: map[string]any{"bytes": 1}}, time.Minute, 1000)
			}
			for range 2 { // the second is planned on what the first read
				a, err := speak()
				if err != nil || a.Run.VersionID != v1.ID || a.Run.Status != store.RunSucceeded {
					t.Fatalf("a run of version 1: %+v, %v", a, err)
				}
			}
			v2 := approveSource(t, d, "speak.yaml", strings.Replace(speakProc, `exec: ["echo", "done"]`, `exec: ["echo", "version 2"]`, 1))
			a, err := speak()
			if err != nil || a.Run.VersionID != v2.ID || a.Run.Digest != v2.Digest {
				t.Fatalf("the first request after version 2 was approved: %+v, %v; want a run of version 2 (%s)", a, err, v2.ID)
			}
			var text strings.Builder
			for _, c := range a.Output {
				text.Write(c.Data)
			}
			if !strings.Contains(text.String(), "version 2") {
				t.Fatalf("a run of version 2 printed %q", text.String())
			}
			if _, err := d.Review.Retire(ctx, principal(t, d, "alice"), "speak", "replaced"); err != nil {
				t.Fatal(err)
			}
			if a, err := speak(); airlock.ErrorKind(err) != airlock.Conflict || !strings.Contains(err.Error(), "retired") {
				t.Fatalf("a request after the procedure was retired: %+v, %v; want a conflict saying it is retired", a, err)
			}
		})
	}
}

// TestAKeyedRequestReturnsItsRun: a request repeated with its
// Idempotency-Key returns the run the first made — planned on the
// catalog (the key then looked up in the write transaction) or on the
// store, one after the other or all at once, and after the procedure was
// retired — and only one run is stored per key.
func TestAKeyedRequestReturnsItsRun(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			d := testenv.DemoServer(t, testenv.UseDriver(t, driver))
			ctx := context.Background()
			approveSource(t, d, "speak.yaml", speakProc)
			d.Serve(t)
			alice := principal(t, d, "alice")
			request := func(key string) (*store.Run, error) {
				return d.Runs.Request(ctx, alice, run.RequestParams{Procedure: "speak", Environment: "staging",
					Params: map[string]any{"bytes": 1}, IdempotencyKey: key})
			}
			first, err := request("one") // on the store: the catalog is empty
			if err != nil {
				t.Fatal(err)
			}
			again, err := request("one") // on the catalog
			if err != nil || again.ID != first.ID {
				t.Fatalf("the request repeated with its key: %v, %v; want run %s", again, err, first.ID)
			}
			const n = 8
			ids, errs := make([]string, n), make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					r, err := request("all at once")
					if errs[i] = err; err == nil {
						ids[i] = r.ID
					}
				})
			}
			wg.Wait()
			stored, err := d.Store.RunGetByIdempotencyKey(ctx, alice.UserID, "all at once")
			if err != nil {
				t.Fatal(err)
			}
			for i := range n {
				if errs[i] == nil && ids[i] != stored.ID || errs[i] != nil && airlock.ErrorKind(errs[i]) != airlock.Conflict {
					t.Errorf("request %d with one key at once: run %q, %v; want run %s, or a conflict to retry", i, ids[i], errs[i], stored.ID)
				}
			}
			runs, err := d.Store.RunList(ctx, store.RunListParams{Limit: 500})
			if err != nil {
				t.Fatal(err)
			}
			if len(runs) != 2 {
				t.Errorf("%d runs stored; want 2, one per key", len(runs))
			}
			if _, err := d.Review.Retire(ctx, alice, "speak", "replaced"); err != nil {
				t.Fatal(err)
			}
			if again, err := request("one"); err != nil || again.ID != first.ID {
				t.Fatalf("the request repeated with its key after the procedure was retired: %v, %v; want run %s", again, err, first.ID)
			}
			if _, err := request("two"); airlock.ErrorKind(err) != airlock.Conflict {
				t.Fatalf("a new request of a retired procedure: %v; want a conflict", err)
			}
		})
	}
}
