package web

import (
	"net/http"
	"strconv"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/evidence"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/policy"
	"github.com/airlockhq/airlock/internal/store"
)

const auditPageSize = 100

// auditData is the audit page: a page of events (the newest by default,
// or from a position on), the latest checkpoint, and the evidence form.
func (h *Handler) auditData(r *http.Request) (map[string]any, error) {
	ctx := r.Context()
	if err := h.Authz.CheckSystem(ctx, identity.PrincipalFrom(ctx), policy.ActionReadAudit); err != nil {
		return nil, err
	}
	q := r.URL.Query()
	head, err := h.Store.AuditSize(ctx)
	if err != nil {
		return nil, err
	}
	filter := store.AuditListParams{Type: q.Get("type"), Actor: q.Get("actor"), Subject: q.Get("subject"), Limit: auditPageSize}
	filter.After = -1
	if filter.Type == "" && filter.Actor == "" && filter.Subject == "" {
		filter.After = max(head-auditPageSize-1, -1)
	}
	if s := q.Get("after"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < -1 {
			return nil, airlock.FieldError("after", "expected a position in the log, got %q", s)
		}
		filter.After = v
	}
	evs, err := h.Store.AuditList(ctx, filter)
	if err != nil {
		return nil, err
	}
	next := int64(-2)
	if len(evs) == auditPageSize {
		next = evs[len(evs)-1].Seq
	}
	// Newest first on the page.
	for i, j := 0, len(evs)-1; i < j; i, j = i+1, j-1 {
		evs[i], evs[j] = evs[j], evs[i]
	}
	cp, err := h.Audit.Latest(ctx)
	if err != nil {
		return nil, err
	}
	canExport := h.allowedQuietly(r, policy.ActionExportEvidence)
	return map[string]any{"Events": evs, "Head": head, "Next": next, "Filter": filter, "Checkpoint": cp,
		"Key": h.Audit.VerifierKey, "CanExport": canExport, "Environments": h.Environments}, nil
}

func (h *Handler) auditPage(w http.ResponseWriter, r *http.Request) {
	data, err := h.auditData(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.render(w, r, http.StatusOK, "audit", page{Title: "Audit", Data: data})
}

// verifyAudit recomputes the whole tree from storage, as
// `airlock audit verify` does, and shows the report.
func (h *Handler) verifyAudit(w http.ResponseWriter, r *http.Request) {
	data, err := h.auditData(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	rep, err := audit.Verify(r.Context(), h.Store, h.Audit.Verifier, nil)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	data["Report"] = rep
	h.render(w, r, http.StatusOK, "audit", page{Title: "Audit", Data: data})
}

// exportEvidence answers the evidence form with the bundle as a download,
// or the form again with the field that was wrong.
func (h *Handler) exportEvidence(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := h.Authz.CheckSystem(ctx, identity.PrincipalFrom(ctx), policy.ActionExportEvidence); err != nil {
		h.fail(w, r, err)
		return
	}
	name, bundle, err := h.exportBundle(r)
	if err != nil {
		data, derr := h.auditData(r)
		if derr != nil || airlock.ErrorKind(err) != airlock.Invalid {
			h.fail(w, r, err)
			return
		}
		data["Form"] = r.PostForm
		h.render(w, r, http.StatusBadRequest, "audit", page{Title: "Audit", Error: userMessage(err), Data: data})
		return
	}
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	w.Header().Set("Content-Length", strconv.Itoa(len(bundle)))
	_, _ = w.Write(bundle)
}

// exportBundle builds the bundle the form asks for; it returns the
// download name and the bytes.
func (h *Handler) exportBundle(r *http.Request) (string, []byte, error) {
	p, err := evidence.NewParams(r.PostFormValue("from"), r.PostFormValue("to"), r.PostFormValue("procedure"), r.PostFormValue("environment"))
	if err != nil {
		return "", nil, err
	}
	b, err := evidence.ExportAudited(r.Context(), h.Store, h.Audit, identity.PrincipalFrom(r.Context()).Actor(), p)
	return p.FileName(), b, err
}
