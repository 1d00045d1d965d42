package web

import (
	"net/http"
	"net/url"

	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/trigger"
)

// triggerRoutes are the event triggers' pages. Triggers are proposed
// with the CLI or the API, which show their secret once; the pages list
// them, show one, and take decisions on it.
func (h *Handler) triggerRoutes() []route {
	return []route{
		{"GET /triggers", true, h.triggersPage},
		{"GET /triggers/{name}", true, h.triggerPage},
		{"POST /triggers/{name}/approve", true, h.decideTrigger("approve")},
		{"POST /triggers/{name}/deny", true, h.decideTrigger("deny")},
		{"POST /triggers/{name}/pause", true, h.changeTrigger("pause")},
		{"POST /triggers/{name}/resume", true, h.changeTrigger("resume")},
		{"POST /triggers/{name}/delete", true, h.changeTrigger("delete")},
	}
}

type triggerRow struct {
	*store.Standing
	Spec trigger.Spec
}

// triggerMapping is one parameter's JSONPath, in name order.
type triggerMapping struct{ Param, Path string }

type triggerApproval struct {
	*store.StandingApproval
	Counts bool
}

// triggersPage lists the triggers of procedures the user may see.
func (h *Handler) triggersPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	sts, err := h.Standing.List(ctx, identity.PrincipalFrom(ctx), store.StandingTrigger, "")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	rows := make([]triggerRow, 0, len(sts))
	for _, st := range sts {
		spec, err := trigger.SpecOf(st)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		rows = append(rows, triggerRow{Standing: st, Spec: spec})
	}
	h.render(w, r, http.StatusOK, "triggers", page{Title: "Triggers", Data: map[string]any{"Triggers": rows}})
}

func (h *Handler) triggerData(r *http.Request, name string) (map[string]any, error) {
	ctx := r.Context()
	p := identity.PrincipalFrom(ctx)
	st, err := h.Standing.Get(ctx, p, store.StandingTrigger, name)
	if err != nil {
		return nil, err
	}
	spec, err := trigger.SpecOf(st)
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
	approvals := make([]triggerApproval, len(as))
	for i, a := range as {
		approvals[i] = triggerApproval{StandingApproval: a, Counts: counts[a.ID]}
	}
	evs, err := h.Standing.Events(ctx, st, 50)
	if err != nil {
		return nil, err
	}
	var mapping []triggerMapping
	for _, k := range sortedKeys(spec.Mapping) {
		mapping = append(mapping, triggerMapping{Param: k, Path: spec.Mapping[k]})
	}
	return map[string]any{"St": st, "Spec": spec, "Mapping": mapping, "Hook": "/api/v1/hooks/" + st.Name, "Approvals": approvals,
		"Events": evs, "Mine": st.ProposerID == p.UserID, "CanApprove": h.Standing.MayApprove(ctx, p, st)}, nil
}

func (h *Handler) triggerPage(w http.ResponseWriter, r *http.Request) {
	h.renderTrigger(w, r, http.StatusOK, "")
}

// renderTrigger shows a trigger, with msg when a decision or change on
// it was refused.
func (h *Handler) renderTrigger(w http.ResponseWriter, r *http.Request, status int, msg string) {
	d, err := h.triggerData(r, r.PathValue("name"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.render(w, r, status, "trigger", page{Title: "Trigger " + r.PathValue("name"), Error: msg, Data: d})
}

// decideTrigger approves or denies, bound to the binding the page
// showed.
func (h *Handler) decideTrigger(decision string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		_, err := h.Standing.Decide(r.Context(), identity.PrincipalFrom(r.Context()), store.StandingTrigger, name, decision,
			r.PostFormValue("binding"), r.PostFormValue("comment"))
		h.afterTriggerChange(w, r, name, err)
	}
}

// changeTrigger pauses, resumes or deletes; the service decides who may.
func (h *Handler) changeTrigger(verb string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		p, name, comment := identity.PrincipalFrom(ctx), r.PathValue("name"), r.PostFormValue("comment")
		var err error
		switch verb {
		case "pause":
			_, err = h.Standing.Pause(ctx, p, store.StandingTrigger, name, comment)
		case "resume":
			_, err = h.Standing.Resume(ctx, p, store.StandingTrigger, name, comment)
		case "delete":
			if _, err = h.Standing.Delete(ctx, p, store.StandingTrigger, name, comment); err == nil {
				http.Redirect(w, r, "/triggers", http.StatusSeeOther)
				return
			}
		}
		h.afterTriggerChange(w, r, name, err)
	}
}

func (h *Handler) afterTriggerChange(w http.ResponseWriter, r *http.Request, name string, err error) {
	if err == nil {
		http.Redirect(w, r, "/triggers/"+url.PathEscape(name), http.StatusSeeOther)
		return
	}
	switch status := airlockStatus(err); status {
	case http.StatusBadRequest, http.StatusForbidden, http.StatusConflict:
		h.renderTrigger(w, r, status, userMessage(err))
	default:
		h.fail(w, r, err)
	}
}
