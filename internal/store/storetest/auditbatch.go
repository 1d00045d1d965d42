package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/airlockhq/airlock/internal/store"
)

// testAuditBatch: the events of one transaction are written together,
// and the log is the one appending them one at a time makes — positions
// gap-free and in the order appended, the hashes the ones tlog computes,
// across subtree boundaries inside and at the edges of a batch; a read
// in the transaction sees its own events; a transaction that fails
// gives its positions back; a batch over a missing stored hash fails
// rather than store a wrong tree.
func testAuditBatch(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := h.New(t)
	var tree treeOracle
	var all []*store.AuditEvent
	// Sizes chosen so that batches start and end inside subtrees of
	// every height up to 256, one is a single event, and one writes more
	// rows than one INSERT takes.
	for b, n := range []int{2, 3, 1, 7, 64, 65, 130, 5, 2} {
		var evs []*store.AuditEvent
		err := s.Update(ctx, func(tx store.Tx) error {
			evs = evs[:0]
			before, err := tx.AuditSize(ctx)
			if err != nil {
				return err
			}
			for i := range n {
				e := event("test.batch", fmt.Sprintf("%d.%d", b, i))
				if err := tx.AuditAppend(ctx, e); err != nil {
					return err
				}
				evs = append(evs, e)
			}
			// Read back in the same transaction.
			size, err := tx.AuditSize(ctx)
			if err != nil {
				return err
			}
			if size != before+int64(n) {
				return fmt.Errorf("size in the transaction %d, want %d", size, before+int64(n))
			}
			last, err := tx.AuditGet(ctx, size-1)
			if err != nil {
				return err
			}
			if last.ID != evs[n-1].ID {
				return fmt.Errorf("last event in the transaction %s, want %s", last.ID, evs[n-1].ID)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("batch %d of %d: %v", b, n, err)
		}
		for _, e := range evs {
			if e.Seq != int64(len(all)) {
				t.Fatalf("batch %d: event %s at %d, want %d", b, e.Subject, e.Seq, len(all))
			}
			all = append(all, e)
			tree.add(t, e)
		}
	}
	tree.check(t, s)
	for _, seq := range []int64{0, 1, 5, 76, int64(len(all)) - 1} {
		e, err := s.AuditGet(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		w := all[seq]
		if e.ID != w.ID || e.Subject != w.Subject || !e.Time.Equal(w.Time) || !bytes.Equal(e.Leaf(), w.Leaf()) {
			t.Fatalf("event %d stored as %+v, appended %+v", seq, e, w)
		}
	}

	// A transaction that fails after its appends gives their positions back.
	size := int64(len(all))
	boom := errors.New("boom")
	err := s.Update(ctx, func(tx store.Tx) error {
		for range 5 {
			if err := tx.AuditAppend(ctx, event("test.batch", "lost")); err != nil {
				return err
			}
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("failed transaction: %v", err)
	}
	if n, err := s.AuditSize(ctx); err != nil || n != size {
		t.Fatalf("size after the failed transaction = %d, %v; want %d", n, err, size)
	}

	// The next batch starts at 279 (binary 100010111), which reads three
	// hashes stored before it, the leaf hash of 278 among them: that one
	// missing fails the batch whole.
	h.DisableAppendOnly(t, s)
	idx := tlog.StoredHashIndex(0, size-1)
	if err := h.Exec(t, s, fmt.Sprintf(`DELETE FROM audit_hashes WHERE idx = %d`, idx)); err != nil {
		t.Fatal(err)
	}
	for _, readFirst := range []bool{false, true} {
		err = s.Update(ctx, func(tx store.Tx) error {
			for range 3 {
				if err := tx.AuditAppend(ctx, event("test.batch", "missing")); err != nil {
					return err
				}
			}
			if readFirst {
				// A read writes the batch first; its failure is the
				// transaction's even when the reader goes on.
				_, _ = tx.AuditSize(ctx)
			}
			return nil
		})
		if err == nil {
			t.Fatalf("a batch over a missing stored hash succeeded (read first: %v)", readFirst)
		}
		if n, err := s.AuditSize(ctx); err != nil || n != size {
			t.Fatalf("size after the failed batch = %d, %v; want %d (read first: %v)", n, err, size, readFirst)
		}
	}
}
