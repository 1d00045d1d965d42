package api

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/inventory"
	"github.com/airlockhq/airlock/internal/run"
	"github.com/airlockhq/airlock/internal/secret"
	"github.com/airlockhq/airlock/internal/store"
)

// RunRequest asks for a run.
type RunRequest struct {
	Procedure   string         `json:"procedure"`
	Environment string         `json:"environment"`
	Params      map[string]any `json:"params,omitempty"`
	Reason      string         `json:"reason,omitempty"`
	Ticket      string         `json:"ticket,omitempty"`
	// Version, when set, runs that version: a proposed one is a try run,
	// allowed in a try environment to its author or owner team.
	Version int `json:"version,omitempty"`
}

// RunJSON is a run.
type RunJSON struct {
	ID                string          `json:"id"`
	Procedure         string          `json:"procedure"`
	VersionID         string          `json:"version_id"`
	Digest            string          `json:"digest"`
	Environment       string          `json:"environment"`
	Params            json.RawMessage `json:"params"`
	Requester         string          `json:"requester"`
	Reason            string          `json:"reason,omitempty"`
	Ticket            string          `json:"ticket,omitempty"`
	Status            string          `json:"status"`
	Targets           []string        `json:"targets"`
	ApprovalsRequired int             `json:"approvals_required"`
	Binding           string          `json:"binding"`
	CreatedAt         time.Time       `json:"created_at"`
	ExpiresAt         time.Time       `json:"expires_at,omitzero"`
	QueuedAt          time.Time       `json:"queued_at,omitzero"`
	StartedAt         time.Time       `json:"started_at,omitzero"`
	FinishedAt        time.Time       `json:"finished_at,omitzero"`
	Attempt           int             `json:"attempt,omitempty"`
	Error             string          `json:"error,omitempty"`
	OutputBytes       int64           `json:"output_bytes"`
	OutputTruncated   bool            `json:"output_truncated,omitempty"`
	OutputDigest      string          `json:"output_digest,omitempty"`
	// StandingID names the schedule or trigger that started the run.
	StandingID string `json:"standing_id,omitempty"`
	// Try and Unreviewed: a try run of a proposed version, never evidence
	// of an approved change.
	Try        bool              `json:"try,omitempty"`
	Unreviewed bool              `json:"unreviewed,omitempty"`
	Approvals  []RunApprovalJSON `json:"approvals,omitempty"`
	Nodes      []RunNodeJSON     `json:"nodes,omitempty"`
	Steps      []RunStepJSON     `json:"steps,omitempty"`
	// Output is the run's output, on a run request that waited for the
	// run to end (Prefer: wait=N) and saw it end: its first chunks, with
	// OutputNext the ?after= for the rest when OutputMore.
	Output     []ChunkJSON `json:"output,omitzero"`
	OutputNext int64       `json:"output_next,omitempty"`
	OutputMore bool        `json:"output_more,omitempty"`
}

// RunApprovalJSON is one person's decision on a run.
type RunApprovalJSON struct {
	ID        string    `json:"id"`
	Approver  string    `json:"approver"`
	Decision  string    `json:"decision"`
	Comment   string    `json:"comment,omitempty"`
	Binding   string    `json:"binding"`
	CreatedAt time.Time `json:"created_at"`
}

// RunNodeJSON is a run's outcome on one node.
type RunNodeJSON struct {
	Node       string    `json:"node"`
	Status     string    `json:"status"`
	ExitCode   int       `json:"exit_code"`
	Error      string    `json:"error,omitempty"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
}

// RunStepJSON is one step's outcome on one node in one attempt.
type RunStepJSON struct {
	Attempt    int       `json:"attempt"`
	Node       string    `json:"node"`
	Index      int       `json:"index"`
	Step       string    `json:"step"`
	Status     string    `json:"status"`
	ExitCode   int       `json:"exit_code"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
}

// AuditEventJSON is one event of the audit log.
type AuditEventJSON struct {
	Seq        int64           `json:"seq"`
	ID         string          `json:"id"`
	Time       time.Time       `json:"time"`
	Type       string          `json:"type"`
	ActorID    string          `json:"actor_id,omitempty"`
	Actor      string          `json:"actor"`
	Subject    string          `json:"subject,omitempty"`
	Outcome    string          `json:"outcome"`
	RequestID  string          `json:"request_id,omitempty"`
	SourceAddr string          `json:"source_addr,omitempty"`
	Details    json.RawMessage `json:"details,omitempty"`
}

func auditEventsJSON(evs []*store.AuditEvent) []AuditEventJSON {
	out := make([]AuditEventJSON, 0, len(evs))
	for _, e := range evs {
		out = append(out, AuditEventJSON{Seq: e.Seq, ID: e.ID, Time: e.Time, Type: e.Type, ActorID: e.ActorID, Actor: e.ActorName,
			Subject: e.Subject, Outcome: e.Outcome, RequestID: e.RequestID, SourceAddr: e.SourceAddr, Details: e.Details})
	}
	return out
}

func runNodesJSON(ns []*store.RunNode) []RunNodeJSON {
	out := make([]RunNodeJSON, 0, len(ns))
	for _, n := range ns {
		out = append(out, RunNodeJSON{Node: n.Node, Status: n.Status, ExitCode: n.ExitCode, Error: n.Error, StartedAt: n.StartedAt, FinishedAt: n.FinishedAt})
	}
	return out
}

func runJSON(r *store.Run, d *run.Details) *RunJSON {
	j := &RunJSON{ID: r.ID, Procedure: r.ProcedureName, VersionID: r.VersionID, Digest: r.Digest, Environment: r.Environment,
		Params: json.RawMessage(r.Params), Requester: r.RequesterName, Reason: r.Reason, Ticket: r.Ticket, Status: r.Status,
		Targets: r.Targets, ApprovalsRequired: r.ApprovalsRequired, Binding: r.Binding, CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt,
		QueuedAt: r.QueuedAt, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt, Attempt: r.Attempt, Error: r.Error,
		OutputBytes: r.OutputBytes, OutputTruncated: r.OutputTruncated, OutputDigest: r.OutputDigest, StandingID: r.StandingID, Try: r.Try, Unreviewed: r.Try}
	if d != nil {
		for _, a := range d.Approvals {
			j.Approvals = append(j.Approvals, RunApprovalJSON{ID: a.ID, Approver: a.ApproverName, Decision: a.Decision, Comment: a.Comment,
				Binding: a.Binding, CreatedAt: a.CreatedAt})
		}
		if len(d.Nodes) > 0 {
			j.Nodes = runNodesJSON(d.Nodes)
		}
		for _, s := range d.Steps {
			j.Steps = append(j.Steps, RunStepJSON{Attempt: s.Attempt, Node: s.Node, Index: s.Index, Step: s.Step, Status: s.Status,
				ExitCode: s.ExitCode, StartedAt: s.StartedAt, FinishedAt: s.FinishedAt})
		}
	}
	return j
}

func (h *Handler) createRun(w http.ResponseWriter, r *http.Request) {
	var req RunRequest
	if err := readJSON(r, &req); err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	if strings.HasPrefix(r.Header.Get("Idempotency-Key"), "trigger:") {
		// Event triggers key their runs so; a client taking such a key
		// first (with the trigger's service account token) would make the
		// real alert a "duplicate" that starts nothing.
		writeError(w, r, h.Log, airlock.FieldError("Idempotency-Key", `keys beginning with "trigger:" are the event triggers'`))
		return
	}
	wait, err := preferWait(r.Header.Values("Prefer"))
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	// A short run in one request: with its nodes and first output.
	const limit = 1000
	a, err := h.Runs.RequestAndAwait(r.Context(), identity.PrincipalFrom(r.Context()), run.RequestParams{Procedure: req.Procedure,
		Environment: req.Environment, Params: req.Params, Reason: req.Reason, Ticket: req.Ticket, IdempotencyKey: r.Header.Get("Idempotency-Key"),
		Version: req.Version}, wait, limit)
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	if !a.Waited {
		writeJSON(w, http.StatusCreated, runJSON(a.Run, nil))
		return
	}
	w.Header().Set("Preference-Applied", fmt.Sprintf("wait=%d", int(wait/time.Second)))
	if !a.Ended {
		writeJSON(w, http.StatusCreated, runJSON(a.Run, nil))
		return
	}
	j := runJSON(a.Run, &run.Details{Nodes: a.Nodes})
	j.Output, j.OutputMore = []ChunkJSON{}, a.More
	for _, c := range a.Output {
		j.Output = append(j.Output, chunkJSON(c))
		j.OutputNext = c.Seq
	}
	writeJSON(w, http.StatusCreated, j)
}

// maxWait bounds Prefer: wait on a run request.
const maxWait = 60 * time.Second

// preferWait reads RFC 7240's wait preference (seconds) from Prefer
// headers: 0 when absent, at most maxWait.
func preferWait(headers []string) (time.Duration, error) {
	for _, h := range headers {
		for _, pref := range strings.Split(h, ",") {
			pref, _, _ = strings.Cut(pref, ";") // parameters: none understood
			name, value, _ := strings.Cut(strings.TrimSpace(pref), "=")
			if !strings.EqualFold(strings.TrimSpace(name), "wait") {
				continue // preferences not understood are ignored (RFC 7240)
			}
			n, err := strconv.ParseUint(strings.Trim(strings.TrimSpace(value), `"`), 10, 64)
			if err != nil {
				return 0, airlock.FieldError("Prefer", "wait: expected a number of seconds, got %q", value)
			}
			return time.Duration(min(n, uint64(maxWait/time.Second))) * time.Second, nil
		}
	}
	return 0, nil
}

// PlanResponse is the dry resolution of a run request.
type PlanResponse struct {
	Procedure     string           `json:"procedure"`
	Version       int              `json:"version"`
	Digest        string           `json:"digest"`
	Environment   string           `json:"environment"`
	Params        map[string]any   `json:"params"`
	Targets       []inventory.Node `json:"targets"`
	Decision      string           `json:"decision"` // run | request | refused
	NeedsApproval bool             `json:"needs_approval"`
	Approvals     int              `json:"approvals_required"`
	Lock          string           `json:"lock,omitempty"`
	// Try: a proposed, unreviewed version in a try environment.
	Try bool `json:"try,omitempty"`
}

func (h *Handler) planRun(w http.ResponseWriter, r *http.Request) {
	var req RunRequest
	if err := readJSON(r, &req); err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	plan, err := h.Runs.Plan(r.Context(), identity.PrincipalFrom(r.Context()), run.RequestParams{Procedure: r.PathValue("name"),
		Environment: req.Environment, Params: req.Params, Version: req.Version})
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	out := PlanResponse{Procedure: plan.Procedure.Name, Version: plan.Version.Number, Digest: plan.Version.Digest, Environment: plan.Environment,
		Params: plan.Params, Targets: []inventory.Node{}, Decision: plan.Decision, NeedsApproval: plan.NeedsApproval || plan.Decision == "request",
		Approvals: plan.Approvals, Lock: plan.LockKey, Try: plan.Try}
	for _, n := range plan.Targets {
		nj := inventory.FromStore(n)
		nj.Credential, nj.HostKey = "", "" // what runs where, not how to get in
		out.Targets = append(out.Targets, nj)
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) listRuns(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, _ := strconv.Atoi(q.Get("limit"))
	f := store.RunListParams{Status: q.Get("status"), ProcedureName: q.Get("procedure"), Limit: limit}
	p := identity.PrincipalFrom(r.Context())
	if q.Get("mine") == "true" {
		f.RequesterID = p.UserID
	}
	runs, err := h.Runs.List(r.Context(), p, f)
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	out := ListResponse[*RunJSON]{Items: []*RunJSON{}}
	for _, run := range runs {
		out.Items = append(out.Items, runJSON(run, nil))
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) getRun(w http.ResponseWriter, r *http.Request) {
	run, err := h.Runs.Get(r.Context(), identity.PrincipalFrom(r.Context()), r.PathValue("id"))
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	d, err := h.Runs.Details(r.Context(), run)
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, runJSON(run, d))
}

// ChunkJSON is a piece of output. Data is text; bytes that are not UTF-8
// are replaced (the stored bytes and their digest are unchanged).
type ChunkJSON struct {
	Seq int64 `json:"seq"`
	// Attempt is the attempt of the run that wrote the chunk.
	Attempt int       `json:"attempt"`
	Node    string    `json:"node"`
	Stream  string    `json:"stream"`
	Data    string    `json:"data"`
	At      time.Time `json:"at"`
}

func chunkJSON(c *store.OutputChunk) ChunkJSON {
	data := string(c.Data)
	if !utf8.ValidString(data) {
		data = strings.ToValidUTF8(data, "\uFFFD")
	}
	return ChunkJSON{Seq: c.Seq, Attempt: c.Attempt, Node: c.Node, Stream: c.Stream, Data: data, At: c.CreatedAt}
}

// OutputResponse is a page of output.
type OutputResponse struct {
	Status string      `json:"status"`
	Chunks []ChunkJSON `json:"chunks"`
	// Next is the sequence number to pass as ?after= for more.
	Next int64 `json:"next"`
}

// runOutput serves output after ?after= as JSON, or as a live
// Server-Sent Events stream when the client accepts text/event-stream
// (resumable with Last-Event-ID).
func (h *Handler) runOutput(w http.ResponseWriter, r *http.Request) {
	after, _ := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		after, _ = strconv.ParseInt(id, 10, 64)
	}
	node := r.URL.Query().Get("node")
	p := identity.PrincipalFrom(r.Context())
	if strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		h.streamOutput(w, r, p, after, node)
		return
	}
	run, chunks, err := h.Runs.Output(r.Context(), p, r.PathValue("id"), after, 1000)
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	out := OutputResponse{Status: run.Status, Chunks: []ChunkJSON{}, Next: after}
	for _, c := range chunks {
		if node == "" || c.Node == node {
			out.Chunks = append(out.Chunks, chunkJSON(c))
		}
		out.Next = c.Seq
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) streamOutput(w http.ResponseWriter, r *http.Request, p *identity.Principal, after int64, node string) {
	ctx := r.Context()
	id := r.PathValue("id")
	run, _, err := h.Runs.Output(ctx, p, id, after, 1)
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	flusher, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	notify, stop := h.Runs.Subscribe(run.ID)
	defer stop()
	tick := time.NewTicker(time.Second) // other replicas' runs, and keep-alives
	defer tick.Stop()
	status := ""
	sent := map[string]string{} // node -> its last progress sent
	var liveSeen uint64         // the last change of the nodes' progress read
	approvals := -1             // how many decisions were last sent
	for {
		read := time.Now()
		// Read the status before the output: output written before a run
		// ends is then always sent before its end. Only the state: a
		// fan-out run's row holds every target.
		cur, err := h.Store.RunState(ctx, run.ID)
		if err != nil {
			return
		}
		chunks, err := h.Store.RunOutputList(ctx, run.ID, after, 500)
		if err != nil {
			return
		}
		for _, c := range chunks {
			after = c.Seq
			if node != "" && c.Node != node {
				continue
			}
			b, _ := json.Marshal(chunkJSON(c))
			fmt.Fprintf(w, "id: %d\nevent: output\ndata: %s\n\n", c.Seq, b)
		}
		// A run's nodes are stored with its end; until then, its
		// progress if it runs here (no read for what is not stored yet).
		var nodes []*store.RunNode
		nodes, liveSeen = h.Runs.LiveNodesSince(run.ID, liveSeen)
		if store.RunFinal(cur.Status) {
			if nodes, err = h.Store.RunNodeList(ctx, run.ID); err != nil {
				return
			}
		}
		for _, n := range nodes {
			b, _ := json.Marshal(nodeJSON(n))
			if sent[n.Node] != string(b) {
				sent[n.Node] = string(b)
				fmt.Fprintf(w, "event: node\ndata: %s\n\n", b)
			}
		}
		if cur.ApprovalsRequired > 0 {
			aps, err := h.Store.RunApprovalList(ctx, run.ID)
			if err != nil {
				return
			}
			if len(aps) != approvals {
				approvals = len(aps)
				list := []ApprovalJSON{}
				for _, a := range aps {
					list = append(list, ApprovalJSON{Approver: a.ApproverName, Decision: a.Decision, Comment: a.Comment, At: a.CreatedAt})
				}
				b, _ := json.Marshal(map[string]any{"required": cur.ApprovalsRequired, "approvals": list})
				fmt.Fprintf(w, "event: approvals\ndata: %s\n\n", b)
			}
		}
		if cur.Status != status {
			status = cur.Status
			b, _ := json.Marshal(map[string]string{"status": status, "error": cur.Error})
			fmt.Fprintf(w, "event: status\ndata: %s\n\n", b)
		}
		if flusher != nil {
			flusher.Flush()
		}
		if len(chunks) == 500 {
			continue
		}
		if store.RunFinal(cur.Status) {
			final, err := h.Store.RunGet(ctx, run.ID)
			if err != nil {
				return
			}
			b, _ := json.Marshal(runJSON(final, nil))
			fmt.Fprintf(w, "event: end\ndata: %s\n\n", b)
			if flusher != nil {
				flusher.Flush()
			}
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-notify:
			// A fan-out's nodes signal hundreds of times a second: what
			// they change meanwhile is read together, at most every
			// streamGap (a signal during the wait is kept by notify).
			if wait := streamGap - time.Since(read); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
			}
		case <-tick.C:
			io.WriteString(w, ": keep-alive\n\n")
		}
	}
}

// streamGap is the least time between two reads of a run's output
// stream: a viewer cannot tell 10 ms apart, and a fan-out run's stream
// reads once per gap instead of once per node's signal.
const streamGap = 10 * time.Millisecond

// ApprovalJSON is one decision on a run, as the output stream sends
// them (event "approvals", whenever one is added).
type ApprovalJSON struct {
	Approver string    `json:"approver"`
	Decision string    `json:"decision"`
	Comment  string    `json:"comment,omitempty"`
	At       time.Time `json:"at"`
}

// NodeJSON is a node's progress in a run, as the output stream sends it
// (event "node") whenever it changes.
type NodeJSON struct {
	Node     string `json:"node"`
	Status   string `json:"status"`
	ExitCode *int   `json:"exit_code,omitempty"` // once the node has finished
	Error    string `json:"error,omitempty"`
}

func nodeJSON(n *store.RunNode) NodeJSON {
	j := NodeJSON{Node: n.Node, Status: n.Status, Error: n.Error}
	if !n.FinishedAt.IsZero() {
		j.ExitCode = &n.ExitCode
	}
	return j
}

func (h *Handler) runEvents(w http.ResponseWriter, r *http.Request) {
	evs, err := h.Runs.Events(r.Context(), identity.PrincipalFrom(r.Context()), r.PathValue("id"))
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	out := ListResponse[AuditEventJSON]{Items: auditEventsJSON(evs)}
	writeJSON(w, http.StatusOK, out)
}

// DecisionRequest approves or denies a pending run.
type DecisionRequest struct {
	// Binding is the run's binding as the approver saw it.
	Binding string `json:"binding"`
	Comment string `json:"comment,omitempty"`
}

func decideRun(decision string) func(h *Handler, w http.ResponseWriter, r *http.Request) {
	return func(h *Handler, w http.ResponseWriter, r *http.Request) {
		var req DecisionRequest
		if err := readJSON(r, &req); err != nil {
			writeError(w, r, h.Log, err)
			return
		}
		if decision == "approve" && req.Binding == "" {
			writeError(w, r, h.Log, airlock.FieldError("binding", "is required: the binding of the run you looked at"))
			return
		}
		if decision == "deny" && req.Binding == "" {
			if run, err := h.Runs.Get(r.Context(), identity.PrincipalFrom(r.Context()), r.PathValue("id")); err == nil {
				req.Binding = run.Binding // a denial stops a run, whatever it was
			}
		}
		run, err := h.Runs.Decide(r.Context(), identity.PrincipalFrom(r.Context()), r.PathValue("id"), decision, req.Binding, req.Comment)
		if err != nil {
			writeError(w, r, h.Log, err)
			return
		}
		writeJSON(w, http.StatusOK, runJSON(run, nil))
	}
}

func (h *Handler) cancelRun(w http.ResponseWriter, r *http.Request) {
	run, err := h.Runs.Cancel(r.Context(), identity.PrincipalFrom(r.Context()), r.PathValue("id"))
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, runJSON(run, nil))
}

func (h *Handler) listNodes(w http.ResponseWriter, r *http.Request) {
	ns, err := h.Nodes.List(r.Context(), identity.PrincipalFrom(r.Context()))
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	out := ListResponse[inventory.Node]{Items: []inventory.Node{}}
	for _, n := range ns {
		out.Items = append(out.Items, inventory.FromStore(n))
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) putNode(w http.ResponseWriter, r *http.Request) {
	var n inventory.Node
	if err := readJSON(r, &n); err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	if n.Name == "" {
		n.Name = r.PathValue("name")
	}
	if n.Name != r.PathValue("name") {
		writeError(w, r, h.Log, airlock.FieldError("name", "does not match the path"))
		return
	}
	sn, err := h.Nodes.Put(r.Context(), identity.PrincipalFrom(r.Context()), n)
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, inventory.FromStore(sn))
}

func (h *Handler) deleteNode(w http.ResponseWriter, r *http.Request) {
	if err := h.Nodes.Delete(r.Context(), identity.PrincipalFrom(r.Context()), r.PathValue("name")); err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// SecretRequest sets a secret's value and, when Scope is present, which
// procedures may use it (absent: a replaced secret keeps its scope, a new
// one is usable by no procedure). The value is never returned.
type SecretRequest struct {
	Value string        `json:"value"`
	Scope *secret.Scope `json:"scope,omitempty"`
}

// SecretScopeRequest replaces a secret's scope: the teams owning, and the
// procedures (a trailing '*' matches a prefix) whose steps may name it.
// Both empty: no procedure may.
type SecretScopeRequest struct {
	Scope secret.Scope `json:"scope"`
}

func (h *Handler) listSecrets(w http.ResponseWriter, r *http.Request) {
	infos, err := h.Secrets.List(r.Context(), identity.PrincipalFrom(r.Context()))
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": infos})
}

func (h *Handler) putSecret(w http.ResponseWriter, r *http.Request) {
	var req SecretRequest
	if err := readJSON(r, &req); err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	info, err := h.Secrets.PutScoped(r.Context(), identity.PrincipalFrom(r.Context()), r.PathValue("name"), []byte(req.Value), req.Scope)
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, info)
}

func (h *Handler) scopeSecret(w http.ResponseWriter, r *http.Request) {
	var req SecretScopeRequest
	if err := readJSON(r, &req); err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	info, err := h.Secrets.SetScope(r.Context(), identity.PrincipalFrom(r.Context()), r.PathValue("name"), req.Scope)
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, info)
}

func (h *Handler) deleteSecret(w http.ResponseWriter, r *http.Request) {
	if err := h.Secrets.Delete(r.Context(), identity.PrincipalFrom(r.Context()), r.PathValue("name")); err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
