package web

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/evidence"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/policy"
	"github.com/airlockhq/airlock/internal/store"
)

// auditPageSize is how many events a page of the audit log shows.
const auditPageSize = 50

// auditFilter is the events form: type, actor, subject, and a period of
// whole days (From to To inclusive, UTC) as typed.
type auditFilter struct {
	Type, Actor, Subject string
	From, To             string
}

// query is the filter as URL parameters, for the paging links.
func (f auditFilter) query() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"type": f.Type, "actor": f.Actor, "subject": f.Subject, "from": f.From, "to": f.To} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v
}

// auditParams reads the events form and the page position (before or
// after a sequence number) into store parameters, newest first.
func auditParams(q url.Values) (auditFilter, store.AuditListParams, error) {
	f := auditFilter{Type: strings.TrimSpace(q.Get("type")), Actor: strings.TrimSpace(q.Get("actor")),
		Subject: strings.TrimSpace(q.Get("subject")), From: q.Get("from"), To: q.Get("to")}
	p := store.AuditListParams{Type: f.Type, Actor: f.Actor, Subject: f.Subject, After: -1, Newest: true, Limit: auditPageSize + 1}
	if f.From != "" {
		t, err := time.Parse(time.DateOnly, f.From)
		if err != nil {
			return f, p, airlock.FieldError("from", "expected a date such as 2026-11-28, got %q", f.From)
		}
		p.From = t
	}
	if f.To != "" {
		t, err := time.Parse(time.DateOnly, f.To)
		if err != nil {
			return f, p, airlock.FieldError("to", "expected a date such as 2026-11-28, got %q", f.To)
		}
		p.To = t.AddDate(0, 0, 1) // inclusive: up to the end of that day
	}
	if !p.From.IsZero() && !p.To.IsZero() && !p.From.Before(p.To) {
		return f, p, airlock.FieldError("to", "the period ends before it starts")
	}
	seq := func(name string) (int64, error) {
		s := q.Get(name)
		if s == "" {
			return -1, nil
		}
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < 0 {
			return 0, airlock.FieldError(name, "expected a position in the log, got %q", s)
		}
		return v, nil
	}
	before, err := seq("before")
	if err != nil {
		return f, p, err
	}
	after, err := seq("after")
	if err != nil {
		return f, p, err
	}
	switch {
	case after >= 0: // the page of newer events, oldest of them first from the store
		p.After, p.Newest = after, false
	case before >= 0:
		p.Before = max(before, 0)
		if before == 0 {
			p.Before = -1 // nothing is older than the first event
		}
	}
	return f, p, nil
}

// auditEventView is an event as the audit page shows it: its subject
// named and linked when there is a page for it, its details as labelled
// fields.
type auditEventView struct {
	*store.AuditEvent
	SubjectName, SubjectHref string
	Fields                   []auditField
	// RawDetails is shown when the details are not a JSON object.
	RawDetails string
}

type auditField struct{ Key, Value string }

// auditFields turns an event's details into labelled fields, in key
// order; nested values are shown as compact JSON, lists of words joined
// with commas.
func auditFields(raw []byte) ([]auditField, string) {
	if len(raw) == 0 {
		return nil, ""
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, string(raw)
	}
	var out []auditField
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, auditField{Key: strings.ReplaceAll(k, "_", " "), Value: auditValue(m[k])})
	}
	return out, ""
}

func auditValue(v any) string {
	switch v := v.(type) {
	case nil:
		return "—"
	case string:
		if v == "" {
			return "(empty)"
		}
		return v
	case bool:
		if v {
			return "yes"
		}
		return "no"
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case []any:
		words := make([]string, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				b, _ := json.Marshal(v)
				return string(b)
			}
			words = append(words, s)
		}
		if len(words) == 0 {
			return "(none)"
		}
		return strings.Join(words, ", ")
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

// subjectLink names and links an event's subject: runs, versions,
// schedules and triggers to their pages, users by name (to the users
// page for those who may manage users, else to the events they did),
// policies and user changes to theirs. names caches look-ups within one
// page.
func (h *Handler) subjectLink(r *http.Request, subject string, names map[string][2]string, manageUsers bool) (string, string) {
	if v, ok := names[subject]; ok {
		return v[0], v[1]
	}
	ctx := r.Context()
	name, href := "", ""
	prefix, _, _ := strings.Cut(subject, "_")
	switch prefix {
	case airlock.PrefixRun:
		href = "/runs/" + url.PathEscape(subject)
	case airlock.PrefixVersion:
		href = "/versions/" + url.PathEscape(subject)
	case airlock.PrefixPolicy:
		href = "/policies"
	case airlock.PrefixUserChange:
		if manageUsers {
			href = "/admin/changes"
		}
	case airlock.PrefixSchedule, airlock.PrefixTrigger:
		if st, err := h.Store.StandingGet(ctx, subject); err == nil {
			name = st.Name
			page := "/schedules/"
			if prefix == airlock.PrefixTrigger {
				page = "/triggers/"
			}
			href = page + url.PathEscape(st.Name)
		}
	case airlock.PrefixUser:
		if u, err := h.Store.UserGetByID(ctx, subject); err == nil {
			name = u.Username
			href = "/audit?actor=" + url.QueryEscape(u.Username)
			if manageUsers {
				href = "/admin/users#user-" + u.Username
			}
		}
	}
	names[subject] = [2]string{name, href}
	return name, href
}

// auditData is the audit page: a page of events, newest first, filtered
// by the events form; the latest checkpoint; and the evidence form.
func (h *Handler) auditData(r *http.Request) (map[string]any, error) {
	ctx := r.Context()
	if err := h.Authz.CheckSystem(ctx, identity.PrincipalFrom(ctx), policy.ActionReadAudit); err != nil {
		return nil, err
	}
	head, err := h.Store.AuditSize(ctx)
	if err != nil {
		return nil, err
	}
	filter, params, ferr := auditParams(r.URL.Query())
	var evs []*store.AuditEvent
	if ferr == nil && params.Before != -1 {
		if evs, err = h.Store.AuditList(ctx, params); err != nil {
			return nil, err
		}
	}
	more := len(evs) > auditPageSize
	if more {
		evs = evs[:auditPageSize]
	}
	if !params.Newest { // a page of newer events, read oldest first
		slices.Reverse(evs)
	}
	// Older: a page before the last shown; newer: one after the first.
	olderLink, newerLink := "", ""
	if len(evs) > 0 {
		older, newer := filter.query(), filter.query()
		older.Set("before", strconv.FormatInt(evs[len(evs)-1].Seq, 10))
		newer.Set("after", strconv.FormatInt(evs[0].Seq, 10))
		if (params.Newest && more) || (!params.Newest && evs[len(evs)-1].Seq > 0) {
			olderLink = "/audit?" + older.Encode()
		}
		if (!params.Newest && more) || (params.Newest && params.Before > 0) {
			newerLink = "/audit?" + newer.Encode()
		}
	}
	manageUsers := h.allowedQuietly(r, policy.ActionManageUsers)
	names := map[string][2]string{}
	views := make([]auditEventView, 0, len(evs))
	for _, e := range evs {
		v := auditEventView{AuditEvent: e}
		v.Fields, v.RawDetails = auditFields(e.Details)
		v.SubjectName, v.SubjectHref = h.subjectLink(r, e.Subject, names, manageUsers)
		views = append(views, v)
	}
	cp, err := h.Audit.Latest(ctx)
	if err != nil {
		return nil, err
	}
	canExport := h.allowedQuietly(r, policy.ActionExportEvidence)
	last, running := h.verifyState()
	data := map[string]any{"Events": views, "Head": head, "Filter": filter, "Older": olderLink, "Newer": newerLink,
		"Checkpoint": cp, "Key": h.Audit.VerifierKey, "CanExport": canExport, "Environments": h.Environments,
		"Verified": last, "Verifying": running}
	if ferr != nil {
		var ae *airlock.Error
		if !errors.As(ferr, &ae) {
			return nil, ferr
		}
		data["FilterError"], data["FilterField"] = userMessage(ferr), ae.Field
	}
	return data, nil
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
