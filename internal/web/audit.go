package web

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

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
	last, running := h.verifyState()
	return map[string]any{"Events": evs, "Head": head, "Next": next, "Filter": filter, "Checkpoint": cp,
		"Key": h.Audit.VerifierKey, "CanExport": canExport, "Environments": h.Environments,
		"Verified": last, "Verifying": running}, nil
}

func (h *Handler) auditPage(w http.ResponseWriter, r *http.Request) {
	data, err := h.auditData(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.render(w, r, http.StatusOK, "audit", page{Title: "Audit", Data: data})
}

// verifyJob runs "Verify now" in the background, one at a time: a
// request while one runs waits for that one instead of starting another,
// and a result younger than verifyFresh is shown again rather than
// recomputed, so the button cannot be used to load the server.
type verifyJob struct {
	mu      sync.Mutex
	running chan struct{} // closed when the current run ends; nil when idle
	last    *verifyResult
}

type verifyResult struct {
	Report *audit.Report
	// Output is the check of every finished run's stored output against
	// its certified digest, as `airlock audit verify` makes it.
	Output *evidence.OutputReport
	Err    string
	By     string
	At     time.Time
}

const (
	verifyFresh = 10 * time.Second
	// verifyWait is how long the request waits for the result before
	// answering that it is still running (a large log takes longer).
	verifyWait = 5 * time.Second
)

// start begins a verification unless one runs or a fresh result exists,
// and returns the channel closed when the current one ends.
func (h *Handler) startVerify(by string) <-chan struct{} {
	j := &h.verify
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.running != nil {
		return j.running
	}
	done := make(chan struct{})
	if j.last != nil && h.now().Sub(j.last.At) < verifyFresh {
		close(done)
		return done
	}
	j.running = done
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		// Output first: the log is then verified past every event the
		// output check relied on.
		out, err := evidence.CheckOutput(ctx, h.Store)
		var rep *audit.Report
		if err == nil {
			rep, err = audit.Verify(ctx, h.Store, h.Audit.Verifier, nil)
		}
		res := &verifyResult{Report: rep, Output: out, By: by, At: h.now()}
		if err != nil {
			res.Err = err.Error()
			h.Log.Error("audit verify", "err", err)
		}
		j.mu.Lock()
		j.last, j.running = res, nil
		j.mu.Unlock()
		close(done)
	}()
	return done
}

// verifyState is what the audit page shows of it.
func (h *Handler) verifyState() (last *verifyResult, running bool) {
	h.verify.mu.Lock()
	defer h.verify.mu.Unlock()
	return h.verify.last, h.verify.running != nil
}

// verifyAudit recomputes the whole tree from storage, as `airlock audit
// verify` does, in the background; the page shows the result when it
// comes within a few seconds, and otherwise that it is running.
func (h *Handler) verifyAudit(w http.ResponseWriter, r *http.Request) {
	p := identity.PrincipalFrom(r.Context())
	if err := h.Authz.CheckSystem(r.Context(), p, policy.ActionReadAudit); err != nil {
		h.fail(w, r, err)
		return
	}
	done := h.startVerify(p.Username)
	select {
	case <-done:
	case <-time.After(verifyWait):
	case <-r.Context().Done():
		return
	}
	h.auditPage(w, r)
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
	download(w, name, bundle)
}

// runEvidence downloads the evidence bundle of one run: its events with
// their proofs, its output, the version it ran and that version's
// reviews, the policies in force. It takes the evidence export
// permission and the right to see the run; the export is audited.
func (h *Handler) runEvidence(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	p := identity.PrincipalFrom(ctx)
	if err := h.Authz.CheckSystem(ctx, p, policy.ActionExportEvidence); err != nil {
		h.fail(w, r, err)
		return
	}
	rr, err := h.Runs.Get(ctx, p, r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	params := evidence.RunParams(rr, h.now)
	bundle, err := evidence.ExportAudited(ctx, h.Store, h.Audit, p.Actor(), params)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	download(w, params.FileName(), bundle)
}

func download(w http.ResponseWriter, name string, bundle []byte) {
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
	p.Now = h.now
	b, err := evidence.ExportAudited(r.Context(), h.Store, h.Audit, identity.PrincipalFrom(r.Context()).Actor(), p)
	return p.FileName(), b, err
}
