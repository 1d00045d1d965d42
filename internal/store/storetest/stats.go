package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/store"
)

// testStats: Stats counts runs waiting for approval, queued and
// running; outbox entries not expanded, deliveries pending and dead; and
// reports the audit log's size and its newest checkpoint. A driver that
// counts its errors (ErrorCounts) counts a refused duplicate as a
// conflict.
func testStats(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := h.New(t)
	stats := func() store.Stats {
		t.Helper()
		st, err := s.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return *st
	}
	if got := stats(); got != (store.Stats{AuditSize: got.AuditSize}) {
		t.Fatalf("fresh store: %+v", got)
	}
	p := seedProcedure(t, s)
	a, b, c, d := newRun(p, "", t0), newRun(p, "", t0.Add(time.Second)), newRun(p, "", t0), newRun(p, "", t0)
	c.Status, c.ApprovalsRequired = store.RunPending, 1
	d.Status, d.FinishedAt = store.RunSucceeded, t0.Add(time.Minute)
	insertRuns(t, s, a, b, c, d)
	if r := claim(t, s, "w1", t0.Add(10*time.Second)); r == nil {
		t.Fatal("no run claimed")
	}

	s.SetOutboxTypes([]string{"run.finish"})
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.AuditAppend(ctx, event("run.finish", a.ID)) }); err != nil {
		t.Fatal(err)
	}
	got := stats()
	if got.RunsQueued != 1 || got.RunsPending != 1 || got.RunsRunning != 1 || got.OutboxOpen != 1 || got.DeliveriesPending != 0 {
		t.Fatalf("after requests and a claim: %+v, want 1 queued, 1 pending, 1 running, 1 outbox entry open", got)
	}
	es, err := s.OutboxClaim(ctx, "w1", t0, t0.Add(time.Minute), 10)
	if err != nil || len(es) != 1 {
		t.Fatalf("claim outbox: %d %v", len(es), err)
	}
	ds := []*store.Delivery{
		{ID: "dlv_stats_1", OutboxID: es[0].ID, Kind: "run_finished", Channel: "email", Target: "a@example.com", NextAt: t0, CreatedAt: t0},
		{ID: "dlv_stats_2", OutboxID: es[0].ID, Kind: "run_finished", Channel: "email", Target: "b@example.com", NextAt: t0, CreatedAt: t0},
	}
	if err := s.OutboxExpand(ctx, es[0].ID, "w1", ds, t0); err != nil {
		t.Fatal(err)
	}
	claimed, err := s.DeliveryClaim(ctx, "w1", t0, t0.Add(time.Minute), 10)
	if err != nil || len(claimed) != 2 {
		t.Fatalf("claim deliveries: %d %v", len(claimed), err)
	}
	if err := s.DeliveryFailed(ctx, "w1", claimed[0].ID, "refused", t0, true); err != nil {
		t.Fatal(err)
	}
	size, err := s.AuditSize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	signed := t0.Add(5 * time.Minute)
	if cp, err := s.AuditCheckpointLatest(ctx); err != nil || cp != nil {
		t.Fatalf("latest checkpoint of none: %+v %v", cp, err)
	}
	if err := s.AuditCheckpointAdd(ctx, &store.Checkpoint{Size: size - 2, RootHash: "r0", Note: "n0", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if err := s.AuditCheckpointAdd(ctx, &store.Checkpoint{Size: size - 1, RootHash: "r", Note: "n", CreatedAt: signed}); err != nil {
		t.Fatal(err)
	}
	if cp, err := s.AuditCheckpointLatest(ctx); err != nil || cp.Size != size-1 || cp.Note != "n" || !cp.CreatedAt.Equal(signed) {
		t.Fatalf("latest checkpoint: %+v %v", cp, err)
	}
	got = stats()
	want := store.Stats{RunsQueued: 1, RunsPending: 1, RunsRunning: 1, DeliveriesPending: 1, DeliveriesDead: 1,
		AuditSize: size, CheckpointSize: size - 1, CheckpointAt: got.CheckpointAt}
	if got != want || !got.CheckpointAt.Equal(signed) {
		t.Fatalf("after expansion, a dead letter and a checkpoint:\n got %+v\nwant %+v (checkpoint at %s)", got, want, signed)
	}

	counter, ok := s.(interface{ ErrorCounts() map[string]int64 })
	if !ok {
		return
	}
	before := counter.ErrorCounts()["conflict"]
	dup := newRun(p, "", t0)
	dup.ID = a.ID
	err = s.Update(ctx, func(tx store.Tx) error {
		if err := tx.AuditAppend(ctx, event("run.request", dup.ID)); err != nil {
			return err
		}
		return tx.RunInsert(ctx, dup)
	})
	wantKind(t, err, airlock.Conflict)
	if after := counter.ErrorCounts()["conflict"]; after != before+1 {
		t.Fatalf("conflicts counted: %d, then %d after a duplicate", before, after)
	}
}
