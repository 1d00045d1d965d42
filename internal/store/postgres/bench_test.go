package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/store/postgres"
	"github.com/airlockhq/airlock/internal/testenv"
)

// benchStore opens the store on a fresh schema of the test PostgreSQL
// (AIRLOCK_TEST_POSTGRES_URL), dropped when the benchmark ends.
func benchStore(b *testing.B) store.Store {
	url := testenv.PostgresURL(b)
	r := make([]byte, 6)
	rand.Read(r)
	schema := "airlock_bench_" + hex.EncodeToString(r)
	s, err := postgres.Open(context.Background(), url, postgres.Options{Schema: schema})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		s.DBs()["postgres"].Exec(`DROP SCHEMA ` + pgx.Identifier{schema}.Sanitize() + ` CASCADE`)
		s.Close()
	})
	return s
}

// BenchmarkAuditAppend measures one audit event per write transaction,
// the worst case: every state change commits with its own event. The
// same benchmark as the SQLite driver's, on PostgreSQL over loopback.
func BenchmarkAuditAppend(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	details := []byte(`{"username":"alice","method":"password","session_id":"ses_0123456789"}`)
	b.ResetTimer()
	for b.Loop() {
		now := time.Now()
		err := s.Update(ctx, func(tx store.Tx) error {
			return tx.AuditAppend(ctx, &store.AuditEvent{ID: airlock.NewID(airlock.PrefixEvent, now), Time: now,
				Type: "user.login", ActorID: "usr_x", ActorName: "alice", Subject: "usr_x", Outcome: "success", Details: details})
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkAuditAppendParallel measures appends from concurrent writers,
// each on its own connection of the pool, serialized on the audit head's
// row lock.
func BenchmarkAuditAppendParallel(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			now := time.Now()
			err := s.Update(ctx, func(tx store.Tx) error {
				return tx.AuditAppend(ctx, &store.AuditEvent{ID: airlock.NewID(airlock.PrefixEvent, now), Time: now, Type: "bench.append"})
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
