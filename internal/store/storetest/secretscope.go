package storetest

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/store/sqlstore"
)

// testSecretScopes: a secret's scope and who set it when are stored and
// read back; a put that changes the value may keep or replace them.
func testSecretScopes(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := h.New(t)
	put := func(r *store.SecretRecord) {
		t.Helper()
		if err := s.Update(ctx, func(tx store.Tx) error {
			if err := tx.SecretPut(ctx, r); err != nil {
				return err
			}
			return tx.AuditAppend(ctx, event("secret.put", r.Name))
		}); err != nil {
			t.Fatal(err)
		}
	}
	unscoped := &store.SecretRecord{Name: "ssh/deploy", Ciphertext: []byte{1}, KeyID: "k1", CreatedAt: t0, UpdatedAt: t0, UpdatedBy: "bob"}
	put(unscoped)
	if r, err := s.SecretGet(ctx, "ssh/deploy"); err != nil || len(r.ScopeTeams) != 0 || len(r.ScopeProcedures) != 0 ||
		r.ScopeTeams == nil || r.ScopeProcedures == nil || !r.ScopeUpdatedAt.IsZero() || r.ScopeUpdatedBy != "" {
		t.Fatalf("a secret put without a scope reads back as %+v (%v); want empty, non-nil lists", r, err)
	}
	scoped := &store.SecretRecord{Name: "payments/api-token", Ciphertext: []byte{2}, KeyID: "k1", CreatedAt: t0, UpdatedAt: t0, UpdatedBy: "bob",
		ScopeTeams: []string{"payments"}, ScopeProcedures: []string{"db-*", "restart-api"}, ScopeUpdatedAt: t0, ScopeUpdatedBy: "bob"}
	put(scoped)
	scoped.Ciphertext, scoped.UpdatedAt, scoped.UpdatedBy = []byte{3}, t0.Add(1e9), "carol"
	scoped.ScopeTeams, scoped.ScopeProcedures, scoped.ScopeUpdatedAt, scoped.ScopeUpdatedBy = []string{}, []string{"restart-api"}, t0.Add(1e9), "carol"
	put(scoped)
	all, err := s.SecretList(ctx)
	if err != nil || len(all) != 2 {
		t.Fatalf("list: %v %v", all, err)
	}
	r := all[0]
	if r.Name != "payments/api-token" || r.Ciphertext[0] != 3 || len(r.ScopeTeams) != 0 || !slices.Equal(r.ScopeProcedures, []string{"restart-api"}) ||
		!r.ScopeUpdatedAt.Equal(t0.Add(1e9)) || r.ScopeUpdatedBy != "carol" || !r.CreatedAt.Equal(t0) {
		t.Fatalf("replaced scope reads back as %+v", r)
	}
}

// SecretScopesUpgrade checks the migration that introduced secret
// scopes on a database at the schema just before it: every secret that
// existed is scoped to the procedures whose approved version names it in
// a step, and to nothing else; secrets only superseded, retired,
// proposed or never-referenced versions name (node credentials among
// them) are scoped to nothing. db holds the database migrated by ms
// (all of them, lock as Migrate takes it); reopen opens it as a store,
// applying the remaining migrations.
func SecretScopesUpgrade(t *testing.T, db *sql.DB, d sqlstore.Dialect, ms []sqlstore.Migration, lock string, reopen func(t *testing.T) store.Store) {
	ctx := context.Background()
	at := slices.IndexFunc(ms, func(m sqlstore.Migration) bool { return m.Name == "secret_scopes" })
	if at < 0 {
		t.Fatal("no secret_scopes migration")
	}
	if err := sqlstore.Migrate(ctx, db, d, ms[:at], lock); err != nil {
		t.Fatal(err)
	}
	exec := func(q string, args ...any) {
		t.Helper()
		if d.Numbered {
			for i := 1; strings.Contains(q, "?"); i++ {
				q = strings.Replace(q, "?", fmt.Sprintf("$%d", i), 1)
			}
		}
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	micros := t0.UnixMicro()
	for _, p := range [][2]string{{"p1", "db-report"}, {"p2", "nightly-export"}, {"p3", "draft"}, {"p4", "old-job"}} {
		exec(`INSERT INTO procedures (id, name, owner, owner_fixed, created_at, updated_at) VALUES (?,?,?,?,?,?)`, p[0], p[1], "payments", true, micros, micros)
	}
	step := func(name string, secrets ...string) string {
		env := make([]string, len(secrets))
		for i, s := range secrets {
			env[i] = fmt.Sprintf(`"E%d":%q`, i, s)
		}
		return fmt.Sprintf(`{"name":%q,"script":"true","secrets":{%s}}`, name, strings.Join(env, ","))
	}
	def := func(name string, steps ...string) string {
		return fmt.Sprintf(`{"apiVersion":"airlock/v1","kind":"Procedure","name":%q,"owner":"payments","risk":"low","steps":[%s]}`, name, strings.Join(steps, ","))
	}
	for i, v := range []struct{ proc, status, def string }{
		{"p1", store.VersionSuperseded, def("db-report", step("a", "old/token"))},
		{"p1", store.VersionApproved, def("db-report", step("a", "payments/db", "shared/smtp"), step("b", "payments/db"), `{"name":"c","exec":["true"]}`)},
		{"p2", store.VersionApproved, def("nightly-export", step("a", "shared/smtp"))},
		{"p3", store.VersionProposed, def("draft", step("a", "payments/admin"))},
		{"p4", store.VersionRetired, def("old-job", step("a", "retired/key"))},
		{"p1", store.VersionRejected, def("db-report", step("a", "payments/admin"))},
	} {
		id := fmt.Sprintf("v%d", i+1)
		exec(`INSERT INTO procedure_versions (id, procedure_id, number, digest, definition, risk, status, author_id, author_name, created_at)
			VALUES (?,?,?,?,?,?,?,?,?,?)`, id, v.proc, i+1, "sha256:"+id, v.def, "low", v.status, "usr_a", "alice", micros)
	}
	names := []string{"payments/db", "shared/smtp", "old/token", "payments/admin", "retired/key", "ssh/deploy"}
	for _, n := range names {
		exec(`INSERT INTO secrets (name, ciphertext, key_id, created_at, updated_at, updated_by) VALUES (?,?,?,?,?,?)`, n, []byte{1, 2, 3}, "k1", micros, micros, "bob")
	}
	s := reopen(t)
	want := map[string][]string{"payments/db": {"db-report"}, "shared/smtp": {"db-report", "nightly-export"}}
	for _, n := range names {
		r, err := s.SecretGet(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		w := want[n]
		if w == nil {
			w = []string{}
		}
		if !slices.Equal(r.ScopeProcedures, w) || len(r.ScopeTeams) != 0 || r.ScopeUpdatedBy != "(upgrade)" || r.ScopeUpdatedAt.IsZero() {
			t.Errorf("after the upgrade %s is scoped to teams %q, procedures %q (set by %q at %v); want procedures %q only, set by (upgrade)",
				n, r.ScopeTeams, r.ScopeProcedures, r.ScopeUpdatedBy, r.ScopeUpdatedAt, w)
		}
		if r.Ciphertext[2] != 3 || r.UpdatedBy != "bob" {
			t.Errorf("the upgrade changed %s's value or its author: %+v", n, r)
		}
	}
}
