package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/api"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/testenv"
)

// TestTriggersFromTheCLI: erin (NOC) proposes a bearer trigger run as
// a service account of her team and sees its secret once; she cannot
// approve it herself; bob sees what he approves and approves it; a
// delivery starts a run that show reports; erin pauses it (a delivery
// is refused), bob resumes it, erin deletes it.
func TestTriggersFromTheCLI(t *testing.T) {
	d := testenv.DemoServer(t)
	ctx := context.Background()
	now := time.Now().UTC()
	acct := &store.User{ID: airlock.NewID(airlock.PrefixUser, now), Username: "noc-bot", Kind: store.AccountService, OwnerTeam: "noc", CreatedAt: now, UpdatedAt: now}
	err := d.Store.Update(ctx, func(tx store.Tx) error {
		if err := tx.UserInsert(ctx, acct); err != nil {
			return err
		}
		g, err := tx.GroupGetByName(ctx, "noc")
		if err != nil {
			return err
		}
		if err := tx.GroupMemberAdd(ctx, &store.GroupMember{GroupID: g.ID, UserID: acct.ID, Source: store.MemberManual, CreatedAt: now}); err != nil {
			return err
		}
		return tx.AuditAppend(ctx, audit.New(ctx, now, audit.UserCreate, audit.System, acct.ID, audit.Success, map[string]any{"username": acct.Username}))
	})
	if err != nil {
		t.Fatal(err)
	}
	as := serveDemo(t, d)
	erin, bob := as("erin"), as("bob")

	if code, _, stderr := erin.run("triggers", "propose", "--name", "flush", "--procedure", "flush-cache", "--env", "staging"); code != exitUsage || !strings.Contains(stderr, "--account is required") {
		t.Fatalf("propose without --account: %d %s", code, stderr)
	}
	code, out, stderr := erin.run("triggers", "propose", "--name", "flush", "--procedure", "flush-cache", "--env", "staging",
		"--account", "noc-bot", "--auth", "bearer", "--map", "cache=$.cache")
	if code != 0 || !strings.Contains(out, "Secret (shown once") || !strings.Contains(out, "whsec_") || !strings.Contains(out, "cache ← $.cache") {
		t.Fatalf("propose: %d %s %s", code, out, stderr)
	}
	secret := strings.TrimSpace(strings.SplitN(strings.SplitN(out, "cannot be read again):\n", 2)[1], "\n", 2)[0])
	if code, _, stderr := erin.run("triggers", "approve", "flush"); code != 1 || !strings.Contains(stderr, "you proposed this trigger") {
		t.Fatalf("self-approval: %d %s", code, stderr)
	}
	code, out, stderr = bob.run("triggers", "approve", "flush", "-m", "fine")
	if code != 0 || !strings.Contains(out, "flush is active") || !strings.Contains(stderr, "Runs as:") {
		t.Fatalf("approve: %d %s %s", code, out, stderr)
	}
	hook := func() int {
		req, _ := http.NewRequest("POST", d.URL+"/api/v1/hooks/flush", bytes.NewReader([]byte(`{"cache":"sessions"}`)))
		req.Header.Set("Authorization", "Bearer "+secret)
		req.Header.Set("webhook-id", "evt-"+time.Now().Format(time.RFC3339Nano))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := hook(); c != 202 {
		t.Fatalf("delivery: %d", c)
	}
	code, out, _ = erin.run("triggers", "show", "flush", "-o", "json")
	var tj api.TriggerJSON
	if err := json.Unmarshal([]byte(out), &tj); code != 0 || err != nil || len(tj.Events) != 1 || tj.Events[0].Outcome != "started" || strings.Contains(out, secret) {
		t.Fatalf("show: %d %v %s", code, err, out)
	}
	if code, out, _ := erin.run("triggers", "list"); code != 0 || !strings.Contains(out, "flush") || !strings.Contains(out, "noc-bot") {
		t.Fatalf("list: %d %s", code, out)
	}
	if code, out, stderr := erin.run("triggers", "pause", "flush", "-m", "maintenance"); code != 0 || !strings.Contains(out, "paused") {
		t.Fatalf("pause: %d %s %s", code, out, stderr)
	}
	if c := hook(); c != 409 {
		t.Fatalf("delivery to a paused trigger: %d", c)
	}
	if code, out, stderr := bob.run("triggers", "resume", "flush"); code != 0 || !strings.Contains(out, "active") {
		t.Fatalf("resume: %d %s %s", code, out, stderr)
	}
	if code, out, stderr := erin.run("triggers", "delete", "flush"); code != 0 || !strings.Contains(out, "deleted") {
		t.Fatalf("delete: %d %s %s", code, out, stderr)
	}
	if c := hook(); c != 404 {
		t.Fatalf("delivery to a deleted trigger: %d", c)
	}
}
