package api_test

import (
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

	// The procedure's timeout ends the run as timed_out.
	start := time.Now()
	_, r = d.request(t, "bob", api.RunRequest{Procedure: "slow", Environment: "staging"})
	final = d.waitRun(t, d.tok["bob"], r["id"].(string))
	if final["status"] != "timed_out" || time.Since(start) > 15*time.Second {
		t.Fatalf("timeout: %v %v", final["status"], final["error"])
	}

	// Two runs with one lock: the second waits for the first; cancel
	// kills the running one, then the second starts.
	_, a := d.request(t, "bob", api.RunRequest{Procedure: "patient", Environment: "staging"})
	_, b := d.request(t, "bob", api.RunRequest{Procedure: "patient", Environment: "staging"})
	waitStatus(t, d, a["id"].(string), "running")
	time.Sleep(300 * time.Millisecond)
	if _, got, _ := d.call("GET", "/api/v1/runs/"+b["id"].(string), d.tok["bob"], nil); got["status"] != "queued" {
		t.Fatalf("second run of the same lock is %v, want queued", got["status"])
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

func waitStatus(t *testing.T, d *demoEnv, id, want string) {
	t.Helper()
	for range 500 {
		_, out, _ := d.call("GET", "/api/v1/runs/"+id, d.tok["bob"], nil)
		if out["status"] == want {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("run %s never became %s", id, want)
}
