package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

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
			procs, err := procedure.Parse("speak.yaml", []byte(speakProc))
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
