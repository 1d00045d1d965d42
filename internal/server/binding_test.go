package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/run"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/testenv"
)

// TestApprovalBindsTheNodesAsTheyWere: an approval names the target
// nodes as resolved at the request — address, port, user, host key. A
// node pointed elsewhere after the approval does not receive the run.
func TestApprovalBindsTheNodesAsTheyWere(t *testing.T) {
	d := testenv.DemoServer(t)
	d.Serve(t)
	ctx := context.Background()
	r, err := d.Runs.Request(ctx, principal(t, d, "erin"), run.RequestParams{Procedure: "restart-service", Environment: "production",
		Params: map[string]any{"service": "api"}})
	if err != nil || r.Status != store.RunPending {
		t.Fatalf("request: %+v %v", r, err)
	}
	// The node is moved to another host: its address and user change.
	now := time.Now().UTC()
	err = d.Store.Update(ctx, func(tx store.Tx) error {
		n, err := tx.NodeGet(ctx, "prod-app-1")
		if err != nil {
			return err
		}
		n.Address, n.User, n.UpdatedAt = "203.0.113.9", "root", now
		if err := tx.NodeUpsert(ctx, n); err != nil {
			return err
		}
		return tx.AuditAppend(ctx, &store.AuditEvent{ID: airlock.NewID(airlock.PrefixEvent, now), Time: now, Type: "node.put",
			Subject: n.Name, ActorName: "test", Outcome: "success"})
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Runs.Decide(ctx, principal(t, d, "bob"), r.ID, "approve", r.Binding, "ok"); err != nil {
		t.Fatal(err)
	}
	var got *store.Run
	testenv.Eventually(t, "the approved run to end", func() bool {
		got, err = d.Store.RunGet(ctx, r.ID)
		return err == nil && store.RunFinal(got.Status)
	})
	if got.Status != store.RunFailed || !strings.Contains(got.Error, "changed since the run was approved") {
		t.Fatalf("run on a node moved after the approval: %s (%s)", got.Status, got.Error)
	}
}

// TestApprovedRunOfARemovedNodeIsRefused: a target node removed from the
// inventory after the approval does not receive the run.
func TestApprovedRunOfARemovedNodeIsRefused(t *testing.T) {
	d := testenv.DemoServer(t)
	d.Serve(t)
	ctx := context.Background()
	r, err := d.Runs.Request(ctx, principal(t, d, "erin"), run.RequestParams{Procedure: "restart-service", Environment: "production",
		Params: map[string]any{"service": "api"}})
	if err != nil || r.Status != store.RunPending {
		t.Fatalf("request: %+v %v", r, err)
	}
	now := time.Now().UTC()
	err = d.Store.Update(ctx, func(tx store.Tx) error {
		if err := tx.NodeDelete(ctx, "prod-app-1"); err != nil {
			return err
		}
		return tx.AuditAppend(ctx, &store.AuditEvent{ID: airlock.NewID(airlock.PrefixEvent, now), Time: now, Type: "node.delete",
			Subject: "prod-app-1", ActorName: "test", Outcome: "success"})
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Runs.Decide(ctx, principal(t, d, "bob"), r.ID, "approve", r.Binding, "ok"); err != nil {
		t.Fatal(err)
	}
	var got *store.Run
	testenv.Eventually(t, "the approved run to end", func() bool {
		got, err = d.Store.RunGet(ctx, r.ID)
		return err == nil && store.RunFinal(got.Status)
	})
	if got.Status != store.RunFailed || !strings.Contains(got.Error, "node prod-app-1 is no longer in the inventory") {
		t.Fatalf("run on a node removed after the approval: %s (%s)", got.Status, got.Error)
	}
	if nodes, _ := d.Store.RunNodeList(ctx, r.ID); len(nodes) != 0 {
		t.Fatalf("the removed node got the run: %+v", nodes)
	}
}
