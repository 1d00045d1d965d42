package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/store"
)

// testOutbox: an event of a notifying type puts an outbox row in its own
// transaction (and none when the transaction rolls back or the type does
// not notify); entries and deliveries are claimed by one owner at a time
// under a lease, taken over when the lease runs out, and a lost lease
// refuses the late owner's writes; deliveries move to delivered, back to
// pending with a later attempt, or to dead letters an admin retries.
func testOutbox(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := h.New(t)
	appendEvent := func(typ, subject string, fail bool) error {
		return s.Update(ctx, func(tx store.Tx) error {
			if err := tx.AuditAppend(ctx, event(typ, subject)); err != nil {
				return err
			}
			if fail {
				return errors.New("rolled back")
			}
			return nil
		})
	}
	claimAll := func(owner string, now time.Time) []string {
		t.Helper()
		es, err := s.OutboxClaim(ctx, owner, now, now.Add(time.Minute), 100)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, e := range es {
			ids = append(ids, e.Type+":"+e.Subject)
		}
		return ids
	}
	if err := appendEvent("run.request", "run_0", false); err != nil {
		t.Fatal(err)
	}
	if got := claimAll("w1", t0); len(got) != 0 {
		t.Fatalf("outbox rows before any type notifies: %v", got)
	}
	s.SetOutboxTypes([]string{"run.request", "run.finish"})
	for _, e := range []struct {
		typ, subject string
		fail         bool
	}{{"run.request", "run_1", false}, {"run.start", "run_1", false}, {"run.finish", "run_2", true}, {"run.finish", "run_1", false}} {
		err := appendEvent(e.typ, e.subject, e.fail)
		if (err != nil) != e.fail {
			t.Fatal(err)
		}
	}
	got := claimAll("w1", t0)
	if want := []string{"run.request:run_1", "run.finish:run_1"}; !slices.Equal(got, want) {
		t.Fatalf("claimed %v, want %v (a rolled-back event and a type that does not notify have no row)", got, want)
	}
	if again := claimAll("w2", t0.Add(30*time.Second)); len(again) != 0 {
		t.Fatalf("w2 claimed entries w1 holds: %v", again)
	}
	// w1's lease runs out: w2 takes the entries over, and w1's expansion
	// is refused.
	taken, err := s.OutboxClaim(ctx, "w2", t0.Add(2*time.Minute), t0.Add(3*time.Minute), 100)
	if err != nil || len(taken) != 2 {
		t.Fatalf("w2 after the lease ran out: %d %v", len(taken), err)
	}
	delivery := func(outbox, channel, target string) *store.Delivery {
		return &store.Delivery{ID: fmt.Sprintf("dlv_%s_%s_%s", outbox, channel, target), OutboxID: outbox, Kind: "run_finished",
			Channel: channel, Target: target, UserID: "usr_a", NextAt: t0, CreatedAt: t0}
	}
	e0 := taken[0]
	ds := []*store.Delivery{delivery(e0.ID, "email", "a@example.com"), delivery(e0.ID, "webhook:ci", "ci")}
	if err := s.OutboxExpand(ctx, e0.ID, "w1", ds, t0); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("w1 expands after losing its lease: %v", err)
	}
	if err := s.OutboxExpand(ctx, e0.ID, "w2", ds, t0.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.OutboxExpand(ctx, e0.ID, "w2", ds, t0.Add(2*time.Minute)); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("expanding twice: %v", err)
	}
	// A reminder is added once.
	r := &store.OutboxEntry{ID: "run.expiring:run_1", EventSeq: -1, Type: "run.expiring", Subject: "run_1", CreatedAt: t0}
	for i, want := range []bool{true, false} {
		if added, err := s.OutboxAdd(ctx, r); err != nil || added != want {
			t.Fatalf("reminder %d: added %v %v, want %v", i, added, err, want)
		}
	}

	// Deliveries: claimed once, by one owner, when due.
	now := t0.Add(2 * time.Minute)
	claim := func(owner string, at time.Time) []*store.Delivery {
		t.Helper()
		d, err := s.DeliveryClaim(ctx, owner, at, at.Add(time.Minute), 100)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	got1 := claim("w1", now)
	if len(got1) != 2 || got1[0].Attempts != 1 {
		t.Fatalf("claimed %d deliveries (attempts %v)", len(got1), got1)
	}
	if more := claim("w2", now); len(more) != 0 {
		t.Fatalf("w2 claimed leased deliveries: %d", len(more))
	}
	if err := s.DeliveryDone(ctx, "w1", []string{got1[0].ID}, now); err != nil {
		t.Fatal(err)
	}
	if err := s.DeliveryFailed(ctx, "w1", got1[1].ID, "connection refused", now.Add(time.Second), false); err != nil {
		t.Fatal(err)
	}
	if d := claim("w2", now); len(d) != 0 {
		t.Fatalf("a failed delivery came back before its next attempt: %d", len(d))
	}
	retry := claim("w2", now.Add(time.Second))
	if len(retry) != 1 || retry[0].ID != got1[1].ID || retry[0].Attempts != 2 || retry[0].LastError != "connection refused" {
		t.Fatalf("the retry: %+v", retry)
	}
	// The late owner (w1) cannot mark what w2 now holds.
	if err := s.DeliveryDone(ctx, "w1", []string{retry[0].ID}, now); err != nil {
		t.Fatal(err)
	}
	if d, _ := s.DeliveryGet(ctx, retry[0].ID); d.Status != store.DeliveryPending {
		t.Fatalf("w1 marked w2's delivery %s", d.Status)
	}
	if err := s.DeliveryFailed(ctx, "w2", retry[0].ID, "410 gone", now, true); err != nil {
		t.Fatal(err)
	}
	dead, err := s.DeliveryList(ctx, store.DeliveryListParams{Status: store.DeliveryDead})
	if err != nil || len(dead) != 1 || dead[0].LastError != "410 gone" {
		t.Fatalf("dead letters: %v %v", dead, err)
	}
	if d := claim("w2", now.Add(time.Hour)); len(d) != 0 {
		t.Fatal("a dead letter was claimed")
	}
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.DeliveryRetry(ctx, dead[0].ID, now) }); err == nil {
		t.Fatal("retrying a dead letter without an audit event was committed")
	}
	if err := s.Update(ctx, func(tx store.Tx) error {
		if err := tx.DeliveryRetry(ctx, dead[0].ID, now); err != nil {
			return err
		}
		return tx.AuditAppend(ctx, event("notify.retry", dead[0].ID))
	}); err != nil {
		t.Fatal(err)
	}
	if d := claim("w1", now.Add(time.Minute)); len(d) != 1 || d[0].Attempts != 1 {
		t.Fatalf("after the retry: %+v", d)
	}
	delivered, _ := s.DeliveryList(ctx, store.DeliveryListParams{Status: store.DeliveryDelivered, OutboxID: e0.ID})
	if len(delivered) != 1 || !delivered[0].DeliveredAt.Equal(now) {
		t.Fatalf("delivered: %+v", delivered)
	}

	// Many claimers at once: each delivery goes to one of them.
	var all []*store.Delivery
	for i := range 50 {
		all = append(all, delivery("obx_many", "webhook:ci", fmt.Sprint(i)))
	}
	if _, err := s.OutboxAdd(ctx, &store.OutboxEntry{ID: "obx_many", EventSeq: -1, Type: "notify.test", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.OutboxClaim(ctx, "w9", now, now.Add(time.Minute), 100); err != nil {
		t.Fatal(err)
	}
	if err := s.OutboxExpand(ctx, "obx_many", "w9", all, now); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]string{}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := fmt.Sprint("c", w)
			for {
				ds, err := s.DeliveryClaim(ctx, owner, now.Add(2*time.Minute), now.Add(3*time.Minute), 7)
				if err != nil {
					t.Error(err)
					return
				}
				if len(ds) == 0 {
					return
				}
				mu.Lock()
				for _, d := range ds {
					if o, ok := seen[d.ID]; ok {
						t.Errorf("%s claimed by %s and %s", d.ID, o, owner)
					}
					seen[d.ID] = owner
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != 50 {
		t.Fatalf("claimed %d of 50 deliveries", len(seen))
	}

	// Subscriptions: set, changed, listed.
	at := t0
	set := func(kind, channel string, on bool) {
		t.Helper()
		at = at.Add(time.Second)
		if err := s.SubscriptionSet(ctx, []*store.Subscription{{UserID: "usr_a", Kind: kind, Channel: channel, Enabled: on, UpdatedAt: at}}); err != nil {
			t.Fatal(err)
		}
	}
	set("run_finished", "email", false)
	set("approval_needed", "slack", true)
	set("run_finished", "email", true)
	subs, err := s.SubscriptionList(ctx, "usr_a")
	if err != nil || len(subs) != 2 || subs[1].Kind != "run_finished" || !subs[1].Enabled || !subs[1].UpdatedAt.Equal(at) {
		t.Fatalf("subscriptions: %+v %v", subs, err)
	}
}
