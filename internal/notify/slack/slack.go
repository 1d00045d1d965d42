// Package slack is Airlock in Slack (or a Slack-compatible server): a
// notify.Channel that posts Block Kit messages through the Web API, and
// the two endpoints Slack calls back — the /airlock slash command, which
// links a Slack user to an Airlock account with a one-time code, and the
// interactions endpoint, where an Approve or Deny button becomes a
// decision of run.Service.Decide made by the linked user: the same
// policy, separation of duties, binding check and audit as in the UI,
// recorded with via: slack.
//
// Every request from Slack is verified (signature, timestamp, replay)
// before anything else reads it. It wraps github.com/slack-go/slack and
// must not be imported by the services it calls.
package slack

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/slack-go/slack"

	"github.com/airlockhq/airlock/internal/notify"
)

// Channel posts notifications to Slack channels and, by user ID, as
// direct messages.
type Channel struct {
	api *slack.Client
}

// New returns the channel that posts with botToken (xoxb-…) to the Web
// API at apiURL (https://slack.com/api/ when empty). client may be nil
// for http.DefaultClient.
func New(botToken, apiURL string, client *http.Client) *Channel {
	if apiURL == "" {
		apiURL = "https://slack.com/api/"
	}
	if !strings.HasSuffix(apiURL, "/") {
		apiURL += "/"
	}
	if client == nil {
		client = http.DefaultClient
	}
	return &Channel{api: slack.New(botToken, slack.OptionAPIURL(apiURL), slack.OptionHTTPClient(client))}
}

// Name implements notify.Channel.
func (c *Channel) Name() string { return "slack" }

// Send implements notify.Channel. m.Target is a channel (C…, G…) or a
// user (U…, W…), who gets a direct message.
func (c *Channel) Send(ctx context.Context, m *notify.Message) error {
	channel := m.Target
	if channel == "" {
		return notify.Permanent(errors.New("slack: no channel or user to post to"))
	}
	if channel[0] == 'U' || channel[0] == 'W' {
		ch, _, _, err := c.api.OpenConversationContext(ctx, &slack.OpenConversationParameters{Users: []string{channel}, ReturnIM: true})
		if err != nil {
			return classify(fmt.Errorf("slack: open a direct message with %s: %w", channel, err))
		}
		channel = ch.ID
	}
	_, _, err := c.api.PostMessageContext(ctx, channel, slack.MsgOptionText(Fallback(m), false), slack.MsgOptionBlocks(Blocks(m)...))
	if err != nil {
		return classify(fmt.Errorf("slack: post to %s: %w", channel, err))
	}
	return nil
}

// permanentErrors are the Web API's answers that retrying cannot cure:
// the token or the app is wrong, or the channel is.
var permanentErrors = map[string]bool{
	"invalid_auth": true, "not_authed": true, "account_inactive": true, "token_revoked": true, "token_expired": true,
	"no_permission": true, "missing_scope": true, "channel_not_found": true, "not_in_channel": true, "is_archived": true,
	"user_not_found": true, "user_disabled": true, "cannot_dm_bot": true, "invalid_blocks": true, "msg_too_long": true,
	"restricted_action": true, "invalid_arguments": true,
}

// classify marks the errors that retrying cannot cure as permanent; a
// rate limit (429), a server error (5xx) or a network error is retried.
func classify(err error) error {
	var api slack.SlackErrorResponse
	if errors.As(err, &api) && permanentErrors[api.Err] {
		return notify.Permanent(err)
	}
	var status slack.StatusCodeError
	if errors.As(err, &status) && status.Code >= 400 && status.Code < 500 && status.Code != http.StatusTooManyRequests {
		return notify.Permanent(err)
	}
	return err
}

// Fallback is a message's plain text, shown in notifications and by
// clients that cannot show blocks.
func Fallback(m *notify.Message) string {
	s := m.Title
	if m.Link != "" {
		s += " — " + m.Link
	}
	return Escape(s)
}

// Escape makes s literal in Slack's mrkdwn: the three characters Slack
// gives a meaning to (&, <, >) become entities, so a value cannot make a
// link, a mention (<!channel>) or a formatted span. The text objects that
// carry values are verbatim as well, so that Slack does not auto-link a
// bare URL, link-ify a #channel or parse an @mention in them.
func Escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// Slack's limits on what a block may hold.
const (
	maxHeader     = 150
	maxFieldText  = 2000
	maxFields     = 10
	maxSection    = 3000
	maxValue      = 2000
	maxButtonText = 75
	maxURL        = 3000
)

// cut shortens s to at most n bytes on a rune boundary, marking the cut.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	n -= len("…")
	for n > 0 && !utf8RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

// ActionIDs are the action_id of the Approve and Deny buttons.
const (
	ActionApprove = "airlock.approve"
	ActionDeny    = "airlock.deny"
	ActionOpen    = "airlock.open"
)

// Blocks is the message as Block Kit: a header (the title), the text,
// the facts as fields (every value escaped), a context line, and the
// buttons: one to the page, and for a run that waits for approval,
// Approve and Deny (with a confirmation) that send the action's value
// back to the interactions endpoint.
func Blocks(m *notify.Message) []slack.Block {
	var blocks []slack.Block
	blocks = append(blocks, slack.NewHeaderBlock(slack.NewTextBlockObject(slack.PlainTextType, cut(m.Title, maxHeader), false, false)))
	if m.Text != "" {
		blocks = append(blocks, slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, cut(Escape(m.Text), maxSection), false, true), nil, nil))
	}
	var fields []*slack.TextBlockObject
	for i, f := range m.Fields {
		if i == maxFields {
			break
		}
		text := "*" + Escape(f.Label) + "*\n" + Escape(f.Value)
		fields = append(fields, slack.NewTextBlockObject(slack.MarkdownType, cut(text, maxFieldText), false, true))
	}
	if len(fields) > 0 {
		blocks = append(blocks, slack.NewSectionBlock(nil, fields, nil))
	}
	ctx := "Airlock"
	if m.Type != "" {
		ctx += " · " + m.Type
	}
	if m.Subject != "" {
		ctx += " · " + m.Subject
	}
	if !m.Time.IsZero() {
		ctx += " · " + m.Time.UTC().Format("2006-01-02 15:04 UTC")
	}
	blocks = append(blocks, slack.NewContextBlock("", slack.NewTextBlockObject(slack.MarkdownType, Escape(ctx), false, true)))
	var buttons []slack.BlockElement
	if m.Link != "" && len(m.Link) <= maxURL {
		buttons = append(buttons, slack.NewButtonBlockElement(ActionOpen, "", slack.NewTextBlockObject(slack.PlainTextType, "Open in Airlock", false, false)).WithURL(m.Link))
	}
	for _, a := range m.Actions {
		if len(a.Value) > maxValue {
			continue // Slack would refuse the whole message; the link still works
		}
		label := slack.NewTextBlockObject(slack.PlainTextType, cut(a.Label, maxButtonText), false, false)
		switch a.Name {
		case "approve":
			buttons = append(buttons, slack.NewButtonBlockElement(ActionApprove, a.Value, label).WithStyle(slack.StylePrimary))
		case "deny":
			confirm := slack.NewConfirmationBlockObject(
				slack.NewTextBlockObject(slack.PlainTextType, "Deny this run?", false, false),
				slack.NewTextBlockObject(slack.MarkdownType, "The run will not happen; the requester is told you denied it.", false, false),
				slack.NewTextBlockObject(slack.PlainTextType, "Deny", false, false),
				slack.NewTextBlockObject(slack.PlainTextType, "Cancel", false, false))
			confirm.WithStyle(slack.StyleDanger)
			buttons = append(buttons, slack.NewButtonBlockElement(ActionDeny, a.Value, label).WithStyle(slack.StyleDanger).WithConfirm(confirm))
		}
	}
	if len(buttons) > 0 {
		blocks = append(blocks, slack.NewActionBlock("airlock.actions", buttons...))
	}
	return blocks
}

// ParseActionValue reads what an Approve or Deny button carries: the
// run's ID and the binding the approver saw, separated by a space.
func ParseActionValue(v string) (runID, binding string, ok bool) {
	runID, binding, ok = strings.Cut(v, " ")
	return runID, binding, ok && runID != "" && binding != ""
}
