package api_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/airlockhq/airlock/internal/api"
	"github.com/airlockhq/airlock/internal/testenv"
)

const fleetProc = `apiVersion: airlock/v1
kind: Procedure
name: fleet-hello
owner: payments
risk: low
parameters:
  - {name: greeting, type: string, default: hello}
targets:
  tags: [fleet]
  parallel: 5
steps:
  - name: hello
    exec: ["echo", "{{ .params.greeting }} from {{ .node.name }}"]
  - name: env
    script: |
      echo "$AIRLOCK_NODE/$AIRLOCK_PARAM_GREETING"
`

// TestSSHFanOut runs on 20 real sshd nodes with parallelism 5; the node
// whose host key does not match its pin fails alone, with a clear
// message, and the other 19 succeed.
func TestSSHFanOut(t *testing.T) {
	fleet := testenv.StartSSHD(t, 20)
	d := newDemoEnv(t, nil)
	if code, out, _ := d.call("PUT", "/api/v1/secrets/ssh/fleet", d.tok["bob"], api.SecretRequest{Value: string(fleet.ClientKey)}); code != 200 {
		t.Fatalf("secret: %d %v", code, out)
	}
	for i, n := range fleet.Nodes {
		key := n.HostKey
		if i == 7 {
			key = fleet.Nodes[8].HostKey // node-07's pin is wrong: as if the host changed
		}
		node := map[string]any{"name": fmt.Sprintf("node-%02d", i), "address": "127.0.0.1", "port": n.Port, "user": fleet.User,
			"environment": "staging", "tags": []string{"fleet"}, "host_key": key, "credential": "ssh/fleet"}
		if code, out, _ := d.call("PUT", fmt.Sprintf("/api/v1/nodes/node-%02d", i), d.tok["bob"], node); code != 200 {
			t.Fatalf("node: %d %v", code, out)
		}
	}
	d.install(t, fleetProc)
	// The dry resolution shows the 20 targets first.
	code, plan, _ := d.call("POST", "/api/v1/procedures/fleet-hello/plan", d.tok["bob"], api.RunRequest{Environment: "staging"})
	if code != 200 || len(plan["targets"].([]any)) != 20 || plan["decision"] != "run" {
		t.Fatalf("plan: %d %v", code, plan)
	}
	code, r := d.request(t, "bob", api.RunRequest{Procedure: "fleet-hello", Environment: "staging", Params: map[string]any{"greeting": "hi; id"}})
	if code != 201 {
		t.Fatalf("%d %v", code, r)
	}
	final := d.waitRun(t, d.tok["bob"], r["id"].(string))
	out := d.output(t, d.tok["bob"], r["id"].(string))
	if final["status"] != "failed" || final["error"] != "failed on 1 of 20 nodes: node-07" {
		t.Fatalf("run: %v %v\n%s", final["status"], final["error"], out)
	}
	nodes := final["nodes"].([]any)
	for _, n := range nodes {
		n := n.(map[string]any)
		name := n["node"].(string)
		if name == "node-07" {
			if n["status"] != "failed" || !strings.Contains(n["error"].(string), "host key of node node-07 changed") {
				t.Errorf("node-07: %v", n)
			}
			continue
		}
		if n["status"] != "succeeded" {
			t.Errorf("%s: %v", name, n)
		}
		if !strings.Contains(out, "hi; id from "+name+"\n") || !strings.Contains(out, name+"/hi; id\n") {
			t.Errorf("no output from %s", name)
		}
	}
	if len(nodes) != 20 {
		t.Fatalf("%d node results", len(nodes))
	}
	if len(final["steps"].([]any)) != 38 {
		t.Fatalf("%d step results, want 19 nodes × 2 steps", len(final["steps"].([]any)))
	}
}
