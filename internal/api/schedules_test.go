package api_test

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/airlockhq/airlock/internal/api"
)

// TestSchedulesOverHTTP: alice proposes a schedule and sees its next
// five ticks before anyone approves; she cannot approve it herself (and
// is told why), nor can bob approve what he did not see; bob approves
// it; dana, who may not request the run, cannot propose one;
// the proposer, an approver or a policy admin pauses, resumes and
// deletes it; others may not.
func TestSchedulesOverHTTP(t *testing.T) {
	d := newDemoEnv(t, nil)
	req := api.ScheduleRequest{Name: "nightly-rotate", Procedure: "rotate-logs", Environment: "staging",
		Params: map[string]any{"keep_days": 3}, Cron: "30 2 * * *", TimeZone: "Europe/Berlin"}
	code, out, _ := d.call("POST", "/api/v1/schedules", d.tok["alice"], req)
	if code != 201 || out["status"] != "pending_approval" || len(out["next_ticks"].([]any)) != 5 {
		t.Fatalf("alice proposes: %d %v", code, out)
	}
	binding := out["binding"].(string)
	if code, out, _ := d.call("POST", "/api/v1/schedules", d.tok["alice"], req); code != 400 || !strings.Contains(out["error"].(map[string]any)["message"].(string), "exists already") {
		t.Fatalf("the same name again: %d %v", code, out)
	}
	code, out, _ = d.call("POST", "/api/v1/schedules/nightly-rotate/approve", d.tok["alice"], api.DecisionRequest{Binding: binding})
	if code != 403 || !strings.Contains(out["error"].(map[string]any)["message"].(string), "someone else must approve it") {
		t.Fatalf("alice approves her own schedule: %d %v", code, out)
	}
	if code, out, _ := d.call("POST", "/api/v1/schedules/nightly-rotate/approve", d.tok["bob"], api.DecisionRequest{Binding: "sha256:stale"}); code != 409 {
		t.Fatalf("bob approves another binding: %d %v", code, out)
	}
	code, out, _ = d.call("POST", "/api/v1/schedules/nightly-rotate/approve", d.tok["bob"], api.DecisionRequest{Binding: binding, Comment: "nightly is fine"})
	if code != 200 || out["status"] != "active" {
		t.Fatalf("bob approves: %d %v", code, out)
	}
	code, out, _ = d.call("GET", "/api/v1/schedules/nightly-rotate", d.tok["alice"], nil)
	if code != 200 || len(out["approvals"].([]any)) != 1 || out["approvals"].([]any)[0].(map[string]any)["counts"] != true {
		t.Fatalf("the schedule: %d %v", code, out)
	}
	if code, out, _ := d.call("GET", "/api/v1/schedules", d.tok["alice"], nil); code != 200 || len(out["items"].([]any)) != 1 {
		t.Fatalf("list: %d %v", code, out)
	}
	if code, out, _ := d.call("POST", "/api/v1/schedules", d.tok["dana"], api.ScheduleRequest{Name: "dana", Procedure: "rotate-logs",
		Environment: "staging", Cron: "@daily"}); code != 403 {
		t.Fatalf("dana proposes: %d %v", code, out)
	}
	if code, out, _ := d.call("POST", "/api/v1/schedules/nightly-rotate/pause", d.tok["erin"], api.StandingChangeRequest{}); code != 403 {
		t.Fatalf("erin pauses: %d %v", code, out)
	}
	if code, out, _ := d.call("POST", "/api/v1/schedules/nightly-rotate/pause", d.tok["alice"], api.StandingChangeRequest{Comment: "holiday"}); code != 200 || out["status"] != "paused" {
		t.Fatalf("alice pauses: %d %v", code, out)
	}
	if code, out, _ := d.call("POST", "/api/v1/schedules/nightly-rotate/resume", d.tok["bob"], api.StandingChangeRequest{}); code != 200 || out["status"] != "active" {
		t.Fatalf("bob resumes: %d %v", code, out)
	}
	if code, out, _ := d.call("DELETE", "/api/v1/schedules/nightly-rotate", d.tok["alice"], nil); code != 200 || out["status"] != "deleted" {
		t.Fatalf("alice deletes: %d %v", code, out)
	}
	if code, out, _ := d.call("GET", "/api/v1/schedules", d.tok["alice"], nil); code != 200 || len(out["items"].([]any)) != 0 {
		t.Fatalf("a deleted schedule is listed: %d %v", code, out)
	}
	// The name is free again.
	if code, out, _ := d.call("POST", "/api/v1/schedules", d.tok["alice"], req); code != 201 {
		t.Fatalf("propose again: %d %v", code, out)
	}
}

// TestScheduleNotifications: a proposed schedule is announced to those
// who could approve it (bob, not alice who proposed it), its activation
// to its proposer; the webhook payloads carry what the schema says.
func TestScheduleNotifications(t *testing.T) {
	rc := newReceiver(t)
	d := newDemoEnv(t, rc.config)
	code, out, _ := d.call("POST", "/api/v1/schedules", d.tok["alice"], api.ScheduleRequest{Name: "hourly", Procedure: "rotate-logs",
		Environment: "staging", Cron: "@hourly"})
	if code != 201 {
		t.Fatalf("propose: %d %v", code, out)
	}
	id := out["id"].(string)
	p := rc.wait("standing_needed", id)
	fields := jsonFields(reflect.TypeFor[api.WebhookStanding]())
	for k := range p.Data {
		if !fields[k] {
			t.Errorf("standing_needed carries %q, which the schema does not describe", k)
		}
	}
	if p.Data["standing_kind"] != "schedule" || p.Data["name"] != "hourly" || p.Data["proposer"] != "alice" {
		t.Fatalf("payload: %v", p.Data)
	}
	st, err := d.srv.Store.StandingGet(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if who, err := d.srv.Standing.Approvers(context.Background(), st); err != nil || !slices.Equal(who, []string{"bob"}) {
		t.Fatalf("approvers: %v %v", who, err)
	}
	if code, out, _ := d.call("POST", "/api/v1/schedules/hourly/approve", d.tok["bob"], api.DecisionRequest{Binding: out["binding"].(string)}); code != 200 {
		t.Fatalf("approve: %d %v", code, out)
	}
	if p := rc.wait("standing_changed", id); p.Data["status"] != "active" {
		t.Fatalf("activation: %v", p.Data)
	}
}

// TestScheduleScopedToken: alice's token scoped to proposing versions
// cannot propose, pause or delete her schedules; one scoped to
// requesting rotate-logs in staging can.
func TestScheduleScopedToken(t *testing.T) {
	d := newDemoEnv(t, nil)
	req := api.ScheduleRequest{Name: "hourly", Procedure: "rotate-logs", Environment: "staging", Cron: "@hourly"}
	ci := d.scoped(t, "alice", "propose")
	if code, out, _ := d.call("POST", "/api/v1/schedules", ci, req); code != 403 && code != 404 {
		t.Fatalf("a propose-only token proposes a schedule: %d %v", code, out)
	}
	code, out, _ := d.call("POST", "/api/v1/schedules", d.tok["alice"], req)
	if code != 201 {
		t.Fatalf("propose: %d %v", code, out)
	}
	if code, out, _ := d.call("POST", "/api/v1/schedules/hourly/approve", d.tok["bob"], api.DecisionRequest{Binding: out["binding"].(string)}); code != 200 {
		t.Fatalf("approve: %d %v", code, out)
	}
	for _, verb := range []string{"pause", "delete"} {
		method, path, body := "POST", "/api/v1/schedules/hourly/"+verb, any(api.StandingChangeRequest{})
		if verb == "delete" {
			method, path, body = "DELETE", "/api/v1/schedules/hourly", nil
		}
		if code, out, _ := d.call(method, path, ci, body); code != 403 && code != 404 {
			t.Fatalf("a propose-only token: %s: %d %v", verb, code, out)
		}
	}
	ops := d.scoped(t, "alice", "request:rotate-logs@staging")
	if code, out, _ := d.call("POST", "/api/v1/schedules/hourly/pause", ops, api.StandingChangeRequest{}); code != 200 {
		t.Fatalf("a token scoped to the run pauses: %d %v", code, out)
	}
}
