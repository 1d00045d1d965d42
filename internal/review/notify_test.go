package review_test

import (
	"context"
	"strings"
	"testing"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/config"
	"github.com/airlockhq/airlock/internal/procedure"
	"github.com/airlockhq/airlock/internal/review"
)

func defWithNotify(t *testing.T, rules string) *procedure.Source {
	t.Helper()
	src := "apiVersion: airlock/v1\nkind: Procedure\nname: restart-api\nowner: payments\nrisk: low\n" + rules +
		"steps:\n  - name: restart\n    exec: [systemctl, restart, api]\n"
	srcs, err := procedure.Parse("restart-api.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return srcs[0]
}

// TestProposeChecksNotifyTargets: a proposal naming a Teams webhook or a
// webhook the server does not configure is refused before anything is
// stored, each name at its line and column with the names that exist;
// one naming configured targets is proposed, and changing a target
// only is a new version to review.
func TestProposeChecksNotifyTargets(t *testing.T) {
	svc, s := setup(t)
	ctx := context.Background()
	svc.KnownTargets = review.ConfiguredTargets(config.Notify{
		Teams:    []config.NotifyTeams{{Name: "payments", URLFile: "/x"}},
		Webhooks: []config.NotifyWebhook{{Name: "pagerduty"}, {Name: "siem"}},
	})
	unknown := defWithNotify(t, "notify:\n  - email: [payments-oncall@example.com]\n  - teams: platform\n    webhooks: [pagerduty, opsgenie]\n")
	_, err := svc.Propose(ctx, alice, unknown)
	kind(t, err, airlock.Invalid)
	want := `restart-api.yaml:8:12: notify[1].teams: no notify.teams entry named "platform" in the server's configuration (configured: payments)
restart-api.yaml:9:27: notify[1].webhooks[1]: no notify.webhooks entry named "opsgenie" in the server's configuration (configured: pagerduty, siem)`
	if airlock.ErrorField(err) != "source" || airlock.ErrorMessage(err) != want {
		t.Fatalf("unknown targets: field %q\n%s\nwant:\n%s", airlock.ErrorField(err), airlock.ErrorMessage(err), want)
	}
	if n := len(events(t, s, audit.ProcedureVersionPropose)); n != 0 {
		t.Fatalf("a refused proposal was recorded: %d proposals", n)
	}
	if _, err := s.ProcedureGetByName(ctx, "restart-api"); airlock.ErrorKind(err) != airlock.NotFound {
		t.Fatalf("a refused proposal created the procedure: %v", err)
	}

	r1, err := svc.Propose(ctx, alice, defWithNotify(t, "notify:\n  - teams: payments\n    webhooks: [pagerduty]\n"))
	if err != nil || r1.Status != "proposed" {
		t.Fatalf("configured targets: %+v %v", r1, err)
	}
	if _, err := svc.Review(ctx, bob, r1.Version.ID, r1.Version.Digest, "approve", "ok"); err != nil {
		t.Fatal(err)
	}
	// Another webhook, nothing else changed: a new version, to review.
	r2, err := svc.Propose(ctx, alice, defWithNotify(t, "notify:\n  - teams: payments\n    webhooks: [siem]\n"))
	if err != nil || r2.Status != "proposed" || r2.Version.Number != 2 || r2.Version.Digest == r1.Version.Digest {
		t.Fatalf("changed webhook: %+v %v", r2, err)
	}
	d, err := review.Diff(r1.Version, r2.Version)
	if err != nil || !strings.Contains(d, "-      - pagerduty\n") || !strings.Contains(d, "+      - siem\n") {
		t.Fatalf("the diff reviewers read lacks the target change: %v\n%s", err, d)
	}

	// Without the hook (no server configuration to ask), names pass on
	// their syntax alone.
	plain, _ := setup(t)
	if r, err := plain.Propose(ctx, alice, unknown); err != nil || r.Status != "proposed" {
		t.Fatalf("no hook: %+v %v", r, err)
	}
}
