package web_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/store"
)

// fillerDay is the day the filler events of the audit tests are dated:
// a fixed day, apart from the demo's own events.
var fillerDay = time.Date(2026, 1, 15, 8, 0, 0, 0, time.UTC)

// appendFiller appends n events of type test.filler on fillerDay, a
// minute apart, about the run subject, with nested details.
func appendFiller(t *testing.T, s *site, n int, subject string) {
	t.Helper()
	ctx := t.Context()
	err := s.srv.Store.Update(ctx, func(tx store.Tx) error {
		for i := range n {
			d := map[string]any{"step": i, "nodes": []string{"web-1", "web-2"}, "limits": map[string]any{"cpu": 2, "timeout": "5m"},
				"digest": "sha256:" + strings.Repeat("ab", 32), "ok": i%2 == 0}
			e := audit.New(ctx, fillerDay.Add(time.Duration(i)*time.Minute), "test.filler", audit.Actor{Name: "filler"}, subject, audit.Success, d)
			if err := tx.AuditAppend(ctx, e); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// within runs actions with their own deadline, failing with what was
// awaited.
func within(t *testing.T, ctx context.Context, d time.Duration, what string, actions ...chromedp.Action) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := chromedp.Run(c, actions...); err != nil {
		t.Fatalf("%s (within %s): %v", what, d, err)
	}
}

// until waits for a condition on the page, through navigations (an
// evaluation refused while the page changes is tried again).
func until(cond string) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		for {
			var ok bool
			if err := chromedp.Evaluate(cond, &ok).Do(ctx); err == nil && ok {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("waiting for %s: %w", cond, ctx.Err())
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
}

// loaded waits until the page and its style sheet have loaded: a
// layout measured before the style sheet arrives is the unstyled page's.
func loaded() chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		for {
			var state string
			if err := chromedp.Evaluate(`document.readyState`, &state).Do(ctx); err == nil && state == "complete" {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("waiting for the page to finish loading (document.readyState %q): %w", state, ctx.Err())
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
}

// pageWidth is the full page's width, once it has loaded: what a reader
// scrolls sideways.
func pageWidth(t *testing.T, ctx context.Context) int {
	t.Helper()
	var w int
	within(t, ctx, 10*time.Second, "measure the page width", loaded(), chromedp.Evaluate(`document.documentElement.scrollWidth`, &w))
	return w
}

// fullPage sets the viewport to width, checks that the whole page fits
// it, and saves a full-page picture as NAME-WIDTH.png in the test's
// temp dir and in $AIRLOCK_UI_SCREENSHOTS when set (docs/ui/). It does
// not reload: the page may be the answer to a form.
func fullPage(t *testing.T, ctx context.Context, name string, width int64) {
	t.Helper()
	var img []byte
	within(t, ctx, 20*time.Second, fmt.Sprintf("lay out %s at %dpx", name, width),
		chromedp.EmulateViewport(width, 900), chromedp.WaitVisible("main", chromedp.ByQuery))
	if w := pageWidth(t, ctx); w > int(width) {
		t.Errorf("%s is %dpx wide at a %dpx viewport", name, w, width)
	}
	within(t, ctx, 30*time.Second, "full-page screenshot of "+name, loaded(), chromedp.FullScreenshot(&img, 100))
	dirs := []string{t.TempDir()}
	if d := os.Getenv("AIRLOCK_UI_SCREENSHOTS"); d != "" {
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		path := filepath.Join(d, fmt.Sprintf("%s-%d.png", name, width))
		if err := os.WriteFile(path, img, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", path)
	}
}

// rowSeqs are the sequence numbers of the audit page's rows, in order.
func rowSeqs(t *testing.T, ctx context.Context) []int {
	t.Helper()
	var seqs []int
	within(t, ctx, 10*time.Second, "read the events table",
		chromedp.Evaluate(`[...document.querySelectorAll("#events tbody tr[id^=ev-]")].map(r => +r.id.slice(3))`, &seqs))
	return seqs
}

// TestAuditPageInTheBrowser: with 120 more events, dana's audit page at
// 1,280 px fits its width, shows 50 events newest first with labelled
// details and linked subjects, pages back and forth by sequence number,
// and a filter by type and day narrows it.
func TestAuditPageInTheBrowser(t *testing.T) {
	s := newSite(t)
	runID := requestProductionFlush(t, s.visitor(t, "alice"))
	appendFiller(t, s, 120, runID)
	dana := s.browser(t, "dana")
	within(t, dana, 20*time.Second, "open the audit page at 1280px",
		chromedp.EmulateViewport(1280, 900), chromedp.Navigate(s.url+"/audit"), chromedp.WaitVisible("#events", chromedp.ByID))
	if w := pageWidth(t, dana); w > 1280 {
		t.Errorf("the audit page is %dpx wide at 1280", w)
	}
	var detailsWidth float64
	within(t, dana, 10*time.Second, "measure the details column",
		chromedp.Evaluate(`document.querySelector("#events tbody td.details").getBoundingClientRect().width`, &detailsWidth))
	if detailsWidth < 200 {
		t.Errorf("the details column is %.0fpx wide", detailsWidth)
	}
	first := rowSeqs(t, dana)
	if len(first) != 50 {
		t.Fatalf("%d events on the first page, want 50", len(first))
	}
	for i := 1; i < len(first); i++ {
		if first[i] >= first[i-1] {
			t.Fatalf("not newest first: %v", first)
		}
	}
	var html string
	within(t, dana, 10*time.Second, "read a filler row",
		chromedp.Evaluate(`[...document.querySelectorAll("#events tbody tr")].find(r => r.textContent.includes("test.filler")).outerHTML`, &html))
	for _, want := range []string{`<dt>limits</dt><dd>{"cpu":2,"timeout":"5m"}</dd>`, `<dt>nodes</dt><dd>web-1, web-2</dd>`, `<dt>ok</dt><dd>`,
		`href="/runs/` + runID + `"`} {
		if !strings.Contains(html, want) {
			t.Errorf("the newest filler row lacks %s: %s", want, html)
		}
	}
	within(t, dana, 20*time.Second, "follow 'Older events'",
		chromedp.Click("#older", chromedp.ByID), chromedp.WaitVisible("#newer", chromedp.ByID))
	second := rowSeqs(t, dana)
	if len(second) != 50 || second[0] != first[49]-1 {
		t.Fatalf("the older page starts at %v, want %d", second[:min(3, len(second))], first[49]-1)
	}
	within(t, dana, 20*time.Second, "follow 'Newer events'",
		chromedp.Click("#newer", chromedp.ByID),
		// The newest page has no "Newer events" link; the page left has.
		until(`!document.querySelector("#newer") && document.readyState === "complete"`), chromedp.WaitVisible("#events", chromedp.ByID))
	if back := rowSeqs(t, dana); fmt.Sprint(back) != fmt.Sprint(first) {
		t.Fatalf("newer from the second page: %v, want the first page again", back[:min(3, len(back))])
	}
	// A filter: the filler's type on its day — 120 of them, 50 a page;
	// the day before has none.
	day := fillerDay.Format("2006-01-02")
	within(t, dana, 20*time.Second, "filter by type and day",
		chromedp.SetValue("#type", "test.filler", chromedp.ByID), chromedp.SetValue("#f-from", day, chromedp.ByID),
		chromedp.SetValue("#f-to", day, chromedp.ByID), chromedp.Click("#search", chromedp.ByID),
		// The unfiltered page has #older too: wait for the filtered one to
		// have loaded, not for what the old page already shows.
		until(`location.search.includes("type=test.filler") && document.readyState === "complete"`),
		chromedp.WaitVisible("#older", chromedp.ByID))
	var types []string
	within(t, dana, 10*time.Second, "read the filtered types",
		chromedp.Evaluate(`[...document.querySelectorAll("#events tbody td[data-label=Type]")].map(c => c.textContent)`, &types))
	if len(types) != 50 || strings.Join(types, "") != strings.Repeat("test.filler", 50) {
		t.Fatalf("filtered page: %d rows %v", len(types), types[:min(3, len(types))])
	}
	before := fillerDay.AddDate(0, 0, -1).Format("2006-01-02")
	within(t, dana, 20*time.Second, "filter by the day before",
		chromedp.Navigate(s.url+"/audit?type=test.filler&from="+before+"&to="+before), waitText(dana, "#events", "No events match"))
	within(t, dana, 20*time.Second, "a bad date says which field",
		chromedp.Navigate(s.url+"/audit?from=yesterday"), waitText(dana, "#filter-error", "from: expected a date"))
}

// TestPolicyErrorsBesideTheEditor: a draft with a syntax error shows the
// problem beside the editor — the line, the column, the line itself and
// words — not at the top of the page; the explain answer shows under its
// question.
func TestPolicyErrorsBesideTheEditor(t *testing.T) {
	s := newSite(t)
	bob := s.browser(t, "bob")
	within(t, bob, 20*time.Second, "open the policy page",
		chromedp.EmulateViewport(1280, 900), chromedp.Navigate(s.url+"/policies"), chromedp.WaitVisible("#text", chromedp.ByID))
	var draft string
	within(t, bob, 10*time.Second, "read the draft", chromedp.Value("#text", &draft, chromedp.ByID))
	lines := strings.Count(draft, "\n")
	broken := draft + "\n@id(\"typo\")\npermit (principal, action, resource)\n"
	within(t, bob, 20*time.Second, "check a draft missing a semicolon",
		chromedp.SetValue("#description", "OPS-1", chromedp.ByID), chromedp.SetValue("#text", broken, chromedp.ByID), chromedp.Click("#check", chromedp.ByID),
		waitText(bob, "#draft-errors", "every policy ends with a semicolon"))
	var errs string
	within(t, bob, 10*time.Second, "read the problems", chromedp.Text("#draft-errors", &errs, chromedp.ByID))
	if !strings.Contains(errs, fmt.Sprintf("Line %d, column 1", lines+4)) || !strings.Contains(errs, "The parser said") {
		t.Errorf("problems: %q", errs)
	}
	var gap float64
	within(t, bob, 10*time.Second, "measure where the problems are",
		chromedp.Evaluate(`document.querySelector("#text").getBoundingClientRect().top - document.querySelector("#draft-errors").getBoundingClientRect().bottom`, &gap))
	if gap < 0 || gap > 40 {
		t.Errorf("the problems end %.0fpx above the editor, want right above it", gap)
	}
	var topError int
	within(t, bob, 10*time.Second, "look for an error at the top", chromedp.Evaluate(`document.querySelectorAll("main > p.error").length`, &topError))
	if topError != 0 {
		t.Error("the draft's error is (also) at the top of the page")
	}
	fullPage(t, bob, "policies-error", 1280)
	fullPage(t, bob, "policies-error", 390)
	within(t, bob, 20*time.Second, "ask the policy",
		chromedp.EmulateViewport(1280, 900), chromedp.Navigate(s.url+"/policies"), chromedp.WaitVisible("#explain-form", chromedp.ByID),
		chromedp.SetValue("#ex-user", "erin", chromedp.ByID), chromedp.SetValue("#ex-proc", "restart-service", chromedp.ByID),
		chromedp.SetValue("#ex-env", "production", chromedp.ByID), chromedp.Click("#explain", chromedp.ByID),
		chromedp.WaitVisible("#answer", chromedp.ByID))
	var inForm bool
	var answerTop float64
	within(t, bob, 10*time.Second, "find the answer",
		chromedp.Evaluate(`document.querySelector("#explain-form").contains(document.querySelector("#answer"))`, &inForm),
		chromedp.Evaluate(`document.querySelector("#answer").getBoundingClientRect().top`, &answerTop))
	if !inForm || answerTop < 0 || answerTop > 900 {
		t.Errorf("the answer is not beside its question in view (in the form: %v, %.0fpx from the top of the window)", inForm, answerTop)
	}
	within(t, bob, 20*time.Second, "ask about no one",
		chromedp.SetValue("#ex-user", "nobody-here", chromedp.ByID), chromedp.Click("#explain", chromedp.ByID),
		chromedp.WaitVisible("#explain-error", chromedp.ByID))
}

// TestAdminAuditPolicyPagesFitAPhone walks the admin, audit and policy
// pages (and a confirmation) at 390 px: no page is wider than the
// screen. It saves the full-page pictures of docs/ui/ at 1280 and 390.
func TestAdminAuditPolicyPagesFitAPhone(t *testing.T) {
	s := newSite(t)
	runID := requestProductionFlush(t, s.visitor(t, "alice"))
	appendFiller(t, s, 60, runID)
	bob := s.visitor(t, "bob")
	if code, _ := bob.post("/admin/users/erin/reset-password", map[string][]string{"csrf_token": {bob.csrf()}}); code != 200 {
		t.Fatalf("bob proposes a reset: %d", code)
	}
	pages := map[string][]string{
		"bob":   {"/admin", "/admin/access", "/admin/users", "/admin/changes", "/admin/nodes", "/admin/secrets", "/policies", "/audit"},
		"carol": {"/admin/changes"},
		"dana":  {"/audit", "/admin", "/admin/access", "/policies"},
	}
	shots := map[string]string{"bob /admin": "admin", "bob /admin/users": "admin-users", "bob /admin/access": "admin-access",
		"carol /admin/changes": "admin-changes", "dana /audit": "audit", "bob /policies": "policies"}
	for user, paths := range pages {
		ctx := s.browser(t, user)
		for _, path := range paths {
			within(t, ctx, 20*time.Second, user+" opens "+path+" at 390px",
				chromedp.EmulateViewport(390, 800), chromedp.Navigate(s.url+path), chromedp.WaitVisible("main", chromedp.ByQuery))
			if w := pageWidth(t, ctx); w > 390 {
				t.Errorf("%s %s is %dpx wide at 390", user, path, w)
			}
			if name, ok := shots[user+" "+path]; ok {
				fullPage(t, ctx, name, 1280)
				fullPage(t, ctx, name, 390)
			}
		}
		if user == "bob" { // a confirmation step
			within(t, ctx, 20*time.Second, "bob asks to disable erin",
				chromedp.EmulateViewport(390, 800), chromedp.Navigate(s.url+"/admin/users"),
				chromedp.Click(`#user-erin button[aria-label="Disable erin"]`, chromedp.ByQuery), waitText(ctx, "h1", "Disable erin?"))
			if w := pageWidth(t, ctx); w > 390 {
				t.Errorf("the confirmation is %dpx wide at 390", w)
			}
			fullPage(t, ctx, "admin-confirm", 390)
			within(t, ctx, 20*time.Second, "bob cancels", chromedp.Click("#confirm-cancel", chromedp.ByID), chromedp.WaitVisible("#users", chromedp.ByID))
			if u, _ := s.srv.Store.UserGetByUsername(t.Context(), "erin"); u.Disabled {
				t.Fatal("asking to disable erin disabled her")
			}
		}
	}
}

// TestAdminAuditPolicyStatesPassAnAccessibilityAudit runs axe-core on
// the states the page walk does not reach: a confirmation step, a
// refused policy draft with its problems beside the editor, an explain
// answer, and a refused audit filter.
func TestAdminAuditPolicyStatesPassAnAccessibilityAudit(t *testing.T) {
	script := axeScript(t)
	s := newSite(t)
	bob := s.browser(t, "bob")
	if err := chromedp.Run(bob, page.SetBypassCSP(true)); err != nil {
		t.Fatal(err)
	}
	within(t, bob, 20*time.Second, "bob asks to remove erin from noc",
		chromedp.Navigate(s.url+"/admin/users"), chromedp.Click(`#user-erin button[aria-label="Remove erin from noc"]`, chromedp.ByQuery),
		waitText(bob, "h1", "Remove erin from noc?"))
	check(t, bob, script, "a confirmation")
	within(t, bob, 20*time.Second, "check a broken draft",
		chromedp.Navigate(s.url+"/policies"), chromedp.WaitVisible("#text", chromedp.ByID),
		chromedp.SetValue("#description", "OPS-1", chromedp.ByID), chromedp.SetValue("#text", "@id(\"x\")\npermitt (principal, action, resource);\n", chromedp.ByID),
		chromedp.Click("#check", chromedp.ByID), waitText(bob, "#draft-errors", "permit or forbid"))
	check(t, bob, script, "a refused policy draft")
	within(t, bob, 20*time.Second, "ask the policy",
		chromedp.Navigate(s.url+"/policies"), chromedp.WaitVisible("#explain-form", chromedp.ByID),
		chromedp.SetValue("#ex-user", "erin", chromedp.ByID), chromedp.SetValue("#ex-proc", "restart-service", chromedp.ByID),
		chromedp.SetValue("#ex-env", "production", chromedp.ByID), chromedp.Click("#explain", chromedp.ByID), chromedp.WaitVisible("#answer", chromedp.ByID))
	check(t, bob, script, "an explain answer")
	within(t, bob, 20*time.Second, "a refused audit filter",
		chromedp.Navigate(s.url+"/audit?to=soon"), chromedp.WaitVisible("#filter-error", chromedp.ByID))
	check(t, bob, script, "a refused audit filter")
}
