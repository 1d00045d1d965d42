package api

import "time"

// The JSON bodies of outbound webhooks (docs/notifications.md), described
// in the OpenAPI document under "webhooks". Each is signed per Standard
// Webhooks (webhook-id, webhook-timestamp, webhook-signature headers).

// WebhookPayload is every webhook's body.
type WebhookPayload[T any] struct {
	// Type is the kind of notification (approval_needed, run_finished, …).
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      T         `json:"data"`
}

// WebhookCommon is in every payload's data.
type WebhookCommon struct {
	Kind    string `json:"kind"`
	Event   string `json:"event"`   // the audit event type that caused it
	Subject string `json:"subject"` // what it is about: a run, version, policy or user change ID
	Title   string `json:"title"`
	Text    string `json:"text,omitempty"`
	Link    string `json:"link"` // the page to look or act on
}

// WebhookRun is the data of the run kinds: what will run (or ran) where.
// Parameters are the non-secret ones; secret parameters never leave the
// server.
type WebhookRun struct {
	WebhookCommon
	RunID       string         `json:"run_id"`
	Procedure   string         `json:"procedure"`
	Digest      string         `json:"digest"`
	Environment string         `json:"environment"`
	Params      map[string]any `json:"params"`
	Targets     []string       `json:"targets"`
	Requester   string         `json:"requester"`
	Reason      string         `json:"reason"`
	Ticket      string         `json:"ticket"`
	Status      string         `json:"status"`
	ExpiresAt   *time.Time     `json:"expires_at"`
}

// WebhookVersion is the data of review_needed and review_decided.
type WebhookVersion struct {
	WebhookCommon
	VersionID string `json:"version_id"`
	Procedure string `json:"procedure"`
	Number    int    `json:"number"`
	Risk      string `json:"risk"`
	Digest    string `json:"digest"`
	Author    string `json:"author"`
}

// WebhookPolicy is the data of policy_needed.
type WebhookPolicy struct {
	WebhookCommon
	PolicyID string `json:"policy_id"`
	Number   int    `json:"number"`
	Digest   string `json:"digest"`
	Author   string `json:"author"`
}

// WebhookUserChange is the data of user_change_needed.
type WebhookUserChange struct {
	WebhookCommon
	ChangeID string `json:"change_id"`
	Change   string `json:"change"`
	Username string `json:"username"`
	Author   string `json:"author"`
}

// WebhookStanding is the data of standing_needed and standing_changed:
// a schedule or trigger.
type WebhookStanding struct {
	WebhookCommon
	StandingID   string `json:"standing_id"`
	StandingKind string `json:"standing_kind"` // schedule | trigger
	Name         string `json:"name"`
	Procedure    string `json:"procedure"`
	Environment  string `json:"environment"`
	Status       string `json:"status"`
	Reason       string `json:"reason,omitempty"`
	Proposer     string `json:"proposer"`
}

// WebhookTest is the data of test.
type WebhookTest struct {
	WebhookCommon
	RequestedBy string `json:"requested_by"`
}

// webhookKinds maps each kind to its payload, for the OpenAPI document.
func webhookKinds() map[string]any {
	run := WebhookPayload[WebhookRun]{}
	version := WebhookPayload[WebhookVersion]{}
	return map[string]any{
		"approval_needed": run, "approval_decided": run, "run_started": run, "run_finished": run,
		"approval_expiring": run, "approval_expired": run,
		"review_needed": version, "review_decided": version,
		"policy_needed":      WebhookPayload[WebhookPolicy]{},
		"user_change_needed": WebhookPayload[WebhookUserChange]{},
		"standing_needed":    WebhookPayload[WebhookStanding]{},
		"standing_changed":   WebhookPayload[WebhookStanding]{},
		"test":               WebhookPayload[WebhookTest]{},
	}
}
