package evidence

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/store"
)

// TestUnattendedRunsHeldToTheirStandingApproval: a scheduled run
// requested while its schedule was suspended, one under a schedule its
// proposer's own account approved (linked: the proposer created it),
// and a triggered run with no standing approval in the bundle are
// exceptions; a run under a clean approval, and one after a pause and a
// resume that restored it, are not.
func TestUnattendedRunsHeldToTheirStandingApproval(t *testing.T) {
	day := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	seq := int64(0)
	ev := func(at time.Time, typ, actor, subject string, d map[string]any) *store.AuditEvent {
		seq++
		b, _ := json.Marshal(d)
		return &store.AuditEvent{Seq: seq, Time: at, Type: typ, ActorID: "usr_" + actor, ActorName: actor, Subject: subject, Details: b}
	}
	h := func(n int) time.Time { return day.Add(time.Duration(n) * time.Hour) }
	events := []*store.AuditEvent{
		ev(h(0), "user.create", "alice", "usr_alicebot", map[string]any{"username": "alicebot"}),
		ev(h(1), "schedule.propose", "alice", "sch_a", map[string]any{"name": "a"}),
		ev(h(1), "schedule.activate", "system", "sch_a", map[string]any{"name": "a", "approvers": []string{"bob"}}),
		ev(h(3), "schedule.suspend", "system", "sch_a", map[string]any{"name": "a"}),
		ev(h(1), "schedule.propose", "alice", "sch_b", map[string]any{"name": "b"}),
		ev(h(1), "schedule.activate", "system", "sch_b", map[string]any{"name": "b", "approvers": []string{"alicebot"}}),
		ev(h(1), "schedule.propose", "carol", "sch_c", map[string]any{"name": "c"}),
		ev(h(1), "schedule.activate", "system", "sch_c", map[string]any{"name": "c", "approvers": []string{"bob"}}),
		ev(h(2), "schedule.pause", "carol", "sch_c", map[string]any{"status": "paused"}),
		ev(h(3), "schedule.resume", "carol", "sch_c", map[string]any{"status": "active"}),
	}
	run := func(id, standing string, at time.Time) RunRecord {
		return RunRecord{Run: &store.Run{ID: id, StandingID: standing, CreatedAt: at, RequesterID: standing}}
	}
	runs := []RunRecord{run("run_ok", "sch_a", h(2)), run("run_suspended", "sch_a", h(4)), run("run_linked", "sch_b", h(2)),
		run("run_resumed", "sch_c", h(4)), run("run_paused", "sch_c", h(2).Add(time.Minute)), run("run_trg", "trg_x", h(2))}
	sum := Summarize(events, runs, nil, nil, day)
	var got Control
	for _, c := range sum.Controls {
		if c.ID == "standing-approvals" {
			got = c
		}
	}
	want := map[string]string{"run_suspended": "suspended at", "run_linked": "counts as its proposer alice",
		"run_paused": "paused at", "run_trg": "no standing approval in the bundle"}
	if got.Checked != 6 || len(got.Exceptions) != len(want) {
		t.Fatalf("standing-approvals: %+v", got)
	}
	for _, f := range got.Exceptions {
		if !strings.Contains(f.Detail, want[f.Ref]) || want[f.Ref] == "" {
			t.Errorf("%s: %q, want %q", f.Ref, f.Detail, want[f.Ref])
		}
	}
	if len(sum.Unattended) != 6 || sum.Unattended[3].Proposer != "carol" || sum.Unattended[3].Approvers[0] != "bob" {
		t.Fatalf("unattended: %+v", sum.Unattended)
	}
}
