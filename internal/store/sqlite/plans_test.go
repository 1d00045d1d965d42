package sqlite_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/airlockhq/airlock/internal/store/sqlite"
	"github.com/airlockhq/airlock/internal/store/sqlstore"
	"github.com/airlockhq/airlock/internal/store/storetest"
)

// TestNoStatementScansAGrowingTable runs the conformance suite, then asks
// SQLite for the plan of every statement the stores prepared on the way:
// none may read a table that grows with use (runs, their output, steps,
// nodes and approvals, the audit log, tokens, sessions) by scanning it
// whole. A partial index the planner cannot use (a bound parameter it
// cannot prove non-empty) made every keyed run request scan all runs.
func TestNoStatementScansAGrowingTable(t *testing.T) {
	var mu sync.Mutex
	statements := map[string]bool{}
	storetest.Run(t, harness(func(t *testing.T, s *sqlstore.DB) {
		t.Cleanup(func() {
			mu.Lock()
			for _, q := range s.Statements() {
				statements[q] = true
			}
			mu.Unlock()
			s.Close()
		})
	}))
	growing := []string{"runs", "run_output", "run_steps", "run_nodes", "run_approvals", "audit_events", "audit_hashes",
		"api_tokens", "sessions", "standing_events", "notify_outbox", "notify_deliveries"}
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "plans.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	db := s.DBs()["sqlite_writer"]
	checked := 0
	for q := range statements {
		rows, err := db.Query("EXPLAIN QUERY PLAN "+q, make([]any, strings.Count(q, "?"))...)
		if err != nil {
			t.Errorf("explain %s: %v", q, err)
			continue
		}
		checked++
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if rows.Scan(&id, &parent, &unused, &detail) != nil {
				continue
			}
			f := strings.Fields(detail)
			if len(f) >= 2 && f[0] == "SCAN" && slices.Contains(growing, f[1]) && !strings.Contains(detail, "USING") {
				t.Errorf("scans %s whole: %s\n  %s", f[1], detail, q)
			}
		}
		rows.Close()
	}
	if checked < 40 {
		t.Fatalf("only %d statements' plans checked", checked)
	}
}
