// Package teams posts Airlock's notifications to Microsoft Teams
// channels through incoming webhooks (a Teams "Workflows" webhook or a
// legacy connector), as Adaptive Cards: the title, the text, the facts,
// and a button to the page where the person looks or acts.
//
// Teams only tells: approving or denying from Teams is not offered (yet).
// A card's button opens the run in Airlock, where the decision is made.
package teams

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/airlockhq/airlock/internal/notify"
)

// Channel posts to one incoming webhook.
type Channel struct {
	name   string
	url    string
	client *http.Client
}

// New returns the channel "teams:NAME" that posts to the webhook url (a
// credential: whoever has it can post to the channel). client may be nil
// for http.DefaultClient.
func New(name, url string, client *http.Client) *Channel {
	if client == nil {
		client = http.DefaultClient
	}
	return &Channel{name: name, url: url, client: client}
}

// Name implements notify.Channel.
func (c *Channel) Name() string { return "teams:" + c.name }

// markdown escapes the characters Teams' markdown subset gives a meaning
// to (CommonMark backslash escapes): TextBlock, Fact.Title and Fact.Value
// are all rendered as markdown, so a requester's reason or parameter
// would otherwise make a link ([text](url)), emphasis or a list.
var markdown = strings.NewReplacer(`\`, `\\`, "[", `\[`, "]", `\]`, "(", `\(`, ")", `\)`, "*", `\*`, "_", `\_`,
	"~", `\~`, "`", "\\`", "<", `\<`, ">", `\>`, "#", `\#`)

// Escape makes s literal in an Adaptive Card's markdown.
func Escape(s string) string { return markdown.Replace(s) }

// Card is the webhook's body: a message with one Adaptive Card.
func Card(m *notify.Message) map[string]any {
	body := []map[string]any{
		{"type": "TextBlock", "text": Escape(m.Title), "weight": "Bolder", "size": "Medium", "wrap": true},
	}
	if m.Text != "" {
		body = append(body, map[string]any{"type": "TextBlock", "text": Escape(m.Text), "wrap": true})
	}
	if len(m.Fields) > 0 {
		facts := make([]map[string]any, len(m.Fields))
		for i, f := range m.Fields {
			facts[i] = map[string]any{"title": Escape(f.Label), "value": Escape(f.Value)}
		}
		body = append(body, map[string]any{"type": "FactSet", "facts": facts})
	}
	if len(m.Actions) > 0 {
		body = append(body, map[string]any{"type": "TextBlock", "isSubtle": true, "wrap": true,
			"text": "Approve or deny in Airlock: approval from Teams is not offered."})
	}
	card := map[string]any{
		"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
		"type":    "AdaptiveCard",
		"version": "1.4",
		"body":    body,
	}
	if m.Link != "" {
		card["actions"] = []map[string]any{{"type": "Action.OpenUrl", "title": "Open in Airlock", "url": m.Link}}
	}
	return map[string]any{
		"type": "message",
		"attachments": []map[string]any{{
			"contentType": "application/vnd.microsoft.card.adaptive",
			"contentUrl":  nil,
			"content":     card,
		}},
	}
}

// Send implements notify.Channel. Every value is escaped (Escape): Teams
// renders markdown in TextBlocks and in facts, titles and values alike.
func (c *Channel) Send(ctx context.Context, m *notify.Message) error {
	b, err := json.Marshal(Card(m))
	if err != nil {
		return notify.Permanent(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(b))
	if err != nil {
		return notify.Permanent(fmt.Errorf("teams %s: %w", c.name, redact(err, c.url)))
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		// The URL is a credential: keep it out of errors (they are shown
		// to admins as a dead letter's last error).
		return fmt.Errorf("teams %s: %w", c.name, redact(err, c.url))
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	err = fmt.Errorf("teams %s: the webhook answered %s: %s", c.name, resp.Status, strings.TrimSpace(string(snippet)))
	if resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusRequestTimeout {
		return notify.Permanent(err)
	}
	return err
}

// redact removes the webhook URL from an error's text.
func redact(err error, url string) error {
	if url == "" || !strings.Contains(err.Error(), url) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), url, "[webhook url]"))
}
