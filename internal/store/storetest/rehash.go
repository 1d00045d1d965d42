package storetest

import (
	"encoding/hex"
	"fmt"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/airlockhq/airlock/internal/store"
)

// rehash writes a fresh hash table for evs, as an attacker covering
// their tracks would.
func rehash(t *testing.T, h Harness, s store.Store, evs []*store.AuditEvent) {
	var hashes []tlog.Hash
	r := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = hashes[x]
		}
		return out, nil
	})
	for i, e := range evs {
		add, err := tlog.StoredHashes(int64(i), e.Leaf(), r)
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, add...)
	}
	for i, hh := range hashes {
		lit := "X'" + hex.EncodeToString(hh[:]) + "'"
		if err := h.Exec(t, s, fmt.Sprintf(`INSERT INTO audit_hashes (idx, hash) VALUES (%d, %s)`, i, lit)); err != nil {
			// PostgreSQL spells byte literals differently.
			if err := h.Exec(t, s, fmt.Sprintf(`INSERT INTO audit_hashes (idx, hash) VALUES (%d, '\x%s')`, i, hex.EncodeToString(hh[:]))); err != nil {
				t.Fatal(err)
			}
		}
	}
}
