package demo_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/airlockhq/airlock/internal/config"
	"github.com/airlockhq/airlock/internal/demo"
	"github.com/airlockhq/airlock/internal/server"
	"github.com/airlockhq/airlock/internal/store"
)

func TestSeedCatalogThroughReviews(t *testing.T) {
	cfg := config.Default()
	cfg.Data = t.TempDir()
	cfg.PolicyFile = filepath.Join(cfg.Data, "policy.cedar")
	os.WriteFile(cfg.PolicyFile, []byte(demo.Policy), 0o600)
	s, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	svcs := demo.Services{Store: s.Store, Identity: s.Identity, Review: s.Review, Secrets: s.Secrets}
	users, err := demo.Seed(ctx, svcs)
	if err != nil || len(users) != 5 {
		t.Fatalf("seed: %d users, %v", len(users), err)
	}
	procs, _ := s.Store.ProcedureList(ctx)
	if len(procs) != 5 {
		t.Fatalf("%d procedures", len(procs))
	}
	risks := map[string]bool{}
	for _, p := range procs {
		if p.ActiveVersionID == "" {
			t.Errorf("%s has no active version", p.Name)
			continue
		}
		v, _ := s.Store.ProcedureVersionGet(ctx, p.ActiveVersionID)
		risks[v.Risk] = true
	}
	if len(risks) != 3 {
		t.Errorf("catalog covers risks %v, want low, medium and high", risks)
	}
	pending, _ := s.Store.ProcedureVersionList(ctx, store.ProcedureVersionListParams{Status: store.VersionProposed})
	if len(pending) != 1 || pending[0].ProcedureName != "toggle-feature-flag" || pending[0].Number != 2 {
		t.Fatalf("pending = %+v", pending)
	}
	st, _ := s.Review.StatusOf(ctx, pending[0])
	if len(st.Missing) != 1 || st.Missing[0] != "security" {
		t.Fatalf("pending proposal needs %v, want security", st.Missing)
	}
	// The secret db-readonly-query's step uses is there, so it can run.
	if _, err := s.Store.SecretGet(ctx, "payments/db-readonly"); err != nil {
		t.Fatalf("payments/db-readonly: %v", err)
	}
	// Seeding again changes nothing.
	before, _ := s.Store.AuditSize(ctx)
	users, err = demo.Seed(ctx, svcs)
	after, _ := s.Store.AuditSize(ctx)
	if err != nil || len(users) != 0 || after != before {
		t.Fatalf("second seed: %d users, %v, audit %d -> %d", len(users), err, before, after)
	}
}
