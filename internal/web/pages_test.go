package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestCorrectedFieldSubmitsOnOneClick: alice types a bad ticket, Run
// shows the error; she corrects it with the keyboard, and one click on
// Run submits the form (the message goes as the value becomes right, so
// nothing moves under the pointer) and opens the run page.
func TestCorrectedFieldSubmitsOnOneClick(t *testing.T) {
	s := newSite(t)
	ctx := s.browser(t, "alice")
	err := chromedp.Run(ctx, chromedp.Navigate(s.url+"/procedures/restart-service"),
		chromedp.SetValue("#environment", "staging", chromedp.ByID),
		chromedp.SendKeys("#ticket", "CHG-9", chromedp.ByID),
		chromedp.SendKeys("#p-ticket", "nope", chromedp.ByID),
		chromedp.Click("#run", chromedp.ByID),
		waitText(ctx, "#e-ticket", "must match"))
	if err != nil {
		t.Fatalf("the error for a bad ticket: %v", err)
	}
	var location string
	err = chromedp.Run(ctx,
		chromedp.SendKeys("#p-ticket", "\b\b\b\bOPS-10", chromedp.ByID), // the focus stays in the field
		chromedp.Click("#run", chromedp.ByID),                           // one click
		chromedp.WaitVisible("#run[data-run]", chromedp.ByQuery),        // the run page
		chromedp.Location(&location))
	if err != nil {
		screenshot(t, ctx, "one-click-failed")
		t.Fatalf("waiting for the run page after one click on Run (at %s): %v", location, err)
	}
	id := strings.TrimPrefix(location, s.url+"/runs/")
	rr, err := s.srv.Store.RunGet(t.Context(), id)
	if err != nil || !strings.Contains(string(rr.Params), `"ticket":"OPS-10"`) || rr.Ticket != "CHG-9" {
		t.Fatalf("the run from the corrected form: %v %+v", err, rr)
	}
}

// TestCatalogSaysWhatRunsNow: alice's catalog says which environments
// run at once and which need approval, the risk in words and colour, the
// last run she may see and the version awaiting review; dana, who may
// neither run nor request, gets no run form and no Retire button on a
// procedure page.
func TestCatalogSaysWhatRunsNow(t *testing.T) {
	s := newSite(t)
	alice, dana := s.visitor(t, "alice"), s.visitor(t, "dana")
	id := requestProductionFlush(t, alice)
	_, page := alice.get("/")
	row := page[strings.Index(page, `data-procedure="flush-cache"`):]
	row = row[:strings.Index(row, "</tr>")]
	for _, want := range []string{`<span class="risk risk-low">low risk</span>`, `staging: <strong class="runs-now">runs now</strong>`,
		`production: <strong class="needs-approval">needs approval</strong>`, `href="/runs/` + id + `"><span class="status status-pending_approval">pending_approval</span>`} {
		if !strings.Contains(row, want) {
			t.Errorf("alice's catalog row of flush-cache lacks %s:\n%s", want, row)
		}
	}
	if strings.Contains(page, "(approval)") {
		t.Error("the catalog still says (approval)")
	}
	if !strings.Contains(page, "awaits review</a>") {
		t.Error("the catalog does not say that toggle-feature-flag's new version awaits review")
	}
	// dana may view the procedure but neither run nor request it.
	code, body := dana.get("/procedures/flush-cache")
	if code != http.StatusOK || strings.Contains(body, `id="run-form"`) || strings.Contains(body, `id="retire"`) || !strings.Contains(body, `id="no-run"`) {
		t.Fatalf("dana's procedure page: %d, run form %v, retire %v", code, strings.Contains(body, `id="run-form"`), strings.Contains(body, `id="retire"`))
	}
	// alice's form offers only where she may, saying what happens there.
	_, body = alice.get("/procedures/restart-service")
	for _, want := range []string{`>staging — needs approval</option>`, ` disabled>production — not permitted</option>`, `id="ticket" name="ticket"`} {
		if !strings.Contains(unescape(body), want) {
			t.Errorf("alice's restart-service form lacks %s", want)
		}
	}
	ctx := s.browser(t, "alice")
	if err := chromedp.Run(ctx, chromedp.Navigate(s.url+"/"), chromedp.WaitVisible("main", chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	fullScreenshots(t, ctx, "catalog")
	if err := chromedp.Run(ctx, chromedp.Navigate(s.url+"/procedures/restart-service"), chromedp.WaitVisible("#run-form", chromedp.ByID)); err != nil {
		t.Fatal(err)
	}
	fullScreenshots(t, ctx, "procedure")
}

// TestVersionByNameAndNumber: /versions/NAME@N, as the CLI and API take
// it, opens the version page, which shows the whole canonical YAML beside
// the diff; an unknown number or procedure is a 404.
func TestVersionByNameAndNumber(t *testing.T) {
	s := newSite(t)
	bob := s.visitor(t, "bob")
	code, page := bob.get("/versions/flush-cache@1")
	if code != http.StatusOK || !strings.Contains(page, "Review flush-cache v1") || !strings.Contains(unescape(page), "name: flush-cache\n") {
		t.Fatalf("/versions/flush-cache@1: %d %.1000s", code, page)
	}
	for _, p := range []string{"/versions/flush-cache@99", "/versions/no-such@1", "/versions/flush-cache@x"} {
		if code, _ := bob.get(p); code != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", p, code)
		}
	}
	pending := s.pendingVersionID(t)
	_, page = bob.get("/versions/" + pending)
	d, y := strings.Index(page, `id="diff"`), strings.Index(page, `id="yaml"`)
	if d < 0 || y < d || !strings.Contains(unescape(page[y:]), "name: toggle-feature-flag\n") {
		t.Fatalf("the proposed version's page lacks the diff and the whole YAML beside it:\n%.3000s", page)
	}
	// The page's own links use the form too.
	_, proc := bob.get("/procedures/flush-cache")
	if !strings.Contains(proc, `href="/versions/flush-cache@1"`) {
		t.Error("the procedure page does not link its version as NAME@N")
	}
	ctx := s.browser(t, "bob")
	if err := chromedp.Run(ctx, chromedp.Navigate(s.url+"/versions/"+pending), chromedp.WaitVisible("#yaml", chromedp.ByID)); err != nil {
		t.Fatal(err)
	}
	fullScreenshots(t, ctx, "version")
}

// TestPagesFitA390PixelPhone walks the catalog, procedure, runs, run,
// inbox and version pages at a 390 px viewport: no page may be wider
// than that (the whole page, not only what the window shows).
func TestPagesFitA390PixelPhone(t *testing.T) {
	s := newSite(t)
	erin, bob, alice := s.visitor(t, "erin"), s.visitor(t, "bob"), s.visitor(t, "alice")
	code, body := erin.post("/procedures/restart-service/run", url.Values{"csrf_token": {erin.csrf()},
		"environment": {"production"}, "p.service": {"worker"}, "p.ticket": {"OPS-8"}, "ticket": {"INC-2026-0042-a-rather-long-ticket-reference"}})
	m := runLink.FindStringSubmatch(body)
	if code != http.StatusOK || m == nil {
		t.Fatalf("request: %d %.300s", code, body)
	}
	bob.approve(m[1])
	waitRun(t, s, m[1])
	pending := requestProductionFlush(t, alice)
	walk := map[string][]string{
		"alice": {"/", "/procedures/db-readonly-query", "/procedures/restart-service", "/procedures/flush-cache", "/runs", "/runs/" + pending, "/inbox"},
		"bob":   {"/inbox", "/runs/" + m[1], "/runs/" + pending, "/versions/" + s.pendingVersionID(t), "/versions/flush-cache@1", "/runs"},
	}
	for user, paths := range walk {
		ctx := s.browser(t, user)
		if err := chromedp.Run(ctx, chromedp.EmulateViewport(390, 844)); err != nil {
			t.Fatal(err)
		}
		for _, path := range paths {
			var width int
			if err := chromedp.Run(ctx, chromedp.Navigate(s.url+path), chromedp.WaitVisible("main", chromedp.ByQuery),
				chromedp.Evaluate(`document.documentElement.scrollWidth`, &width)); err != nil {
				t.Fatalf("%s %s: %v", user, path, err)
			}
			if width > 390 {
				screenshot(t, ctx, "phone-overflow")
				t.Errorf("%s's %s is %d px wide at a 390 px viewport", user, path, width)
			}
		}
		if user == "bob" {
			if err := chromedp.Run(ctx, chromedp.Navigate(s.url+"/inbox"), chromedp.WaitVisible("main", chromedp.ByQuery)); err != nil {
				t.Fatal(err)
			}
			fullScreenshots(t, ctx, "inbox")
			if err := chromedp.Run(ctx, chromedp.Navigate(s.url+"/runs"), chromedp.WaitVisible("main", chromedp.ByQuery)); err != nil {
				t.Fatal(err)
			}
			fullScreenshots(t, ctx, "runs")
		}
	}
}
