package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/store"
)

// testStanding: schedules and triggers round-trip, a live name is taken
// once per kind (a deleted one frees it), a service account keeps its
// kind and team, and a standing request records one outcome per key —
// the guard that makes one run per schedule tick across replicas.
func testStanding(t *testing.T, h Harness, t0 time.Time) {
	ctx := context.Background()
	s, _ := h.New(t)
	svc := newUser("ci-bot")
	svc.Kind, svc.OwnerTeam, svc.CreatedAt, svc.UpdatedAt = store.AccountService, "platform", t0, t0
	insertUser(t, s, svc)
	if u, err := s.UserGetByUsername(ctx, "ci-bot"); err != nil || u.Kind != store.AccountService || u.OwnerTeam != "platform" {
		t.Fatalf("service account: %+v %v", u, err)
	}
	update := func(fn func(tx store.Tx) error) error {
		return s.Update(ctx, func(tx store.Tx) error {
			if err := fn(tx); err != nil {
				return err
			}
			return tx.AuditAppend(ctx, event("schedule.propose", ""))
		})
	}
	sch := &store.Standing{ID: "sch_1", Kind: store.StandingSchedule, Name: "nightly", ProcedureID: "prc_1", ProcedureName: "rotate",
		Environment: "staging", Params: []byte(`{"n":1}`), Spec: []byte(`{"cron":"0 3 * * *"}`), Digest: "sha256:d", Binding: "b1",
		Targets: []string{"web-1"}, ApprovalsRequired: 1, Status: store.StandingPending, ProposerID: "usr_a", ProposerName: "alice",
		ProposedAt: t0, CreatedAt: t0, UpdatedAt: t0}
	if err := update(func(tx store.Tx) error { return tx.StandingInsert(ctx, sch) }); err != nil {
		t.Fatal(err)
	}
	again := *sch
	again.ID = "sch_2"
	wantKind(t, update(func(tx store.Tx) error { return tx.StandingInsert(ctx, &again) }), airlock.Conflict)
	trg := again
	trg.ID, trg.Kind, trg.Secret, trg.AccountID, trg.AccountName = "trg_1", store.StandingTrigger, []byte{1, 2}, svc.ID, svc.Username
	if err := update(func(tx store.Tx) error { return tx.StandingInsert(ctx, &trg) }); err != nil {
		t.Fatalf("a trigger may share a schedule's name: %v", err)
	}
	got, err := s.StandingGetByName(ctx, store.StandingSchedule, "nightly")
	if err != nil || got.ID != sch.ID || string(got.Params) != `{"n":1}` || !slices.Equal(got.Targets, sch.Targets) || !got.CreatedAt.Equal(t0) {
		t.Fatalf("get: %+v %v", got, err)
	}
	got.Status, got.Cursor, got.ProposedAt, got.UpdatedAt = store.StandingActive, t0.Add(time.Hour), t0.Add(2*time.Hour), t0.Add(time.Minute)
	if err := update(func(tx store.Tx) error { return tx.StandingUpdate(ctx, got) }); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.StandingGet(ctx, "sch_1"); got.Status != store.StandingActive || !got.Cursor.Equal(t0.Add(time.Hour)) || !got.ProposedAt.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("after update: %+v", got)
	}
	if l, _ := s.StandingList(ctx, store.StandingTrigger, ""); len(l) != 1 || l[0].ID != "trg_1" || string(l[0].Secret) != "\x01\x02" {
		t.Fatalf("triggers: %+v", l)
	}
	a := &store.StandingApproval{ID: "sap_1", StandingID: "sch_1", ApproverID: "usr_b", ApproverName: "bob", Decision: "approve", Binding: "b1", CreatedAt: t0}
	if err := update(func(tx store.Tx) error { return tx.StandingApprovalInsert(ctx, a) }); err != nil {
		t.Fatal(err)
	}
	if l, _ := s.StandingApprovalList(ctx, "sch_1"); len(l) != 1 || *l[0] != *a {
		t.Fatalf("approvals: %+v", l)
	}
	tick := &store.StandingEvent{StandingID: "sch_1", Key: "2026-01-01T03:00:00Z", At: t0, Outcome: "started", RunID: "run_1"}
	if err := update(func(tx store.Tx) error { return tx.StandingEventInsert(ctx, tick) }); err != nil {
		t.Fatal(err)
	}
	dup := *tick
	dup.RunID = "run_2"
	wantKind(t, update(func(tx store.Tx) error { return tx.StandingEventInsert(ctx, &dup) }), airlock.Conflict)
	if n, err := s.StandingEventCount(ctx, "sch_1", t0); err != nil || n != 1 {
		t.Fatalf("count: %d %v", n, err)
	}
	if l, _ := s.StandingEventList(ctx, "sch_1", 10); len(l) != 1 || *l[0] != *tick {
		t.Fatalf("events: %+v", l)
	}
	// Deleted, its name is free again.
	got.Status = store.StandingDeleted
	if err := update(func(tx store.Tx) error { return tx.StandingUpdate(ctx, got) }); err != nil {
		t.Fatal(err)
	}
	if err := update(func(tx store.Tx) error { return tx.StandingInsert(ctx, &again) }); err != nil {
		t.Fatalf("name of a deleted schedule: %v", err)
	}
}
