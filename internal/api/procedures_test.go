package api_test

import (
	"strings"
	"testing"

	"github.com/airlockhq/airlock/internal/api"
)

const restartV1 = `apiVersion: airlock/v1
kind: Procedure
name: restart-api
title: Restart the API
owner: payments
risk: medium
steps:
  - name: restart
    exec: [systemctl, restart, api]
`

func TestProcedureReviewFlowOverHTTP(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.token("alice", e.user("alice", "dev", "payments"))
	bob := e.token("bob", e.user("bob", "ops"))
	carol := e.token("carol", e.user("carol", "security"))

	code, out, _ := e.call("POST", "/api/v1/versions", alice, api.ProposeRequest{Source: restartV1, File: "ops/restart.yaml"})
	if code != 201 || out["status"] != "proposed" {
		t.Fatalf("propose: %d %v", code, out)
	}
	v := out["version"].(map[string]any)
	id, digest := v["id"].(string), v["digest"].(string)
	if code, out, _ := e.call("POST", "/api/v1/versions", alice, api.ProposeRequest{Source: restartV1}); code != 200 || out["status"] != "unchanged" {
		t.Fatalf("propose again: %d %v", code, out)
	}

	// Bob's inbox has it; Alice's (the author's) does not.
	_, inbox, _ := e.call("GET", "/api/v1/versions?reviewable=true", bob, nil)
	if items := inbox["items"].([]any); len(items) != 1 {
		t.Fatalf("bob's inbox: %v", inbox)
	}
	_, inbox, _ = e.call("GET", "/api/v1/versions?reviewable=true", alice, nil)
	if items := inbox["items"].([]any); len(items) != 0 {
		t.Fatalf("alice's inbox holds her own version: %v", inbox)
	}

	// Self-review is refused.
	code, out, _ = e.call("POST", "/api/v1/versions/"+id+"/reviews", alice, api.ReviewRequest{Decision: "approve", Digest: digest})
	if code != 403 {
		t.Fatalf("self review: %d %v", code, out)
	}
	// A missing digest is refused naming the field.
	code, out, _ = e.call("POST", "/api/v1/versions/"+id+"/reviews", bob, api.ReviewRequest{Decision: "approve"})
	if code != 400 || out["error"].(map[string]any)["field"] != "digest" {
		t.Fatalf("review without digest: %d %v", code, out)
	}
	code, out, _ = e.call("POST", "/api/v1/versions/restart-api@1/reviews", bob, api.ReviewRequest{Decision: "approve", Digest: digest, Comment: "ok"})
	if code != 201 || out["activated"] != false || out["missing"].([]any)[0] != "security" {
		t.Fatalf("ops approval: %d %v", code, out)
	}
	code, out, _ = e.call("POST", "/api/v1/versions/"+id+"/reviews", carol, api.ReviewRequest{Decision: "approve", Digest: digest})
	if code != 201 || out["activated"] != true {
		t.Fatalf("security approval: %d %v", code, out)
	}

	// v2 and the diff reviewers read.
	v2 := strings.Replace(restartV1, "[systemctl, restart, api]", "[systemctl, restart, api-v2]", 1)
	code, out, _ = e.call("POST", "/api/v1/versions", alice, api.ProposeRequest{Source: v2})
	if code != 201 {
		t.Fatalf("propose v2: %d %v", code, out)
	}
	code, out, _ = e.call("GET", "/api/v1/procedures/restart-api/diff", bob, nil)
	if code != 200 || !strings.Contains(out["diff"].(string), "+      - api-v2") || !strings.Contains(out["diff"].(string), "-      - api\n") {
		t.Fatalf("diff: %d %v", code, out)
	}
	code, out, _ = e.call("GET", "/api/v1/procedures/restart-api", bob, nil)
	if code != 200 || out["state"] != "active" || out["active"].(map[string]any)["number"].(float64) != 1 || len(out["pending"].([]any)) != 1 {
		t.Fatalf("procedure with pending v2: %d %v", code, out)
	}
	code, out, _ = e.call("GET", "/api/v1/procedures/restart-api/versions", bob, nil)
	if code != 200 || len(out["items"].([]any)) != 2 {
		t.Fatalf("history: %d %v", code, out)
	}
}

func TestProposeInvalidDefinitionListsEveryError(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.token("alice", e.user("alice", "dev", "payments"))
	bad := "apiVersion: airlock/v1\nkind: Procedure\nname: x\nowner: payments\nrisk: severe\nsteps:\n  - name: s\n    script: echo {{ .params.x }}\n"
	code, out, _ := e.call("POST", "/api/v1/versions", alice, api.ProposeRequest{Source: bad, File: "x.yaml"})
	msg, _ := out["error"].(map[string]any)["message"].(string)
	if code != 400 || !strings.Contains(msg, `x.yaml:5:7: risk: expected low, medium or high, got "severe"`) ||
		!strings.Contains(msg, "x.yaml:8:18: steps[0].script: templates are not allowed") {
		t.Fatalf("invalid proposal: %d %q", code, msg)
	}
	_, list, _ := e.call("GET", "/api/v1/procedures", alice, nil)
	if len(list["items"].([]any)) != 0 {
		t.Fatal("an invalid proposal left a procedure behind")
	}
	// Proposing for a team one is not in.
	code, _, _ = e.call("POST", "/api/v1/versions", alice, api.ProposeRequest{Source: strings.Replace(restartV1, "owner: payments", "owner: platform", 1)})
	if code != 403 {
		t.Fatalf("proposal for another team: %d", code)
	}
}
