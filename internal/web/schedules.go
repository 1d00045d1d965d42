package web

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/authz"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/policy"
	"github.com/airlockhq/airlock/internal/standing"
	"github.com/airlockhq/airlock/internal/store"
)

// scheduleRoutes are the schedules' pages.
func (h *Handler) scheduleRoutes() []route {
	return []route{
		{"GET /schedules", true, h.schedulesPage},
		{"POST /schedules", true, h.proposeSchedule},
		{"GET /schedules/{name}", true, h.schedulePage},
		{"POST /schedules/{name}/approve", true, h.decideSchedule("approve")},
		{"POST /schedules/{name}/deny", true, h.decideSchedule("deny")},
		{"POST /schedules/{name}/pause", true, h.changeSchedule("pause")},
		{"POST /schedules/{name}/resume", true, h.changeSchedule("resume")},
		{"POST /schedules/{name}/delete", true, h.changeSchedule("delete")},
	}
}

// tick is a tick as a page shows it: in the schedule's time zone, as its
// cron expression reads it.
type tick struct {
	At   time.Time
	Zone string
}

// Local is the tick in its schedule's time zone.
func (t tick) Local() string {
	at := t.At
	if loc, err := time.LoadLocation(t.Zone); err == nil {
		at = at.In(loc)
	}
	return at.Format("Mon 2006-01-02 15:04 MST")
}

// ISO is the tick for a datetime attribute.
func (t tick) ISO() string { return t.At.UTC().Format(time.RFC3339) }

type scheduleRow struct {
	*store.Standing
	Spec standing.ScheduleSpec
	Next *tick
}

// nextTicks are a schedule's next n ticks while it may still tick: from
// now, or from its cursor when that is later (as the API shows them).
func (h *Handler) nextTicks(st *store.Standing, spec standing.ScheduleSpec, n int) []tick {
	switch st.Status {
	case store.StandingPending, store.StandingActive, store.StandingPaused:
	default:
		return nil
	}
	from := h.now()
	if st.Status == store.StandingActive && st.Cursor.After(from) {
		from = st.Cursor
	}
	ts, _ := standing.NextTicks(spec, from, n)
	out := make([]tick, len(ts))
	for i, t := range ts {
		out[i] = tick{At: t, Zone: spec.TimeZone}
	}
	return out
}

// scheduleForm is the propose form: the procedure chosen (its fields
// come from the procedure page's), what was entered, and the errors at
// their fields.
type scheduleForm struct {
	Procedures []string
	Procedure  string
	Def        *procedureData
	Values     map[string]string
	Errors     map[string]string
}

// requestable lists the procedures in service that p may run or request
// in some environment: what p may propose a schedule of.
func (h *Handler) requestable(r *http.Request) ([]string, error) {
	ctx := r.Context()
	p := identity.PrincipalFrom(ctx)
	procs, err := h.Review.Procedures(ctx, p)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, sp := range procs {
		if sp.ActiveVersionID == "" || !sp.RetiredAt.IsZero() {
			continue
		}
		pr, err := authz.ProcedureOf(ctx, h.Store, sp)
		if err != nil {
			return nil, err
		}
		for _, env := range h.Authz.Environments() {
			c := policy.Context{Environment: env}
			if h.Authz.Allowed(ctx, p, policy.ActionRun, policy.Resource{Procedure: &pr}, c) ||
				h.Authz.Allowed(ctx, p, policy.ActionRequest, policy.Resource{Procedure: &pr}, c) {
				out = append(out, sp.Name)
				break
			}
		}
	}
	return out, nil
}

// scheduleFormFor is the propose form for procedure (none chosen: only
// the choice).
func (h *Handler) scheduleFormFor(r *http.Request, procedure string) (*scheduleForm, error) {
	procs, err := h.requestable(r)
	if err != nil {
		return nil, err
	}
	f := &scheduleForm{Procedures: procs, Values: map[string]string{"time_zone": "UTC", "missed": standing.MissedSkip}, Errors: map[string]string{}}
	if procedure == "" {
		return f, nil
	}
	if f.Def, err = h.procedureData(r, procedure); err != nil {
		return nil, err
	}
	f.Procedure = f.Def.Def.Name
	f.Values["environment"] = f.Def.Values["environment"]
	return f, nil
}

// schedulesPage lists the schedules of procedures the user may see and
// offers the propose form (?procedure= chooses what to schedule).
func (h *Handler) schedulesPage(w http.ResponseWriter, r *http.Request) {
	f, err := h.scheduleFormFor(r, r.URL.Query().Get("procedure"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.renderSchedules(w, r, http.StatusOK, f, "")
}

func (h *Handler) renderSchedules(w http.ResponseWriter, r *http.Request, status int, f *scheduleForm, msg string) {
	ctx := r.Context()
	sts, err := h.Standing.List(ctx, identity.PrincipalFrom(ctx), store.StandingSchedule, "")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var rows []scheduleRow
	for _, st := range sts {
		spec, err := standing.SpecOf(st)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		row := scheduleRow{Standing: st, Spec: spec}
		if next := h.nextTicks(st, spec, 1); len(next) > 0 {
			row.Next = &next[0]
		}
		rows = append(rows, row)
	}
	pg := page{Title: "Schedules", Error: msg, Data: map[string]any{"Schedules": rows, "Form": f, "CheckParams": checkParams}}
	if f.Def != nil {
		pg.Script = "form.js"
	}
	h.render(w, r, status, "schedules", pg)
}

// proposeSchedule takes the propose form: a refused value is shown at
// its field with the service's message and nothing is stored; a
// proposed schedule opens on its page, with its next ticks.
func (h *Handler) proposeSchedule(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	_ = r.ParseForm()
	f, err := h.scheduleFormFor(r, r.PostFormValue("procedure"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if f.Def == nil {
		h.renderSchedules(w, r, http.StatusBadRequest, f, "Choose a procedure to schedule.")
		return
	}
	for _, k := range []string{"name", "environment", "cron", "time_zone", "missed", "allow_overlap", "reason"} {
		f.Values[k] = strings.TrimSpace(r.PostFormValue(k))
	}
	req := standing.ScheduleRequest{Name: f.Values["name"], Procedure: f.Procedure, Environment: f.Values["environment"],
		Params: readParams(r, f.Def.Params), ScheduleSpec: standing.ScheduleSpec{Cron: f.Values["cron"], TimeZone: f.Values["time_zone"],
			Missed: f.Values["missed"], AllowOverlap: f.Values["allow_overlap"] == "true", Reason: f.Values["reason"]}}
	st, err := h.Standing.ProposeSchedule(ctx, identity.PrincipalFrom(ctx), req)
	if err != nil {
		msg := airlock.ErrorMessage(err)
		switch field := airlock.ErrorField(err); {
		case placeParamError(f.Def.Params, err):
			msg = checkParams
		case field != "" && field != "params":
			f.Errors[field] = msg
			msg = "Check the highlighted field."
		}
		status := airlockStatus(err)
		if status == http.StatusInternalServerError {
			h.fail(w, r, err)
			return
		}
		h.renderSchedules(w, r, status, f, msg)
		return
	}
	http.Redirect(w, r, "/schedules/"+url.PathEscape(st.Name), http.StatusSeeOther)
}

type approvalRow struct {
	*store.StandingApproval
	Counts bool
}

type historyRow struct {
	*store.StandingEvent
	// Tick is the tick the event is about (its key), when it names one.
	Tick *tick
}

func (h *Handler) scheduleData(r *http.Request, name string) (map[string]any, error) {
	ctx := r.Context()
	p := identity.PrincipalFrom(ctx)
	st, err := h.Standing.Get(ctx, p, store.StandingSchedule, name)
	if err != nil {
		return nil, err
	}
	spec, err := standing.SpecOf(st)
	if err != nil {
		return nil, err
	}
	as, err := h.Standing.Approvals(ctx, st)
	if err != nil {
		return nil, err
	}
	inForce, err := h.Standing.InForce(ctx, st)
	if err != nil {
		return nil, err
	}
	counts := map[string]bool{}
	for _, a := range inForce {
		counts[a.ID] = true
	}
	approvals := make([]approvalRow, len(as))
	for i, a := range as {
		approvals[i] = approvalRow{StandingApproval: a, Counts: counts[a.ID]}
	}
	evs, err := h.Standing.Events(ctx, st, 50)
	if err != nil {
		return nil, err
	}
	history := make([]historyRow, len(evs))
	for i, e := range evs {
		history[i] = historyRow{StandingEvent: e}
		if t, err := time.Parse(time.RFC3339, e.Key); err == nil {
			history[i].Tick = &tick{At: t, Zone: spec.TimeZone}
		}
	}
	params := "{}"
	var compact bytes.Buffer
	if json.Compact(&compact, st.Params) == nil && compact.String() != "null" {
		params = compact.String()
	}
	return map[string]any{"St": st, "Spec": spec, "Params": params, "Ticks": h.nextTicks(st, spec, 5), "Approvals": approvals,
		"History": history, "Mine": st.ProposerID == p.UserID, "CanApprove": h.Standing.MayApprove(ctx, p, st)}, nil
}

func (h *Handler) schedulePage(w http.ResponseWriter, r *http.Request) {
	h.renderSchedule(w, r, http.StatusOK, "")
}

// renderSchedule shows a schedule, with msg when a decision or change on
// it was refused.
func (h *Handler) renderSchedule(w http.ResponseWriter, r *http.Request, status int, msg string) {
	d, err := h.scheduleData(r, r.PathValue("name"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.render(w, r, status, "schedule", page{Title: r.PathValue("name"), Error: msg, Data: d})
}

// decideSchedule approves or denies, bound to the binding the page
// showed; a refusal (one's own schedule, a changed binding, a deny
// without a comment) is shown on the schedule's page.
func (h *Handler) decideSchedule(decision string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		_, err := h.Standing.Decide(r.Context(), identity.PrincipalFrom(r.Context()), store.StandingSchedule, name, decision,
			r.PostFormValue("binding"), r.PostFormValue("comment"))
		h.afterChange(w, r, name, err)
	}
}

// changeSchedule pauses, resumes or deletes; the service decides who may.
func (h *Handler) changeSchedule(verb string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		p, name, comment := identity.PrincipalFrom(ctx), r.PathValue("name"), r.PostFormValue("comment")
		var err error
		switch verb {
		case "pause":
			_, err = h.Standing.Pause(ctx, p, store.StandingSchedule, name, comment)
		case "resume":
			_, err = h.Standing.Resume(ctx, p, store.StandingSchedule, name, comment)
		case "delete":
			if _, err = h.Standing.Delete(ctx, p, store.StandingSchedule, name, comment); err == nil {
				http.Redirect(w, r, "/schedules", http.StatusSeeOther)
				return
			}
		}
		h.afterChange(w, r, name, err)
	}
}

func (h *Handler) afterChange(w http.ResponseWriter, r *http.Request, name string, err error) {
	if err == nil {
		http.Redirect(w, r, "/schedules/"+url.PathEscape(name), http.StatusSeeOther)
		return
	}
	switch status := airlockStatus(err); status {
	case http.StatusBadRequest, http.StatusForbidden, http.StatusConflict:
		h.renderSchedule(w, r, status, userMessage(err))
	default:
		h.fail(w, r, err)
	}
}
