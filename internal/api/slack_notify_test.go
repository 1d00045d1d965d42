package api_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/api"
	"github.com/airlockhq/airlock/internal/notify/slack"
	"github.com/airlockhq/airlock/internal/notify/slack/slacktest"
)

// TestApprovalFromTheSlackMessage: the whole loop as people live it.
// alice requests a production run; Airlock posts bob, who linked his
// Slack account, a direct message showing what will run where with
// Approve and Deny; bob's click on that message's Approve approves the
// run, which runs; alice hears of it.
func TestApprovalFromTheSlackMessage(t *testing.T) {
	d, fake := newSlackEnv(t)
	linkSlack(t, d, fake, "bob", "UBOB")
	linkSlack(t, d, fake, "alice", "UALICE")
	code, r := d.request(t, "alice", api.RunRequest{Procedure: "flush-cache", Environment: "production",
		Params: map[string]any{"cache": "catalog"}, Reason: "stale prices"})
	if code != 201 || r["status"] != "pending_approval" {
		t.Fatalf("request: %d %v", code, r)
	}
	id := r["id"].(string)
	post := fake.Wait("the approval request in bob's direct messages", func(c slacktest.Call) bool {
		return c.Method == "chat.postMessage" && strings.Contains(c.Form.Get("blocks"), id)
	})
	blocks := post.Form.Get("blocks")
	for _, want := range []string{"flush-cache", "production", "cache=\\\"catalog\\\"", "alice", "stale prices", slack.ActionApprove, slack.ActionDeny} {
		if !strings.Contains(blocks, want) {
			t.Errorf("the message lacks %q: %s", want, blocks)
		}
	}
	// The value of the Approve button as posted.
	var bs []map[string]any
	if err := json.Unmarshal([]byte(blocks), &bs); err != nil {
		t.Fatal(err)
	}
	value := ""
	for _, b := range bs {
		els, _ := b["elements"].([]any)
		for _, e := range els {
			if m, _ := e.(map[string]any); m["action_id"] == slack.ActionApprove {
				value, _ = m["value"].(string)
			}
		}
	}
	if value != id+" "+r["binding"].(string) {
		t.Fatalf("the Approve button carries %q, want the run and its binding", value)
	}
	click, reply := fake.Click("T1", "UBOB", slack.ActionApprove, value, time.Now())
	if status, _ := slacktest.Send(t, d.url+"/api/v1/chat/slack/interactions", click); status != 200 {
		t.Fatalf("bob clicks Approve: %d", status)
	}
	if text := fake.Reply(reply); !strings.Contains(text, "You approved") {
		t.Fatalf("bob's reply: %q", text)
	}
	if final := d.waitRun(t, d.tok["alice"], id); final["status"] != "succeeded" {
		t.Fatalf("the run: %v", final["status"])
	}
	fake.Wait("alice told the run finished", func(c slacktest.Call) bool {
		return c.Method == "chat.postMessage" && strings.Contains(c.Form.Get("text"), "succeeded") && strings.Contains(c.Form.Get("blocks"), id)
	})
}
