package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/testenv"
)

// TestDemoReplicasOnPostgres starts two demo processes on one PostgreSQL
// database and one data directory (shared keys), as docs/operations.md
// describes: the second finds the demo data, both are ready, and runs
// requested on either are worked by the cluster and seen on both.
func TestDemoReplicasOnPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the binary")
	}
	dbURL := testenv.PostgresSchema(t)
	bin := buildBinary(t)
	data := t.TempDir()
	a := startDemoArgs(t, bin, data, []string{"--database-url", dbURL})
	b := startDemoArgs(t, bin, data, []string{"--database-url", dbURL})
	if len(a.creds.Users) == 0 || len(b.creds.Users) != 0 {
		t.Fatalf("the first replica should create the demo users (%d) and the second find them (%d)", len(a.creds.Users), len(b.creds.Users))
	}
	pw := map[string]string{}
	for _, u := range a.creds.Users {
		pw[u.Username] = u.Password
	}
	for _, p := range []*demoProcess{a, b} {
		if code, out := (&apiClient{t: t, url: p.creds.URL}).do("GET", "/readyz", nil); code != 200 {
			t.Fatalf("%s/readyz: %d %v", p.creds.URL, code, out)
		}
	}
	login := func(url string) *apiClient { return (&apiClient{t: t, url: url}).as("alice", pw) }
	onA, onB := login(a.creds.URL), login(b.creds.URL)
	var ids []string
	for i, c := range []*apiClient{onA, onB, onA, onB} {
		code, out := c.do("POST", "/api/v1/runs", map[string]any{"procedure": "flush-cache", "environment": "staging",
			"params": map[string]string{"cache": "sessions"}, "reason": fmt.Sprintf("replica test %d", i)})
		if code != 201 {
			t.Fatalf("run %d: %d %v", i, code, out)
		}
		ids = append(ids, out["id"].(string))
	}
	// A run on every staging node, SSH ones included where sshd is
	// installed, requested on the second replica.
	bobA, bobB := (&apiClient{t: t, url: a.creds.URL}).as("bob", pw), (&apiClient{t: t, url: b.creds.URL}).as("bob", pw)
	code, out := bobB.do("POST", "/api/v1/runs", map[string]any{"procedure": "restart-service", "environment": "staging",
		"params": map[string]string{"service": "api"}, "reason": "replica test over ssh"})
	if code != 201 {
		t.Fatalf("restart-service: %d %v", code, out)
	}
	ids = append(ids, out["id"].(string))
	for _, id := range ids {
		waitFor(t, 2*time.Minute, func() error {
			for _, c := range []*apiClient{bobA, bobB} {
				_, out := c.do("GET", "/api/v1/runs/"+id, nil)
				if s, _ := out["status"].(string); s != "succeeded" {
					return fmt.Errorf("run %s to succeed as seen from %s: it is %q", id, c.url, s)
				}
			}
			return nil
		})
	}
}

// as signs c in as user and returns it.
func (c *apiClient) as(user string, pw map[string]string) *apiClient {
	c.t.Helper()
	code, out := c.do("POST", "/api/v1/auth/token", map[string]string{"username": user, "password": pw[user]})
	if code != 201 {
		c.t.Fatalf("login %s at %s: %d %v", user, c.url, code, out)
	}
	c.token = out["token"].(string)
	return c
}
