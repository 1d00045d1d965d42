package api_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/api"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/config"
	"github.com/airlockhq/airlock/internal/notify/slack"
	"github.com/airlockhq/airlock/internal/notify/slack/slacktest"
	"github.com/airlockhq/airlock/internal/store"
)

// newSlackEnv is the demo server with a Slack app configured against a
// fake Slack.
func newSlackEnv(t *testing.T) (*demoEnv, *slacktest.Slack) {
	fake := slacktest.New(t, "8f742231b10e8888abcd99yyyzzz85a5")
	d := newDemoEnv(t, func(c *config.Config) {
		tok, sec := filepath.Join(c.Data, "slack-bot-token"), filepath.Join(c.Data, "slack-signing-secret")
		os.WriteFile(tok, []byte("xoxb-test-token\n"), 0o600)
		os.WriteFile(sec, []byte(fake.Secret+"\n"), 0o600)
		c.Notify.Slack = config.NotifySlack{BotTokenFile: tok, SigningSecretFile: sec, APIURL: fake.APIURL()}
	})
	return d, fake
}

// linkSlack links Slack user slackUser of team T1 to user's account, as
// the user does: a code from the API, typed as /airlock link CODE.
func linkSlack(t *testing.T, d *demoEnv, fake *slacktest.Slack, user, slackUser string) string {
	t.Helper()
	code, out, _ := d.call("POST", "/api/v1/me/chat-links/code", d.tok[user], nil)
	if code != 201 || !strings.HasPrefix(out["command"].(string), "/airlock link ") {
		t.Fatalf("%s asks for a link code: %d %v", user, code, out)
	}
	status, body := slacktest.Send(t, d.url+"/api/v1/chat/slack/commands", fake.Command("T1", slackUser, "link "+out["code"].(string), time.Now()))
	if status != 200 || !strings.Contains(body, "Linked") || !strings.Contains(body, user) || !strings.Contains(body, `"ephemeral"`) {
		t.Fatalf("%s links %s: %d %s", user, slackUser, status, body)
	}
	return out["code"].(string)
}

// TestApproveFromSlack is the whole approval flow from a chat button,
// through the real server and the same approval service as the API:
// bob links his Slack account, alice requests a production run, and
// bob's click approves it, audited via slack — after every attack on
// the way was refused, audited, and approved nothing.
func TestApproveFromSlack(t *testing.T) {
	d, fake := newSlackEnv(t)
	ctx := context.Background()
	interactions := d.url + "/api/v1/chat/slack/interactions"
	commands := d.url + "/api/v1/chat/slack/commands"

	bobCode := linkSlack(t, d, fake, "bob", "UBOB")
	linkSlack(t, d, fake, "erin", "UERIN")
	linkSlack(t, d, fake, "alice", "UALICE")
	links := d.events(audit.ChatLink)
	if len(links) != 3 || links[0].ActorName != "bob" || !strings.Contains(string(links[0].Details), `"external_id":"UBOB"`) ||
		!strings.Contains(string(links[0].Details), `"team_id":"T1"`) || !strings.Contains(string(links[0].Details), `"via":"slack"`) {
		t.Fatalf("chat.link events: %d, first %+v", len(links), links[0])
	}
	// A code works once.
	if _, body := slacktest.Send(t, commands, fake.Command("T1", "UMALLORY", "link "+bobCode, time.Now())); !strings.Contains(body, "unknown or was used") {
		t.Fatalf("a used code, again: %s", body)
	}
	// A Slack user linked to bob cannot become dana too.
	_, out, _ := d.call("POST", "/api/v1/me/chat-links/code", d.tok["dana"], nil)
	if _, body := slacktest.Send(t, commands, fake.Command("T1", "UBOB", "link "+out["code"].(string), time.Now())); !strings.Contains(body, "linked to another Airlock account") {
		t.Fatalf("a linked Slack user links another account: %s", body)
	}
	if code, out, _ := d.call("GET", "/api/v1/me/chat-links", d.tok["bob"], nil); code != 200 || len(out["items"].([]any)) != 1 ||
		out["items"].([]any)[0].(map[string]any)["external_id"] != "UBOB" {
		t.Fatalf("bob's links: %d %v", code, out)
	}
	if _, out, _ := d.call("GET", "/api/v1/me/chat-links", d.tok["dana"], nil); len(out["items"].([]any)) != 0 {
		t.Fatalf("dana's links: %v", out)
	}

	code, a := d.request(t, "alice", api.RunRequest{Procedure: "flush-cache", Environment: "production", Params: map[string]any{"cache": "sessions"}})
	if code != 201 || a["status"] != "pending_approval" {
		t.Fatalf("alice requests in production: %d %v", code, a)
	}
	_, other := d.request(t, "alice", api.RunRequest{Procedure: "flush-cache", Environment: "production", Params: map[string]any{"cache": "catalog"}})
	// Bob may request restart-service in production, where it needs an
	// approval from someone else.
	code, own := d.request(t, "bob", api.RunRequest{Procedure: "restart-service", Environment: "production", Params: map[string]any{"service": "api"}})
	if code != 201 || own["status"] != "pending_approval" {
		t.Fatalf("bob requests restart-service in production: %d %v", code, own)
	}
	runID := a["id"].(string)
	value := runID + " " + a["binding"].(string)
	runLink := d.url + "/runs/" + runID

	// Refused with 401 before anything reads the payload: a bad
	// signature, a timestamp 6 minutes old, a replayed body.
	forged, forgedReply := fake.Click("T1", "UBOB", slack.ActionApprove, value, time.Now())
	forged.Signature = slacktest.Sign("not-the-secret", forged.Timestamp, forged.Body)
	if status, _ := slacktest.Send(t, interactions, forged); status != 401 {
		t.Fatalf("a forged click: %d, want 401", status)
	}
	stale, staleReply := fake.Click("T1", "UBOB", slack.ActionApprove, value, time.Now().Add(-6*time.Minute))
	if status, _ := slacktest.Send(t, interactions, stale); status != 401 {
		t.Fatalf("a click signed 6 minutes ago: %d, want 401", status)
	}
	// Refused with an ephemeral reply: a Slack user nobody linked; a
	// linked user policy does not let approve; a requester approving
	// his own run;
	// a button for the run as it was before a change.
	for _, c := range []struct {
		who, value, want string
	}{
		{"UNOBODY", value, "Link your account first"},
		{"UERIN", value, "Not done:"},
		{"UBOB", own["id"].(string) + " " + own["binding"].(string), "you requested this run; someone else must approve it"},
		{"UBOB", runID + " " + other["binding"].(string), "the run changed since this message; look at it again: " + runLink},
	} {
		click, reply := fake.Click("T1", c.who, slack.ActionApprove, c.value, time.Now())
		if status, _ := slacktest.Send(t, interactions, click); status != 200 {
			t.Fatalf("%s clicks: %d, want 200 (Slack shows an error otherwise)", c.who, status)
		}
		if text := fake.Reply(reply); !strings.Contains(text, c.want) {
			t.Errorf("%s clicks Approve: the reply %q does not say %q", c.who, text, c.want)
		}
		if c.who == "UERIN" {
			// The very same request again is a replay.
			if status, body := slacktest.Send(t, interactions, click); status != 401 || !strings.Contains(body, "replayed") {
				t.Fatalf("a replayed click: %d %s, want 401", status, body)
			}
		}
	}
	d.srv.Slack.Wait()
	if fake.Replied(forgedReply) || fake.Replied(staleReply) {
		t.Error("Airlock replied to the response_url of a request it could not trust")
	}
	if _, r, _ := d.call("GET", "/api/v1/runs/"+runID, d.tok["alice"], nil); r["status"] != "pending_approval" || r["approvals"] != nil && len(r["approvals"].([]any)) != 0 {
		t.Fatalf("after the attacks the run is %v with approvals %v", r["status"], r["approvals"])
	}
	if n := len(d.events(audit.RunApprove)); n != 0 {
		t.Fatalf("%d run.approve events after the attacks", n)
	}
	// Refusals made by the approval service are its own events, via slack.
	for _, ev := range d.events(audit.RunApproveDenied) {
		if !strings.Contains(string(ev.Details), `"via":"slack"`) {
			t.Errorf("run.approve_denied without via slack: %s", ev.Details)
		}
	}
	if n := len(d.events(audit.RunApproveDenied)); n != 2 {
		t.Errorf("%d run.approve_denied events, want 2 (bob's own run, the changed binding)", n)
	}
	if n := len(d.events(audit.AuthzDeny)); n == 0 {
		t.Error("erin's refused approval was not audited")
	}

	// Bob's click approves it.
	click, reply := fake.Click("T1", "UBOB", slack.ActionApprove, value, time.Now())
	if status, _ := slacktest.Send(t, interactions, click); status != 200 {
		t.Fatalf("bob clicks Approve: %d", status)
	}
	if text := fake.Reply(reply); !strings.Contains(text, "You approved") || !strings.Contains(text, runLink) {
		t.Fatalf("bob's reply: %q", text)
	}
	approvals := d.events(audit.RunApprove)
	if len(approvals) != 1 || approvals[0].ActorName != "bob" || approvals[0].Subject != runID {
		t.Fatalf("run.approve events: %+v", approvals)
	}
	var details map[string]any
	json.Unmarshal(approvals[0].Details, &details)
	if details["via"] != "slack" || details["binding"] != a["binding"] {
		t.Fatalf("run.approve details: %s", approvals[0].Details)
	}
	if final := d.waitRun(t, d.tok["alice"], runID); final["status"] != "succeeded" || len(final["approvals"].([]any)) != 1 {
		t.Fatalf("the approved run: %v", final)
	}
	// Replaying bob's click approves nothing more.
	if status, _ := slacktest.Send(t, interactions, click); status != 401 {
		t.Fatalf("bob's click replayed: %d", status)
	}

	// Deny, with the comment Slack cannot ask for.
	click, reply = fake.Click("T1", "UBOB", slack.ActionDeny, other["id"].(string)+" "+other["binding"].(string), time.Now())
	slacktest.Send(t, interactions, click)
	if text := fake.Reply(reply); !strings.Contains(text, "You denied") {
		t.Fatalf("bob denies: %q", text)
	}
	if _, r, _ := d.call("GET", "/api/v1/runs/"+other["id"].(string), d.tok["alice"], nil); r["status"] != "denied" ||
		!strings.Contains(r["error"].(string), "denied from Slack by bob") {
		t.Fatalf("the denied run: %v", r)
	}

	// Unlinked, bob's clicks act as nobody.
	if code, _, _ := d.call("DELETE", "/api/v1/me/chat-links/slack/T1/UBOB", d.tok["bob"], nil); code != 204 {
		t.Fatalf("unlink: %d", code)
	}
	if evs := d.events(audit.ChatUnlink); len(evs) != 1 || evs[0].ActorName != "bob" {
		t.Fatalf("chat.unlink events: %+v", evs)
	}
	click, reply = fake.Click("T1", "UBOB", slack.ActionApprove, value, time.Now())
	slacktest.Send(t, interactions, click)
	if text := fake.Reply(reply); !strings.Contains(text, "Link your account first") {
		t.Fatalf("an unlinked bob clicks: %q", text)
	}

	// The refusals before the approval service: the first from this
	// source audited at once, the rest of its minute counted and
	// recorded in one event (here at Close, as when the server stops).
	d.srv.Slack.Close(ctx)
	evs := d.events(audit.ChatInteractionDenied)
	if len(evs) != 2 {
		t.Fatalf("%d chat.interaction_denied events, want 2 (the first refusal, then the count of the rest)", len(evs))
	}
	var first, rest map[string]any
	json.Unmarshal(evs[0].Details, &first)
	json.Unmarshal(evs[1].Details, &rest)
	if first["reason"] != slack.ReasonUnknownCode || first["slack_user"] != "UMALLORY" || evs[0].SourceAddr != "127.0.0.1" || evs[0].Outcome != audit.Denied {
		t.Fatalf("first refusal event: %+v %s", evs[0], evs[0].Details)
	}
	earlier, _ := rest["earlier"].(map[string]any)
	reasons, _ := earlier["reasons"].(map[string]any)
	// After the used code: the forged and the stale click, two replays,
	// the unlinked Slack user and the unlinked bob.
	if earlier["refusals"] != float64(6) || reasons[slack.ReasonBadSignature] != float64(1) || reasons[slack.ReasonStale] != float64(1) ||
		reasons[slack.ReasonReplay] != float64(2) || reasons[slack.ReasonNotLinked] != float64(2) {
		t.Fatalf("the counted refusals: %s", evs[1].Details)
	}
	if n := len(d.events(audit.ChatLinkDenied)); n != 1 {
		t.Errorf("%d chat.link_denied events, want 1 (the Slack user linked to bob)", n)
	}
	if s, _ := d.srv.Store.RunGet(ctx, runID); s.Status != store.RunSucceeded {
		t.Fatalf("run %s", s.Status)
	}
}
