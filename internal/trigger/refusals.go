package trigger

import (
	"context"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/store"
)

// refusals audits refused deliveries (bad authentication, a trigger not
// active, the rate limit, a bad payload) without letting whoever can
// reach the endpoint flood the audit log: per trigger and reason, the
// first refusal of a window (a minute) is a trigger.refused event at
// once; the rest of the window are counted and recorded as one event
// with their count when the window closes — at the next refusal for
// that trigger and reason after it, or at a sweep (Flush). So a
// trigger makes at most one event a minute per reason, and every
// refusal is in the log, by itself or in a count.
//
// Counts are kept in memory per replica, like the Slack handler's:
// memory is bounded by maxOpen (beyond it, refusals share one count
// recorded under the subject "*"), and a killed replica loses its open
// counts, never the first refusal of a window.
type refusals struct {
	store store.Store
	log   *slog.Logger
	now   func() time.Time

	mu   sync.Mutex
	open map[refusalKey]*tally
}

type refusalKey struct{ trigger, reason string }

type tally struct {
	start, last time.Time
	name        string
	count       int
}

const (
	refusalWindow = time.Minute
	maxOpen       = 4096
)

func newRefusals(s store.Store, log *slog.Logger, now func() time.Time) *refusals {
	return &refusals{store: s, log: log, now: now, open: map[refusalKey]*tally{}}
}

// record counts one refusal for trigger st (id, name) and audits it
// when it is the first of its window.
func (f *refusals) record(ctx context.Context, id, name, reason string, details map[string]any) {
	now := f.now()
	k := refusalKey{id, reason}
	f.mu.Lock()
	if _, ok := f.open[k]; !ok && len(f.open) >= maxOpen {
		k.trigger = "*"
	}
	t := f.open[k]
	if t != nil && now.Sub(t.start) < refusalWindow {
		t.count++
		t.last = now
		f.mu.Unlock()
		return
	}
	f.open[k] = &tally{start: now, last: now, name: name}
	f.mu.Unlock()
	d := map[string]any{"name": name, "reason": reason, "source_addr": audit.MetaFrom(ctx).SourceAddr}
	maps.Copy(d, details)
	if t != nil && t.count > 0 {
		d["earlier"] = summary(t)
	}
	f.append(ctx, now, k.trigger, d)
}

func summary(t *tally) map[string]any {
	return map[string]any{"refusals": t.count, "first_at": t.start.UTC(), "last_at": t.last.UTC()}
}

func (f *refusals) append(ctx context.Context, now time.Time, subject string, d map[string]any) {
	err := f.store.Update(ctx, func(tx store.Tx) error {
		return tx.AuditAppend(ctx, audit.New(ctx, now.UTC(), audit.TriggerRefused, audit.Actor{}, subject, audit.Denied, d))
	})
	if err != nil {
		f.log.Error("trigger: audit a refused delivery", "trigger", subject, "err", err)
	}
}

// flush records the windows that have closed (all of them, when all is
// set) with refusals counted, and forgets the rest that have closed.
func (f *refusals) flush(ctx context.Context, all bool) {
	now := f.now()
	done := map[refusalKey]*tally{}
	f.mu.Lock()
	for k, t := range f.open {
		if all || now.Sub(t.start) >= refusalWindow {
			delete(f.open, k)
			if t.count > 0 {
				done[k] = t
			}
		}
	}
	f.mu.Unlock()
	for k, t := range done {
		f.append(audit.WithMeta(context.WithoutCancel(ctx), audit.Meta{}), now, k.trigger,
			map[string]any{"name": t.name, "reason": k.reason, "earlier": summary(t)})
	}
}
