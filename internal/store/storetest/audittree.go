package storetest

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/airlockhq/airlock/internal/store"
)

// testAuditTree: the hashes an append stores are the ones tlog computes,
// at every position up to one completing a subtree of 32 leaves (an
// append reads one stored hash per trailing 1 bit of its position); an
// append whose stored hash is missing fails and gives its position back
// rather than store a wrong tree.
func testAuditTree(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := h.New(t)
	const n = 35
	var tree treeOracle
	for i := range n {
		e := event("test.tree", fmt.Sprint(i))
		if err := s.Update(ctx, func(tx store.Tx) error { return tx.AuditAppend(ctx, e) }); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		tree.add(t, e)
	}
	tree.check(t, s)

	// Position 35 (binary 100011) reads the hashes of leaf 34 and of
	// the subtree over leaves 32 and 33.
	h.DisableAppendOnly(t, s)
	if err := h.Exec(t, s, fmt.Sprintf(`DELETE FROM audit_hashes WHERE idx = %d`, tlog.StoredHashIndex(1, 16))); err != nil {
		t.Fatal(err)
	}
	err := s.Update(ctx, func(tx store.Tx) error { return tx.AuditAppend(ctx, event("test.tree", "missing")) })
	if err == nil {
		t.Fatal("append over a missing stored hash succeeded")
	}
	if size, err := s.AuditSize(ctx); err != nil || size != n {
		t.Fatalf("size after the failed append = %d, %v; want %d", size, err, n)
	}
}

// treeOracle is the log's tree as tlog computes it, appending one event
// at a time: what the store must have stored.
type treeOracle struct{ want []tlog.Hash }

// add adds e, at its position, to the tree.
func (o *treeOracle) add(t *testing.T, e *store.AuditEvent) {
	t.Helper()
	add, err := tlog.StoredHashes(e.Seq, e.Leaf(), tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = o.want[x]
		}
		return out, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	o.want = append(o.want, add...)
}

// check fails unless s stored exactly the oracle's hashes.
func (o *treeOracle) check(t *testing.T, s store.Store) {
	t.Helper()
	got, err := s.AuditHashRange(context.Background(), 0, int64(len(o.want))+10)
	if err != nil || len(got) != len(o.want) {
		t.Fatalf("stored hashes: %d, %v; want %d", len(got), err, len(o.want))
	}
	for i, g := range got {
		if g.Index != int64(i) || !bytes.Equal(g.Hash, o.want[i][:]) {
			t.Fatalf("stored hash %d at index %d: %x, want %x", i, g.Index, g.Hash, o.want[i])
		}
	}
}
