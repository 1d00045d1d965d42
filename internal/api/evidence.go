package api

import (
	"net/http"

	"github.com/airlockhq/airlock/internal/evidence"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/policy"
)

// EvidenceRequest selects a bundle's period and scope. Times are RFC 3339
// or dates (YYYY-MM-DD, midnight UTC; "to" a date includes that day).
type EvidenceRequest struct {
	From        string `json:"from"`
	To          string `json:"to"`
	Procedure   string `json:"procedure,omitempty"`
	Environment string `json:"environment,omitempty"`
}

func (h *Handler) exportEvidence(w http.ResponseWriter, r *http.Request) {
	var req EvidenceRequest
	if err := readJSON(r, &req); err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	if err := h.Authz.CheckSystem(r.Context(), identity.PrincipalFrom(r.Context()), policy.ActionExportEvidence); err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	params, err := evidence.NewParams(req.From, req.To, req.Procedure, req.Environment)
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	bundle, err := evidence.ExportAudited(r.Context(), h.Store, h.Audit, identity.PrincipalFrom(r.Context()).Actor(), params)
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", `attachment; filename="`+params.FileName()+`"`)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(bundle)
}
