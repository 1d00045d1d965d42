package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/standing"
	"github.com/airlockhq/airlock/internal/store"
)

// scheduleRoutes are the schedules' routes.
func scheduleRoutes() []Route {
	return []Route{
		{Method: "GET", Path: "/api/v1/schedules", Action: "view", List: true, Summary: "List the schedules of procedures one may see (?status=)", Out: ListResponse[*ScheduleJSON]{}, Query: []string{"status"}, handle: (*Handler).listSchedules},
		{Method: "POST", Path: "/api/v1/schedules", Action: "request", Summary: "Propose a schedule: a standing request that starts runs at its ticks once someone else approves it", In: ScheduleRequest{}, Out: ScheduleJSON{}, Code: 201, handle: (*Handler).proposeSchedule},
		{Method: "GET", Path: "/api/v1/schedules/{name}", Action: "view", Summary: "A schedule with its next ticks, approvals and history of ticks (?history=N)", Out: ScheduleJSON{}, Query: []string{"history"}, handle: (*Handler).getSchedule},
		{Method: "POST", Path: "/api/v1/schedules/{name}/approve", Action: "approveRun", Summary: "Approve a proposed schedule, bound to the binding one saw (not its proposer)", In: DecisionRequest{}, Out: ScheduleJSON{}, handle: decideSchedule("approve")},
		{Method: "POST", Path: "/api/v1/schedules/{name}/deny", Action: "approveRun", Summary: "Deny a proposed schedule, with a comment", In: DecisionRequest{}, Out: ScheduleJSON{}, handle: decideSchedule("deny")},
		{Method: "POST", Path: "/api/v1/schedules/{name}/pause", Action: "approveRun", Summary: "Pause an active schedule (its proposer, its approvers, policy admins)", In: StandingChangeRequest{}, Out: ScheduleJSON{}, handle: changeSchedule("pause")},
		{Method: "POST", Path: "/api/v1/schedules/{name}/resume", Action: "approveRun", Summary: "Resume a paused schedule, or propose a suspended one again", In: StandingChangeRequest{}, Out: ScheduleJSON{}, handle: changeSchedule("resume")},
		{Method: "DELETE", Path: "/api/v1/schedules/{name}", Action: "approveRun", Summary: "Delete a schedule (its history stays)", Out: ScheduleJSON{}, handle: changeSchedule("delete")},
	}
}

// ScheduleRequest proposes a schedule. Params are validated like a run
// request's; secret parameters are refused.
type ScheduleRequest struct {
	Name        string         `json:"name"`
	Procedure   string         `json:"procedure"`
	Environment string         `json:"environment"`
	Params      map[string]any `json:"params,omitempty"`
	// Cron is five fields (minute hour day-of-month month day-of-week)
	// or a macro: @yearly, @monthly, @weekly, @daily, @hourly.
	Cron string `json:"cron"`
	// TimeZone is an IANA zone (default UTC).
	TimeZone string `json:"time_zone,omitempty"`
	// Missed: skip (default) or run-once, for ticks missed while
	// Airlock was down.
	Missed       string `json:"missed,omitempty"`
	AllowOverlap bool   `json:"allow_overlap,omitempty"`
	Reason       string `json:"reason,omitempty"`
}

// StandingChangeRequest pauses, resumes or deletes a schedule or
// trigger.
type StandingChangeRequest struct {
	Comment string `json:"comment,omitempty"`
}

// StandingApprovalJSON is a decision on a schedule or trigger.
type StandingApprovalJSON struct {
	Approver string    `json:"approver"`
	Decision string    `json:"decision"`
	Comment  string    `json:"comment,omitempty"`
	Binding  string    `json:"binding"`
	Counts   bool      `json:"counts"`
	At       time.Time `json:"at"`
}

// StandingEventJSON is a tick or delivery and its outcome.
type StandingEventJSON struct {
	Key     string    `json:"key"`
	At      time.Time `json:"at"`
	Outcome string    `json:"outcome"`
	RunID   string    `json:"run_id,omitempty"`
	Detail  string    `json:"detail,omitempty"`
}

// ScheduleJSON is a schedule.
type ScheduleJSON struct {
	ID                string                 `json:"id"`
	Name              string                 `json:"name"`
	Procedure         string                 `json:"procedure"`
	Environment       string                 `json:"environment"`
	Params            json.RawMessage        `json:"params"`
	Cron              string                 `json:"cron"`
	TimeZone          string                 `json:"time_zone"`
	Missed            string                 `json:"missed"`
	AllowOverlap      bool                   `json:"allow_overlap"`
	Reason            string                 `json:"reason,omitempty"`
	Status            string                 `json:"status"`
	StatusReason      string                 `json:"status_reason,omitempty"`
	Digest            string                 `json:"digest"`
	Binding           string                 `json:"binding"`
	Targets           []string               `json:"targets"`
	ApprovalsRequired int                    `json:"approvals_required"`
	Proposer          string                 `json:"proposer"`
	ProposedAt        time.Time              `json:"proposed_at"`
	NextTicks         []time.Time            `json:"next_ticks,omitempty"`
	Approvals         []StandingApprovalJSON `json:"approvals,omitempty"`
	History           []StandingEventJSON    `json:"history,omitempty"`
}

func (h *Handler) scheduleJSON(ctx context.Context, st *store.Standing, history int) (*ScheduleJSON, error) {
	spec, err := standing.SpecOf(st)
	if err != nil {
		return nil, err
	}
	out := &ScheduleJSON{ID: st.ID, Name: st.Name, Procedure: st.ProcedureName, Environment: st.Environment, Params: st.Params,
		Cron: spec.Cron, TimeZone: spec.TimeZone, Missed: spec.Missed, AllowOverlap: spec.AllowOverlap, Reason: spec.Reason,
		Status: st.Status, StatusReason: st.StatusReason, Digest: st.Digest, Binding: st.Binding, Targets: st.Targets,
		ApprovalsRequired: st.ApprovalsRequired, Proposer: st.ProposerName, ProposedAt: st.ProposedAt}
	if out.Targets == nil {
		out.Targets = []string{}
	}
	if st.Status == store.StandingPending || st.Status == store.StandingActive || st.Status == store.StandingPaused {
		from := h.now()
		if st.Status == store.StandingActive && st.Cursor.After(from) {
			from = st.Cursor
		}
		out.NextTicks, _ = standing.NextTicks(spec, from, 5)
	}
	if history <= 0 {
		return out, nil
	}
	if out.Approvals, out.History, err = h.standingHistory(ctx, st, history); err != nil {
		return nil, err
	}
	return out, nil
}

// standingHistory is a standing request's decisions (counts: whether
// each counts now) and its last events, newest first.
func (h *Handler) standingHistory(ctx context.Context, st *store.Standing, events int) ([]StandingApprovalJSON, []StandingEventJSON, error) {
	as, err := h.Standing.Approvals(ctx, st)
	if err != nil {
		return nil, nil, err
	}
	inForce, err := h.Standing.InForce(ctx, st)
	if err != nil {
		return nil, nil, err
	}
	counts := map[string]bool{}
	for _, a := range inForce {
		counts[a.ID] = true
	}
	approvals := []StandingApprovalJSON{}
	for _, a := range as {
		approvals = append(approvals, StandingApprovalJSON{Approver: a.ApproverName, Decision: a.Decision, Comment: a.Comment, Binding: a.Binding,
			Counts: counts[a.ID], At: a.CreatedAt})
	}
	evs, err := h.Standing.Events(ctx, st, events)
	if err != nil {
		return nil, nil, err
	}
	var history []StandingEventJSON
	for _, e := range evs {
		history = append(history, StandingEventJSON{Key: e.Key, At: e.At, Outcome: e.Outcome, RunID: e.RunID, Detail: e.Detail})
	}
	return approvals, history, nil
}

// changeStanding pauses, resumes or deletes the schedule or trigger the
// request names, with the comment its body may carry.
func (h *Handler) changeStanding(r *http.Request, kind, verb string) (*store.Standing, error) {
	var req StandingChangeRequest
	if r.ContentLength != 0 {
		if err := readJSON(r, &req); err != nil {
			return nil, err
		}
	}
	ctx, p, name := r.Context(), identity.PrincipalFrom(r.Context()), r.PathValue("name")
	switch verb {
	case "pause":
		return h.Standing.Pause(ctx, p, kind, name, req.Comment)
	case "resume":
		return h.Standing.Resume(ctx, p, kind, name, req.Comment)
	case "delete":
		return h.Standing.Delete(ctx, p, kind, name, req.Comment)
	}
	return nil, airlock.Errorf(airlock.Internal, "unknown change %q", verb)
}

func (h *Handler) listSchedules(w http.ResponseWriter, r *http.Request) {
	sts, err := h.Standing.List(r.Context(), identity.PrincipalFrom(r.Context()), store.StandingSchedule, r.URL.Query().Get("status"))
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	out := ListResponse[*ScheduleJSON]{Items: []*ScheduleJSON{}}
	for _, st := range sts {
		j, err := h.scheduleJSON(r.Context(), st, 0)
		if err != nil {
			writeError(w, r, h.Log, err)
			return
		}
		out.Items = append(out.Items, j)
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) proposeSchedule(w http.ResponseWriter, r *http.Request) {
	var req ScheduleRequest
	if err := readJSON(r, &req); err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	st, err := h.Standing.ProposeSchedule(r.Context(), identity.PrincipalFrom(r.Context()), standing.ScheduleRequest{Name: req.Name,
		Procedure: req.Procedure, Environment: req.Environment, Params: req.Params, ScheduleSpec: standing.ScheduleSpec{Cron: req.Cron,
			TimeZone: req.TimeZone, Missed: req.Missed, AllowOverlap: req.AllowOverlap, Reason: req.Reason}})
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	j, err := h.scheduleJSON(r.Context(), st, 10)
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	w.Header().Set("Location", "/api/v1/schedules/"+st.Name)
	writeJSON(w, http.StatusCreated, j)
}

func (h *Handler) getSchedule(w http.ResponseWriter, r *http.Request) {
	history := 50
	if v := r.URL.Query().Get("history"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, r, h.Log, airlock.FieldError("history", "expected a number from 1 to 1000, got %q", v))
			return
		}
		history = n
	}
	st, err := h.Standing.Get(r.Context(), identity.PrincipalFrom(r.Context()), store.StandingSchedule, r.PathValue("name"))
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	j, err := h.scheduleJSON(r.Context(), st, history)
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, j)
}

func decideSchedule(decision string) func(h *Handler, w http.ResponseWriter, r *http.Request) {
	return func(h *Handler, w http.ResponseWriter, r *http.Request) {
		var req DecisionRequest
		if err := readJSON(r, &req); err != nil {
			writeError(w, r, h.Log, err)
			return
		}
		st, err := h.Standing.Decide(r.Context(), identity.PrincipalFrom(r.Context()), store.StandingSchedule, r.PathValue("name"),
			decision, req.Binding, req.Comment)
		if err != nil {
			writeError(w, r, h.Log, err)
			return
		}
		j, err := h.scheduleJSON(r.Context(), st, 10)
		if err != nil {
			writeError(w, r, h.Log, err)
			return
		}
		writeJSON(w, http.StatusOK, j)
	}
}

func changeSchedule(verb string) func(h *Handler, w http.ResponseWriter, r *http.Request) {
	return func(h *Handler, w http.ResponseWriter, r *http.Request) {
		st, err := h.changeStanding(r, store.StandingSchedule, verb)
		if err != nil {
			writeError(w, r, h.Log, err)
			return
		}
		j, err := h.scheduleJSON(r.Context(), st, 10)
		if err != nil {
			writeError(w, r, h.Log, err)
			return
		}
		writeJSON(w, http.StatusOK, j)
	}
}
