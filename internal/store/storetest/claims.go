package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/store"
)

// testClaimNotStarved: however many queued runs wait on a held lock, a
// run that needs no lock (or a free one) is claimed.
func testClaimNotStarved(t *testing.T, h Harness) {
	s, _ := h.New(t)
	p := seedProcedure(t, s)
	holder := newRun(p, "busy", t0)
	insertRuns(t, s, holder)
	if r := claim(t, s, "w1", t0.Add(time.Second)); r == nil || r.ID != holder.ID {
		t.Fatalf("claim the lock holder: %+v", r)
	}
	var waiting []*store.Run
	for i := range 1000 {
		waiting = append(waiting, newRun(p, "busy", t0.Add(time.Duration(i+1)*time.Millisecond)))
	}
	insertRuns(t, s, waiting...)
	free := newRun(p, "", t0.Add(time.Minute))
	other := newRun(p, "other", t0.Add(2*time.Minute))
	insertRuns(t, s, free, other)
	if r := claim(t, s, "w2", t0.Add(3*time.Minute)); r == nil || r.ID != free.ID {
		t.Fatalf("with 1,000 runs waiting on a held lock, claimed %+v, want the run without a lock", r)
	}
	if r := claim(t, s, "w2", t0.Add(3*time.Minute)); r == nil || r.ID != other.ID {
		t.Fatalf("then claimed %+v, want the run with a free lock", r)
	}
	if r := claim(t, s, "w2", t0.Add(3*time.Minute)); r != nil {
		t.Fatalf("claimed %s while its lock is held", r.ID)
	}
}

// testClaimsAcrossReplicas: two stores on one database (replicas), 8
// workers each, drain 2,000 queued runs over 50 lock keys. Every run is
// claimed exactly once and never two runs of one lock at a time. For a
// database that serves one process, the 16 workers share one store.
func testClaimsAcrossReplicas(t *testing.T, h Harness) {
	const runs, keys, workers = 2000, 50, 8
	ctx := context.Background()
	s1, loc := h.New(t)
	s2 := s1
	if !h.OneProcess {
		var err error
		if s2, err = h.Open(ctx, loc); err != nil {
			t.Fatal(err)
		}
		defer s2.Close()
	}
	p := seedProcedure(t, s1)
	var all []*store.Run
	for i := range runs {
		all = append(all, newRun(p, fmt.Sprintf("key-%d", i%keys), t0.Add(time.Duration(i)*time.Millisecond)))
	}
	for i := 0; i < len(all); i += 500 {
		insertRuns(t, s1, all[i:min(i+500, len(all))]...)
	}
	var (
		mu      sync.Mutex
		claimed = map[string]string{}
		holding = map[string]string{} // lock key → run
		wg      sync.WaitGroup
	)
	deadline := time.Now().Add(5 * time.Minute)
	for i, s := range []store.Store{s1, s2} {
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				worker := fmt.Sprintf("replica%d-w%d", i+1, w)
				for !t.Failed() {
					if time.Now().After(deadline) {
						t.Errorf("%s: runs still queued after 5 minutes", worker)
						return
					}
					r := claim(t, s, worker, t0.Add(time.Hour))
					if r == nil {
						mu.Lock()
						done := len(claimed) == runs
						mu.Unlock()
						if done {
							return
						}
						continue
					}
					mu.Lock()
					if prev, ok := claimed[r.ID]; ok {
						t.Errorf("run %s claimed by %s and %s", r.ID, prev, worker)
					}
					claimed[r.ID] = worker
					if other, ok := holding[r.LockKey]; ok {
						t.Errorf("runs %s and %s of lock %s ran at once", other, r.ID, r.LockKey)
					}
					holding[r.LockKey] = r.ID
					mu.Unlock()
					finish(t, s, r, &mu, holding)
				}
			}()
		}
	}
	wg.Wait()
	if len(claimed) != runs {
		t.Fatalf("%d runs claimed, want %d", len(claimed), runs)
	}
}

// finish ends a claimed run and releases its lock, forgetting it in
// holding just before the release commits.
func finish(t *testing.T, s store.Store, r *store.Run, mu *sync.Mutex, holding map[string]string) {
	ctx := context.Background()
	err := s.Update(ctx, func(tx store.Tx) error {
		cur, err := tx.RunGet(ctx, r.ID)
		if err != nil {
			return err
		}
		cur.Status, cur.FinishedAt = store.RunSucceeded, t0.Add(2*time.Hour)
		if err := tx.RunUpdate(ctx, cur); err != nil {
			return err
		}
		mu.Lock()
		delete(holding, r.LockKey)
		mu.Unlock()
		if err := tx.RunLockRelease(ctx, r.ID); err != nil {
			return err
		}
		return tx.AuditAppend(ctx, event("run.finish", r.ID))
	})
	if err != nil {
		t.Errorf("finish %s: %v", r.ID, err)
	}
}
