package metrics

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/airlockhq/airlock/internal/run"
	"github.com/airlockhq/airlock/internal/store"
)

var _ run.Observer = (*Runs)(nil)

// statsStore is a store whose Stats answers st, or fails with err.
type statsStore struct {
	store.Store
	st  store.Stats
	err error
}

func (s statsStore) Stats(context.Context) (*store.Stats, error) { return &s.st, s.err }

type counts map[string]int64

func (c counts) ErrorCounts() map[string]int64 { return c }

var t0 = time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)

// TestLint: every metric this package defines passes Prometheus' linter
// (names, units, HELP).
func TestLint(t *testing.T) {
	reg := prometheus.NewRegistry()
	runs := NewRuns(reg)
	InstrumentStore(statsStore{}, reg)
	reg.MustRegister(&Backlog{Store: statsStore{st: store.Stats{CheckpointAt: t0}}, Errors: counts{"retry": 1}, Now: func() time.Time { return t0 }})
	r := &store.Run{ProcedureName: "flush-cache", Environment: "staging", Status: store.RunSucceeded, Attempt: 1, CreatedAt: t0, QueuedAt: t0, StartedAt: t0}
	runs.RunQueued(r)
	runs.RunStarted(r)
	runs.StepFinished("flush-cache", &store.RunStep{Step: "flush", StartedAt: t0, FinishedAt: t0})
	runs.RunFinished(r)
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

// TestBacklog: the gauges come from Stats at scrape (age from the
// injected clock); a Stats that fails reports airlock_store_stats_up 0
// and no backlog gauge; error counts are reported either way; a retried
// start (attempt 2) is no new request.
func TestBacklog(t *testing.T) {
	st := store.Stats{RunsQueued: 3, RunsPending: 2, RunsRunning: 1, OutboxOpen: 4, DeliveriesPending: 5, DeliveriesDead: 6,
		AuditSize: 10, CheckpointSize: 7, CheckpointAt: t0}
	b := &Backlog{Store: statsStore{st: st}, Errors: counts{"conflict": 2}, Now: func() time.Time { return t0.Add(90 * time.Second) }}
	want := `
# HELP airlock_audit_checkpoint_age_seconds Time since the newest signed checkpoint was signed (absent before the first). Read from the database at scrape; aggregate with min.
# TYPE airlock_audit_checkpoint_age_seconds gauge
airlock_audit_checkpoint_age_seconds 90
# HELP airlock_audit_unsigned_events Audit events appended after the newest signed checkpoint. Read from the database at scrape; aggregate with max.
# TYPE airlock_audit_unsigned_events gauge
airlock_audit_unsigned_events 3
# HELP airlock_runs Runs not yet finished, by status: queued (the queue's depth), pending_approval, running. Read from the database at scrape: every replica reports the same; aggregate with max.
# TYPE airlock_runs gauge
airlock_runs{status="pending_approval"} 2
airlock_runs{status="queued"} 3
airlock_runs{status="running"} 1
# HELP airlock_notify_deliveries Notification deliveries not made, by status: pending (due or waiting to be tried again), dead (dead letters an admin may retry). Read from the database at scrape; aggregate with max.
# TYPE airlock_notify_deliveries gauge
airlock_notify_deliveries{status="dead"} 6
airlock_notify_deliveries{status="pending"} 5
# HELP airlock_notify_outbox_open Notifications not yet turned into deliveries. Read from the database at scrape; aggregate with max.
# TYPE airlock_notify_outbox_open gauge
airlock_notify_outbox_open 4
`
	if err := testutil.CollectAndCompare(b, strings.NewReader(want), "airlock_runs", "airlock_notify_outbox_open", "airlock_notify_deliveries",
		"airlock_audit_unsigned_events", "airlock_audit_checkpoint_age_seconds"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(b, "airlock_store_errors_total"); n != 1 {
		t.Errorf("store error series: %d, want 1", n)
	}

	down := &Backlog{Store: statsStore{err: errors.New("database gone")}, Errors: counts{"unavailable": 1}, Now: time.Now}
	if n := testutil.CollectAndCount(down); n != 2 {
		t.Errorf("series when Stats fails: %d, want 2 (stats_up and the error count)", n)
	}
	wantDown := `
# HELP airlock_store_stats_up 1 when this scrape read the backlog gauges from the database, 0 when it could not (they are then absent).
# TYPE airlock_store_stats_up gauge
airlock_store_stats_up 0
`
	if err := testutil.CollectAndCompare(down, strings.NewReader(wantDown), "airlock_store_stats_up"); err != nil {
		t.Error(err)
	}

	runs := NewRuns(prometheus.NewRegistry())
	runs.RunStarted(&store.Run{Environment: "staging", Attempt: 2, CreatedAt: t0, StartedAt: t0})
	if n := testutil.CollectAndCount(runs.requestToStart); n != 0 {
		t.Errorf("a second attempt's start was observed as a request")
	}
}
