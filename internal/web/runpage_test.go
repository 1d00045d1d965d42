package web_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/evidence"
	"github.com/airlockhq/airlock/internal/store"
)

var bindingField = regexp.MustCompile(`name="binding" value="([^"]+)"`)

// approve has v approve run id through its page's form.
func (v *visitor) approve(id string) {
	v.t.Helper()
	_, page := v.get("/runs/" + id)
	m := bindingField.FindStringSubmatch(page)
	if m == nil {
		v.t.Fatalf("no approve form on /runs/%s", id)
	}
	if code, body := v.post("/runs/"+id+"/approve", url.Values{"csrf_token": {v.csrf()}, "binding": {m[1]}, "comment": {"ok"}}); code != http.StatusOK {
		v.t.Fatalf("approve: %d %.300s", code, body)
	}
}

// TestRunPageFollowsEachNode opens a fan-out run's page (erin's restart
// in production) before it is approved and watches each node go from waiting to running to succeeded
// with its exit code, without a reload.
func TestRunPageFollowsEachNode(t *testing.T) {
	s := newSite(t)
	erin, bob := s.visitor(t, "erin"), s.visitor(t, "bob")
	code, body := erin.post("/procedures/restart-service/run", url.Values{"csrf_token": {erin.csrf()},
		"environment": {"production"}, "p.service": {"api"}, "p.ticket": {"OPS-7"}})
	m := runLink.FindStringSubmatch(body)
	if code != http.StatusOK || m == nil {
		t.Fatalf("request: %d %.300s", code, body)
	}
	id := m[1]
	rr, _ := s.srv.Store.RunGet(t.Context(), id)
	if len(rr.Targets) < 2 {
		t.Fatalf("want a fan-out run, targets %v", rr.Targets)
	}
	ctx := s.browser(t, "erin")
	var rows []string
	if err := chromedp.Run(ctx, chromedp.Navigate(s.url+"/runs/"+id), chromedp.WaitVisible("#nodes", chromedp.ByID),
		chromedp.Evaluate(`Array.from(document.querySelectorAll("#nodes tr[data-node]")).map(r => r.dataset.node + " " + r.querySelector(".status").textContent)`, &rows),
		chromedp.Evaluate(`window.__samePage = true`, nil)); err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(rr.Targets) {
		t.Fatalf("node rows %v, want one per target %v", rows, rr.Targets)
	}
	for _, r := range rows {
		if !strings.HasSuffix(r, " waiting") {
			t.Fatalf("before approval: %v", rows)
		}
	}
	bob.approve(id)
	sel := func(node, cell string) string { return `#nodes tr[data-node="` + node + `"] ` + cell }
	first := rr.Targets[0]
	var seenRunning string
	err := chromedp.Run(ctx, waitText(ctx, sel(first, ".status"), "running"), chromedp.Text("#status", &seenRunning, chromedp.ByID))
	if err != nil {
		t.Fatalf("node %s never showed running: %v", first, err)
	}
	for _, n := range rr.Targets {
		if err := chromedp.Run(ctx, waitText(ctx, sel(n, ".status"), "succeeded"), waitText(ctx, sel(n, ".exit"), "0")); err != nil {
			screenshot(t, ctx, "nodes-failed")
			t.Fatalf("node %s: %v", n, err)
		}
	}
	var same bool
	if err := chromedp.Run(ctx, waitText(ctx, "#status", "succeeded"), chromedp.Evaluate(`window.__samePage === true`, &same)); err != nil || !same {
		t.Fatalf("run page: %v (same page %v)", err, same)
	}
	screenshot(t, ctx, "run-nodes")
	if seenRunning != "running" {
		t.Fatalf("a node showed running while the run was %q", seenRunning)
	}
}

// TestRunEvidenceBundle downloads one run's bundle from its page: it
// verifies offline, holds that run and only that run's events, and the
// download is audited. A requester without the export permission gets no
// button and a refusal.
func TestRunEvidenceBundle(t *testing.T) {
	s := startServer(t)
	alice, dana := s.visitor(t, "alice"), s.visitor(t, "dana")
	other := requestProductionFlush(t, alice)
	id := requestProductionFlush(t, alice)
	if _, page := alice.get("/runs/" + id); strings.Contains(page, `id="evidence"`) {
		t.Error("alice's run page offers the evidence download")
	}
	if code, _ := alice.post("/runs/"+id+"/evidence", url.Values{"csrf_token": {alice.csrf()}}); code != http.StatusForbidden {
		t.Errorf("alice downloads evidence: %d, want 403", code)
	}
	_, page := dana.get("/runs/" + id)
	if !strings.Contains(page, `id="evidence"`) || !strings.Contains(page, `/audit?subject=`+id) {
		t.Fatalf("dana's run page has no evidence download or audit link")
	}
	req, _ := http.NewRequest("POST", s.url+"/runs/"+id+"/evidence", strings.NewReader(url.Values{"csrf_token": {dana.csrf()}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := dana.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	bundle, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Disposition"), id) {
		t.Fatalf("download: %d %s %.200s", resp.StatusCode, resp.Header.Get("Content-Disposition"), bundle)
	}
	res, err := evidence.Verify(bundle, s.srv.AuditLog.VerifierKey)
	if err != nil || !res.OK() || res.Runs != 1 || res.Events == 0 {
		t.Fatalf("bundle: %v %+v", err, res)
	}
	zr, _ := zip.NewReader(bytes.NewReader(bundle), int64(len(bundle)))
	for _, f := range zr.File {
		rc, _ := f.Open()
		b, _ := io.ReadAll(rc)
		rc.Close()
		switch f.Name {
		case "events.jsonl":
			for line := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
				var e struct{ Subject string }
				_ = json.Unmarshal([]byte(line), &e)
				if e.Subject != id {
					t.Errorf("event about %q in run %s's bundle", e.Subject, id)
				}
			}
		case "runs.json":
			if !strings.Contains(string(b), id) || strings.Contains(string(b), other) {
				t.Errorf("runs.json holds the wrong runs")
			}
		}
	}
	evs, _ := s.srv.Store.AuditList(context.Background(), store.AuditListParams{After: -1, Type: "evidence.export"})
	if len(evs) != 1 || evs[0].ActorName != "dana" || !strings.Contains(string(evs[0].Details), `"run":"`+id+`"`) {
		t.Fatalf("evidence.export events: %+v", evs)
	}
}

var inboxApproval = regexp.MustCompile(`(?s)<section class="card" id="approve-([^"]+)".*?name="binding" value="([^"]+)"`)

// TestApproveFromTheInbox: the inbox shows what a pending run will do
// (procedure, environment, targets, parameters, version) and approves it
// in place, bound to exactly that; the requester's own inbox offers
// nothing.
func TestApproveFromTheInbox(t *testing.T) {
	s := startServer(t)
	alice, bob := s.visitor(t, "alice"), s.visitor(t, "bob")
	id := requestProductionFlush(t, alice)
	if _, body := alice.get("/inbox"); strings.Contains(body, "approve-"+id) {
		t.Fatal("alice's inbox offers her own run")
	}
	_, body := bob.get("/inbox")
	m := inboxApproval.FindStringSubmatch(body)
	rr, _ := s.srv.Store.RunGet(t.Context(), id)
	if m == nil || m[1] != id {
		t.Fatalf("bob's inbox has no approval form for %s", id)
	}
	for _, want := range append([]string{rr.Digest, "flush-cache", "production", html.EscapeString(string(rr.Params))}, rr.Targets...) {
		if !strings.Contains(body, want) {
			t.Errorf("the inbox does not show %q", want)
		}
	}
	bob.c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	req, _ := http.NewRequest("POST", s.url+"/runs/"+id+"/approve", strings.NewReader(url.Values{"csrf_token": {bob.csrf()},
		"binding": {html.UnescapeString(m[2])}, "return": {"/inbox"}, "comment": {"ok"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := bob.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/inbox" {
		t.Fatalf("approve from the inbox: %d → %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if st := s.status(t, id); st == "pending_approval" {
		t.Fatal("still pending after approval")
	}
}

// TestRunsPageFilters: the runs list filters by status, procedure and
// "mine", still showing only runs the viewer may see; a status that does
// not exist is refused naming the field.
func TestRunsPageFilters(t *testing.T) {
	s := startServer(t)
	alice, bob, erin := s.visitor(t, "alice"), s.visitor(t, "bob"), s.visitor(t, "erin")
	pending := requestProductionFlush(t, alice)
	code, body := erin.post("/procedures/restart-service/run", url.Values{"csrf_token": {erin.csrf()},
		"environment": {"production"}, "p.service": {"api"}})
	m := runLink.FindStringSubmatch(body)
	if code != http.StatusOK || m == nil {
		t.Fatalf("erin's request: %d", code)
	}
	erins := m[1]
	if _, body := bob.get("/runs?status=pending_approval&procedure=flush-cache"); !strings.Contains(body, pending) || strings.Contains(body, erins) {
		t.Error("status and procedure filter")
	}
	if _, body := bob.get("/runs?status=succeeded"); strings.Contains(body, pending) || strings.Contains(body, erins) {
		t.Error("pending runs listed as succeeded")
	}
	if _, body := alice.get("/runs?mine=1"); !strings.Contains(body, pending) || strings.Contains(body, erins) {
		t.Error("alice's own runs")
	}
	if _, body := erin.get("/runs?status=pending_approval"); strings.Contains(body, pending) || !strings.Contains(body, erins) {
		t.Error("erin sees a run she may not, or misses her own")
	}
	if code, body := bob.get("/runs?status=bogus"); code != http.StatusBadRequest || !strings.Contains(body, "status:") {
		t.Errorf("bad status: %d", code)
	}
}

// TestRunPageShowsEachAttempt: a run started again after its worker was
// lost shows its attempt and each attempt's steps, side by side.
func TestRunPageShowsEachAttempt(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	st := s.srv.Store
	p, err := st.ProcedureGetByName(ctx, "flush-cache")
	if err != nil {
		t.Fatal(err)
	}
	alice, err := st.UserGetByUsername(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	r := &store.Run{ID: airlock.NewID(airlock.PrefixRun, now), ProcedureID: p.ID, ProcedureName: p.Name, VersionID: p.ActiveVersionID,
		Digest: "sha256:x", Environment: "staging", Params: []byte(`{}`), RequesterID: alice.ID, RequesterName: "alice",
		Status: store.RunSucceeded, Targets: []string{"staging-app-1"}, Binding: "b", Idempotent: true, CreatedAt: now, QueuedAt: now,
		StartedAt: now, FinishedAt: now, Attempt: 2}
	err = st.Update(ctx, func(tx store.Tx) error {
		if err := tx.RunInsert(ctx, r); err != nil {
			return err
		}
		for _, step := range []*store.RunStep{
			{RunID: r.ID, Attempt: 1, Node: "staging-app-1", Index: 0, Step: "flush", Status: "succeeded", StartedAt: now, FinishedAt: now},
			{RunID: r.ID, Attempt: 2, Node: "staging-app-1", Index: 0, Step: "flush", Status: "succeeded", StartedAt: now, FinishedAt: now},
		} {
			if err := tx.RunStepPut(ctx, step); err != nil {
				return err
			}
		}
		return tx.AuditAppend(ctx, &store.AuditEvent{ID: airlock.NewID(airlock.PrefixEvent, now), Time: now, Type: "run.finish",
			Subject: r.ID, ActorName: "test", Outcome: "success"})
	})
	if err != nil {
		t.Fatal(err)
	}
	_, page := s.visitor(t, "alice").get("/runs/" + r.ID)
	if !strings.Contains(page, `id="attempt"`) || !strings.Contains(page, `data-attempt="1"`) || !strings.Contains(page, `data-attempt="2"`) {
		t.Fatalf("the run page does not show both attempts:\n%s", page)
	}
}
