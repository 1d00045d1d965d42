package notify_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/notify"
	"github.com/airlockhq/airlock/internal/store"
)

// flaky is a channel that fails with err until told otherwise.
type flaky struct {
	mu   sync.Mutex
	err  error
	sent []string
}

func (f *flaky) Name() string { return "webhook:ci" }
func (f *flaky) Send(_ context.Context, m *notify.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.sent = append(f.sent, m.ID)
	return nil
}

// TestRetriesBackOffThenDeadLetter: a failing channel is tried again
// after a wait that doubles (within jitter) and never beyond the cap;
// after the last attempt the delivery is a dead letter; a permanent
// error makes one at once. The clock is the test's.
func TestRetriesBackOffThenDeadLetter(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	now := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	ch := &flaky{err: errors.New("503")}
	d := dispatcher(s, "t", func() time.Time { return now }, ch)
	d.MaxAttempts, d.MaxBackoff = 4, 3*time.Second
	test := func() { t.Helper(); queueTests(t, s, 1, ch.Name(), now) }
	test()
	one := func() *store.Delivery {
		t.Helper()
		if _, err := d.Once(ctx); err != nil {
			t.Fatal(err)
		}
		ds, err := s.DeliveryList(ctx, store.DeliveryListParams{})
		if err != nil || len(ds) == 0 {
			t.Fatalf("deliveries: %v %v", ds, err)
		}
		return ds[0]
	}
	dl := one()
	var waits []time.Duration
	for dl.Status == store.DeliveryPending {
		wait := dl.NextAt.Sub(now)
		waits = append(waits, wait)
		if d2 := one(); d2.Attempts != dl.Attempts {
			t.Fatalf("tried again %v before its time", wait)
		}
		now = dl.NextAt
		dl = one()
	}
	if dl.Status != store.DeliveryDead || dl.Attempts != 4 || dl.LastError != "503" {
		t.Fatalf("after the attempts: %+v", dl)
	}
	// Waits after attempts 1, 2, 3: about 1 s, 2 s, then the 3 s cap
	// (each between half and all of it).
	for i, max := range []time.Duration{time.Second, 2 * time.Second, 3 * time.Second} {
		if i >= len(waits) || waits[i] < max/2 || waits[i] > max {
			t.Fatalf("waits %v: attempt %d should wait between %v and %v", waits, i+1, max/2, max)
		}
	}
	// A permanent error: a dead letter at the first attempt.
	ch.mu.Lock()
	ch.err = notify.Permanent(errors.New("410 gone"))
	ch.mu.Unlock()
	test()
	if dl := one(); dl.Status != store.DeliveryDead || dl.Attempts != 1 || dl.LastError != "410 gone" {
		t.Fatalf("a permanent error: %+v", dl)
	}
	if len(ch.sent) != 0 {
		t.Fatalf("sent %v", ch.sent)
	}
}

// TestNotificationAboutSomethingGoneIsDropped: an entry whose subject no
// longer exists is dropped at once, not retried every lease for ever.
func TestNotificationAboutSomethingGoneIsDropped(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	now := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	d := dispatcher(s, "t", func() time.Time { return now }, &flaky{})
	if _, err := s.OutboxAdd(ctx, &store.OutboxEntry{ID: "run.expiring:run_gone", EventSeq: -1, Type: notify.RunExpiring,
		Subject: "run_gone", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Once(ctx); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Hour) // every lease long over
	if left, err := s.OutboxClaim(ctx, "other", now, now.Add(time.Minute), 10); err != nil || len(left) != 0 {
		t.Fatalf("the entry is still waiting: %v %v", left, err)
	}
}
