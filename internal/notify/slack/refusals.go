package slack

import (
	"context"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/store"
)

// refusals audits the requests refused before they reached a service —
// a bad signature, a stale timestamp, a replay, an unlinked Slack user —
// without letting anyone who can reach the endpoint flood the audit
// log. Per source address, the first refusal of a window (a minute) is
// a chat.interaction_denied event at once, with its reason; the rest of
// the window are counted, and recorded as one event with their count and
// reasons when the window closes: at that source's next refusal after
// it, or by a sweep that runs while counts are open. So a source makes
// at most about one event a minute, and every refusal is in the log,
// by itself or in a count.
//
// The counts are kept in memory, per replica (the login reports keep
// theirs in the store because a throttle reads them; nothing reads
// these): N replicas make at most N events a minute per source, and the
// counts open when a replica is killed (not stopped: Close records
// them) are lost — the first refusal of each window is not. Memory is
// bounded: beyond maxSources sources at once, the others share one
// count, recorded with source_addr "*".
type refusals struct {
	store store.Store
	log   *slog.Logger
	now   func() time.Time

	mu       sync.Mutex
	open     map[string]*tally
	sweeping bool
}

type tally struct {
	start   time.Time
	last    time.Time
	count   int
	reasons map[string]int
}

const (
	refusalWindow = time.Minute
	maxSources    = 4096
	otherSources  = "*"
)

func newRefusals(s store.Store, log *slog.Logger, now func() time.Time) *refusals {
	return &refusals{store: s, log: log, now: now, open: map[string]*tally{}}
}

// record counts one refusal from ctx's source address and audits it
// when it is the first of its source's window.
func (f *refusals) record(ctx context.Context, reason string, details map[string]any) {
	now := f.now()
	addr := audit.MetaFrom(ctx).SourceAddr
	f.mu.Lock()
	if _, ok := f.open[addr]; !ok && len(f.open) >= maxSources {
		addr = otherSources
	}
	t := f.open[addr]
	if t != nil && now.Sub(t.start) < refusalWindow {
		t.count++
		t.reasons[reason]++
		t.last = now
		f.mu.Unlock()
		return
	}
	f.open[addr] = &tally{start: now, last: now, reasons: map[string]int{}}
	startSweep := !f.sweeping
	f.sweeping = true
	f.mu.Unlock()
	if startSweep {
		go f.sweep()
	}

	d := map[string]any{"reason": reason, "source_addr": addr}
	maps.Copy(d, details)
	if t != nil && t.count > 0 {
		d["earlier"] = summary(t)
	}
	f.append(ctx, now, addr, d)
}

func summary(t *tally) map[string]any {
	return map[string]any{"refusals": t.count, "reasons": t.reasons, "first_at": t.start, "last_at": t.last}
}

func (f *refusals) append(ctx context.Context, now time.Time, addr string, d map[string]any) {
	m := audit.MetaFrom(ctx)
	m.SourceAddr, m.Via = addr, "slack"
	ctx = audit.WithMeta(ctx, m)
	err := f.store.Update(ctx, func(tx store.Tx) error {
		return tx.AuditAppend(ctx, audit.New(ctx, now, audit.ChatInteractionDenied, audit.Actor{}, "", audit.Denied, d))
	})
	if err != nil {
		f.log.Error("slack: audit a refused request", "err", err)
	}
}

// flush records the windows that have closed (all, when all is set)
// with refusals counted, and forgets the empty ones.
func (f *refusals) flush(ctx context.Context, all bool) {
	now := f.now()
	done := map[string]*tally{}
	f.mu.Lock()
	for addr, t := range f.open {
		if all || now.Sub(t.start) >= refusalWindow {
			delete(f.open, addr)
			if t.count > 0 {
				done[addr] = t
			}
		}
	}
	f.mu.Unlock()
	for addr, t := range done {
		f.append(audit.WithMeta(context.WithoutCancel(ctx), audit.Meta{}), now, addr,
			map[string]any{"reason": "", "source_addr": addr, "earlier": summary(t)})
	}
}

// sweep flushes closed windows every quarter window while any is open.
func (f *refusals) sweep() {
	tick := time.NewTicker(refusalWindow / 4)
	defer tick.Stop()
	for range tick.C {
		f.flush(context.Background(), false)
		f.mu.Lock()
		if len(f.open) == 0 {
			f.sweeping = false
			f.mu.Unlock()
			return
		}
		f.mu.Unlock()
	}
}
