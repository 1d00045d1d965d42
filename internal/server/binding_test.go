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
// node pointed elsewhere after the approval, or removed from the
// inventory, does not receive the run.
func TestApprovalBindsTheNodesAsTheyWere(t *testing.T) {
	for _, c := range []struct {
		name   string
		change func(ctx context.Context, tx store.Tx, now time.Time) error
		want   string
	}{
		{"moved to another host", func(ctx context.Context, tx store.Tx, now time.Time) error {
			n, err := tx.NodeGet(ctx, "prod-app-1")
			if err != nil {
				return err
			}
			n.Address, n.User, n.UpdatedAt = "203.0.113.9", "root", now
			return tx.NodeUpsert(ctx, n)
		}, "changed since the run was approved"},
		{"removed", func(ctx context.Context, tx store.Tx, now time.Time) error {
			return tx.NodeDelete(ctx, "prod-app-1")
		}, "node prod-app-1 is no longer in the inventory"},
	} {
		t.Run(c.name, func(t *testing.T) {
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
				if err := c.change(ctx, tx, now); err != nil {
					return err
				}
				return tx.AuditAppend(ctx, &store.AuditEvent{ID: airlock.NewID(airlock.PrefixEvent, now), Time: now, Type: "node.put",
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
			if got.Status != store.RunFailed || !strings.Contains(got.Error, c.want) {
				t.Fatalf("run on a node %s after the approval: %s (%s)", c.name, got.Status, got.Error)
			}
			if nodes, _ := d.Store.RunNodeList(ctx, r.ID); len(nodes) != 0 {
				t.Fatalf("the node got the run: %+v", nodes)
			}
		})
	}
}
