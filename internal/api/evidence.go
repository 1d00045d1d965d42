package api

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"

	"github.com/airlockhq/airlock"
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
	from, err := evidence.ParseTime("from", req.From, false)
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	to, err := evidence.ParseTime("to", req.To, true)
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	if !to.After(from) {
		writeError(w, r, h.Log, airlock.FieldError("to", "must be after from"))
		return
	}
	params := evidence.Params{From: from, To: to, Procedure: req.Procedure, Environment: req.Environment}
	var buf bytes.Buffer
	if err := evidence.Export(r.Context(), h.Store, h.Audit, params, &buf); err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	if err := evidence.RecordExport(r.Context(), h.Store, identity.PrincipalFrom(r.Context()).Actor(), params, buf.Bytes()); err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	name := fmt.Sprintf("airlock-evidence-%s-%s.zip", from.UTC().Format("20060102"), to.UTC().Format("20060102"))
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", `attachment; filename="`+strings.ReplaceAll(name, `"`, "")+`"`)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
}
