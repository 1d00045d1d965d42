package api

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/trigger"
)

// triggerRoutes are the event triggers' routes.
func triggerRoutes() []Route {
	return []Route{
		{Method: "GET", Path: "/api/v1/triggers", Action: "view", List: true, Summary: "List event triggers one may see (?status=, deleted ones only when asked)", Out: ListResponse[*TriggerJSON]{}, Query: []string{"status"}, handle: (*Handler).listTriggers},
		{Method: "GET", Path: "/api/v1/triggers/{name}", Action: "view", Summary: "An event trigger with its approvals, binding and recent deliveries (never its secret)", Out: TriggerJSON{}, handle: (*Handler).getTrigger},
		{Method: "POST", Path: "/api/v1/triggers", Action: "request", Summary: "Propose an event trigger; its secret is in the answer, once", In: TriggerRequest{}, Out: NewTriggerResponse{}, Code: 201, handle: (*Handler).proposeTrigger},
		{Method: "POST", Path: "/api/v1/triggers/{name}/approve", Action: "approveRun", Summary: "Approve a proposed trigger (not one's own, not as its service account), bound to the binding one looked at", In: DecisionRequest{}, Out: TriggerJSON{}, handle: decideTrigger("approve")},
		{Method: "POST", Path: "/api/v1/triggers/{name}/deny", Action: "approveRun", Summary: "Deny a proposed trigger, saying why", In: DecisionRequest{}, Out: TriggerJSON{}, handle: decideTrigger("deny")},
		{Method: "POST", Path: "/api/v1/triggers/{name}/pause", Action: "approveRun", Summary: "Pause an active trigger (its proposer, its approvers, admins)", In: StandingChangeRequest{}, Out: TriggerJSON{}, handle: changeTrigger("pause")},
		{Method: "POST", Path: "/api/v1/triggers/{name}/resume", Action: "approveRun", Summary: "Resume a paused trigger, or propose a suspended one again", In: StandingChangeRequest{}, Out: TriggerJSON{}, handle: changeTrigger("resume")},
		{Method: "DELETE", Path: "/api/v1/triggers/{name}", Action: "approveRun", Summary: "Delete a trigger for good (its history stays)", Code: 204, handle: changeTrigger("delete")},
		{Method: "POST", Path: "/api/v1/hooks/{name}", Public: true, Summary: "A trigger's webhook: a Standard Webhooks signature or the trigger's bearer secret; JSON up to 1 MiB", Out: trigger.Result{}, Code: 202, handle: (*Handler).triggerHook},
	}
}

// TriggerRequest proposes an event trigger.
type TriggerRequest struct {
	Name        string `json:"name"`
	Procedure   string `json:"procedure"`
	Environment string `json:"environment"`
	// Account is the service account the trigger's runs are requested as.
	Account string `json:"account"`
	// Preset: generic (default), alertmanager or pagerduty.
	Preset string `json:"preset,omitempty"`
	// Auth: hmac (default; Standard Webhooks) or bearer.
	Auth string `json:"auth,omitempty"`
	// Mapping: parameter name → RFC 9535 JSONPath.
	Mapping       map[string]string `json:"mapping"`
	DedupKey      string            `json:"dedup_key,omitempty"`
	OnResolved    string            `json:"on_resolved,omitempty"`
	RatePerMinute int               `json:"rate_per_minute,omitempty"`
	Reason        string            `json:"reason,omitempty"`
}

// NewTriggerResponse is a proposed trigger and its secret, shown only
// here.
type NewTriggerResponse struct {
	Trigger *TriggerJSON `json:"trigger"`
	Secret  string       `json:"secret"`
}

// TriggerJSON is an event trigger, without its secret.
type TriggerJSON struct {
	ID                string                 `json:"id"`
	Name              string                 `json:"name"`
	Procedure         string                 `json:"procedure"`
	Environment       string                 `json:"environment"`
	Account           string                 `json:"account"`
	Status            string                 `json:"status"`
	StatusReason      string                 `json:"status_reason,omitempty"`
	Proposer          string                 `json:"proposer"`
	VersionID         string                 `json:"version_id"`
	Digest            string                 `json:"digest"`
	Binding           string                 `json:"binding"`
	ApprovalsRequired int                    `json:"approvals_required"`
	Preset            string                 `json:"preset"`
	Auth              string                 `json:"auth"`
	Mapping           map[string]string      `json:"mapping"`
	DedupKey          string                 `json:"dedup_key,omitempty"`
	OnResolved        string                 `json:"on_resolved"`
	RatePerMinute     int                    `json:"rate_per_minute"`
	HookPath          string                 `json:"hook_path"`
	ProposedAt        time.Time              `json:"proposed_at"`
	CreatedAt         time.Time              `json:"created_at"`
	UpdatedAt         time.Time              `json:"updated_at"`
	Approvals         []StandingApprovalJSON `json:"approvals,omitempty"`
	Events            []StandingEventJSON    `json:"events,omitempty"`
}

// HookPath is where a trigger's webhook answers.
func HookPath(name string) string { return "/api/v1/hooks/" + name }

func triggerJSON(st *store.Standing) *TriggerJSON {
	spec, _ := trigger.SpecOf(st)
	return &TriggerJSON{ID: st.ID, Name: st.Name, Procedure: st.ProcedureName, Environment: st.Environment, Account: st.AccountName,
		Status: st.Status, StatusReason: st.StatusReason, Proposer: st.ProposerName, VersionID: st.VersionID, Digest: st.Digest,
		Binding: st.Binding, ApprovalsRequired: st.ApprovalsRequired, Preset: spec.Preset, Auth: spec.Auth, Mapping: spec.Mapping,
		DedupKey: spec.DedupKey, OnResolved: spec.OnResolved, RatePerMinute: spec.RatePerMinute, HookPath: HookPath(st.Name),
		ProposedAt: st.ProposedAt, CreatedAt: st.CreatedAt, UpdatedAt: st.UpdatedAt}
}

func (h *Handler) listTriggers(w http.ResponseWriter, r *http.Request) {
	all, err := h.Standing.List(r.Context(), identity.PrincipalFrom(r.Context()), store.StandingTrigger, r.URL.Query().Get("status"))
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	out := ListResponse[*TriggerJSON]{Items: []*TriggerJSON{}}
	for _, st := range all {
		out.Items = append(out.Items, triggerJSON(st))
	}
	writeJSON(w, http.StatusOK, out)
}

// triggerDetail is a trigger with its approvals and recent deliveries.
func (h *Handler) triggerDetail(r *http.Request, st *store.Standing) (*TriggerJSON, error) {
	out := triggerJSON(st)
	var err error
	if out.Approvals, out.Events, err = h.standingHistory(r.Context(), st, 50); err != nil {
		return nil, err
	}
	return out, nil
}

func (h *Handler) getTrigger(w http.ResponseWriter, r *http.Request) {
	st, err := h.Standing.Get(r.Context(), identity.PrincipalFrom(r.Context()), store.StandingTrigger, r.PathValue("name"))
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	out, err := h.triggerDetail(r, st)
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) proposeTrigger(w http.ResponseWriter, r *http.Request) {
	var req TriggerRequest
	if err := readJSON(r, &req); err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	st, secret, err := h.Triggers.Propose(r.Context(), identity.PrincipalFrom(r.Context()), trigger.Request{Name: req.Name,
		Procedure: req.Procedure, Environment: req.Environment, Account: req.Account, Reason: req.Reason,
		Spec: trigger.Spec{Preset: req.Preset, Auth: req.Auth, Mapping: req.Mapping, DedupKey: req.DedupKey,
			OnResolved: req.OnResolved, RatePerMinute: req.RatePerMinute}})
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	writeJSON(w, http.StatusCreated, NewTriggerResponse{Trigger: triggerJSON(st), Secret: secret})
}

func decideTrigger(decision string) func(h *Handler, w http.ResponseWriter, r *http.Request) {
	return func(h *Handler, w http.ResponseWriter, r *http.Request) {
		p := identity.PrincipalFrom(r.Context())
		// What one may not see is not found, before the body is judged.
		if _, err := h.Standing.Get(r.Context(), p, store.StandingTrigger, r.PathValue("name")); err != nil {
			writeError(w, r, h.Log, err)
			return
		}
		var req DecisionRequest
		if err := readJSON(r, &req); err != nil {
			writeError(w, r, h.Log, err)
			return
		}
		if decision == "approve" && req.Binding == "" {
			writeError(w, r, h.Log, airlock.FieldError("binding", "is required: the binding of the trigger you looked at"))
			return
		}
		st, err := h.Standing.Decide(r.Context(), p, store.StandingTrigger, r.PathValue("name"), decision, req.Binding, req.Comment)
		if err != nil {
			writeError(w, r, h.Log, err)
			return
		}
		writeJSON(w, http.StatusOK, triggerJSON(st))
	}
}

func changeTrigger(verb string) func(h *Handler, w http.ResponseWriter, r *http.Request) {
	return func(h *Handler, w http.ResponseWriter, r *http.Request) {
		st, err := h.changeStanding(r, store.StandingTrigger, verb)
		if err != nil {
			writeError(w, r, h.Log, err)
			return
		}
		if verb == "delete" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		writeJSON(w, http.StatusOK, triggerJSON(st))
	}
}

// triggerHook takes a trigger's webhook delivery. It is public: the
// trigger's secret authenticates it, checked in package trigger.
func (h *Handler) triggerHook(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, trigger.MaxBody))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		writeError(w, r, h.Log, airlock.Errorf(airlock.TooLarge, "a trigger takes payloads of at most %d bytes", tooLarge.Limit))
		return
	}
	if err != nil {
		writeError(w, r, h.Log, airlock.Errorf(airlock.Invalid, "request body: %v", err))
		return
	}
	res, err := h.Triggers.Deliver(r.Context(), r.PathValue("name"), trigger.Delivery{ID: r.Header.Get("webhook-id"),
		Timestamp: r.Header.Get("webhook-timestamp"), Signature: r.Header.Get("webhook-signature"),
		Authorization: r.Header.Get("Authorization"), Body: body})
	var limited *trigger.RateLimited
	switch {
	case errors.As(err, &limited):
		w.Header().Set("Retry-After", strconv.FormatInt(int64((limited.RetryAfter+time.Second-1)/time.Second), 10))
		writeJSON(w, http.StatusTooManyRequests, ErrorBody{Error: ErrorDetail{Code: string(airlock.TooManyRequests),
			Message: limited.Err.Message, RequestID: requestID(r.Context())}})
	case err != nil:
		writeError(w, r, h.Log, err)
	default:
		writeJSON(w, http.StatusAccepted, res)
	}
}
