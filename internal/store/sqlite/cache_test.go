package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/airlockhq/airlock/internal/store/sqlite"
)

// TestWriterPageCacheIsBounded: the writer's page cache, which no other
// connection invalidates and which therefore stays full, is bounded
// below SQLite's 2,000 KiB default; the request readers keep the
// default (their caches are emptied by every commit anyway).
func TestWriterPageCacheIsBounded(t *testing.T) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "airlock.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for pool, want := range map[string]int{"sqlite_writer": -512, "sqlite_reader": -2000} {
		var got int
		if err := s.DBs()[pool].QueryRowContext(ctx, `PRAGMA cache_size`).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s: cache_size %d, want %d (KiB when negative)", pool, got, want)
		}
	}
}
