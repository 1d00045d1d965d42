package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/airlockhq/airlock/internal/authz"
	"github.com/airlockhq/airlock/internal/config"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/procedure"
	"github.com/airlockhq/airlock/internal/run"
	"github.com/airlockhq/airlock/internal/store"
)

// principalOf is a demo user as the services take them.
func principalOf(t *testing.T, s *site, name string) *identity.Principal {
	t.Helper()
	ctx := context.Background()
	u, err := s.srv.Store.UserGetByUsername(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	gs, err := authz.GroupsOf(ctx, s.srv.Store, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	return &identity.Principal{UserID: u.ID, Username: u.Username, Groups: gs}
}

// putInService has alice propose name (a demo procedure with extra
// steps appended, or a new procedure when source is given whole) and
// bob review it into service.
func putInService(t *testing.T, s *site, name, extraSteps, source string) *store.ProcedureVersion {
	t.Helper()
	ctx := context.Background()
	data := []byte(source)
	if source == "" {
		var err error
		if data, err = os.ReadFile(filepath.Join("..", "demo", "catalog", name+".yaml")); err != nil {
			t.Fatal(err)
		}
		data = append(data, []byte(extraSteps)...)
	}
	srcs, err := procedure.Parse(name+".yaml", data)
	if err != nil || len(srcs) != 1 {
		t.Fatalf("parse: %v", err)
	}
	res, err := s.srv.Review.Propose(ctx, principalOf(t, s, "alice"), srcs[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.srv.Review.Review(ctx, principalOf(t, s, "bob"), res.Version.ID, res.Version.Digest, store.ReviewApprove, "ok"); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.srv.Store.ProcedureGetByName(ctx, name); p.ActiveVersionID != res.Version.ID {
		t.Fatalf("the new version of %s is not in service", name)
	}
	return res.Version
}

// waitRun waits, up to a deadline, until run id has ended.
func waitRun(t *testing.T, s *site, id string) *store.Run {
	t.Helper()
	var rr *store.Run
	waitUntil(t, time.Minute, "run "+id+" to end", func() error {
		var err error
		if rr, err = s.srv.Store.RunGet(context.Background(), id); err != nil {
			return err
		}
		if !store.RunFinal(rr.Status) {
			return fmt.Errorf("run %s is %s", id, rr.Status)
		}
		return nil
	})
	return rr
}

// TestRunPageLabelsNodesAndTimesSteps follows erin's fan-out restart to
// its end: in the all-nodes view every output line names its node (two
// nodes print the same "draining" line), the filter keeps one node's, the
// search keeps the matching lines; each step shows its start, end and
// duration per node, and the run its own; the output downloads as text
// for erin, and is "not found" to alice, who may not see the run.
func TestRunPageLabelsNodesAndTimesSteps(t *testing.T) {
	s := newSite(t)
	erin, bob, alice := s.visitor(t, "erin"), s.visitor(t, "bob"), s.visitor(t, "alice")
	code, body := erin.post("/procedures/restart-service/run", url.Values{"csrf_token": {erin.csrf()},
		"environment": {"production"}, "p.service": {"api"}, "p.ticket": {"OPS-7"}, "ticket": {"CHG-42"}})
	m := runLink.FindStringSubmatch(body)
	if code != http.StatusOK || m == nil {
		t.Fatalf("request: %d %.300s", code, body)
	}
	id := m[1]
	rr, _ := s.srv.Store.RunGet(t.Context(), id)
	if len(rr.Targets) != 2 || rr.Ticket != "CHG-42" {
		t.Fatalf("want a fan-out run on two nodes with erin's ticket, got targets %v ticket %q", rr.Targets, rr.Ticket)
	}
	ctx := s.browser(t, "erin")
	if err := chromedp.Run(ctx, chromedp.Navigate(s.url+"/runs/"+id), chromedp.WaitVisible("#nodes", chromedp.ByID)); err != nil {
		t.Fatal(err)
	}
	bob.approve(id)
	// The page follows the run to its end, then takes its times and steps.
	if err := chromedp.Run(ctx, waitText(ctx, "#status", "succeeded"), chromedp.WaitVisible(`#run[data-refreshed="1"]`, chromedp.ByQuery)); err != nil {
		t.Fatalf("waiting for the run's end and refreshed times: %v", err)
	}
	var lines []string
	if err := chromedp.Run(ctx, chromedp.Evaluate(`Array.from(document.querySelectorAll("#output .line")).filter(l => !l.hidden).map(l => l.innerText)`, &lines)); err != nil {
		t.Fatal(err)
	}
	draining := map[string]bool{}
	for _, l := range lines {
		node, _, ok := strings.Cut(strings.TrimPrefix(l, "["), "] ")
		if !strings.HasPrefix(l, "[") || !ok || (node != rr.Targets[0] && node != rr.Targets[1]) {
			t.Errorf("an output line without its node in the all view: %q", l)
		}
		if strings.Contains(l, "draining api") {
			draining[node] = true
		}
	}
	if len(draining) != 2 {
		t.Fatalf("want a draining line labelled with each node, got %v in %q", draining, lines)
	}

	// One node's lines.
	var shown []string
	if err := chromedp.Run(ctx, chromedp.SetValue("#node-filter", rr.Targets[1], chromedp.ByID),
		chromedp.Evaluate(`document.getElementById("node-filter").dispatchEvent(new Event("change"))`, nil),
		chromedp.Evaluate(`Array.from(document.querySelectorAll("#output .line")).filter(l => !l.hidden).map(l => l.dataset.node + "|" + l.innerText)`, &shown)); err != nil {
		t.Fatal(err)
	}
	for _, l := range shown {
		if !strings.HasPrefix(l, rr.Targets[1]+"|") || strings.Contains(l, "|[") {
			t.Errorf("filtered to %s, the page shows %q", rr.Targets[1], l)
		}
	}
	// The search, over all nodes.
	var found []string
	var count string
	if err := chromedp.Run(ctx, chromedp.SetValue("#node-filter", "", chromedp.ByID),
		chromedp.Evaluate(`document.getElementById("node-filter").dispatchEvent(new Event("change"))`, nil),
		chromedp.SendKeys("#output-search", "HEALTHY", chromedp.ByID),
		waitText(ctx, "#search-count", "lines match"),
		chromedp.Text("#search-count", &count, chromedp.ByID),
		chromedp.Evaluate(`Array.from(document.querySelectorAll("#output .line")).filter(l => !l.hidden).map(l => l.innerText)`, &found)); err != nil {
		t.Fatal(err)
	}
	if len(found) != 2 || count != "2 lines match" {
		t.Fatalf("searching for HEALTHY: %q (%s)", found, count)
	}
	for _, l := range found {
		if !strings.Contains(l, "api is healthy") {
			t.Errorf("search found %q", l)
		}
	}

	// Each step on each node with its times; the run with its own.
	var steps []string
	var started, ended, took string
	if err := chromedp.Run(ctx,
		chromedp.Evaluate(`Array.from(document.querySelectorAll("#steps tbody tr")).map(r => [r.dataset.node, r.querySelector(".step-started").textContent, r.querySelector(".step-ended").textContent, r.querySelector(".step-duration").textContent].join("|"))`, &steps),
		chromedp.Text("#started", &started, chromedp.ByID), chromedp.Text("#ended", &ended, chromedp.ByID), chromedp.Text("#duration", &took, chromedp.ByID)); err != nil {
		t.Fatal(err)
	}
	if len(steps) != 6 {
		t.Fatalf("want 3 steps on each of 2 nodes, got %q", steps)
	}
	for _, st := range steps {
		f := strings.Split(st, "|")
		if len(f) != 4 || f[1] == "" || f[2] == "" || !strings.HasSuffix(f[3], "s") {
			t.Errorf("a step without its times: %q", st)
		}
	}
	final := waitRun(t, s, id)
	if started != final.StartedAt.UTC().Format("2006-01-02 15:04:05Z") || ended != final.FinishedAt.UTC().Format("2006-01-02 15:04:05Z") ||
		took != final.FinishedAt.Sub(final.StartedAt).Round(time.Second).String() {
		t.Errorf("the run's times: started %q ended %q duration %q; stored %v → %v", started, ended, took, final.StartedAt, final.FinishedAt)
	}
	var requested string
	if err := chromedp.Run(ctx, chromedp.Text("#requested-by", &requested, chromedp.ByID)); err != nil || !strings.Contains(requested, "ticket CHG-42") {
		t.Errorf("the run page lacks the ticket: %q %v", requested, err)
	}
	fullScreenshots(t, ctx, "run")

	// The download: the whole output as text, each line led by its node.
	resp := download(t, erin, "/runs/"+id+"/output.txt")
	text, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") ||
		resp.Header.Get("Content-Disposition") != `attachment; filename="`+id+`-output.txt"` {
		t.Fatalf("download: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Content-Disposition"))
	}
	for _, n := range rr.Targets {
		if !strings.Contains(string(text), "["+n+"] draining api from the load balancer\n") {
			t.Errorf("the download lacks %s's labelled line:\n%s", n, text)
		}
	}
	// Someone who may not see the run gets neither page nor download.
	if code, _ := alice.get("/runs/" + id + "/output.txt"); code != http.StatusNotFound {
		t.Errorf("alice downloads erin's output: %d, want 404", code)
	}
	if code, _ := alice.get("/runs/" + id); code != http.StatusNotFound {
		t.Errorf("alice opens erin's run: %d, want 404", code)
	}
}

// download GETs path as v, without following redirects.
func download(t *testing.T, v *visitor, path string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", v.base+path, nil)
	resp, err := v.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestLongOutputIsNotInlined runs a procedure that prints about 600 KiB: its
// page holds only the end, in at most 256 KiB of lines (with a note and
// the download link),
// the download holds it all, and the page's live stream starts after the
// last chunk the page holds.
func TestLongOutputIsNotInlined(t *testing.T) {
	s := newSite(t)
	putInService(t, s, "print-a-lot", "", "apiVersion: airlock/v1\nkind: Procedure\nname: print-a-lot\nowner: payments\nrisk: low\n"+
		"steps:\n  - name: print\n    script: |\n      i=0; while [ $i -lt 6144 ]; do printf 'line %05d %s\\n' $i xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done\n")
	alice := s.visitor(t, "alice")
	code, body := alice.post("/procedures/print-a-lot/run", url.Values{"csrf_token": {alice.csrf()}, "environment": {"staging"}})
	m := runLink.FindStringSubmatch(body)
	if code != http.StatusOK || m == nil {
		t.Fatalf("request: %d %.300s", code, body)
	}
	id := m[1]
	rr := waitRun(t, s, id)
	if rr.Status != store.RunSucceeded || rr.OutputBytes < 580<<10 {
		t.Fatalf("run: %s, %d bytes of output", rr.Status, rr.OutputBytes)
	}
	code, page := alice.get("/runs/" + id)
	if code != http.StatusOK || len(page) > 300<<10 {
		t.Fatalf("the run page: %d, %d bytes", code, len(page))
	}
	if !strings.Contains(page, "The page shows the end of the output, its last ") || !strings.Contains(page, `href="/runs/`+id+`/output.txt"`) {
		t.Fatalf("the run page does not say where the rest is:\n%.2000s", page)
	}
	if !strings.Contains(page, "line 06143 ") || strings.Contains(page, "line 00000 ") {
		t.Fatal("the page does not hold the end of the output, or holds its start")
	}
	resp := download(t, alice, "/runs/"+id+"/output.txt")
	all, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if int64(len(all)) != rr.OutputBytes || !strings.HasPrefix(string(all), "line 00000 ") {
		t.Fatalf("download: %d bytes, want %d", len(all), rr.OutputBytes)
	}

	// In the browser: the note shows, and the stream adds nothing twice.
	ctx := s.browser(t, "alice")
	var after string
	var lines, dupes int
	var ok bool
	if err := chromedp.Run(ctx, chromedp.Navigate(s.url+"/runs/"+id), chromedp.WaitVisible("#output-omitted", chromedp.ByID),
		chromedp.AttributeValue("#output", "data-after", &after, &ok, chromedp.ByID),
		chromedp.WaitReady(`#actions[hidden]`, chromedp.ByQuery), // the stream has ended
		chromedp.Evaluate(`document.querySelectorAll("#output .line").length`, &lines),
		chromedp.Evaluate(`(function(){var seen={},d=0;document.querySelectorAll("#output .text").forEach(function(e){if(seen[e.textContent]){d++}seen[e.textContent]=1});return d})()`, &dupes)); err != nil {
		t.Fatal(err)
	}
	var last struct {
		Next int64 `json:"next"`
	}
	_, api := alice.get("/api/v1/runs/" + id + "/output?after=" + after)
	_ = json.Unmarshal([]byte(api), &last)
	if after == "0" || dupes != 0 || lines > 2650 || lines < 500 || last.Next != mustInt(t, after) {
		t.Fatalf("page after %s (nothing after it: next %d), %d lines, %d repeated", after, last.Next, lines, dupes)
	}
}

func mustInt(t *testing.T, s string) int64 {
	t.Helper()
	var n int64
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSupersededRunIsFlaggedAndRequestedAgain: alice's production flush
// waits for approval when a new version of flush-cache goes into
// service. bob's inbox and the run page say why it cannot be approved,
// with no Approve button; alice requests it again in one click, which
// makes a new request on the version in service with the same
// parameters, approvals not carried over.
func TestSupersededRunIsFlaggedAndRequestedAgain(t *testing.T) {
	s := newSite(t)
	alice, bob := s.visitor(t, "alice"), s.visitor(t, "bob")
	old := requestProductionFlush(t, alice)
	v := putInService(t, s, "flush-cache", "  - name: again\n    script: echo flushed again\n", "")

	_, page := bob.get("/runs/" + old)
	if strings.Contains(page, `id="approve"`) || !strings.Contains(page, `id="superseded"`) || !strings.Contains(page, "superseded by version 2") {
		t.Fatalf("bob's run page offers to approve a superseded run:\n%.3000s", unescape(page))
	}
	_, inbox := bob.get("/inbox")
	card := strings.Index(inbox, `id="approve-`+old+`"`)
	if card < 0 || !strings.Contains(inbox, `id="superseded-`+old+`"`) || strings.Contains(inbox[card:], "Approve exactly this") {
		t.Fatalf("bob's inbox does not flag the superseded run:\n%.3000s", unescape(inbox))
	}
	if _, page := bob.get("/runs/" + old); strings.Contains(page, `id="request-again"`) {
		t.Fatal("bob, who did not request it, may request it again")
	}
	if code, _ := bob.post("/runs/"+old+"/request-again", url.Values{"csrf_token": {bob.csrf()}}); code != http.StatusForbidden {
		t.Fatalf("bob requests alice's run again: %d, want 403", code)
	}

	ctx := s.browser(t, "alice")
	var flash, location string
	if err := chromedp.Run(ctx, chromedp.Navigate(s.url+"/runs/"+old), chromedp.WaitVisible("#superseded", chromedp.ByID)); err != nil {
		t.Fatal(err)
	}
	fullScreenshots(t, ctx, "run-superseded")
	if err := chromedp.Run(ctx, chromedp.Click("#request-again", chromedp.ByID),
		waitText(ctx, "main", "do not carry over"), chromedp.Text("main > p[role=status]", &flash, chromedp.ByQuery), chromedp.Location(&location)); err != nil {
		t.Fatalf("request again: %v", err)
	}
	newID := strings.TrimPrefix(strings.Split(location, "?")[0], s.url+"/runs/")
	nr, err := s.srv.Store.RunGet(t.Context(), newID)
	if err != nil {
		t.Fatalf("the new run %q: %v", newID, err)
	}
	or, _ := s.srv.Store.RunGet(t.Context(), old)
	if nr.ID == old || nr.VersionID != v.ID || string(nr.Params) != string(or.Params) || nr.Environment != or.Environment ||
		nr.Status != store.RunPending || nr.RequesterName != "alice" || !strings.Contains(flash, old) {
		t.Fatalf("new run %+v (old %+v), flash %q", nr, or, flash)
	}
	if aps, _ := s.srv.Store.RunApprovalList(t.Context(), nr.ID); len(aps) != 0 {
		t.Fatalf("approvals carried over: %+v", aps)
	}
	// Bob may approve the new one.
	if _, page := bob.get("/runs/" + nr.ID); !strings.Contains(page, `id="approve"`) || strings.Contains(page, `id="superseded"`) {
		t.Fatal("bob may not approve the run requested again")
	}
}

// TestTryRunPageSaysUnreviewed: a try run's page says, above all else,
// that it ran an unreviewed version.
func TestTryRunPageSaysUnreviewed(t *testing.T) {
	s := startServer(t, func(c *config.Config) {
		c.Environments = append(c.Environments, "sandbox")
		c.TryEnvironments = []string{"sandbox"}
	})
	ctx := context.Background()
	alice := principalOf(t, s, "alice")
	b, err := os.ReadFile(filepath.Join("..", "demo", "catalog", "rotate-logs.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	srcs, err := procedure.Parse("rotate-logs.yaml", append(b, []byte("  - name: tried\n    script: echo trying\n")...))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.srv.Review.Propose(ctx, alice, srcs[0]); err != nil {
		t.Fatal(err)
	}
	r, err := s.srv.Runs.Request(ctx, alice, run.RequestParams{Procedure: "rotate-logs", Environment: "sandbox", Version: 2})
	if err != nil || !r.Try {
		t.Fatalf("try run: %+v %v", r, err)
	}
	code, body := s.visitor(t, "alice").get("/runs/" + r.ID)
	if code != http.StatusOK || !strings.Contains(body, `id="unreviewed"`) || !strings.Contains(body, "not evidence of an approved change") {
		t.Fatalf("the try run's page does not say it is unreviewed: %d\n%.2000s", code, body)
	}
}
