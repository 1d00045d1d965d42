package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type apiClient struct {
	t     *testing.T
	url   string
	token string
}

func (c *apiClient) do(method, path string, body any) (int, map[string]any) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.url+path, rd)
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

const slowProc = `apiVersion: airlock/v1
kind: Procedure
name: %s
owner: payments
risk: low
idempotent: %v
parameters:
  - {name: file, type: string}
steps:
  - name: work
    script: |
      echo started >> "$AIRLOCK_PARAM_FILE"
      sleep %d
      echo done
`

// TestKillDuringRunAndRestart kills the server (SIGKILL) while two runs
// execute, restarts it on the same data, and expects: the run of a
// procedure that is not idempotent marked failed with the reason and not
// executed again; the idempotent one started again once and finished;
// the queue working on.
func TestKillDuringRunAndRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the binary")
	}
	bin := buildBinary(t)
	data := t.TempDir()
	env := []string{"AIRLOCK_RUNS_HEARTBEAT_INTERVAL=100ms", "AIRLOCK_RUNS_HEARTBEAT_TIMEOUT=1s"}
	first := startDemo(t, bin, data, env...)
	creds := first.creds
	login := func(user string) *apiClient {
		c := &apiClient{t: t, url: creds.URL}
		code, out := c.do("POST", "/api/v1/auth/token", map[string]string{"username": user, "password": creds.password(t, user)})
		if code != 201 {
			t.Fatalf("login %s: %d %v", user, code, out)
		}
		c.token = out["token"].(string)
		return c
	}
	alice, bob := login("alice"), login("bob")
	for _, p := range []struct {
		name  string
		idem  bool
		sleep int
	}{{"slow-once", false, 60}, {"slow-idempotent", true, 2}} {
		code, out := alice.do("POST", "/api/v1/versions", map[string]string{"source": fmt.Sprintf(slowProc, p.name, p.idem, p.sleep)})
		if code != 201 {
			t.Fatalf("propose: %d %v", code, out)
		}
		v := out["version"].(map[string]any)
		if code, out := bob.do("POST", "/api/v1/versions/"+v["id"].(string)+"/reviews", map[string]string{"decision": "approve", "digest": v["digest"].(string)}); code != 201 {
			t.Fatalf("approve: %d %v", code, out)
		}
	}
	marks := t.TempDir()
	runs := map[string]string{}
	for _, name := range []string{"slow-once", "slow-idempotent"} {
		code, out := bob.do("POST", "/api/v1/runs", map[string]any{"procedure": name, "environment": "staging",
			"params": map[string]string{"file": filepath.Join(marks, name)}})
		if code != 201 {
			t.Fatalf("run %s: %d %v", name, code, out)
		}
		runs[name] = out["id"].(string)
	}
	lines := func(name string) int {
		b, _ := os.ReadFile(filepath.Join(marks, name))
		return strings.Count(string(b), "started")
	}
	waitFor(t, 60*time.Second, func() error {
		if lines("slow-once") < 1 || lines("slow-idempotent") < 1 {
			return fmt.Errorf("both runs to start: slow-once started %d times, slow-idempotent %d", lines("slow-once"), lines("slow-idempotent"))
		}
		return nil
	})
	// Crash: SIGKILL to the demo and its sshd nodes, no chance to record
	// anything (the runs' scripts die with it: Pdeathsig). kill returns
	// once the demo is reaped, by when the kernel has closed its database
	// and released its locks and its listening socket. The restart binds
	// a port of its own, so nothing else is to be waited for: noticing
	// the lost runs, by their stale heartbeats, is the new server's job.
	first.kill(t)

	// The clients follow the server to the address it bound this time.
	second := startDemo(t, bin, data, env...)
	alice.url, bob.url = second.creds.URL, second.creds.URL
	wait := func(id string) map[string]any {
		var out map[string]any
		waitFor(t, 60*time.Second, func() error {
			_, out = bob.do("GET", "/api/v1/runs/"+id, nil)
			if s, _ := out["status"].(string); s == "running" || s == "queued" || s == "" {
				return fmt.Errorf("run %s to end: it is %q", id, s)
			}
			return nil
		})
		return out
	}
	once := wait(runs["slow-once"])
	if errMsg, _ := once["error"].(string); once["status"] != "failed" || !strings.Contains(errMsg, "worker lost") || !strings.Contains(errMsg, "not declared idempotent") {
		t.Fatalf("non-idempotent run after the crash: %v", once)
	}
	idem := wait(runs["slow-idempotent"])
	if idem["status"] != "succeeded" || idem["attempt"] != float64(2) {
		t.Fatalf("idempotent run after the crash: %v", idem)
	}
	if lines("slow-once") != 1 || lines("slow-idempotent") != 2 {
		t.Fatalf("executions: slow-once %d (want 1), slow-idempotent %d (want 2)", lines("slow-once"), lines("slow-idempotent"))
	}
	// The queue goes on.
	code, out := bob.do("POST", "/api/v1/runs", map[string]any{"procedure": "flush-cache", "environment": "staging", "params": map[string]string{"cache": "sessions"}})
	if code != 201 {
		t.Fatalf("%d %v", code, out)
	}
	if after := wait(out["id"].(string)); after["status"] != "succeeded" {
		t.Fatalf("run after restart: %v", after)
	}
}
