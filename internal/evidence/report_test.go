package evidence

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/store"
)

// TestReportCountsLinkedAccountsAsOnePerson: what b98c677 allowed and
// reported as "0 exceptions" — bob created bobby alone, bobby approved
// bob's run, completed a review quorum with bob and (as bobadmin)
// approved bob's policy — is listed as exceptions, with the event that
// links the accounts. A change made by the sole admin while setting up
// is an exception too; a change another admin approved is not.
func TestReportCountsLinkedAccountsAsOnePerson(t *testing.T) {
	day := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	seq := int64(0)
	ev := func(at time.Time, typ, actorID, actor, subject string, d map[string]any) *store.AuditEvent {
		seq++
		b, _ := json.Marshal(d)
		return &store.AuditEvent{Seq: seq, Time: at, Type: typ, ActorID: actorID, ActorName: actor, Subject: subject, Details: b}
	}
	before := day.Add(-24 * time.Hour) // outside the period: context only
	events := []*store.AuditEvent{
		ev(before, "user.create", "usr_bob", "bob", "usr_bobby", map[string]any{"username": "bobby"}),
		ev(before, "group.member_add", "usr_bob", "bob", "grp_admins", map[string]any{"group": "admins", "user_id": "usr_bobadmin", "username": "bobadmin", "source": "manual"}),
		ev(day, "user.create", "usr_bob", "bob", "usr_bobby2", map[string]any{"username": "bobby2"}),
		ev(day, "procedure_version.activate", "", "system", "pv_1", map[string]any{"author": "alice", "approvers": []string{"bob", "bobby"}, "quorum": []string{"ops", "security"}}),
		ev(day, "policy.approve", "usr_bobadmin", "bobadmin", "pol_2", map[string]any{"author": "bob"}),
		ev(day, "user_change.approve", "usr_root", "root", "uch_1", map[string]any{"kind": "create_user", "author": "root", "sole_admin": true}),
		ev(day, "user_change.approve", "usr_carol", "carol", "uch_2", map[string]any{"kind": "create_user", "author": "bob"}),
		ev(day, "user.create", "usr_carol", "carol", "usr_frank", map[string]any{"username": "frank", "change": "uch_2", "proposed_by": "bob", "proposed_by_id": "usr_bob"}),
		ev(day, "user.create", "", "demo", "usr_erin", map[string]any{"username": "erin"}),
	}
	runs := []RunRecord{{Run: &store.Run{ID: "run_1", RequesterID: "usr_bob", RequesterName: "bob", Binding: "b", ApprovalsRequired: 1,
		StartedAt: day, VersionID: "pv_1"},
		Approvals: []*store.RunApproval{{ApproverID: "usr_bobby", ApproverName: "bobby", Decision: "approve", Binding: "b"}}}}
	sum := Summarize(events, runs, []VersionRecord{{ProcedureVersion: &store.ProcedureVersion{ID: "pv_1", Status: store.VersionApproved}}}, nil, day)
	got := map[string][]string{}
	for _, c := range sum.Controls {
		for _, e := range c.Exceptions {
			got[c.ID] = append(got[c.ID], e.Ref+": "+e.Detail)
		}
	}
	want := map[string][]string{
		"four-eyes-runs":          {"run_1: approved by bobby, who counts as bob: bobby's account was created by bob (event 1)"},
		"procedure-review-quorum": {"pv_1: approved by bobby, who counts as bob: bobby's account was created by bob (event 1)"},
		"policy-dual-control":     {"pol_2: approved by bobadmin, who counts as its author bob: bobadmin's account was granted admins by bob (event 2)"},
		"user-dual-control": {
			"uch_1: create_user: in force at once, proposed by root while no other admin existed",
			"usr_bobby2: user.create by bob alone, before user changes were under dual control",
		},
	}
	for id, w := range want {
		if strings.Join(got[id], "\n") != strings.Join(w, "\n") {
			t.Errorf("%s exceptions:\n%s\nwant:\n%s", id, strings.Join(got[id], "\n"), strings.Join(w, "\n"))
		}
	}
	for id, g := range got {
		if want[id] == nil {
			t.Errorf("unexpected %s exceptions: %v", id, g)
		}
	}
}
