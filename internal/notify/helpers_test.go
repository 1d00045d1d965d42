package notify_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/notify"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/store/sqlite"
)

// newStore opens a SQLite store with the outbox on, closed at cleanup.
func newStore(tb testing.TB) store.Store {
	tb.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(tb.TempDir(), "a.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	s.SetOutboxTypes(notify.OutboxTypes)
	return s
}

// queueTests appends n "send a test" events for channel, dated at, in
// one transaction: each puts one entry in the outbox.
func queueTests(tb testing.TB, s store.Store, n int, channel string, at time.Time) {
	tb.Helper()
	ctx := context.Background()
	if err := s.Update(ctx, func(tx store.Tx) error {
		for range n {
			if err := tx.AuditAppend(ctx, audit.New(ctx, at, notify.Test, audit.Actor{ID: "usr_x", Name: "admin"}, channel, audit.Success, nil)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
}

// dispatcher is a dispatcher on s through ch, reading now (nil: the wall
// clock).
func dispatcher(s store.Store, owner string, now func() time.Time, ch notify.Channel) *notify.Dispatcher {
	return &notify.Dispatcher{Store: s, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Owner: owner, Now: now,
		Planner: &notify.Planner{Store: s, Channels: map[string]notify.Channel{ch.Name(): ch}}}
}
