package notify_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/notify"
)

// overrun is a channel each of whose sends by the first replica takes
// three quarters of a lease (the most a send is given), while the other
// replica works the queue.
type overrun struct {
	mu     sync.Mutex
	now    time.Time
	other  *notify.Dispatcher
	nested bool
	sent   map[string]int
}

func (c *overrun) Name() string { return "webhook:slow" }
func (c *overrun) clock() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}
func (c *overrun) Send(ctx context.Context, m *notify.Message) error {
	c.mu.Lock()
	c.sent[m.ID]++
	nested := c.nested
	if !nested {
		c.now = c.now.Add(45 * time.Second)
		c.nested = true
	}
	c.mu.Unlock()
	if nested {
		return nil // the other replica's send
	}
	_, err := c.other.Once(ctx)
	c.mu.Lock()
	c.nested = false
	c.mu.Unlock()
	return err
}

// TestNoDeliveryOutlivesItsLeaseUnsent: a replica claims only what it
// sends at once, so a slow send leaves nothing claimed and waiting whose
// lease runs out: another replica sending meanwhile never sends the same
// delivery. (A dispatcher that claimed a batch larger than it sends at
// once sent deliveries twice, a red-team finding.)
func TestNoDeliveryOutlivesItsLeaseUnsent(t *testing.T) {
	s := newStore(t)
	ch := &overrun{now: time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC), sent: map[string]int{}}
	a, b := dispatcher(s, "replica-a", ch.clock, ch), dispatcher(s, "replica-b", ch.clock, ch)
	a.Parallel, b.Parallel = 1, 1
	ch.other = b
	queueTests(t, s, 3, ch.Name(), ch.clock())
	ctx := context.Background()
	for range 3 {
		if _, err := a.Once(ctx); err != nil {
			t.Fatal(err)
		}
	}
	ch.mu.Lock()
	ch.nested = true // what is left, b alone
	ch.mu.Unlock()
	for range 3 {
		if _, err := b.Once(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if len(ch.sent) != 3 {
		t.Fatalf("sent %d distinct deliveries, want 3: %v", len(ch.sent), ch.sent)
	}
	for id, n := range ch.sent {
		if n != 1 {
			t.Errorf("delivery %s sent %d times", id, n)
		}
	}
}
