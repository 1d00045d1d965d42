package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/store"
)

// Dispatcher turns outbox entries into deliveries and sends them. One
// runs on every replica; leases make each entry and each delivery one
// replica's at a time.
type Dispatcher struct {
	Store   store.Store
	Planner *Planner
	Log     *slog.Logger
	// Owner names this replica on leases.
	Owner string
	Now   func() time.Time
	// Lease, MaxAttempts and MaxBackoff: see config.Notify.
	Lease       time.Duration
	MaxAttempts int
	MaxBackoff  time.Duration
	// ExpiryWarning: pending runs expiring within it are reminded once.
	ExpiryWarning time.Duration
	// Poll is how often the dispatcher looks for work when not woken;
	// Parallel how many messages it sends at once.
	Poll     time.Duration
	Parallel int

	wake chan struct{}
	once sync.Once
}

func (d *Dispatcher) init() {
	d.once.Do(func() {
		d.wake = make(chan struct{}, 1)
		if d.Now == nil {
			d.Now = time.Now
		}
		if d.Poll <= 0 {
			d.Poll = time.Second
		}
		if d.Parallel <= 0 {
			d.Parallel = 16
		}
		if d.Lease <= 0 {
			d.Lease = time.Minute
		}
		if d.MaxAttempts <= 0 {
			d.MaxAttempts = 12
		}
		if d.MaxBackoff <= 0 {
			d.MaxBackoff = time.Hour
		}
	})
}

// Wake makes the dispatcher look for work now (after a commit that
// queued some).
func (d *Dispatcher) Wake() {
	d.init()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run works until ctx ends. Failures are logged and retried: nothing here
// reaches the act that caused a notification.
func (d *Dispatcher) Run(ctx context.Context) {
	d.init()
	t := time.NewTicker(d.Poll)
	defer t.Stop()
	for {
		busy, err := d.Once(ctx)
		if err != nil && ctx.Err() == nil {
			d.Log.Warn("notifications", "err", err)
		}
		if busy {
			continue // more may be waiting
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-d.wake:
		}
	}
}

// Once does one round: reminders, expansion, one batch of sends. busy
// says there was work (so there may be more).
func (d *Dispatcher) Once(ctx context.Context) (busy bool, err error) {
	d.init()
	errs := []error{d.remind(ctx)}
	n, err := d.expand(ctx)
	errs = append(errs, err)
	m, err := d.deliver(ctx)
	errs = append(errs, err)
	return n+m > 0, errors.Join(errs...)
}

// remind queues a reminder for each pending run that expires within the
// warning, once.
func (d *Dispatcher) remind(ctx context.Context) error {
	if d.ExpiryWarning <= 0 {
		return nil
	}
	now := d.Now()
	runs, err := d.Store.RunList(ctx, store.RunListParams{Status: store.RunPending, Limit: 1000})
	if err != nil {
		return err
	}
	for _, r := range runs {
		if r.ExpiresAt.IsZero() || r.ExpiresAt.Sub(now) > d.ExpiryWarning || !r.ExpiresAt.After(now) {
			continue
		}
		if _, err := d.Store.OutboxAdd(ctx, &store.OutboxEntry{ID: RunExpiring + ":" + r.ID, EventSeq: -1, Type: RunExpiring,
			Subject: r.ID, CreatedAt: now}); err != nil {
			return err
		}
	}
	return nil
}

func (d *Dispatcher) expand(ctx context.Context) (int, error) {
	now := d.Now()
	es, err := d.Store.OutboxClaim(ctx, d.Owner, now, now.Add(d.Lease), 100)
	if err != nil {
		return 0, err
	}
	for _, e := range es {
		plan, err := d.Planner.Plan(ctx, e)
		switch {
		case airlock.ErrorKind(err) == airlock.NotFound:
			// What it was about is gone: nothing to tell, ever.
			d.Log.Warn("notification about something gone: dropped", "entry", e.ID, "type", e.Type, "err", err)
			plan, err = nil, nil
		case err != nil:
			// Left for the lease to run out and a later round to try again.
			d.Log.Warn("plan notification", "entry", e.ID, "type", e.Type, "err", err)
			continue
		}
		var ds []*store.Delivery
		if plan != nil {
			for _, t := range plan.Targets {
				m := *plan.Message
				m.Target, m.Recipient = t.Target, t.Recipient
				body, err := json.Marshal(&m)
				if err != nil {
					return 0, err
				}
				dl := &store.Delivery{ID: airlock.NewID("ntf", now), OutboxID: e.ID, Kind: m.Kind, Channel: t.Channel,
					Target: t.Target, Message: body, NextAt: now, CreatedAt: now}
				if t.Recipient != nil {
					dl.UserID = t.Recipient.UserID
				}
				ds = append(ds, dl)
			}
		}
		if err := d.Store.OutboxExpand(ctx, e.ID, d.Owner, ds, now); err != nil && !errors.Is(err, store.ErrLeaseLost) {
			return 0, err
		}
	}
	return len(es), nil
}

func (d *Dispatcher) deliver(ctx context.Context) (int, error) {
	now := d.Now()
	// Only as many as are sent at once: each delivery claimed starts at
	// once, well within its lease, so that no other replica can claim it
	// while it waits its turn here.
	ds, err := d.Store.DeliveryClaim(ctx, d.Owner, now, now.Add(d.Lease), d.Parallel)
	if err != nil || len(ds) == 0 {
		return 0, err
	}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, d.Parallel)
	)
	for _, dl := range ds {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			// Each is marked as soon as it is sent: a crash then repeats
			// only what was in flight, never a whole batch.
			var e error
			if err := d.send(ctx, dl); err == nil {
				e = d.Store.DeliveryDone(ctx, d.Owner, []string{dl.ID}, d.Now())
			} else {
				e = d.failed(ctx, dl, err)
			}
			if e != nil {
				mu.Lock()
				errs = append(errs, e)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return len(ds), errors.Join(errs...)
}

func (d *Dispatcher) send(ctx context.Context, dl *store.Delivery) error {
	ch, ok := d.Planner.Channels[dl.Channel]
	if !ok {
		return Permanent(fmt.Errorf("channel %s is not configured", dl.Channel))
	}
	var m Message
	if err := json.Unmarshal(dl.Message, &m); err != nil {
		return Permanent(fmt.Errorf("stored message: %w", err))
	}
	m.ID = dl.ID
	// A send ends before its lease does: another replica may take the
	// delivery over only once this one gave up on it.
	ctx, cancel := context.WithTimeout(ctx, min(30*time.Second, d.Lease*3/4))
	defer cancel()
	return ch.Send(ctx, &m)
}

// failed records a failed attempt: a later one after a doubling wait
// with jitter, or a dead letter when retrying cannot help or the
// attempts are spent.
func (d *Dispatcher) failed(ctx context.Context, dl *store.Delivery, err error) error {
	dead := IsPermanent(err) || dl.Attempts >= d.MaxAttempts
	wait := time.Second << min(dl.Attempts-1, 30)
	if wait > d.MaxBackoff || wait <= 0 {
		wait = d.MaxBackoff
	}
	wait = wait/2 + rand.N(wait/2+1)
	msg := err.Error()
	if len(msg) > 1000 {
		msg = msg[:1000]
	}
	level := slog.LevelInfo
	if dead {
		level = slog.LevelWarn
	}
	d.Log.Log(ctx, level, "notification not delivered", "delivery", dl.ID, "channel", dl.Channel, "attempt", dl.Attempts,
		"dead_letter", dead, "err", msg)
	return d.Store.DeliveryFailed(ctx, d.Owner, dl.ID, msg, d.Now().Add(wait), dead)
}
