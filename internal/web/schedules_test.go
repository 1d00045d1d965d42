package web_test

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/airlockhq/airlock/internal/store"
)

// proposeSchedule proposes a nightly rotate-logs schedule in staging as
// v through the form, and returns the schedule page it lands on.
func proposeSchedule(t *testing.T, v *visitor, name string) string {
	t.Helper()
	code, body := v.post("/schedules", url.Values{"csrf_token": {v.csrf()}, "procedure": {"rotate-logs"}, "name": {name},
		"environment": {"staging"}, "p.keep_days": {"3"}, "cron": {"30 2 * * *"}, "time_zone": {"Europe/Berlin"}, "missed": {"skip"},
		"reason": {"the disk fills up at night"}})
	if code != http.StatusOK || !strings.Contains(body, "pending_approval") {
		t.Fatalf("propose %s: %d %.300s", name, code, body)
	}
	return body
}

// TestScheduleProposedInTheUIAndApprovedByBob: alice chooses rotate-logs
// on the schedules page, is shown a bad cron expression at its field,
// proposes a nightly schedule and sees its next five ticks in Berlin
// time, with no way to approve it herself; bob sees the same ticks and
// the binding before approving, and approves; it is active. The pages
// fit a 390px phone; with AIRLOCK_UI_SCREENSHOTS set, bob's view before
// approving is saved full-page at 1280 and 390 pixels (docs/ui/).
func TestScheduleProposedInTheUIAndApprovedByBob(t *testing.T) {
	alloc := headless(t)
	s, clock := startServerWithClock(t)
	s.alloc = alloc
	alice := s.browser(t, "alice")
	var cronErr, invalid string
	var ok bool
	err := chromedp.Run(alice,
		chromedp.Navigate(s.url+"/schedules"),
		chromedp.SetValue("#s-choose", "rotate-logs", chromedp.ByID),
		chromedp.Click("#choose", chromedp.ByID),
		chromedp.WaitVisible("#schedule-form", chromedp.ByID),
		chromedp.SetValue("#s-name", "nightly-rotate", chromedp.ByID),
		chromedp.SetValue("#environment", "staging", chromedp.ByID),
		chromedp.SetValue("#p-keep_days", "3", chromedp.ByID),
		chromedp.SetValue("#s-cron", "61 2 * * *", chromedp.ByID),
		chromedp.SetValue("#s-tz", "Europe/Berlin", chromedp.ByID),
		chromedp.SetValue("#s-reason", "the disk fills up at night", chromedp.ByID),
		chromedp.Click("#propose", chromedp.ByID),
		waitText(alice, "#se-cron", "61"),
		chromedp.Text("#se-cron", &cronErr, chromedp.ByID),
		chromedp.AttributeValue("#s-cron", "aria-invalid", &invalid, &ok, chromedp.ByID),
	)
	if err != nil {
		screenshot(t, alice, "schedule-form")
		t.Fatal(err)
	}
	if invalid != "true" {
		t.Errorf("the refused cron field is not marked invalid (%q)", invalid)
	}
	if sts, _ := s.srv.Store.StandingList(t.Context(), store.StandingSchedule, ""); len(sts) != 0 {
		t.Fatalf("a refused form stored a schedule: %+v", sts)
	}
	// The other values are kept; the cron expression is corrected.
	var ticks []string
	err = chromedp.Run(alice,
		waitValue("#s-name", "nightly-rotate"),
		waitValue("#p-keep_days", "3"),
		chromedp.SetValue("#s-cron", "30 2 * * *", chromedp.ByID),
		chromedp.Click("#propose", chromedp.ByID),
		waitText(alice, "#status", "pending_approval"),
		chromedp.Evaluate(`Array.from(document.querySelectorAll("#ticks li")).map(e => e.textContent)`, &ticks),
	)
	if err != nil {
		screenshot(t, alice, "schedule-proposed")
		t.Fatal(err)
	}
	if len(ticks) != 5 {
		t.Fatalf("alice sees %d next ticks, want 5: %q", len(ticks), ticks)
	}
	for _, tk := range ticks {
		if !strings.Contains(tk, " 02:30 CE") {
			t.Errorf("a tick not at 02:30 Berlin time: %q", tk)
		}
	}
	var approveButtons int
	var own string
	if err := chromedp.Run(alice, chromedp.Evaluate(`document.querySelectorAll("#approve, #decide").length`, &approveButtons),
		chromedp.Text("#own", &own, chromedp.ByID)); err != nil {
		t.Fatal(err)
	}
	if approveButtons != 0 || !strings.Contains(own, "someone else must approve it") {
		t.Fatalf("alice's own schedule: %d approve controls, %q", approveButtons, own)
	}
	st, err := s.srv.Store.StandingGetByName(t.Context(), store.StandingSchedule, "nightly-rotate")
	if err != nil {
		t.Fatal(err)
	}

	bob := s.browser(t, "bob")
	var bobTicks []string
	var binding, approved, tickISO string
	err = chromedp.Run(bob,
		chromedp.Navigate(s.url+"/schedules"),
		chromedp.Click(`#schedules a[href="/schedules/nightly-rotate"]`, chromedp.ByQuery),
		chromedp.WaitVisible("#approve", chromedp.ByID),
		chromedp.Evaluate(`Array.from(document.querySelectorAll("#ticks li")).map(e => e.textContent)`, &bobTicks),
		chromedp.Text("#binding", &binding, chromedp.ByID),
		chromedp.Text("#approved", &approved, chromedp.ByID),
		chromedp.AttributeValue("#ticks li time", "datetime", &tickISO, &ok, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(bobTicks, "|") != strings.Join(ticks, "|") || binding != st.Binding ||
		!strings.Contains(approved, `{"keep_days":3}`) || !strings.Contains(approved, st.Digest) {
		t.Fatalf("bob sees ticks %q, binding %q, approved %q; want ticks %q, binding %q", bobTicks, binding, approved, ticks, st.Binding)
	}
	fullScreenshots(t, bob, "schedule")
	err = chromedp.Run(bob,
		chromedp.SendKeys("#comment", "nightly is fine", chromedp.ByID),
		chromedp.Click("#approve", chromedp.ByID),
		waitText(bob, "#status", "active"),
		waitText(bob, "#approvals", "bob approve (in force): nightly is fine"),
	)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ = s.srv.Store.StandingGetByName(t.Context(), store.StandingSchedule, "nightly-rotate"); st.Status != store.StandingActive {
		t.Fatalf("after bob's approval: %s", st.Status)
	}
	// At its first tick (on the server's clock; the test passes the
	// scheduler itself) it starts a run, which its history links to.
	first, err := time.Parse(time.RFC3339, tickISO)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(first.Sub(clock.Now()) + time.Second)
	if err := s.srv.Standing.Pass(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The run's page says which schedule started it, with a link back.
	var requester, link string
	bob = s.browser(t, "bob") // his session from before the clock jumped has ended
	err = chromedp.Run(bob,
		chromedp.Navigate(s.url+"/schedules/nightly-rotate"),
		waitText(bob, "#history", "started"),
		chromedp.Click(`#history a[href^="/runs/"]`, chromedp.ByQuery),
		chromedp.WaitVisible("#run", chromedp.ByID),
		chromedp.Text("#requested-by", &requester, chromedp.ByID),
		chromedp.AttributeValue("#requested-by a", "href", &link, &ok, chromedp.ByQuery),
	)
	if err != nil || !strings.Contains(requester, "started by schedule nightly-rotate") || link != "/schedules/nightly-rotate" {
		t.Fatalf("the scheduled run from the history: %v %q (link %q)", err, requester, link)
	}

	// Every schedules page fits a phone.
	alice = s.browser(t, "alice") // after the clock jumped, in a new session
	if err := chromedp.Run(alice, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(3), chromedp.EmulateMobile)); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/schedules", "/schedules?procedure=rotate-logs", "/schedules/nightly-rotate"} {
		var width int
		if err := chromedp.Run(alice, chromedp.Navigate(s.url+path), waitText(alice, "h1", "Schedule"),
			chromedp.Evaluate(`document.documentElement.scrollWidth`, &width)); err != nil {
			t.Fatal(err)
		}
		if width > 390 {
			screenshot(t, alice, "schedule-phone-overflow")
			t.Errorf("%s is %dpx wide on a 390px phone screen", path, width)
		}
	}
}

// waitValue waits until the form field sel holds want.
func waitValue(sel, want string) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		var got string
		if err := chromedp.Value(sel, &got, chromedp.ByQuery).Do(ctx); err != nil {
			return err
		}
		if got != want {
			return &valueError{sel, got, want}
		}
		return nil
	})
}

type valueError struct{ sel, got, want string }

func (e *valueError) Error() string { return e.sel + " holds " + e.got + ", want " + e.want }

// fullScreenshots saves full-page pictures of the current page at 1280
// and 390 pixels wide as NAME-1280.png and NAME-390.png, in
// $AIRLOCK_UI_SCREENSHOTS when set (how docs/ui/ is made), and checks
// that at 390 the page is no wider than the screen.
func fullScreenshots(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dirs := []string{t.TempDir()}
	if d := os.Getenv("AIRLOCK_UI_SCREENSHOTS"); d != "" {
		dirs = append(dirs, d)
	}
	for _, width := range []int64{1280, 390} {
		var img []byte
		var scroll int
		err := chromedp.Run(ctx, chromedp.EmulateViewport(width, 900), chromedp.Reload(), chromedp.WaitVisible("main", chromedp.ByQuery),
			chromedp.Evaluate(`document.documentElement.scrollWidth`, &scroll), chromedp.FullScreenshot(&img, 100))
		if err != nil {
			t.Fatalf("screenshot %s at %d: %v", name, width, err)
		}
		if scroll > int(width) {
			t.Errorf("%s is %dpx wide at a %dpx viewport", name, scroll, width)
		}
		for _, d := range dirs {
			path := filepath.Join(d, name+"-"+map[int64]string{1280: "1280", 390: "390"}[width]+".png")
			if err := os.WriteFile(path, img, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("screenshot: %s", path)
		}
	}
	if err := chromedp.Run(ctx, chromedp.EmulateViewport(1200, 900)); err != nil {
		t.Fatal(err)
	}
}
