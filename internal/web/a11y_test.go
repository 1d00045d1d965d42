package web_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/airlockhq/airlock/internal/evidence"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/testenv"
)

// axeScript is axe-core (Deque's accessibility engine, from the npm
// registry; .ci/run installs it), read from AIRLOCK_TEST_AXE.
func axeScript(t *testing.T) string {
	t.Helper()
	path := os.Getenv("AIRLOCK_TEST_AXE")
	if path == "" {
		path = "/opt/airlock-test/node_modules/axe-core/axe.min.js"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		testenv.Missing(t, "axe-core is not installed ("+path+"; npm install --prefix /opt/airlock-test axe-core, or set AIRLOCK_TEST_AXE); skipping the accessibility audit")
	}
	return string(b)
}

type axeResult struct {
	Violations []struct {
		ID     string `json:"id"`
		Impact string `json:"impact"`
		Help   string `json:"help"`
		Nodes  []struct {
			Target []any `json:"target"`
		} `json:"nodes"`
	} `json:"violations"`
	Passes []struct{} `json:"passes"`
}

// TestPagesPassAnAccessibilityAudit runs axe-core's WCAG 2.1 A and AA
// rules (labels and names, contrast, landmarks, headings, ARIA, lang) on
// every main page as the users who see them, including a form showing
// errors. Any violation fails, naming the rule and the elements.
func TestPagesPassAnAccessibilityAudit(t *testing.T) {
	script := axeScript(t)
	s := newSite(t)
	alice := s.visitor(t, "alice")
	runID := requestProductionFlush(t, alice)
	pending := s.pendingVersionID(t)
	proposeSchedule(t, alice, "nightly-rotate")
	pages := map[string][]string{
		"":      {"/login"},
		"alice": {"/", "/procedures/db-readonly-query", "/procedures/restart-service", "/runs", "/runs/" + runID, "/inbox", "/account", "/schedules?procedure=rotate-logs", "/schedules/nightly-rotate"},
		"bob":   {"/inbox", "/runs/" + runID, "/policies", "/admin", "/versions/" + pending, "/versions/flush-cache@1", "/procedures/rotate-logs", "/schedules", "/schedules/nightly-rotate", "/triggers", "/account"},
		"dana":  {"/audit", "/admin"},
	}
	// The admin sections, and the audit page filtered and paged.
	pages["carol"] = []string{"/admin/access", "/admin/users", "/admin/changes", "/admin/nodes", "/admin/secrets", "/audit?type=user.login&from=2026-01-01&before=100"}
	for user, paths := range pages {
		var ctx context.Context
		if user == "" {
			ctx = s.anonymous(t)
		} else {
			ctx = s.browser(t, user)
		}
		if err := chromedp.Run(ctx, page.SetBypassCSP(true)); err != nil {
			t.Fatal(err)
		}
		for _, path := range paths {
			axeAudit(t, ctx, script, s.url+path, user+" "+path)
		}
		// Every page the walk reaches fits a phone: the full page's
		// width at a 390 px viewport, not what the viewport shows.
		if err := chromedp.Run(ctx, chromedp.EmulateViewport(390, 844)); err != nil {
			t.Fatal(err)
		}
		for _, path := range paths {
			if err := chromedp.Run(ctx, chromedp.Navigate(s.url+path), chromedp.WaitReady("main", chromedp.ByQuery)); err != nil {
				t.Fatalf("%s %s at 390 px: %v", user, path, err)
			}
			if w := pageWidth(t, ctx); w > 390 {
				t.Errorf("%s %s: %d px wide at a 390 px viewport", user, path, w)
			}
		}
		if err := chromedp.Run(ctx, chromedp.EmulateViewport(1200, 900)); err != nil {
			t.Fatal(err)
		}
		if user == "alice" { // a form with errors next to its fields
			if err := chromedp.Run(ctx, chromedp.Navigate(s.url+"/procedures/restart-service"),
				chromedp.SetValue("#p-ticket", "nope", chromedp.ByID),
				chromedp.Click("#run-form button.primary", chromedp.ByQuery),
				waitText(ctx, "#e-ticket", "must match")); err != nil {
				t.Fatal(err)
			}
			check(t, ctx, script, "alice's form with an error")
			screenshot(t, ctx, "a11y-form-error")
			if err := chromedp.Run(ctx, chromedp.Navigate(s.url+"/schedules?procedure=rotate-logs"),
				chromedp.SetValue("#s-name", "Not A Name", chromedp.ByID),
				chromedp.SetValue("#s-cron", "@daily", chromedp.ByID),
				chromedp.Click("#propose", chromedp.ByID),
				waitText(ctx, "#se-name", "expected lower-case")); err != nil {
				t.Fatal(err)
			}
			check(t, ctx, script, "alice's schedule form with an error")
		}
	}
}

func axeAudit(t *testing.T, ctx context.Context, script, url, label string) {
	t.Helper()
	if err := chromedp.Run(ctx, chromedp.Navigate(url), chromedp.WaitReady("main", chromedp.ByQuery)); err != nil {
		t.Fatalf("%s: %v", label, err)
	}
	check(t, ctx, script, label)
}

func check(t *testing.T, ctx context.Context, script, label string) {
	t.Helper()
	var res axeResult
	err := chromedp.Run(ctx,
		chromedp.Evaluate(script, nil),
		chromedp.Evaluate(`axe.run(document, {runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}})`, &res,
			func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }))
	if err != nil {
		t.Fatalf("%s: axe: %v", label, err)
	}
	if len(res.Passes) == 0 {
		t.Fatalf("%s: axe checked nothing", label)
	}
	for _, v := range res.Violations {
		var where []string
		for _, n := range v.Nodes {
			where = append(where, fmt.Sprint(n.Target...))
		}
		t.Errorf("%s: %s (%s): %s — %s", label, v.ID, v.Impact, v.Help, strings.Join(where, "; "))
	}
}

// pendingVersionID is the demo's proposed procedure version.
func (s *site) pendingVersionID(t *testing.T) string {
	t.Helper()
	vs, err := s.srv.Store.ProcedureVersionList(t.Context(), store.ProcedureVersionListParams{Status: store.VersionProposed})
	if err != nil || len(vs) == 0 {
		t.Fatalf("no proposed version in the demo: %v", err)
	}
	return vs[0].ID
}

// TestRunWithTheKeyboardOnly runs a procedure without a mouse: from the
// top of the page Tab reaches the skip link first, then the form's
// controls in reading order, and Enter on the Run button starts the run.
func TestRunWithTheKeyboardOnly(t *testing.T) {
	s := newSite(t)
	ctx := s.browser(t, "alice")
	if err := chromedp.Run(ctx, chromedp.Navigate(s.url+"/procedures/flush-cache"), chromedp.WaitVisible("#run-form", chromedp.ByID)); err != nil {
		t.Fatal(err)
	}
	focused := func() string {
		var id string
		_ = chromedp.Run(ctx, chromedp.Evaluate(`(function(e){return e.id || e.className || e.tagName})(document.activeElement)`, &id))
		return id
	}
	var order []string
	for range 40 {
		if err := chromedp.Run(ctx, chromedp.KeyEvent("\t")); err != nil {
			t.Fatal(err)
		}
		id := focused()
		order = append(order, id)
		if id == "environment" { // choose staging by keyboard
			_ = chromedp.Run(ctx, chromedp.SendKeys("#environment", "staging", chromedp.ByID))
		}
		if id == "p-cache" {
			_ = chromedp.Run(ctx, chromedp.SendKeys("#p-cache", "sessions", chromedp.ByID))
		}
		if id == "run" {
			break
		}
	}
	if order[0] != "skip" {
		t.Errorf("first Tab stop is %q, want the skip link", order[0])
	}
	want := []string{"environment", "p-cache", "reason", "run"}
	var got []string
	for _, id := range order {
		for _, w := range want {
			if id == w {
				got = append(got, id)
			}
		}
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("form controls in Tab order %v, want %v (all stops: %v)", got, want, order)
	}
	err := chromedp.Run(ctx, chromedp.KeyEvent("\r"), chromedp.WaitVisible("#output", chromedp.ByID), waitText(ctx, "#status", "succeeded"))
	screenshot(t, ctx, "keyboard-run")
	if err != nil {
		t.Fatalf("Enter on Run: %v", err)
	}
}

// TestEvidenceReportIsAccessible runs the same audit on the HTML report an
// auditor opens from a bundle (a file, outside the server).
func TestEvidenceReportIsAccessible(t *testing.T) {
	script := axeScript(t)
	s := newSite(t)
	id := requestProductionFlush(t, s.visitor(t, "alice"))
	rr, err := s.srv.Store.RunGet(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	// The hour up to the request, as the server dated it: the demo's
	// seeding and the run.
	var buf bytes.Buffer
	p := evidence.Params{From: rr.CreatedAt.Add(-time.Hour), To: rr.CreatedAt.Add(time.Minute)}
	if err := evidence.Export(t.Context(), s.srv.Store, s.srv.AuditLog, p, &buf); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "report.html")
	if err := os.WriteFile(path, bundleFile(t, buf.Bytes(), "report.html"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := s.anonymous(t)
	axeAudit(t, ctx, script, "file://"+path, "evidence report")
	screenshot(t, ctx, "evidence-report")
}
