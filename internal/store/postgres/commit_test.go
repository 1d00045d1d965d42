package postgres_test

import (
	"context"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/store/postgres"
	"github.com/airlockhq/airlock/internal/testenv"
)

// TestCommitAnsweredWithFatalIsNotAppliedTwice terminates a backend while
// it commits. PostgreSQL then reports FATAL 57P01 for a COMMIT that went
// through (the commit record was written; commit_delay holds the backend
// there long enough to hit, and statement logging makes it answer the
// error). Update must find that out instead of running the transaction
// again: one change, one event, no error.
func TestCommitAnsweredWithFatalIsNotAppliedTwice(t *testing.T) {
	ctx := context.Background()
	u, err := url.Parse(testenv.PostgresSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	app := u.Query().Get("application_name")
	q := u.Query()
	q.Set("commit_delay", "100000") // µs
	q.Set("commit_siblings", "0")
	q.Set("log_min_duration_statement", "0")
	u.RawQuery = q.Encode()
	s, err := postgres.Open(ctx, u.String(), postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	killer, err := pgx.Connect(ctx, testenv.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer killer.Close(ctx)
	killed := make(chan int, 1)
	go func() {
		// Poll for the committing backend: a deadline, and the result
		// says whether it was found.
		deadline := time.After(30 * time.Second)
		for {
			select {
			case <-deadline:
				killed <- 0
				return
			default:
			}
			var n int
			if err := killer.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
				WHERE application_name = $1 AND state = 'active' AND lower(query) = 'commit'`, app).Scan(&n); err == nil && n > 0 {
				killed <- n
				return
			}
		}
	}()
	at := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	var calls atomic.Int32
	err = s.Update(ctx, func(tx store.Tx) error {
		calls.Add(1)
		if err := tx.LoginFailureAdd(ctx, "alice", "192.0.2.7", at, at.Add(-time.Hour)); err != nil {
			return err
		}
		return tx.AuditAppend(ctx, &store.AuditEvent{ID: airlock.NewID(airlock.PrefixEvent, at), Time: at, Type: "user.login_failed",
			Subject: "alice", ActorName: "test", Outcome: "failure"})
	})
	if n := <-killed; n == 0 {
		t.Fatal("no backend was seen committing within 30 s: the test terminated nothing")
	}
	failures := -1
	if st, _ := s.LoginFailureStats(ctx, "alice", "", at.Add(-time.Minute)); st != nil {
		failures = st.Account
	}
	size, _ := s.AuditSize(ctx)
	if err != nil || failures != 1 || size != 1 {
		t.Fatalf("Update = %v after running its function %d times; stored %d login failures and %d audit events, want nil, 1 and 1",
			err, calls.Load(), failures, size)
	}
}
