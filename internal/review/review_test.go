package review_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/authz"
	"github.com/airlockhq/airlock/internal/demo"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/procedure"
	"github.com/airlockhq/airlock/internal/review"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/store/sqlite"
)

var (
	alice = &identity.Principal{UserID: "usr_alice", Username: "alice", Groups: []string{"dev", "payments"}}
	bob   = &identity.Principal{UserID: "usr_bob", Username: "bob", Groups: []string{"ops", "admins"}}
	carol = &identity.Principal{UserID: "usr_carol", Username: "carol", Groups: []string{"security"}}
	dana  = &identity.Principal{UserID: "usr_dana", Username: "dana", Groups: []string{"compliance"}}
	// olga is both ops and payments: she may author and, for others'
	// versions, review.
	olga = &identity.Principal{UserID: "usr_olga", Username: "olga", Groups: []string{"ops", "payments"}}
	erin = &identity.Principal{UserID: "usr_erin", Username: "erin", Groups: []string{"noc"}}
)

func setup(t *testing.T) (*review.Service, store.Store) {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "a.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	az := authz.New(s, []string{"staging", "production"}, log, nil)
	if _, err := az.Bootstrap(context.Background(), "demo policy", demo.Policy); err != nil {
		t.Fatal(err)
	}
	return review.New(s, review.DefaultQuorum(), az, log, nil), s
}

func def(t *testing.T, risk, cmd string) *procedure.Source {
	t.Helper()
	src := "apiVersion: airlock/v1\nkind: Procedure\nname: restart-api\nowner: payments\nrisk: " + risk +
		"\nsteps:\n  - name: restart\n    exec: [systemctl, restart, " + cmd + "]\n"
	srcs, err := procedure.Parse("restart-api.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return srcs[0]
}

func kind(t *testing.T, err error, want airlock.Kind) {
	t.Helper()
	if airlock.ErrorKind(err) != want {
		t.Fatalf("error %v (kind %q), want kind %q", err, airlock.ErrorKind(err), want)
	}
}

func events(t *testing.T, s store.Store, typ string) []*store.AuditEvent {
	t.Helper()
	evs, err := s.AuditList(context.Background(), store.AuditListParams{After: -1, Type: typ, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func TestLifecycleAndSeparationOfDuties(t *testing.T) {
	svc, s := setup(t)
	ctx := context.Background()

	// v1, low risk: one ops approval activates it.
	r1, err := svc.Propose(ctx, alice, def(t, "low", "api"))
	if err != nil || r1.Status != "proposed" || r1.Version.Number != 1 {
		t.Fatalf("propose v1: %+v %v", r1, err)
	}
	v1 := r1.Version
	if again, err := svc.Propose(ctx, alice, def(t, "low", "api")); err != nil || again.Status != "unchanged" || again.Version.ID != v1.ID {
		t.Fatalf("re-proposing the pending definition: %+v %v", again, err)
	}

	// Policy does not let alice (dev) review; the author-in-a-reviewer-
	// group case is TestAuthorInReviewerGroupCannotSelfApprove.
	_, err = svc.Review(ctx, alice, v1.ID, v1.Digest, "approve", "")
	kind(t, err, airlock.Forbidden)
	// Policy does not let the NOC review.
	_, err = svc.Review(ctx, erin, v1.ID, v1.Digest, "approve", "")
	kind(t, err, airlock.Forbidden)
	rr, err := svc.Review(ctx, bob, v1.ID, v1.Digest, "approve", "fine")
	if err != nil || !rr.Activated || rr.Superseded != nil {
		t.Fatalf("bob approves v1: %+v %v", rr, err)
	}
	if p, _ := s.ProcedureGetByName(ctx, "restart-api"); p.ActiveVersionID != v1.ID || !p.OwnerFixed {
		t.Fatalf("v1 not active: %+v", p)
	}
	if again, _ := svc.Propose(ctx, alice, def(t, "low", "api")); again.Status != "unchanged" {
		t.Fatalf("re-proposing the active definition: %+v", again)
	}

	// v2, medium risk: ops alone is not enough.
	r2, err := svc.Propose(ctx, alice, def(t, "medium", "api-v2"))
	if err != nil || r2.Version.Number != 2 {
		t.Fatalf("propose v2: %+v %v", r2, err)
	}
	v2 := r2.Version
	// An approval bound to another digest (v1's) does not approve v2.
	_, err = svc.Review(ctx, bob, v2.ID, v1.Digest, "approve", "")
	kind(t, err, airlock.Conflict)
	rr, err = svc.Review(ctx, bob, v2.ID, v2.Digest, "approve", "ops ok")
	if err != nil || rr.Activated || strings.Join(rr.Missing, ",") != "security" {
		t.Fatalf("ops-only approval of medium: %+v %v", rr, err)
	}
	// The same person again is refused and not counted.
	_, err = svc.Review(ctx, bob, v2.ID, v2.Digest, "approve", "again")
	kind(t, err, airlock.Conflict)
	st, _ := svc.VersionStatus(ctx, bob, v2.ID)
	if st.Version.Status != store.VersionProposed || len(st.Reviews) != 1 || strings.Join(st.Missing, ",") != "security" {
		t.Fatalf("after duplicate: %+v", st)
	}
	if p, _ := s.ProcedureGetByName(ctx, "restart-api"); p.ActiveVersionID != v1.ID {
		t.Fatal("the active version changed before the new one was approved")
	}
	rr, err = svc.Review(ctx, carol, v2.ID, v2.Digest, "approve", "security ok")
	if err != nil || !rr.Activated || rr.Superseded == nil || rr.Superseded.ID != v1.ID {
		t.Fatalf("quorum: %+v %v", rr, err)
	}
	old, _ := s.ProcedureVersionGet(ctx, v1.ID)
	if old.Status != store.VersionSuperseded {
		t.Fatalf("v1 is %s, want superseded", old.Status)
	}

	// The trail: proposals, reviews, activations, supersession, denials.
	for typ, n := range map[string]int{
		audit.ProcedureCreate: 1, audit.ProcedureVersionPropose: 2, audit.ProcedureVersionReview: 3,
		audit.ProcedureVersionActivate: 2, audit.ProcedureVersionSupersede: 1, audit.ProcedureVersionReviewDenied: 2, // bob's stale digest, bob twice
		audit.AuthzDeny: 2, // policy lets neither alice (dev) nor erin (noc) review
	} {
		if got := len(events(t, s, typ)); got != n {
			t.Errorf("%d %s events, want %d", got, typ, n)
		}
	}
	act := events(t, s, audit.ProcedureVersionActivate)[1]
	if !strings.Contains(string(act.Details), `"approvers":["bob","carol"]`) || !strings.Contains(string(act.Details), v2.Digest) {
		t.Errorf("activation event lacks approvers or digest: %s", act.Details)
	}
}

func TestAuthorInReviewerGroupCannotSelfApprove(t *testing.T) {
	svc, s := setup(t)
	ctx := context.Background()
	r, err := svc.Propose(ctx, olga, def(t, "low", "api"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = svc.Review(ctx, olga, r.Version.ID, r.Version.Digest, "approve", "my own")
	kind(t, err, airlock.Forbidden)
	denied := events(t, s, audit.ProcedureVersionReviewDenied)
	if len(denied) != 1 || denied[0].Outcome != audit.Denied || !strings.Contains(string(denied[0].Details), "your own version") {
		t.Fatalf("self-review not audited: %+v", denied)
	}
	if st, _ := svc.VersionStatus(ctx, bob, r.Version.ID); st.Version.Status != store.VersionProposed || len(st.Reviews) != 0 {
		t.Fatalf("self-review changed the version: %+v", st)
	}
}

func TestRejectionWithdrawalOwnershipAndRetirement(t *testing.T) {
	svc, s := setup(t)
	ctx := context.Background()
	r, _ := svc.Propose(ctx, alice, def(t, "high", "api"))
	_, err := svc.Review(ctx, dana, r.Version.ID, r.Version.Digest, "reject", "")
	if airlock.ErrorField(err) != "comment" {
		t.Fatalf("rejection without comment: %v", err)
	}
	if _, err := svc.Review(ctx, dana, r.Version.ID, r.Version.Digest, "reject", "needs a rollback step"); err != nil {
		t.Fatal(err)
	}
	_, err = svc.Propose(ctx, alice, def(t, "high", "api"))
	kind(t, err, airlock.Conflict) // the rejected definition as is
	_, err = svc.Review(ctx, bob, r.Version.ID, r.Version.Digest, "approve", "")
	kind(t, err, airlock.Conflict) // no reviews after a decision

	// A newer proposal withdraws the pending one.
	a, _ := svc.Propose(ctx, alice, def(t, "low", "api-a"))
	b, err := svc.Propose(ctx, alice, def(t, "low", "api-b"))
	if err != nil || len(b.Withdrawn) != 1 || b.Withdrawn[0].ID != a.Version.ID {
		t.Fatalf("newer proposal: %+v %v", b, err)
	}
	if _, err := svc.Review(ctx, bob, b.Version.ID, b.Version.Digest, "approve", ""); err != nil {
		t.Fatal(err)
	}

	// Another team may not propose for this procedure, nor take it over.
	_, err = svc.Propose(ctx, erin, def(t, "low", "x"))
	kind(t, err, airlock.Forbidden)
	other := def(t, "low", "x")
	other.Procedure.Owner = "noc"
	_, err = svc.Propose(ctx, &identity.Principal{UserID: "usr_n", Username: "n", Groups: []string{"noc", "payments"}}, other)
	if airlock.ErrorKind(err) != airlock.Forbidden || airlock.ErrorField(err) != "owner" {
		t.Fatalf("owner change after approval: %v", err)
	}

	// Withdraw: only the author or an admin.
	c, _ := svc.Propose(ctx, alice, def(t, "low", "api-c"))
	_, err = svc.Withdraw(ctx, carol, c.Version.ID)
	kind(t, err, airlock.Forbidden)
	if v, err := svc.Withdraw(ctx, alice, c.Version.ID); err != nil || v.Status != store.VersionWithdrawn {
		t.Fatalf("withdraw: %+v %v", v, err)
	}

	// Retire stops the procedure; its active version is retired.
	_, err = svc.Retire(ctx, erin, "restart-api", "replaced")
	kind(t, err, airlock.Forbidden)
	p, err := svc.Retire(ctx, alice, "restart-api", "replaced by restart-service")
	if err != nil || p.RetiredAt.IsZero() {
		t.Fatalf("retire: %+v %v", p, err)
	}
	if v, _ := s.ProcedureVersionGet(ctx, b.Version.ID); v.Status != store.VersionRetired {
		t.Fatalf("active version after retire: %s", v.Status)
	}
	if n := len(events(t, s, audit.ProcedureRetire)); n != 1 {
		t.Fatalf("%d retire events", n)
	}
}

func TestDiff(t *testing.T) {
	svc, s := setup(t)
	ctx := context.Background()
	a, _ := svc.Propose(ctx, alice, def(t, "low", "api"))
	svc.Review(ctx, bob, a.Version.ID, a.Version.Digest, "approve", "")
	b, _ := svc.Propose(ctx, alice, def(t, "medium", "api-v2"))
	va, _ := s.ProcedureVersionGet(ctx, a.Version.ID)
	d, err := review.Diff(va, b.Version)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"--- restart-api v1 (approved", "+++ restart-api v2 (proposed", "-risk: low", "+risk: medium", "-      - api", "+      - api-v2"} {
		if !strings.Contains(d, want) {
			t.Errorf("diff lacks %q:\n%s", want, d)
		}
	}
}

// TestRiskDowngradeKeepsTheQuorum: a new version of a high-risk
// procedure that declares itself low risk is reviewed under the
// high-risk quorum of the version in service, and says so.
func TestRiskDowngradeKeepsTheQuorum(t *testing.T) {
	svc, _ := setup(t)
	ctx := context.Background()
	r1, err := svc.Propose(ctx, alice, def(t, "high", "api"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*identity.Principal{bob, carol, dana} {
		if _, err := svc.Review(ctx, p, r1.Version.ID, r1.Version.Digest, "approve", "ok"); err != nil {
			t.Fatalf("%s approves v1: %v", p.Username, err)
		}
	}
	r2, err := svc.Propose(ctx, alice, def(t, "low", "everything"))
	if err != nil {
		t.Fatal(err)
	}
	v2 := r2.Version
	st, err := svc.StatusOf(ctx, v2)
	if err != nil || st.Risk != "high" || !strings.Contains(st.RiskChange, "declared low risk, replacing a high-risk version") {
		t.Fatalf("status of the downgrade: %+v %v", st, err)
	}
	rr, err := svc.Review(ctx, bob, v2.ID, v2.Digest, "approve", "looks low to me")
	if err != nil || rr.Activated {
		t.Fatalf("ops alone activated a downgrade of a high-risk procedure: %+v %v", rr, err)
	}
	for _, p := range []*identity.Principal{carol, dana} {
		if rr, err = svc.Review(ctx, p, v2.ID, v2.Digest, "approve", "ok"); err != nil {
			t.Fatalf("%s approves v2: %v", p.Username, err)
		}
	}
	if !rr.Activated {
		t.Fatalf("the full high-risk quorum did not activate v2: %+v", rr)
	}
}
