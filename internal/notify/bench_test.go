package notify_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/notify"
	"github.com/airlockhq/airlock/internal/notify/webhook"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/store/sqlite"
)

// BenchmarkDispatchWebhook: messages per second from the outbox to a
// local webhook receiver, through the real store (SQLite) and the whole
// path — plan from the audit event, deliveries stored, leased, signed,
// posted, marked. Reports msgs/s.
func BenchmarkDispatchWebhook(b *testing.B) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "a.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	s.SetOutboxTypes(notify.OutboxTypes)
	var got atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		got.Add(1)
	}))
	defer srv.Close()
	key, _ := webhook.ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	ch := webhook.New("ci", srv.URL, key, &http.Client{Transport: tr, Timeout: 10 * time.Second}, nil)
	d := &notify.Dispatcher{Store: s, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Owner: "bench",
		Planner: &notify.Planner{Store: s, Channels: map[string]notify.Channel{ch.Name(): ch}}}
	const batch = 100
	b.ResetTimer()
	start := time.Now()
	sent := 0
	for sent < b.N {
		n := min(batch, b.N-sent)
		if err := s.Update(ctx, func(tx store.Tx) error {
			for range n {
				now := time.Now()
				e := audit.New(ctx, now, notify.Test, audit.Actor{ID: "usr_x", Name: "bench"}, "webhook:ci", audit.Success, nil)
				e.ID = airlock.NewID(airlock.PrefixEvent, now)
				if err := tx.AuditAppend(ctx, e); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		sent += n
		for got.Load() < int64(sent) {
			if _, err := d.Once(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(got.Load())/time.Since(start).Seconds(), "msgs/s")
}
