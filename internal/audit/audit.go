// Package audit names the events Airlock records and builds them. Every
// security-relevant act appends one event in the same store transaction as
// the change it describes (see store.Store.Update). Event types are stable
// "resource.verb" names: auditors and SIEM rules key on them, so a name is
// never reused for a different meaning.
//
// This package is pure: it must not import net/http, database/sql or
// os/exec.
package audit

import (
	"context"
	"encoding/json"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/store"
)

// Event types.
const (
	UserCreate         = "user.create"
	UserUpdate         = "user.update"
	UserPasswordChange = "user.password_change"
	UserLogin          = "user.login"
	UserLoginFailed    = "user.login_failed"
	UserLoginThrottled = "user.login_throttled"
	// UserLoginFailures records the failed and throttled sign-ins from
	// one source address in a window after the first, with their count.
	UserLoginFailures  = "user.login_failures"
	UserLogout         = "user.logout"
	GroupCreate        = "group.create"
	GroupMemberAdd     = "group.member_add"
	GroupMemberRemove  = "group.member_remove"
	GroupSSOSync       = "group.sso_sync"
	UserChangePropose  = "user_change.propose"
	UserChangeApprove  = "user_change.approve"
	UserChangeReject   = "user_change.reject"
	UserChangeWithdraw = "user_change.withdraw"
	UserChangeDenied   = "user_change.approve_denied"
	TokenCreate        = "token.create"
	TokenRevoke        = "token.revoke"
	SystemBootstrap    = "system.bootstrap"

	ProcedureCreate           = "procedure.create"
	ProcedureRetire           = "procedure.retire"
	ProcedureVersionPropose   = "procedure_version.propose"
	ProcedureVersionReview    = "procedure_version.review"
	ProcedureVersionActivate  = "procedure_version.activate"
	ProcedureVersionSupersede = "procedure_version.supersede"
	ProcedureVersionReject    = "procedure_version.reject"
	ProcedureVersionWithdraw  = "procedure_version.withdraw"
	AuthzDeny                 = "authz.deny"

	RunRequest       = "run.request"
	RunApprove       = "run.approve"
	RunApproveDenied = "run.approve_denied"
	RunDeny          = "run.deny"
	RunQueue         = "run.queue"
	RunCancel        = "run.cancel"
	RunExpire        = "run.expire"
	RunStart         = "run.start"
	RunStep          = "run.step"
	RunFinish        = "run.finish"
	RunRequeue       = "run.requeue"
	RunOutputPrune   = "run.output_prune"

	NodePut      = "node.put"
	NodeDelete   = "node.delete"
	SecretPut    = "secret.put"
	SecretDelete = "secret.delete"
	// SecretScope records a change of which procedures may use a secret;
	// SecretUseDenied a run refused at start because a step names a
	// secret its procedure may not use.
	SecretScope     = "secret.scope"
	SecretUseDenied = "secret.use_denied"

	PolicyBootstrap = "policy.bootstrap"
	PolicyPropose   = "policy.propose"
	PolicyApprove   = "policy.approve"
	PolicyReject    = "policy.reject"
	PolicyWithdraw  = "policy.withdraw"
	PolicyDenied    = "policy.approve_denied"

	// EvidenceExport records who took which evidence bundle out.
	EvidenceExport = "evidence.export"

	// ChatLinkCode records a one-time code issued to link a chat
	// account; ChatLink and ChatUnlink the link made with it and its
	// removal; ChatLinkDenied a code that did not link. A chat
	// interaction refused before it reached a service (bad signature,
	// stale timestamp, replay, an unlinked chat user) is
	// ChatInteractionDenied, at most about one per source a minute with
	// a count.
	ChatLinkCode          = "chat.link_code"
	ChatLink              = "chat.link"
	ChatUnlink            = "chat.unlink"
	ChatLinkDenied        = "chat.link_denied"
	ChatInteractionDenied = "chat.interaction_denied"

	// Schedules and event triggers (standing requests): proposed,
	// approved or denied (a refused decision is *.approve_denied),
	// active from the approval that completes the quorum, paused and
	// resumed by people, suspended by Airlock when what was approved no
	// longer holds, deleted. A schedule's tick and a summary of missed
	// ticks; a trigger's accepted delivery (fire) and a refused one.
	SchedulePropose       = "schedule.propose"
	ScheduleApprove       = "schedule.approve"
	ScheduleDeny          = "schedule.deny"
	ScheduleApproveDenied = "schedule.approve_denied"
	ScheduleActivate      = "schedule.activate"
	SchedulePause         = "schedule.pause"
	ScheduleResume        = "schedule.resume"
	ScheduleSuspend       = "schedule.suspend"
	ScheduleDelete        = "schedule.delete"
	ScheduleTick          = "schedule.tick"
	ScheduleMissed        = "schedule.missed"
	TriggerPropose        = "trigger.propose"
	TriggerApprove        = "trigger.approve"
	TriggerDeny           = "trigger.deny"
	TriggerApproveDenied  = "trigger.approve_denied"
	TriggerActivate       = "trigger.activate"
	TriggerPause          = "trigger.pause"
	TriggerResume         = "trigger.resume"
	TriggerSuspend        = "trigger.suspend"
	TriggerDelete         = "trigger.delete"
	TriggerFire           = "trigger.fire"
	TriggerRefused        = "trigger.refused"

	// ProcedureVersionReviewDenied records a refused review attempt:
	// self-review, a stale digest, an ineligible reviewer.
	ProcedureVersionReviewDenied = "procedure_version.review_denied"
)

// Outcomes.
const (
	Success = "success"
	Failure = "failure"
	Denied  = "denied"
)

// Actor is who did it. The zero Actor is the system itself.
type Actor struct {
	ID   string
	Name string
}

// System is the actor for what Airlock does on its own (bootstrap,
// expiry).
var System = Actor{Name: "system"}

// Meta is request metadata carried in the context by the HTTP layer.
type Meta struct {
	RequestID  string
	SourceAddr string
	UserAgent  string
	// Via names the channel an act came through when it was not the web
	// UI, the API or the CLI (slack): recorded as "via" in the details.
	Via string
}

type metaKey struct{}

// WithMeta returns ctx carrying m.
func WithMeta(ctx context.Context, m Meta) context.Context {
	return context.WithValue(ctx, metaKey{}, m)
}

// MetaFrom returns the request metadata in ctx, if any.
func MetaFrom(ctx context.Context) Meta {
	m, _ := ctx.Value(metaKey{}).(Meta)
	return m
}

// New builds an event of type typ. details is marshalled to JSON; it must
// never hold a secret.
func New(ctx context.Context, now time.Time, typ string, actor Actor, subject, outcome string, details any) *store.AuditEvent {
	m := MetaFrom(ctx)
	if m.Via != "" {
		if d, ok := details.(map[string]any); ok {
			d["via"] = m.Via
		} else if details == nil {
			details = map[string]any{"via": m.Via}
		}
	}
	var raw json.RawMessage
	if details != nil {
		b, err := json.Marshal(details)
		if err != nil {
			// Details are Airlock's own maps and structs; failing to
			// marshal one is a programming error.
			panic("audit: marshal details: " + err.Error())
		}
		raw = b
	}
	return &store.AuditEvent{
		ID:         airlock.NewID(airlock.PrefixEvent, now),
		Time:       now.UTC(),
		Type:       typ,
		ActorID:    actor.ID,
		ActorName:  actor.Name,
		Subject:    subject,
		Outcome:    outcome,
		RequestID:  m.RequestID,
		SourceAddr: m.SourceAddr,
		Details:    raw,
	}
}
