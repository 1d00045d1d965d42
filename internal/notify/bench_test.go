package notify_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/notify/webhook"
)

// BenchmarkDispatchWebhook: messages per second from the outbox to a
// local webhook receiver, through the real store (SQLite) and the whole
// path — plan from the audit event, deliveries stored, leased, signed,
// posted, marked. Reports msgs/s.
func BenchmarkDispatchWebhook(b *testing.B) {
	ctx := context.Background()
	s := newStore(b)
	var got atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		got.Add(1)
	}))
	defer srv.Close()
	key, _ := webhook.ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	ch := webhook.New("ci", srv.URL, key, &http.Client{Transport: tr, Timeout: 10 * time.Second}, nil)
	d := dispatcher(s, "bench", nil, ch)
	const batch = 100
	b.ResetTimer()
	start := time.Now()
	sent := 0
	for sent < b.N {
		n := min(batch, b.N-sent)
		queueTests(b, s, n, ch.Name(), time.Now())
		sent += n
		for got.Load() < int64(sent) {
			if _, err := d.Once(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(got.Load())/time.Since(start).Seconds(), "msgs/s")
}
