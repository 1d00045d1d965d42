package api

import (
	"net/http"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/evidence"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/policy"
)

// EvidenceRequest selects a bundle's period and scope. Times are RFC 3339
// or dates (YYYY-MM-DD, midnight UTC; "to" a date includes that day).
// Run instead selects one run's bundle (and takes no period or scope).
type EvidenceRequest struct {
	From        string `json:"from,omitempty"`
	To          string `json:"to,omitempty"`
	Procedure   string `json:"procedure,omitempty"`
	Environment string `json:"environment,omitempty"`
	Run         string `json:"run,omitempty"`
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
	params, err := h.evidenceParams(r, req)
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

// evidenceParams reads a request: a period and scope, or one run (which
// the caller must be allowed to see).
func (h *Handler) evidenceParams(r *http.Request, req EvidenceRequest) (evidence.Params, error) {
	if req.Run == "" {
		p, err := evidence.NewParams(req.From, req.To, req.Procedure, req.Environment)
		if err != nil {
			return evidence.Params{}, err
		}
		p.Now = h.now
		return p, nil
	}
	if req.From != "" || req.To != "" || req.Procedure != "" || req.Environment != "" {
		return evidence.Params{}, airlock.FieldError("run", "a run's bundle takes no period, procedure or environment")
	}
	rr, err := h.Runs.Get(r.Context(), identity.PrincipalFrom(r.Context()), req.Run)
	if err != nil {
		return evidence.Params{}, err
	}
	return evidence.RunParams(rr, h.now), nil
}
