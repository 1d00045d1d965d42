package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/policy"
	"github.com/airlockhq/airlock/internal/run"
	"github.com/airlockhq/airlock/internal/store"
)

// outputTailBytes bounds how much of a page a run's output takes (its
// lines with their markup): the page holds the end, where a failure
// usually is. The rest is in the download; run.js streams what comes
// after it.
const outputTailBytes = 256 << 10

// outputPage is how many chunks one read of the output takes.
const outputPage = 1000

// outputLine is a line of output as the run page shows it, with the node
// that wrote it.
type outputLine struct {
	Node, Stream, Text string
	// Open: the node has not ended the line yet (run.js goes on with it).
	Open bool
}

// outputView is the end of a run's output, in lines.
type outputView struct {
	Lines []*outputLine
	// Omitted is how many bytes before the lines are left out (they are
	// in the download); Shown, how many the lines hold.
	Omitted, Shown int64
	// Last is the sequence number of the last chunk read: the live
	// stream goes on after it.
	Last int64
	// Labels: lines come from more than one node, and each names its.
	Labels bool
}

// OmittedSize is Omitted for people.
func (v *outputView) OmittedSize() string { return byteSize(v.Omitted) }

// ShownSize is Shown for people.
func (v *outputView) ShownSize() string { return byteSize(v.Shown) }

func byteSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// runOutputTail reads the output of a run p may view and keeps its last
// outputTailBytes (at least the last chunk).
func (h *Handler) runOutputTail(ctx context.Context, p *identity.Principal, id string) (*store.Run, *outputView, error) {
	rr, chunks, err := h.Runs.Output(ctx, p, id, 0, outputPage)
	if err != nil {
		return nil, nil, err
	}
	v := &outputView{}
	var kept []*store.OutputChunk
	var costs []int64
	var size int64
	for {
		for _, c := range chunks {
			kept = append(kept, c)
			costs = append(costs, renderedSize(c))
			size += costs[len(costs)-1]
			v.Shown += int64(len(c.Data))
			for size > outputTailBytes && len(kept) > 1 {
				size -= costs[0]
				v.Omitted += int64(len(kept[0].Data))
				v.Shown -= int64(len(kept[0].Data))
				kept, costs = kept[1:], costs[1:]
			}
			v.Last = c.Seq
		}
		if len(chunks) < outputPage {
			break
		}
		if chunks, err = h.Store.RunOutputList(ctx, rr.ID, v.Last, outputPage); err != nil {
			return nil, nil, err
		}
	}
	v.Lines = outputLines(kept)
	v.Labels = len(rr.Targets) > 1
	for _, l := range v.Lines {
		if l.Node != v.Lines[0].Node {
			v.Labels = true
		}
	}
	return rr, v, nil
}

// renderedSize is about how many bytes of the page a chunk takes: its
// data and the markup of each line (which names its node).
func renderedSize(c *store.OutputChunk) int64 {
	lines := int64(bytes.Count(c.Data, []byte("\n")) + 1)
	return int64(len(c.Data)) + lines*int64(2*len(c.Node)+96)
}

// outputLines cuts chunks into lines, each node's on its own: a chunk
// that goes on with a line its node left open adds to that line, even
// when other nodes' lines came in between.
func outputLines(chunks []*store.OutputChunk) []*outputLine {
	var lines []*outputLine
	open := map[string]*outputLine{}
	for _, c := range chunks {
		data := string(c.Data)
		if !utf8.ValidString(data) {
			data = strings.ToValidUTF8(data, "\uFFFD")
		}
		parts := strings.Split(data, "\n")
		for i, part := range parts {
			last := i == len(parts)-1
			if last && part == "" {
				break
			}
			ln := open[c.Node]
			if i > 0 || ln == nil {
				ln = &outputLine{Node: c.Node, Stream: c.Stream}
				lines = append(lines, ln)
			}
			ln.Text += part
			if last {
				open[c.Node] = ln
			} else {
				delete(open, c.Node)
			}
		}
	}
	for _, ln := range open {
		ln.Open = true
	}
	return lines
}

// timing is when something started and ended, and how long it took (so
// far, while it runs).
type timing struct {
	Started, Finished, Duration string
}

const timeLayout = "2006-01-02 15:04:05Z"

func timingOf(start, end, now time.Time) timing {
	var t timing
	if start.IsZero() {
		return t
	}
	t.Started = start.UTC().Format(timeLayout)
	if end.IsZero() {
		t.Duration = duration(now.Sub(start)) + " so far"
		return t
	}
	t.Finished = end.UTC().Format(timeLayout)
	t.Duration = duration(end.Sub(start))
	return t
}

func duration(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// stepRow is a step on a node with its times.
type stepRow struct {
	*store.RunStep
	timing
}

// startedBy names the schedule or trigger that started a run.
type startedBy struct{ Kind, Name, Path string }

func (h *Handler) startedBy(ctx context.Context, rr *store.Run) *startedBy {
	if rr.StandingID == "" {
		return nil
	}
	s := &startedBy{Kind: "schedule", Path: "/schedules/"}
	if airlock.HasPrefix(rr.StandingID, airlock.PrefixTrigger) {
		s.Kind, s.Path = "trigger", "/triggers/"
	}
	if st, err := h.Store.StandingGet(ctx, rr.StandingID); err == nil {
		s.Name = st.Name
	} else if kind, name, ok := strings.Cut(rr.RequesterName, ":"); ok && kind == s.Kind {
		s.Name = name
	} else {
		return nil
	}
	s.Path += s.Name
	return s
}

func (h *Handler) runPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	p := identity.PrincipalFrom(ctx)
	rr, out, err := h.runOutputTail(ctx, p, r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	d, err := h.Runs.Details(ctx, rr)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	now := h.now()
	var steps []stepRow
	for _, st := range d.Steps {
		steps = append(steps, stepRow{RunStep: st, timing: timingOf(st.StartedAt, st.FinishedAt, now)})
	}
	// A pending run bound to a version no longer in service cannot be
	// approved: say why instead of offering to.
	superseded, canRequestAgain := "", false
	if rr.Status == store.RunPending {
		superseded = h.Runs.Superseded(ctx, rr)
		if superseded != "" && rr.RequesterID == p.UserID {
			proc, err := h.Store.ProcedureGetByID(ctx, rr.ProcedureID)
			// Secret parameters are not kept for that: such a run is
			// requested again from the form.
			canRequestAgain = err == nil && proc.RetiredAt.IsZero() && len(rr.SecretParams) == 0
		}
	}
	mayApprove := rr.Status == store.RunPending && rr.RequesterID != p.UserID && h.Runs.Allowed(ctx, p, rr, policy.ActionApproveRun)
	data := map[string]any{"Run": rr, "Approvals": d.Approvals, "Nodes": nodeRows(rr, d.Nodes), "Steps": steps, "Output": out,
		"Timing": timingOf(rr.StartedAt, rr.FinishedAt, now), "StartedBy": h.startedBy(ctx, rr),
		"Superseded": superseded, "CanRequestAgain": canRequestAgain,
		"CanExport": h.allowedQuietly(r, policy.ActionExportEvidence), "CanReadAudit": h.allowedQuietly(r, policy.ActionReadAudit),
		"CanApprove": mayApprove && superseded == "", "CanDeny": mayApprove,
		"CanCancel": !store.RunFinal(rr.Status) && h.Runs.Allowed(ctx, p, rr, policy.ActionCancelRun)}
	pg := page{Title: rr.ProcedureName, Data: data, Script: "run.js"}
	if again := r.URL.Query().Get("again"); again != "" && airlock.HasPrefix(again, airlock.PrefixRun) {
		pg.Flash = "Requested again on the version in service, as a new request: the approvals of run " + again + " do not carry over."
	}
	h.render(w, r, http.StatusOK, "run", pg)
}

// runOutputText is a run's whole output as a text file, for those who
// may view the run (others get "not found"). Lines of a run on several
// nodes are led by their node, as `airlock runs logs` prints them.
func (h *Handler) runOutputText(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	rr, chunks, err := h.Runs.Output(ctx, identity.PrincipalFrom(ctx), r.PathValue("id"), 0, outputPage)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+rr.ID+`-output.txt"`)
	w.Header().Set("Cache-Control", "no-store")
	labels := len(rr.Targets) > 1
	for {
		var last int64
		for _, c := range chunks {
			last = c.Seq
			if !labels {
				_, _ = w.Write(c.Data)
				continue
			}
			for _, l := range strings.SplitAfter(string(c.Data), "\n") {
				if l != "" {
					_, _ = io.WriteString(w, "["+c.Node+"] "+l)
				}
			}
		}
		if len(chunks) < outputPage {
			return
		}
		if chunks, err = h.Store.RunOutputList(ctx, rr.ID, last, outputPage); err != nil {
			h.Log.Error("run output download", "run", rr.ID, "err", err)
			return
		}
	}
}

// requestAgain makes a new request, by the requester of a pending run
// bound to a superseded version, with the same environment, parameters,
// reason and ticket, on the version in service, through the ordinary
// request path: policy decides it anew, and no approval carries over.
// Secret parameters are not kept, so such a run is requested again from
// the form.
func (h *Handler) requestAgain(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	p := identity.PrincipalFrom(ctx)
	rr, err := h.Runs.Get(ctx, p, r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	switch {
	case rr.RequesterID != p.UserID:
		h.fail(w, r, airlock.Errorf(airlock.Forbidden, "only %s, who requested run %s, may request it again", rr.RequesterName, rr.ID))
		return
	case rr.Status != store.RunPending || h.Runs.Superseded(ctx, rr) == "":
		h.fail(w, r, airlock.Errorf(airlock.Conflict, "run %s is %s and not bound to a superseded version: there is nothing to request again", rr.ID, rr.Status))
		return
	}
	var params map[string]any
	if err := json.Unmarshal(rr.Params, &params); err != nil {
		h.fail(w, r, fmt.Errorf("request run %s again: %w", rr.ID, err))
		return
	}
	nr, err := h.Runs.Request(ctx, p, run.RequestParams{Procedure: rr.ProcedureName, Environment: rr.Environment, Params: params,
		Reason: rr.Reason, Ticket: rr.Ticket})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/runs/"+nr.ID+"?again="+rr.ID, http.StatusSeeOther)
}
