package api_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/airlockhq/airlock/internal/api"
	"github.com/airlockhq/airlock/internal/testenv/fleet"
)

// The output stream of a fan-out run reports each node's progress while
// the run executes (read from this replica's memory, only what changed
// since the viewer last looked), each change once, and every node's
// final state at the end. The nodes' steps sleep until the run is
// canceled, so the running states can only have come from the live
// progress.
func TestFanOutProgressOverSSE(t *testing.T) {
	const n = 12
	f, err := fleet.Start(n, fleet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	d := newDemoEnv(t, nil)
	d.call("PUT", "/api/v1/secrets/ssh/fleet", d.tok["bob"], api.SecretRequest{Value: string(f.ClientKey)})
	for i, node := range f.Nodes {
		if code, out, _ := d.call("PUT", fmt.Sprintf("/api/v1/nodes/n%02d", i), d.tok["bob"], map[string]any{"name": fmt.Sprintf("n%02d", i),
			"address": "127.0.0.1", "port": node.Port, "user": f.User, "environment": "staging", "tags": []string{"sse"},
			"host_key": node.HostKey, "credential": "ssh/fleet"}); code != 200 && code != 201 {
			t.Fatalf("put node: %d %v", code, out)
		}
	}
	d.install(t, `apiVersion: airlock/v1
kind: Procedure
name: fleet-wait
owner: payments
risk: low
targets:
  tags: [sse]
  parallel: 12
steps:
  - name: wait
    exec: ["sleep", "600"]
`)
	code, r := d.request(t, "bob", api.RunRequest{Procedure: "fleet-wait", Environment: "staging"})
	if code != 201 {
		t.Fatalf("request: %d %v", code, r)
	}
	id := r["id"].(string)
	req, _ := http.NewRequest("GET", d.url+"/api/v1/runs/"+id+"/output", nil)
	req.Header.Set("Authorization", "Bearer "+d.tok["bob"])
	req.Header.Set("Accept", "text/event-stream")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	type nodeEvent struct{ Node, Status string }
	last := map[string]string{}
	seen := map[string]bool{} // node and data, to find a change sent twice
	running, canceled := 0, false
	event := ""
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: ") && event == "node":
			data := strings.TrimPrefix(line, "data: ")
			var ne nodeEvent
			if err := json.Unmarshal([]byte(data), &ne); err != nil {
				t.Fatalf("node event %q: %v", data, err)
			}
			if seen[data] {
				t.Errorf("node event sent twice: %s", data)
			}
			seen[data] = true
			if ne.Status == "running" && last[ne.Node] != "running" {
				running++
			}
			last[ne.Node] = ne.Status
		}
		if event == "end" {
			break
		}
		if running == n && !canceled {
			// Every node is seen running while it runs: cancel.
			canceled = true
			if code, out, _ := d.call("POST", "/api/v1/runs/"+id+"/cancel", d.tok["bob"], map[string]any{}); code != 200 {
				t.Fatalf("cancel: %d %v", code, out)
			}
		}
	}
	if err := sc.Err(); err != nil || event != "end" {
		t.Fatalf("the stream ended before the run's end event (%v); nodes seen running: %d of %d", err, running, n)
	}
	if !canceled {
		t.Fatalf("the run ended before all nodes were seen running: %v", last)
	}
	if len(last) != n {
		t.Fatalf("the stream reported %d nodes, want %d: %v", len(last), n, last)
	}
	for node, st := range last {
		if st == "running" || st == "succeeded" {
			t.Errorf("node %s ends the stream %s, want its canceled or failed state", node, st)
		}
	}
}
