package audit_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/store/sqlite"
)

// BenchmarkVerify measures audit.Verify over a SQLite log of
// AIRLOCK_BENCH_EVENTS events (default 100,000; the target is stated for
// 1,000,000) of about 300 bytes each, against the bare tlog hashing of the
// same leaves measured in the same run.
func BenchmarkVerify(b *testing.B) {
	n := 100_000
	if s := os.Getenv("AIRLOCK_BENCH_EVENTS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "a.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	details := []byte(`{"procedure":"restart-service","environment":"production"}`)
	const perTx = 10_000
	for done := 0; done < n; done += perTx {
		err := s.Update(ctx, func(tx store.Tx) error {
			for i := 0; i < perTx && done+i < n; i++ {
				now := time.Now()
				if err := tx.AuditAppend(ctx, &store.AuditEvent{ID: airlock.NewID(airlock.PrefixEvent, now), Time: now, Type: "run.finish",
					ActorID: "usr_06h1nzh6yd86g192w0ntpde1t8", ActorName: "system", Subject: "run_06h1p8qcf7pfh4amq59jhw3vwr",
					Outcome: "success", RequestID: "req_06h1p8qcf5hf6s9xs9zjnf515g", Details: details}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	_, vkey, _ := audit.GenerateKey("bench")
	v, _ := note.NewVerifier(vkey)
	evs, _ := s.AuditList(ctx, store.AuditListParams{After: -1, Limit: n})
	leaves := make([][]byte, len(evs))
	for i, e := range evs {
		leaves[i] = e.Leaf()
	}
	var verifyT, bareT time.Duration
	for b.Loop() {
		t0 := time.Now()
		rep, err := audit.Verify(ctx, s, v, nil)
		if err != nil || !rep.OK() {
			b.Fatalf("%v %+v", err, rep)
		}
		verifyT += time.Since(t0)
		t0 = time.Now()
		var hashes []tlog.Hash
		r := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
			out := make([]tlog.Hash, len(idx))
			for i, x := range idx {
				out[i] = hashes[x]
			}
			return out, nil
		})
		for i, l := range leaves {
			add, _ := tlog.StoredHashes(int64(i), l, r)
			hashes = append(hashes, add...)
		}
		if _, err := tlog.TreeHash(int64(len(leaves)), r); err != nil {
			b.Fatal(err)
		}
		bareT += time.Since(t0)
	}
	b.ReportMetric(verifyT.Seconds()/float64(b.N), "verify-s")
	b.ReportMetric(bareT.Seconds()/float64(b.N), "bare-tlog-s")
	b.ReportMetric(float64(verifyT)/float64(bareT), "ratio")
	b.Logf("%d events, %d bytes per leaf", n, len(leaves[0]))
}
