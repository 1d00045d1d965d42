package api_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/api"
	"github.com/airlockhq/airlock/internal/config"
)

const lifeProcs = `apiVersion: airlock/v1
kind: Procedure
name: loud
owner: payments
risk: low
steps:
  - name: talk
    script: |
      i=0; while [ $i -lt 100 ]; do echo "0123456789012345678901234567890123456789"; i=$((i+1)); done
---
apiVersion: airlock/v1
kind: Procedure
name: slow
owner: payments
risk: low
timeout: 1s
steps:
  - name: wait
    exec: ["sleep", "30"]
---
apiVersion: airlock/v1
kind: Procedure
name: patient
owner: payments
risk: low
timeout: 1m
lock: "patient-{{ .environment }}"
steps:
  - name: wait
    exec: ["sleep", "30"]
---
apiVersion: airlock/v1
kind: Procedure
name: quick
owner: payments
risk: low
steps:
  - name: hello
    exec: ["echo", "quick"]
`

func TestTruncationTimeoutCancelExpiryAndLocks(t *testing.T) {
	d := newDemoEnv(t, func(c *config.Config) {
		c.Runs.MaxOutputBytes = 1000
		c.Runs.ApprovalTTL = 300 * time.Millisecond
		c.Runs.HeartbeatInterval = 100 * time.Millisecond
		c.Runs.HeartbeatTimeout = 2 * time.Second
	})
	for _, doc := range strings.Split(lifeProcs, "---\n") {
		d.install(t, doc)
	}

	// Output beyond the bound is cut, and the cut is marked.
	_, r := d.request(t, "bob", api.RunRequest{Procedure: "loud", Environment: "staging"})
	final := d.waitRun(t, d.tok["bob"], r["id"].(string))
	out := d.output(t, d.tok["bob"], r["id"].(string))
	if final["output_truncated"] != true || final["output_bytes"].(float64) > 1200 || !strings.Contains(out, "output truncated at the 1000-byte limit") {
		t.Fatalf("truncation: %v %v\n%s", final["output_truncated"], final["output_bytes"], out)
	}

	// The procedure's timeout ends the run as timed_out. By the run's own
	// record it ended before `sleep 30` could have: it was killed, not
	// waited for.
	_, r = d.request(t, "bob", api.RunRequest{Procedure: "slow", Environment: "staging"})
	final = d.waitRun(t, d.tok["bob"], r["id"].(string))
	if final["status"] != "timed_out" || final["error"] != "timed out after 1s" {
		t.Fatalf("timeout: %v %v", final["status"], final["error"])
	}
	if took := runTime(t, final); took < time.Second || took >= 30*time.Second {
		t.Fatalf("the timed-out run took %v by its record; want from its 1s timeout to under the 30s its command sleeps", took)
	}

	// Two runs with one lock: the second waits for the first. It waits
	// because of the lock: a run without one, requested after it, is
	// claimed past it and finishes while it stays queued (so a worker was
	// free, and the queue was not simply slow). Cancel kills the running
	// one, then the second starts.
	_, a := d.request(t, "bob", api.RunRequest{Procedure: "patient", Environment: "staging"})
	waitStatus(t, d, a["id"].(string), "running") // it holds the lock
	_, b := d.request(t, "bob", api.RunRequest{Procedure: "patient", Environment: "staging"})
	_, c := d.request(t, "bob", api.RunRequest{Procedure: "quick", Environment: "staging"})
	if final := d.waitRun(t, d.tok["bob"], c["id"].(string)); final["status"] != "succeeded" {
		t.Fatalf("run without a lock: %v %v", final["status"], final["error"])
	}
	if got := runStatus(t, d, b["id"].(string)); got != "queued" {
		t.Fatalf("second run of the same lock is %v after a later run without the lock finished, want queued", got)
	}
	if got := runStatus(t, d, a["id"].(string)); got != "running" {
		t.Fatalf("first run of the lock is %v, want still running (holding the lock)", got)
	}
	if code, out, _ := d.call("POST", "/api/v1/runs/"+a["id"].(string)+"/cancel", d.tok["bob"], nil); code != 200 {
		t.Fatalf("cancel: %d %v", code, out)
	}
	if final := d.waitRun(t, d.tok["bob"], a["id"].(string)); final["status"] != "canceled" || !strings.Contains(final["error"].(string), "canceled by bob") {
		t.Fatalf("canceled run: %v", final)
	}
	waitStatus(t, d, b["id"].(string), "running")
	d.call("POST", "/api/v1/runs/"+b["id"].(string)+"/cancel", d.tok["bob"], nil)
	d.waitRun(t, d.tok["bob"], b["id"].(string))

	// A request nobody approves expires.
	_, p := d.request(t, "alice", api.RunRequest{Procedure: "flush-cache", Environment: "production", Params: map[string]any{"cache": "sessions"}})
	if final := d.waitRun(t, d.tok["alice"], p["id"].(string)); final["status"] != "expired" {
		t.Fatalf("unapproved request: %v", final)
	}
	code, resp, _ := d.call("POST", "/api/v1/runs/"+p["id"].(string)+"/approve", d.tok["bob"], api.DecisionRequest{Binding: p["binding"].(string)})
	if code != 409 {
		t.Fatalf("approving an expired request: %d %v", code, resp)
	}
}

// runStatus returns a run's status.
func runStatus(t *testing.T, d *demoEnv, id string) any {
	t.Helper()
	code, out, _ := d.call("GET", "/api/v1/runs/"+id, d.tok["bob"], nil)
	if code != 200 {
		t.Fatalf("get run %s: %d %v", id, code, out)
	}
	return out["status"]
}

// runTime is how long a final run ran by its own record.
func runTime(t *testing.T, run map[string]any) time.Duration {
	t.Helper()
	started, err1 := time.Parse(time.RFC3339Nano, fmt.Sprint(run["started_at"]))
	finished, err2 := time.Parse(time.RFC3339Nano, fmt.Sprint(run["finished_at"]))
	if err := errors.Join(err1, err2); err != nil {
		t.Fatalf("run times: %v", err)
	}
	return finished.Sub(started)
}

// waitStatus polls a run until it has the status, and fails saying so
// when it has not within a minute.
func waitStatus(t *testing.T, d *demoEnv, id, want string) {
	t.Helper()
	const limit = time.Minute
	deadline := time.Now().Add(limit)
	for {
		got := runStatus(t, d, id)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for run %s to be %s; it is %v", limit, id, want, got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
