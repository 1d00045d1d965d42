// Package notify tells people what Airlock did and what waits for them:
// by email, in chat (Slack, Microsoft Teams) and through signed webhooks.
//
// Delivery is durable. Every audit event of a type that notifies puts a
// row in an outbox in the same transaction (the store does it, beside
// the event: a change and its notification commit together or not at
// all). A dispatcher, on any replica, turns each outbox row into
// deliveries — one per channel and recipient — and sends them with
// retries and a bounded exponential backoff; a delivery that keeps
// failing becomes a dead letter, shown to admins with its last error.
// Each delivery is claimed by one replica at a time under a lease; a
// replica killed mid-send leaves the lease to expire and another sends
// again, with the same message ID, so receivers can drop the repeat
// (at least once, never lost). Nothing here ever blocks or fails the
// action that caused a notification.
//
// A message never carries a secret: it is built from the audit event,
// which never holds one, and from the run's stored non-secret fields.
package notify

import (
	"context"
	"errors"
	"time"
)

// Event types that notify. Most are audit event types (the outbox row is
// written beside the audit event); RunExpiring is made by the dispatcher
// itself, once per pending run, ahead of its expiry.
const (
	RunRequest      = "run.request" // notifies when the run waits for approval
	RunApprove      = "run.approve"
	RunDeny         = "run.deny"
	RunStart        = "run.start"
	RunFinish       = "run.finish"
	RunCancel       = "run.cancel"
	RunExpire       = "run.expire"
	RunExpiring     = "run.expiring"
	VersionPropose  = "procedure_version.propose"
	VersionActivate = "procedure_version.activate"
	VersionReject   = "procedure_version.reject"
	PolicyPropose   = "policy.propose"
	UserChange      = "user_change.propose"
	Test            = "notify.test"

	// Schedules and triggers: proposed (or proposed again), activated,
	// denied, suspended.
	SchedulePropose  = "schedule.propose"
	ScheduleResume   = "schedule.resume"
	ScheduleActivate = "schedule.activate"
	ScheduleDeny     = "schedule.deny"
	ScheduleSuspend  = "schedule.suspend"
	TriggerPropose   = "trigger.propose"
	TriggerResume    = "trigger.resume"
	TriggerActivate  = "trigger.activate"
	TriggerDeny      = "trigger.deny"
	TriggerSuspend   = "trigger.suspend"
)

// OutboxTypes are the audit event types the store puts in the outbox.
var OutboxTypes = []string{RunRequest, RunApprove, RunDeny, RunStart, RunFinish, RunCancel, RunExpire,
	VersionPropose, VersionActivate, VersionReject, PolicyPropose, UserChange, Test,
	SchedulePropose, ScheduleResume, ScheduleActivate, ScheduleDeny, ScheduleSuspend,
	TriggerPropose, TriggerResume, TriggerActivate, TriggerDeny, TriggerSuspend}

// Kinds are what a person subscribes to: an event type as people name
// it. Several event types may map to one kind.
const (
	KindApprovalNeeded   = "approval_needed" // a run waits for your approval
	KindApprovalDecided  = "approval_decided"
	KindRunStarted       = "run_started"
	KindRunFinished      = "run_finished"
	KindApprovalExpiring = "approval_expiring"
	KindApprovalExpired  = "approval_expired"
	KindReviewNeeded     = "review_needed" // a version waits for your review
	KindReviewDecided    = "review_decided"
	KindPolicyNeeded     = "policy_needed" // a policy change waits for a second admin
	KindUserChangeNeeded = "user_change_needed"
	// KindStandingNeeded: a schedule or trigger waits for your approval;
	// KindStandingChanged: one you proposed (or your team's) was
	// approved, denied or suspended.
	KindStandingNeeded  = "standing_needed"
	KindStandingChanged = "standing_changed"
	KindTest            = "test"
)

// Kinds lists every kind, in the order pages show them.
var Kinds = []string{KindApprovalNeeded, KindApprovalDecided, KindRunStarted, KindRunFinished, KindApprovalExpiring,
	KindApprovalExpired, KindReviewNeeded, KindReviewDecided, KindPolicyNeeded, KindUserChangeNeeded, KindStandingNeeded,
	KindStandingChanged}

// Recipient is a person a message is for. Team and procedure targets
// (a chat channel, a mailing list) have none.
type Recipient struct {
	UserID   string
	Username string
	Email    string
}

// Field is one labelled line of a message: what will run where.
type Field struct {
	Label string `json:"label"`
	Value string `json:"value"`
}

// Action is a button a chat message offers. Value is what the button
// sends back (for a run: its ID and binding, so that an approval of a
// changed run is refused).
type Action struct {
	Name  string `json:"name"` // approve | deny
	Label string `json:"label"`
	Value string `json:"value"`
}

// Message is one delivery's content, built from the event.
type Message struct {
	// ID identifies the delivery: the same on every attempt, so that a
	// receiver can drop a repeat.
	ID string
	// Kind is the subscription kind; Type the event type; Subject what
	// it is about (a run, version, policy or user change ID).
	Kind    string
	Type    string
	Subject string
	Time    time.Time
	// Title is one line; Text a few plain-text lines; Fields the facts;
	// Link the page where the person looks or acts.
	Title  string
	Text   string
	Fields []Field
	Link   string
	// Actions are offered where a channel can take them back (Slack).
	Actions []Action
	// Target is the channel's address for this delivery: an email
	// address, a chat channel, a webhook's name. Recipient is set when
	// the delivery is for a person.
	Target    string
	Recipient *Recipient
	// Data is the event's documented JSON payload (webhooks).
	Data map[string]any
}

// Channel sends messages one way. Send must be safe for concurrent use;
// an error is retried later, unless it is Permanent.
type Channel interface {
	// Name is the channel's name in configuration and on deliveries:
	// email, slack, teams, or webhook:NAME.
	Name() string
	Send(ctx context.Context, m *Message) error
}

// permanent marks an error that retrying cannot cure (a malformed
// address, a channel that refuses the message).
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Permanent wraps err so that the dispatcher makes the delivery a dead
// letter at once instead of retrying.
func Permanent(err error) error { return permanent{err} }

// IsPermanent reports whether err was made by Permanent.
func IsPermanent(err error) bool {
	var p permanent
	return errors.As(err, &p)
}
