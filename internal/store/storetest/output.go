package storetest

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/store"
)

// insertChunk stores one output chunk with SQL, as the run's worker would
// have: the case tests reading and pruning output, not writing it.
func insertChunk(t *testing.T, h Harness, s store.Store, runID string, seq int64, data []byte, at time.Time) {
	t.Helper()
	q := `INSERT INTO run_output (run_id, seq, node, stream, data, created_at) VALUES ('%s', %d, 'web-1', 'stdout', %s, %d)`
	if err := h.Exec(t, s, fmt.Sprintf(q, runID, seq, "X'"+hex.EncodeToString(data)+"'", at.UnixMicro())); err != nil {
		// PostgreSQL spells byte literals differently.
		if err := h.Exec(t, s, fmt.Sprintf(q, runID, seq, `'\x`+hex.EncodeToString(data)+`'::bytea`, at.UnixMicro())); err != nil {
			t.Fatal(err)
		}
	}
}

// readOutput is what RunOutputRead streams for a run: the sequence
// numbers in the order given and the data, copied.
func readOutput(t *testing.T, s store.Store, runID string) ([]int64, []byte) {
	t.Helper()
	var seqs []int64
	var data []byte
	if err := s.RunOutputRead(context.Background(), runID, func(seq int64, b []byte) error {
		seqs, data = append(seqs, seq), append(data, b...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return seqs, data
}

// testRunOutput: RunOutputRead streams a run's chunks in sequence order,
// bytes intact; RunOutputPrune removes the output of the runs that
// finished before the cutoff, oldest finished first, a batch of at most
// limit runs at a time, names them and counts their chunks, and leaves
// the runs their digest.
func testRunOutput(t *testing.T, h Harness, t0 time.Time) {
	ctx := context.Background()
	s, _ := h.New(t)
	p := seedProcedure(t, s)
	// first was requested after second but finished before it: "oldest"
	// is by finish, not by request or ID.
	second := newRun(p, "", t0)
	first := newRun(p, "", t0.Add(time.Second))
	silent := newRun(p, "", t0.Add(2*time.Second)) // finished, no output
	recent := newRun(p, "", t0.Add(3*time.Second))
	running := newRun(p, "", t0.Add(4*time.Second))
	insertRuns(t, s, second, first, silent, recent, running)
	ends := []struct {
		r  *store.Run
		at time.Time
	}{{first, t0.Add(time.Minute)}, {second, t0.Add(2 * time.Minute)}, {silent, t0.Add(30 * time.Second)}, {recent, t0.Add(time.Hour)}}
	for _, e := range ends {
		e.r.Status, e.r.StartedAt, e.r.FinishedAt = store.RunSucceeded, e.r.CreatedAt, e.at
		e.r.OutputBytes, e.r.OutputDigest = 7, "sha256:"+e.r.ID
		err := s.Update(ctx, func(tx store.Tx) error {
			if err := tx.RunUpdate(ctx, e.r); err != nil {
				return err
			}
			return tx.AuditAppend(ctx, event("run.finish", e.r.ID))
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// Chunks stored out of order, with bytes that text columns would
	// mangle.
	for _, seq := range []int64{3, 1, 2} {
		insertChunk(t, h, s, first.ID, seq, []byte{byte('a' + seq), 0, 255}, t0)
	}
	insertChunk(t, h, s, second.ID, 1, []byte("x"), t0)
	insertChunk(t, h, s, second.ID, 2, []byte("y"), t0)
	insertChunk(t, h, s, recent.ID, 1, []byte("recent"), t0)
	insertChunk(t, h, s, running.ID, 1, []byte("running"), t0)

	seqs, data := readOutput(t, s, first.ID)
	if !slices.Equal(seqs, []int64{1, 2, 3}) || !bytes.Equal(data, []byte("b\x00\xffc\x00\xffd\x00\xff")) {
		t.Fatalf("output of %s read as chunks %v, data %q; want chunks 1, 2, 3 in order, bytes intact", first.ID, seqs, data)
	}
	if seqs, _ := readOutput(t, s, silent.ID); len(seqs) != 0 {
		t.Fatalf("a run without output read as chunks %v", seqs)
	}
	stop := errors.New("enough")
	calls := 0
	if err := s.RunOutputRead(ctx, first.ID, func(int64, []byte) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("fn's error: %v after %d calls; want it returned after the first", err, calls)
	}

	prune := func(before time.Time, limit int) ([]string, int64) {
		t.Helper()
		var ids []string
		var n int64
		err := s.Update(ctx, func(tx store.Tx) error {
			var err error
			if ids, n, err = tx.RunOutputPrune(ctx, before, limit); err != nil || len(ids) == 0 {
				return err
			}
			return tx.AuditAppend(ctx, event("run.output_prune", ""))
		})
		if err != nil {
			t.Fatal(err)
		}
		return ids, n
	}
	cutoff := t0.Add(10 * time.Minute)
	if ids, n := prune(cutoff, 1); !slices.Equal(ids, []string{first.ID}) || n != 3 {
		t.Fatalf("first batch of one: %v, %d chunks; want %s (finished first), 3 chunks", ids, n, first.ID)
	}
	if ids, n := prune(cutoff, 10); !slices.Equal(ids, []string{second.ID}) || n != 2 {
		t.Fatalf("next batch: %v, %d chunks; want only %s, 2 chunks (the silent run has none to prune)", ids, n, second.ID)
	}
	if ids, n := prune(cutoff, 10); len(ids) != 0 || n != 0 {
		t.Fatalf("nothing left before the cutoff, yet pruned %v (%d chunks)", ids, n)
	}
	for _, r := range []*store.Run{first, second} {
		if seqs, _ := readOutput(t, s, r.ID); len(seqs) != 0 {
			t.Fatalf("%s keeps chunks %v after pruning", r.ID, seqs)
		}
		got, err := s.RunGet(ctx, r.ID)
		if err != nil || got.OutputDigest != r.OutputDigest || got.OutputBytes != r.OutputBytes {
			t.Fatalf("%s after pruning: digest %q over %d bytes (%v); want its %q over %d kept", r.ID, got.OutputDigest, got.OutputBytes, err,
				r.OutputDigest, r.OutputBytes)
		}
	}
	for _, r := range []*store.Run{recent, running} {
		if _, data := readOutput(t, s, r.ID); len(data) == 0 {
			t.Fatalf("%s, which did not finish before the cutoff, lost its output", r.ID)
		}
	}
}
