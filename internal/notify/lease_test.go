package notify_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/notify"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/store/sqlite"
)

// slowChannel takes a while to send and counts each delivery it sent.
type slowChannel struct {
	delay time.Duration
	mu    sync.Mutex
	sent  map[string]int
}

func (c *slowChannel) Name() string { return "webhook:slow" }
func (c *slowChannel) Send(ctx context.Context, m *notify.Message) error {
	time.Sleep(c.delay)
	c.mu.Lock()
	c.sent[m.ID]++
	c.mu.Unlock()
	return nil
}

// TestRT15LeaseOverrunSendsTwice: a dispatcher claims 4×Parallel
// deliveries but sends only Parallel at a time, so the last ones of a
// batch start after their lease ran out; another replica claims them
// meanwhile and both send the same delivery.
func TestRT15LeaseOverrunSendsTwice(t *testing.T) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "a.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetOutboxTypes(notify.OutboxTypes)
	ch := &slowChannel{delay: 200 * time.Millisecond, sent: map[string]int{}}
	mk := func(owner string) *notify.Dispatcher {
		return &notify.Dispatcher{Store: s, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Owner: owner,
			Lease: 300 * time.Millisecond, Parallel: 1, MaxAttempts: 12, MaxBackoff: time.Second,
			Planner: &notify.Planner{Store: s, Channels: map[string]notify.Channel{ch.Name(): ch}}}
	}
	a, b := mk("replica-a"), mk("replica-b")
	if err := s.Update(ctx, func(tx store.Tx) error {
		for range 3 {
			now := time.Now()
			e := audit.New(ctx, now, notify.Test, audit.Actor{ID: "usr_x", Name: "admin"}, "webhook:slow", audit.Success, nil)
			e.ID = airlock.NewID(airlock.PrefixEvent, now)
			if err := tx.AuditAppend(ctx, e); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	loop := func(d *notify.Dispatcher, after time.Duration) {
		defer wg.Done()
		time.Sleep(after)
		for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); {
			if _, err := d.Once(ctx); err != nil {
				t.Error(err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	wg.Add(2)
	go loop(a, 0)
	go loop(b, 350*time.Millisecond)
	wg.Wait()
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if len(ch.sent) != 3 {
		t.Fatalf("sent %d distinct deliveries, want 3: %v", len(ch.sent), ch.sent)
	}
	for id, n := range ch.sent {
		if n != 1 {
			t.Errorf("delivery %s sent %d times by two replicas: its lease ran out before its owner started it", id, n)
		}
	}
}
