package slack_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/airlockhq/airlock/internal/notify"
	"github.com/airlockhq/airlock/internal/notify/slack"
)

// TestMrkdwnIsVerbatim: Escape stops <!channel> and <url|text>, but
// Slack still auto-links bare URLs, #channel names and some mentions in
// a mrkdwn text object that is not verbatim. Every mrkdwn object that
// carries what a requester wrote (reason, parameters) is verbatim.
func TestMrkdwnIsVerbatim(t *testing.T) {
	m := &notify.Message{Title: "alice asks to run flush-cache in production", Text: "Comment: see https://evil.example/login @here #general",
		Fields: []notify.Field{{Label: "Reason", Value: "approve fast: https://evil.example/login @channel"}}, Type: "run.request", Subject: "run_1"}
	b, _ := json.Marshal(slack.Blocks(m))
	var walk func(v any)
	n := 0
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if x["type"] == "mrkdwn" {
				if s, _ := x["text"].(string); strings.Contains(s, "evil.example") {
					n++
					if x["verbatim"] != true {
						t.Errorf("mrkdwn text %q is not verbatim: Slack auto-links its URL and parses its mentions", s)
					}
				}
			}
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	var v any
	json.Unmarshal(b, &v)
	walk(v)
	if n == 0 {
		t.Fatal("no mrkdwn object carried the value: the check proves nothing")
	}
}
