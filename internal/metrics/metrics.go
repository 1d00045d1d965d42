// Package metrics defines Airlock's Prometheus metrics beyond HTTP's:
// what runs do (Runs, which the run service calls through its Observer
// interface), how long audit appends take (InstrumentStore), and the
// backlogs and database errors read at each scrape (Backlog).
//
// Counters and histograms count what happened in this process: across
// replicas, sum them. Backlog's gauges are read from the database, so
// every replica reports the same values: aggregate them with max, never
// sum.
//
// Labels are bounded: procedure and step names come from the reviewed
// catalog, environments and statuses from the configuration and the
// code. Nothing is labelled by run, person or parameter. No service
// imports this package; the server wires it in.
package metrics

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/airlockhq/airlock/internal/store"
)

// Runs records what runs do. It implements run.Observer.
type Runs struct {
	finished       *prometheus.CounterVec
	requestToStart *prometheus.HistogramVec
	approvalWait   *prometheus.HistogramVec
	stepDuration   *prometheus.HistogramVec
}

// NewRuns registers the run metrics with reg.
func NewRuns(reg prometheus.Registerer) *Runs {
	m := &Runs{
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_runs_finished_total",
			Help: "Runs that reached a final status (succeeded, failed, timed_out, canceled, denied, expired), by procedure, environment and status; counted by the replica that recorded the end.",
		}, []string{"procedure", "environment", "status"}),
		requestToStart: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "airlock_run_request_to_start_seconds",
			Help:    "Time from a run's request to its first start by a worker, approval wait included, by environment; observed by the replica that started it.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 24 * 3600},
		}, []string{"environment"}),
		approvalWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "airlock_run_approval_wait_seconds",
			Help:    "Time from the request of a run that needed approval to the approval that queued it, by environment; observed by the replica that took the approval.",
			Buckets: []float64{1, 5, 15, 30, 60, 300, 900, 1800, 3600, 2 * 3600, 4 * 3600, 8 * 3600, 24 * 3600},
		}, []string{"environment"}),
		stepDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "airlock_run_step_duration_seconds",
			Help:    "Duration of a procedure's step on one node, by procedure and step name; observed by the replica that ran it.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600},
		}, []string{"procedure", "step"}),
	}
	reg.MustRegister(m.finished, m.requestToStart, m.approvalWait, m.stepDuration)
	return m
}

// RunQueued implements run.Observer.
func (m *Runs) RunQueued(r *store.Run) {
	m.approvalWait.WithLabelValues(r.Environment).Observe(seconds(r.QueuedAt.Sub(r.CreatedAt)))
}

// RunStarted implements run.Observer: a run started again after its
// worker was lost is not a new request, and is not observed.
func (m *Runs) RunStarted(r *store.Run) {
	if r.Attempt == 1 {
		m.requestToStart.WithLabelValues(r.Environment).Observe(seconds(r.StartedAt.Sub(r.CreatedAt)))
	}
}

// StepFinished implements run.Observer.
func (m *Runs) StepFinished(procedure string, st *store.RunStep) {
	m.stepDuration.WithLabelValues(procedure, st.Step).Observe(seconds(st.FinishedAt.Sub(st.StartedAt)))
}

// RunFinished implements run.Observer.
func (m *Runs) RunFinished(r *store.Run) {
	m.finished.WithLabelValues(r.ProcedureName, r.Environment, r.Status).Inc()
}

// seconds is d in seconds; never negative (clocks of two replicas).
func seconds(d time.Duration) float64 { return max(d, 0).Seconds() }

// InstrumentStore has s's audit appends timed, where the
// store writes them: a transaction's events are written together as it
// commits (sqlstore), so each event is observed as its share of that
// write — the events, their tree hashes and outbox rows, under the log's
// lock. It adds no database work.
func InstrumentStore(s store.Store, reg prometheus.Registerer) store.Store {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "airlock_audit_append_duration_seconds",
		Help:    "Time one audit event append takes inside its write transaction (the event, its tree hashes and its outbox row; an event written with others, its share); observed per replica.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
	})
	reg.MustRegister(h)
	if w, ok := s.(auditWriter); ok {
		w.OnAuditWrite(func(events int, d time.Duration) {
			for range events {
				h.Observe(seconds(d / time.Duration(events)))
			}
		})
	}
	return s
}

// auditWriter is a store that tells of its writes of audit events
// (sqlstore's DB).
type auditWriter interface {
	OnAuditWrite(fn func(events int, d time.Duration))
}

// ErrorCounter is a store that counts the database errors it met, by
// kind (sqlstore's DB).
type ErrorCounter interface {
	ErrorCounts() map[string]int64
}

// Backlog reports, at each scrape, the backlogs store.Stats reads and
// the database errors the store counted. A scrape waits at most Timeout
// (default a second) for the database; when it cannot read, it reports
// airlock_store_stats_up 0 and leaves the backlog gauges out, so the
// rest of /metrics still answers.
type Backlog struct {
	Store   store.Store
	Errors  ErrorCounter // nil: no error counts
	Now     func() time.Time
	Timeout time.Duration
	Log     *slog.Logger
}

var (
	runsDesc = prometheus.NewDesc("airlock_runs",
		"Runs not yet finished, by status: queued (the queue's depth), pending_approval, running. Read from the database at scrape: every replica reports the same; aggregate with max.",
		[]string{"status"}, nil)
	outboxDesc = prometheus.NewDesc("airlock_notify_outbox_open",
		"Notifications not yet turned into deliveries. Read from the database at scrape; aggregate with max.", nil, nil)
	deliveriesDesc = prometheus.NewDesc("airlock_notify_deliveries",
		"Notification deliveries not made, by status: pending (due or waiting to be tried again), dead (dead letters an admin may retry). Read from the database at scrape; aggregate with max.",
		[]string{"status"}, nil)
	unsignedDesc = prometheus.NewDesc("airlock_audit_unsigned_events",
		"Audit events appended after the newest signed checkpoint. Read from the database at scrape; aggregate with max.", nil, nil)
	checkpointAgeDesc = prometheus.NewDesc("airlock_audit_checkpoint_age_seconds",
		"Time since the newest signed checkpoint was signed (absent before the first). Read from the database at scrape; aggregate with min.", nil, nil)
	statsUpDesc = prometheus.NewDesc("airlock_store_stats_up",
		"1 when this scrape read the backlog gauges from the database, 0 when it could not (they are then absent).", nil, nil)
	storeErrorsDesc = prometheus.NewDesc("airlock_store_errors_total",
		"Errors the database gave this replica, by kind: retry (serialization failure, deadlock or dead connection; the work was run again), conn_lost, unavailable (read-only, out of connections), full (storage full), commit_unknown (the outcome of a COMMIT could not be told), conflict (a unique constraint refused a write).",
		[]string{"kind"}, nil)
)

// Describe implements prometheus.Collector.
func (b *Backlog) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{runsDesc, outboxDesc, deliveriesDesc, unsignedDesc, checkpointAgeDesc, statsUpDesc, storeErrorsDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (b *Backlog) Collect(ch chan<- prometheus.Metric) {
	if b.Errors != nil {
		for kind, n := range b.Errors.ErrorCounts() {
			ch <- prometheus.MustNewConstMetric(storeErrorsDesc, prometheus.CounterValue, float64(n), kind)
		}
	}
	timeout := b.Timeout
	if timeout <= 0 {
		timeout = time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	st, err := b.Store.Stats(ctx)
	if err != nil {
		if b.Log != nil {
			b.Log.Warn("metrics: could not read the backlogs", "err", err)
		}
		ch <- prometheus.MustNewConstMetric(statsUpDesc, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(statsUpDesc, prometheus.GaugeValue, 1)
	gauge := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	gauge(runsDesc, st.RunsQueued, store.RunQueued)
	gauge(runsDesc, st.RunsPending, store.RunPending)
	gauge(runsDesc, st.RunsRunning, store.RunRunning)
	gauge(outboxDesc, st.OutboxOpen)
	gauge(deliveriesDesc, st.DeliveriesPending, store.DeliveryPending)
	gauge(deliveriesDesc, st.DeliveriesDead, store.DeliveryDead)
	gauge(unsignedDesc, st.AuditSize-st.CheckpointSize)
	if !st.CheckpointAt.IsZero() {
		ch <- prometheus.MustNewConstMetric(checkpointAgeDesc, prometheus.GaugeValue, seconds(b.Now().Sub(st.CheckpointAt)))
	}
}
