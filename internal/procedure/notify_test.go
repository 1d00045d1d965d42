package procedure_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/airlockhq/airlock/internal/notify"
	"github.com/airlockhq/airlock/internal/procedure"
)

// withNotify is a valid procedure whose notify: block (from line 6,
// indented as written) is rules.
func withNotify(rules string) string {
	return "apiVersion: airlock/v1\nkind: Procedure\nname: restart-api\nowner: payments\nrisk: low\n" +
		rules + "steps:\n  - name: restart\n    exec: [systemctl, restart, api]\n"
}

func TestNotifyKindsAreNotifysKinds(t *testing.T) {
	if !slices.Equal(procedure.NotifyKinds, notify.Kinds) {
		t.Fatalf("procedure.NotifyKinds %v, notify.Kinds %v", procedure.NotifyKinds, notify.Kinds)
	}
}

func TestNotifyRules(t *testing.T) {
	ok := "notify:\n" +
		"  - kinds: [run_finished, approval_needed]\n" +
		"    email: [payments-oncall@example.com]\n" +
		"    slack: C0123ABCDEF\n" +
		"    teams: payments\n" +
		"    webhooks: [pagerduty]\n" +
		"  - email: [b@example.com, a@example.com, b@example.com]\n"
	srcs, err := procedure.Parse("p.yaml", []byte(withNotify(ok)))
	if err != nil {
		t.Fatal(err)
	}
	p := srcs[0].Procedure
	want := []procedure.NotifyRule{
		{Kinds: []string{"approval_needed", "run_finished"}, Email: []string{"payments-oncall@example.com"}, Slack: "C0123ABCDEF",
			Teams: "payments", Webhooks: []string{"pagerduty"}},
		{Email: []string{"a@example.com", "b@example.com"}}, // sorted, the repeat dropped
	}
	if fmt.Sprint(p.Notify) != fmt.Sprint(want) {
		t.Fatalf("rules %+v, want %+v", p.Notify, want)
	}
	// Which rules a kind reaches: those naming it, and those naming none.
	for kind, n := range map[string]int{"approval_needed": 2, "run_finished": 2, "review_needed": 1} {
		if got := p.NotifyTargets(kind); len(got) != n || got[len(got)-1].Email[0] != "a@example.com" {
			t.Errorf("NotifyTargets(%s) = %+v, want %d rules ending with the every-kind one", kind, got, n)
		}
	}
	if got := (&procedure.Procedure{}).NotifyTargets("run_finished"); got != nil {
		t.Errorf("no rules: %+v", got)
	}
	// The rules are in the canonical form and the YAML reviewers read.
	if c := string(p.Canonical()); !strings.Contains(c, `"notify":[{"email":["payments-oncall@example.com"],"kinds":["approval_needed","run_finished"],"slack":"C0123ABCDEF","teams":"payments","webhooks":["pagerduty"]},{"email":["a@example.com","b@example.com"]}]`) {
		t.Errorf("canonical form: %s", c)
	}
	if y := p.YAML(); !strings.Contains(y, "notify:\n  - kinds:\n      - approval_needed\n      - run_finished\n    email:\n      - payments-oncall@example.com\n    slack: C0123ABCDEF\n    teams: payments\n    webhooks:\n      - pagerduty\n") {
		t.Errorf("canonical YAML:\n%s", y)
	}
	back, err := procedure.FromCanonical(p.Canonical())
	if err != nil || back.Digest() != p.Digest() || fmt.Sprint(back.Notify) != fmt.Sprint(p.Notify) {
		t.Fatalf("round trip: %v %+v", err, back)
	}
	// A definition without rules has no notify key: the digests of the
	// versions approved before rules existed stay what they were.
	plain, err := procedure.Parse("p.yaml", []byte(withNotify("")))
	if err != nil || strings.Contains(string(plain[0].Procedure.Canonical()), "notify") || strings.Contains(plain[0].Procedure.YAML(), "notify") {
		t.Fatalf("no rules: %v %s", err, plain[0].Procedure.Canonical())
	}
}

func TestNotifyRulesRefused(t *testing.T) {
	many := func(n int, rule string) string {
		return "notify:\n" + strings.Repeat(rule, n)
	}
	cases := []struct {
		name, notify string
		want         []string // p.yaml:LINE:COL: path: message
	}{
		{"unknown key", "notify:\n  - email: [a@example.com]\n    channel: '#payments'\n",
			[]string{"8:5: notify[0].channel: unknown field (known: kinds, email, slack, teams, webhooks)"}},
		{"not a list", "notify: payments@example.com\n",
			[]string{`6:9: notify: expected a list, got "payments@example.com"`}},
		{"wrong type", "notify:\n  - email: a@example.com\n",
			[]string{`7:12: notify[0].email: expected a list, got "a@example.com"`}},
		{"no target", "notify:\n  - kinds: [run_finished]\n",
			[]string{"7:5: notify[0]: expected at least one target: email, slack, teams or webhooks"}},
		{"empty rule", "notify:\n  - {}\n",
			[]string{"7:5: notify[0]: expected at least one target: email, slack, teams or webhooks"}},
		{"no kinds", "notify:\n  - kinds: []\n    email: [a@example.com]\n",
			[]string{"7:12: notify[0].kinds: expected at least one kind; leave kinds out for every kind"}},
		{"unknown kind", "notify:\n  - kinds: [run_finished, run_exploded]\n    email: [a@example.com]\n",
			[]string{`7:27: notify[0].kinds[1]: expected one of approval_needed, approval_decided, run_started, run_finished, ` +
				`approval_expiring, approval_expired, review_needed, review_decided, policy_needed, user_change_needed, standing_needed, standing_changed, got "run_exploded"`}},
		{"bad email", "notify:\n  - email: [a@example.com, not-an-address]\n",
			[]string{`7:28: notify[0].email[1]: expected a plain email address such as payments-oncall@example.com, got "not-an-address"`}},
		{"display name", "notify:\n  - email: ['Payments <payments@example.com>']\n",
			[]string{`7:13: notify[0].email[0]: expected a plain email address such as payments-oncall@example.com, got "Payments <payments@example.com>"`}},
		{"angle brackets", "notify:\n  - email: ['<payments@example.com>']\n",
			[]string{`7:13: notify[0].email[0]: expected a plain email address such as payments-oncall@example.com, got "<payments@example.com>"`}},
		{"slack name", "notify:\n  - slack: '#payments'\n",
			[]string{`7:12: notify[0].slack: expected a Slack channel ID such as C0123ABCDEF (a channel's name can change, its ID cannot), got "#payments"`}},
		{"slack user", "notify:\n  - slack: U0123ABCDEF\n",
			[]string{`7:12: notify[0].slack: expected a Slack channel ID such as C0123ABCDEF (a channel's name can change, its ID cannot), got "U0123ABCDEF"`}},
		{"slack short", "notify:\n  - slack: C0123\n",
			[]string{`7:12: notify[0].slack: expected a Slack channel ID such as C0123ABCDEF (a channel's name can change, its ID cannot), got "C0123"`}},
		{"teams name", "notify:\n  - teams: Payments Team\n",
			[]string{`7:12: notify[0].teams: expected the name of a notify.teams entry (lower-case letters, digits and '-', starting with a letter), got "Payments Team"`}},
		{"webhook name", "notify:\n  - webhooks: [pagerduty, page_duty]\n",
			[]string{`7:27: notify[0].webhooks[1]: expected the name of a notify.webhooks entry (lower-case letters, digits and '-', starting with a letter), got "page_duty"`}},
		{"too many rules", many(11, "  - email: [a@example.com]\n"),
			[]string{"7:3: notify: at most 10 rules, got 11"}},
		{"too many targets", many(3, "  - {email: [a@example.com, b@example.com, c@example.com], slack: C0123ABCDEF, teams: t, webhooks: [w, x]}\n"),
			[]string{"7:3: notify: at most 20 targets over all rules, got 21"}},
		{"every problem at once", "notify:\n  - kinds: [nope]\n  - slack: '#ops'\n",
			[]string{"7:5: notify[0]: expected at least one target: email, slack, teams or webhooks",
				`7:13: notify[0].kinds[0]: expected one of approval_needed, approval_decided, run_started, run_finished, ` +
					`approval_expiring, approval_expired, review_needed, review_decided, policy_needed, user_change_needed, standing_needed, standing_changed, got "nope"`,
				`8:12: notify[1].slack: expected a Slack channel ID such as C0123ABCDEF (a channel's name can change, its ID cannot), got "#ops"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := procedure.Parse("p.yaml", []byte(withNotify(c.notify)))
			var want []string
			for _, w := range c.want {
				want = append(want, "p.yaml:"+w)
			}
			if err == nil || err.Error() != strings.Join(want, "\n") {
				t.Errorf("errors:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
			}
		})
	}
}

// TestNotifyTargetChangesTheDigest: notification targets are part of
// what is reviewed. Changing one only — an address, a channel, a kind —
// makes another version that needs its own review; writing the same
// rules differently does not.
func TestNotifyTargetChangesTheDigest(t *testing.T) {
	digest := func(rules string) string {
		t.Helper()
		srcs, err := procedure.Parse("p.yaml", []byte(withNotify(rules)))
		if err != nil {
			t.Fatal(err)
		}
		return srcs[0].Procedure.Digest()
	}
	base := digest("notify:\n  - kinds: [run_finished, approval_needed]\n    email: [oncall@example.com, leads@example.com]\n    slack: C0123ABCDEF\n")
	if base == digest("") {
		t.Fatal("adding rules kept the digest")
	}
	for _, changed := range []string{
		"notify:\n  - kinds: [run_finished, approval_needed]\n    email: [oncall@example.com, leads@evil.example]\n    slack: C0123ABCDEF\n",
		"notify:\n  - kinds: [run_finished, approval_needed]\n    email: [oncall@example.com, leads@example.com]\n    slack: C0123ABCDEG\n",
		"notify:\n  - kinds: [run_finished]\n    email: [oncall@example.com, leads@example.com]\n    slack: C0123ABCDEF\n",
		"notify:\n  - kinds: [run_finished, approval_needed]\n    email: [oncall@example.com, leads@example.com]\n    slack: C0123ABCDEF\n    webhooks: [siem]\n",
	} {
		if digest(changed) == base {
			t.Errorf("a changed target kept the digest:\n%s", changed)
		}
	}
	same := "notify:\n  - slack: \"C0123ABCDEF\"   # the payments channel\n    email:\n      - leads@example.com\n      - oncall@example.com\n" +
		"    kinds: [approval_needed, run_finished, run_finished]\n"
	if digest(same) != base {
		t.Error("the same rules written differently changed the digest")
	}
}

// TestCheckTargets: the names a server does not configure are refused,
// each at its place in the file, naming those that exist.
func TestCheckTargets(t *testing.T) {
	srcs, err := procedure.Parse("p.yaml", []byte(withNotify("notify:\n  - teams: payments\n    webhooks: [siem, pagerduty, audit-sink]\n  - teams: ops\n")))
	if err != nil {
		t.Fatal(err)
	}
	s := srcs[0]
	if errs := s.CheckTargets(procedure.KnownTargets{Teams: []string{"ops", "payments"}, Webhooks: []string{"audit-sink", "pagerduty", "siem"}}); errs != nil {
		t.Fatalf("all known: %v", errs)
	}
	got := s.CheckTargets(procedure.KnownTargets{Teams: []string{"ops"}, Webhooks: []string{"pagerduty"}}).Error()
	want := `p.yaml:7:12: notify[0].teams: no notify.teams entry named "payments" in the server's configuration (configured: ops)
p.yaml:8:16: notify[0].webhooks[0]: no notify.webhooks entry named "siem" in the server's configuration (configured: pagerduty)
p.yaml:8:33: notify[0].webhooks[2]: no notify.webhooks entry named "audit-sink" in the server's configuration (configured: pagerduty)`
	if got != want {
		t.Fatalf("errors:\n%s\nwant:\n%s", got, want)
	}
	got = s.CheckTargets(procedure.KnownTargets{}).Error()
	if !strings.Contains(got, `p.yaml:9:12: notify[1].teams: no notify.teams entry named "ops" in the server's configuration (none is configured)`) {
		t.Fatalf("nothing configured:\n%s", got)
	}
}
