package evidence

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/store"
)

// TestFourEyesCountsTriggerProposerAndTokenMakersAsTheAccount: a run an
// event trigger requested as its service account was approved by the
// trigger's proposer (who holds its secret), another by the person who
// made the account's API token: both count as the requester, as Airlock
// counts them when approving, and are exceptions. An approval by someone
// else is not.
func TestFourEyesCountsTriggerProposerAndTokenMakersAsTheAccount(t *testing.T) {
	day := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	seq := int64(0)
	ev := func(at time.Time, typ, actor, subject string, d map[string]any) *store.AuditEvent {
		seq++
		b, _ := json.Marshal(d)
		return &store.AuditEvent{Seq: seq, Time: at, Type: typ, ActorID: "usr_" + actor, ActorName: actor, Subject: subject, Details: b}
	}
	h := func(n int) time.Time { return day.Add(time.Duration(n) * time.Hour) }
	events := []*store.AuditEvent{
		ev(h(0), "token.create", "bob", "usr_bot", map[string]any{"token_id": "tok_1", "user_id": "usr_bot", "username": "bot", "service_account": true}),
		ev(h(1), "trigger.propose", "erin", "trg_x", map[string]any{"name": "x", "account": "bot"}),
		ev(h(1), "trigger.activate", "system", "trg_x", map[string]any{"name": "x", "approvers": []string{"olga"}}),
	}
	run := func(id, approver string) RunRecord {
		return RunRecord{Run: &store.Run{ID: id, StandingID: "trg_x", RequesterID: "usr_bot", RequesterName: "bot", Binding: "b",
			ApprovalsRequired: 1, CreatedAt: h(2), StartedAt: h(3), VersionID: "pv_1"},
			Approvals: []*store.RunApproval{{ApproverID: "usr_" + approver, ApproverName: approver, Decision: "approve", Binding: "b"}}}
	}
	runs := []RunRecord{run("run_proposer", "erin"), run("run_token_maker", "bob"), run("run_ok", "olga")}
	sum := Summarize(events, runs, []VersionRecord{{ProcedureVersion: &store.ProcedureVersion{ID: "pv_1", Status: store.VersionApproved}}}, nil, day)
	var got Control
	for _, c := range sum.Controls {
		if c.ID == "four-eyes-runs" {
			got = c
		}
	}
	want := map[string]string{"run_proposer": "erin, who proposed the trigger trg_x that requested it", "run_token_maker": "bob, who counts as bot"}
	if len(got.Exceptions) != len(want) {
		t.Fatalf("four-eyes-runs: %+v", got)
	}
	for _, f := range got.Exceptions {
		if want[f.Ref] == "" || !strings.Contains(f.Detail, want[f.Ref]) {
			t.Errorf("%s: %q, want %q", f.Ref, f.Detail, want[f.Ref])
		}
	}
}
