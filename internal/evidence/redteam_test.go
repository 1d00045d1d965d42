package evidence

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/store"
)

// TestRedTeamReportLinksTheApproverOfANewUser: carol proposed frank, bob
// approved and received frank's one-time password; frank approved bob's
// run. The report must count frank as bob.
func TestRedTeamReportLinksTheApproverOfANewUser(t *testing.T) {
	day := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	d, _ := json.Marshal(map[string]any{"username": "frank", "change": "uch_1", "proposed_by": "carol", "proposed_by_id": "usr_carol"})
	events := []*store.AuditEvent{{Seq: 1, Time: day, Type: "user.create", ActorID: "usr_bob", ActorName: "bob", Subject: "usr_frank", Details: d}}
	runs := []RunRecord{{Run: &store.Run{ID: "run_1", RequesterID: "usr_bob", RequesterName: "bob", Binding: "b", ApprovalsRequired: 1,
		StartedAt: day, VersionID: "pv_1"},
		Approvals: []*store.RunApproval{{ApproverID: "usr_frank", ApproverName: "frank", Decision: "approve", Binding: "b"}}}}
	sum := Summarize(events, runs, []VersionRecord{{ProcedureVersion: &store.ProcedureVersion{ID: "pv_1", Status: store.VersionApproved}}}, nil, day)
	for _, c := range sum.Controls {
		if c.ID == "four-eyes-runs" {
			if len(c.Exceptions) != 1 || !strings.Contains(c.Exceptions[0].Detail, "frank, who counts as bob") {
				t.Fatalf("four-eyes-runs exceptions: %v", c.Exceptions)
			}
		}
	}
}
