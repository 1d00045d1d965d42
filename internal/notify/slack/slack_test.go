package slack_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/airlockhq/airlock/internal/notify"
	"github.com/airlockhq/airlock/internal/notify/slack"
	"github.com/airlockhq/airlock/internal/notify/slack/slacktest"
)

func approvalMessage(target string) *notify.Message {
	value := "run_06h2abaq1r735k7c4fv88vgz7g sha256:" + strings.Repeat("ab", 32)
	return &notify.Message{ID: "dlv_1", Kind: notify.KindApprovalNeeded, Type: notify.RunRequest, Subject: "run_06h2abaq1r735k7c4fv88vgz7g",
		Title: "alice asks to run flush-cache in production", Text: "It waits for your approval.",
		Fields: []notify.Field{
			{Label: "Procedure", Value: "flush-cache"},
			{Label: "Version", Value: "sha256:0123456789ab"},
			{Label: "Environment", Value: "production"},
			{Label: "Parameters", Value: "cache=<!channel> & <https://evil.example|click>"},
		},
		Link:    "https://airlock.example/runs/run_06h2abaq1r735k7c4fv88vgz7g",
		Actions: []notify.Action{{Name: "approve", Label: "Approve", Value: value}, {Name: "deny", Label: "Deny", Value: value}},
		Target:  target}
}

type block struct {
	Type     string           `json:"type"`
	Text     *text            `json:"text"`
	Fields   []text           `json:"fields"`
	Elements []map[string]any `json:"elements"`
}
type text struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// TestBlockKit: what a channel receives shows what will run where, with
// every value escaped so that it cannot mention, link or format, and
// the buttons carry the run and its binding back.
func TestBlockKit(t *testing.T) {
	fake := slacktest.New(t, "secret")
	ch := slack.New("xoxb-test", fake.APIURL(), nil)
	m := approvalMessage("C0123")
	if err := ch.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	calls := fake.Calls()
	if len(calls) != 1 || calls[0].Method != "chat.postMessage" || calls[0].Form.Get("channel") != "C0123" {
		t.Fatalf("calls: %+v", calls)
	}
	c := calls[0]
	if c.Auth != "Bearer xoxb-test" && c.Form.Get("token") != "xoxb-test" {
		t.Errorf("the bot token was not sent: %q %q", c.Auth, c.Form.Get("token"))
	}
	if fb := c.Form.Get("text"); !strings.Contains(fb, m.Title) || !strings.Contains(fb, m.Link) {
		t.Errorf("fallback text %q", fb)
	}
	var blocks []block
	if err := json.Unmarshal([]byte(c.Form.Get("blocks")), &blocks); err != nil {
		t.Fatalf("blocks: %v\n%s", err, c.Form.Get("blocks"))
	}
	var types []string
	for _, b := range blocks {
		types = append(types, b.Type)
	}
	if strings.Join(types, ",") != "header,section,section,context,actions" {
		t.Fatalf("blocks: %v", types)
	}
	if blocks[0].Text.Type != "plain_text" || blocks[0].Text.Text != m.Title {
		t.Errorf("header: %+v", blocks[0].Text)
	}
	fields := blocks[2].Fields
	if len(fields) != 4 || fields[0].Text != "*Procedure*\nflush-cache" || fields[2].Text != "*Environment*\nproduction" {
		t.Fatalf("fields: %+v", fields)
	}
	if got := fields[3].Text; got != "*Parameters*\ncache=&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;" {
		t.Errorf("parameters not escaped: %q", got)
	}
	buttons := blocks[4].Elements
	if len(buttons) != 3 {
		t.Fatalf("buttons: %v", buttons)
	}
	if buttons[0]["url"] != m.Link {
		t.Errorf("link button: %v", buttons[0])
	}
	if buttons[1]["action_id"] != slack.ActionApprove || buttons[1]["style"] != "primary" || buttons[1]["value"] != m.Actions[0].Value {
		t.Errorf("approve button: %v", buttons[1])
	}
	confirm, _ := buttons[2]["confirm"].(map[string]any)
	if buttons[2]["action_id"] != slack.ActionDeny || buttons[2]["style"] != "danger" || buttons[2]["value"] != m.Actions[1].Value || confirm == nil {
		t.Errorf("deny button: %v", buttons[2])
	}
	if id, binding, ok := slack.ParseActionValue(buttons[1]["value"].(string)); !ok || id != m.Subject || !strings.HasPrefix(binding, "sha256:") {
		t.Errorf("the button's value does not parse: %q %q", id, binding)
	}
}

// TestDirectMessage: a user ID as target opens a direct message first.
func TestDirectMessage(t *testing.T) {
	fake := slacktest.New(t, "secret")
	ch := slack.New("xoxb-test", fake.APIURL(), nil)
	if err := ch.Send(context.Background(), approvalMessage("U0BOB")); err != nil {
		t.Fatal(err)
	}
	calls := fake.Calls()
	if len(calls) != 2 || calls[0].Method != "conversations.open" || calls[0].Form.Get("users") != "U0BOB" ||
		calls[1].Method != "chat.postMessage" || calls[1].Form.Get("channel") != "D0BOB" {
		t.Fatalf("calls: %+v", calls)
	}
}

// TestOversizedValueDropsButtonsOnly: a button value beyond Slack's
// 2000 characters would have the whole message refused; the button is
// left out and the link stays.
func TestOversizedValueDropsButtonsOnly(t *testing.T) {
	m := approvalMessage("C1")
	for i := range m.Actions {
		m.Actions[i].Value = strings.Repeat("x", 2001)
	}
	b, _ := json.Marshal(slack.Blocks(m))
	if strings.Contains(string(b), slack.ActionApprove) || !strings.Contains(string(b), m.Link) {
		t.Fatalf("blocks: %s", b)
	}
}

// TestErrors: rate limits and server errors are retried; a bad token or
// channel is permanent.
func TestErrors(t *testing.T) {
	for _, c := range []struct {
		status    int
		code      string
		permanent bool
	}{
		{http.StatusTooManyRequests, "", false},
		{http.StatusInternalServerError, "", false},
		{http.StatusBadGateway, "", false},
		{http.StatusOK, "invalid_auth", true},
		{http.StatusOK, "channel_not_found", true},
		{http.StatusOK, "not_in_channel", true},
		{http.StatusOK, "internal_error", false},
		{http.StatusNotFound, "", true},
	} {
		fake := slacktest.New(t, "secret")
		fake.Fail = func(string) (int, string) { return c.status, c.code }
		err := slack.New("xoxb-test", fake.APIURL(), nil).Send(context.Background(), approvalMessage("C1"))
		if err == nil {
			t.Fatalf("%d %s: no error", c.status, c.code)
		}
		if got := notify.IsPermanent(err); got != c.permanent {
			t.Errorf("%d %s: permanent = %v, want %v (%v)", c.status, c.code, got, c.permanent, err)
		}
	}
}

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"a & b":            "a &amp; b",
		"<@U123>":          "&lt;@U123&gt;",
		"<!here|here>":     "&lt;!here|here&gt;",
		"*bold* _it_ ~s~":  "*bold* _it_ ~s~",
		"&lt; already":     "&amp;lt; already",
		"plain, unchanged": "plain, unchanged",
	} {
		if got := slack.Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
	}
}
