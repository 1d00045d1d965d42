package web_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/airlockhq/airlock/internal/config"
	"github.com/airlockhq/airlock/internal/evidence"
	"github.com/airlockhq/airlock/internal/server"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/testenv"
)

const chromiumPath = "/usr/bin/chromium"

type site struct {
	url   string
	srv   *server.Server
	pw    map[string]string
	alloc context.Context
}

// newSite starts a server on the demo data and a headless Chromium
// (Debian's, as installed by .ci/run).
func newSite(t *testing.T, mutate ...func(*config.Config)) *site {
	t.Helper()
	alloc := headless(t)
	st := startServer(t, mutate...)
	st.alloc = alloc
	return st
}

// headless is a headless Chromium allocator (Debian's, as installed by
// .ci/run), closed at cleanup.
func headless(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		testenv.Missing(t, "Chromium is not installed ("+chromiumPath+"; apt-get install chromium); skipping browser tests")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromiumPath), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true),
		chromedp.WindowSize(1200, 900))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	return alloc
}

// startServer starts a server on the demo data with its run workers.
func startServer(t *testing.T, mutate ...func(*config.Config)) *site {
	t.Helper()
	d := testenv.DemoServer(t, mutate...)
	return &site{url: d.Serve(t), srv: d.Server, pw: d.Passwords}
}

// startServerWithClock starts a server whose services all read the
// returned clock, which starts when the demo data is in place and moves
// only when the test moves it.
func startServerWithClock(t *testing.T, mutate ...func(*config.Config)) (*site, *testClock) {
	t.Helper()
	d := testenv.DemoServer(t, mutate...)
	clock := &testClock{now: time.Now()}
	d.Server.Now = clock.Now // before Serve starts anything that reads it
	return &site{url: d.Serve(t), srv: d.Server, pw: d.Passwords}, clock
}

// testClock is a server clock the test moves. It stands still between
// moves except for a nanosecond per reading, so that two things it dates
// never look simultaneous.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(time.Nanosecond)
	return c.now
}

// Advance moves the clock forward by d and returns the new time.
func (c *testClock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}

// bundleFile is one file of an evidence bundle.
func bundleFile(t *testing.T, bundle []byte, name string) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(bundle), int64(len(bundle)))
	if err != nil {
		t.Fatalf("evidence bundle: %v", err)
	}
	rc, err := zr.Open(name)
	if err != nil {
		t.Fatalf("evidence bundle: %v", err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("evidence bundle %s: %v", name, err)
	}
	return b
}

// anonymous opens a fresh browser window (its own cookies), signed in as
// no one.
func (s *site) anonymous(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(s.alloc)
	t.Cleanup(cancel)
	ctx, cancel2 := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(cancel2)
	return ctx
}

// browser opens a fresh browser window signed in as user.
func (s *site) browser(t *testing.T, user string) context.Context {
	t.Helper()
	ctx := s.anonymous(t)
	if err := chromedp.Run(ctx,
		chromedp.Navigate(s.url+"/login"),
		chromedp.WaitVisible("#username", chromedp.ByID),
		chromedp.SendKeys("#username", user, chromedp.ByID),
		chromedp.SendKeys("#password", s.pw[user], chromedp.ByID),
		chromedp.Click("button[type=submit]", chromedp.ByQuery),
		chromedp.WaitVisible("header", chromedp.ByQuery),
	); err != nil {
		t.Fatalf("sign in as %s: %v", user, err)
	}
	return ctx
}

// screenshot saves the final page of a test as an artifact (PNG, the window) under
// the test's temp dir, and also in $AIRLOCK_UI_SCREENSHOTS when set (how
// the pictures in docs/ui/ are made).
func screenshot(t *testing.T, ctx context.Context, name string) {
	var img []byte
	if err := chromedp.Run(ctx, chromedp.Evaluate(`window.scrollTo(0, 0)`, nil), chromedp.CaptureScreenshot(&img)); err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	dirs := []string{t.TempDir()}
	if d := os.Getenv("AIRLOCK_UI_SCREENSHOTS"); d != "" {
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		path := filepath.Join(d, name+".png")
		if err := os.WriteFile(path, img, 0o644); err != nil {
			t.Errorf("screenshot: %v", err)
		}
		t.Logf("screenshot: %s", path)
	}
}

// waitText waits until the text of sel contains want, until the
// browser's deadline, and then names what it waited for and what it saw.
func waitText(ctx context.Context, sel, want string) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		var got string
		for {
			if err := chromedp.Text(sel, &got, chromedp.ByQuery).Do(ctx); err == nil && strings.Contains(got, want) {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("waiting for %q in %s (last seen %q): %w", want, sel, got, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
}

func TestAliceRunsInStagingAndWatchesOutputLive(t *testing.T) {
	s := newSite(t)
	ctx := s.browser(t, "alice")
	var statusWhileFlushing string
	if err := chromedp.Run(ctx, chromedp.Navigate(s.url+"/"), chromedp.WaitVisible("table", chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "catalog")
	err := chromedp.Run(ctx,
		chromedp.Navigate(s.url+"/procedures/flush-cache"),
		chromedp.SetValue("#environment", "staging", chromedp.ByID),
		chromedp.SetValue("#p-cache", "sessions", chromedp.ByID),
		chromedp.Click("#run-form button.primary", chromedp.ByQuery),
		chromedp.WaitVisible("#run", chromedp.ByID),
		waitText(ctx, "#output", "flushing the sessions cache"),
		chromedp.Text("#status", &statusWhileFlushing, chromedp.ByID),
		waitText(ctx, "#status", "succeeded"),
		waitText(ctx, "#output", "flushed"),
	)
	screenshot(t, ctx, "alice-staging-run")
	if err != nil {
		t.Fatal(err)
	}
	if statusWhileFlushing != "running" {
		t.Fatalf("output arrived only after the run (status was %q): not live", statusWhileFlushing)
	}
}

func TestProductionRequestApprovedFromBobsInbox(t *testing.T) {
	s := newSite(t)
	alice := s.browser(t, "alice")
	var runURL string
	err := chromedp.Run(alice,
		chromedp.Navigate(s.url+"/procedures/flush-cache"),
		chromedp.SetValue("#environment", "production", chromedp.ByID),
		chromedp.SetValue("#p-cache", "catalog", chromedp.ByID),
		chromedp.Click("#run-form button.primary", chromedp.ByQuery),
		chromedp.WaitVisible("#run", chromedp.ByID),
		waitText(alice, "#status", "pending_approval"),
		chromedp.Location(&runURL),
		chromedp.Evaluate(`window.__stillTheSamePage = true`, nil),
	)
	if err != nil {
		t.Fatal(err)
	}
	// alice cannot approve her own run: there is no approve button.
	var own int
	chromedp.Run(alice, chromedp.Evaluate(`document.querySelectorAll("#approve").length`, &own))
	if own != 0 {
		t.Fatal("alice's page offers to approve her own run")
	}
	// bob approves from his inbox, where the card shows what will run
	// where, without opening the run.
	id := runURL[strings.LastIndex(runURL, "/")+1:]
	card := "#approve-" + id
	bob := s.browser(t, "bob")
	var shown string
	if err := chromedp.Run(bob, chromedp.Navigate(s.url+"/inbox"), chromedp.WaitVisible(card, chromedp.ByQuery),
		chromedp.Text(card, &shown, chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(shown, "flush-cache in production") || !strings.Contains(shown, `"cache":"catalog"`) || !strings.Contains(shown, "alice") {
		t.Fatalf("the inbox card does not show what will run: %q", shown)
	}
	screenshot(t, bob, "inbox")
	err = chromedp.Run(bob,
		chromedp.SendKeys("#comment-"+id, "fine, after the sale", chromedp.ByID),
		chromedp.Click(card+" button.primary", chromedp.ByQuery),
		chromedp.WaitNotPresent(card, chromedp.ByQuery),
		waitText(bob, "main", "Nothing to approve."),
	)
	screenshot(t, bob, "bob-approved")
	if err != nil {
		t.Fatal(err)
	}
	// alice's open page followed without a reload.
	var same bool
	err = chromedp.Run(alice, waitText(alice, "#status", "succeeded"), waitText(alice, "#approvals", "bob approved: fine, after the sale"),
		chromedp.Evaluate(`window.__stillTheSamePage === true`, &same))
	screenshot(t, alice, "alice-after-approval")
	if err != nil || !same {
		t.Fatalf("alice's page: %v (same page: %v)", err, same)
	}
}

func TestBadParameterShowsErrorNextToField(t *testing.T) {
	s := newSite(t)
	ctx := s.browser(t, "alice")
	before, _ := s.srv.Store.RunList(context.Background(), store.RunListParams{})
	var fieldErr string
	err := chromedp.Run(ctx,
		chromedp.Navigate(s.url+"/procedures/rotate-logs"),
		chromedp.SetValue("#environment", "staging", chromedp.ByID),
		chromedp.SetValue("#p-keep_days", "99", chromedp.ByID),
		chromedp.Click("#run-form button.primary", chromedp.ByQuery),
		waitText(ctx, "#e-keep_days", "must be at most 30"),
		chromedp.Text("#e-keep_days", &fieldErr, chromedp.ByID),
	)
	screenshot(t, ctx, "bad-parameter")
	if err != nil {
		t.Fatal(err)
	}
	after, _ := s.srv.Store.RunList(context.Background(), store.RunListParams{})
	if len(after) != len(before) {
		t.Fatal("a refused form stored a run")
	}
}

func TestCarolReviewsFromTheDiff(t *testing.T) {
	s := newSite(t)
	ctx := s.browser(t, "carol")
	var diff, after string
	err := chromedp.Run(ctx,
		chromedp.Navigate(s.url+"/inbox"),
		chromedp.Click(`a[href^="/versions/"]`, chromedp.ByQuery),
		chromedp.WaitVisible("#diff", chromedp.ByID),
		chromedp.Text("#diff", &diff, chromedp.ByID),
		chromedp.SendKeys("#comment", "the default keeps today's behaviour", chromedp.ByID),
	)
	if err == nil {
		screenshot(t, ctx, "carol-review")
		err = chromedp.Run(ctx,
			chromedp.Click("#approve", chromedp.ByID),
			chromedp.WaitNotPresent("#approve", chromedp.ByID),
			chromedp.Text("#diff", &after, chromedp.ByID),
		)
	}
	screenshot(t, ctx, "carol-approved")
	if err != nil {
		t.Fatal(err)
	}
	// Before and after the decision the page shows what changed from v1.
	for _, d := range []string{diff, after} {
		if !strings.Contains(d, "+  - name: percentage") {
			t.Fatalf("diff does not show the change:\n%s", d)
		}
	}
	p, _ := s.srv.Store.ProcedureGetByName(context.Background(), "toggle-feature-flag")
	v, _ := s.srv.Store.ProcedureVersionGet(context.Background(), p.ActiveVersionID)
	if v.Number != 2 {
		t.Fatalf("active version is v%d after carol's approval, want v2", v.Number)
	}
}

// TestDanaVerifiesTheLogAndDownloadsEvidence: dana verifies the log from
// the audit page and exports the evidence of the day alice's run was
// requested (that day as the server recorded it, so the test holds across
// midnight); the bundle verifies, holds the run, and the export is audited.
func TestDanaVerifiesTheLogAndDownloadsEvidence(t *testing.T) {
	s := newSite(t)
	// Something worth exporting: a run in staging.
	alice := s.browser(t, "alice")
	var runURL string
	if err := chromedp.Run(alice,
		chromedp.Navigate(s.url+"/procedures/flush-cache"),
		chromedp.SetValue("#environment", "staging", chromedp.ByID),
		chromedp.SetValue("#p-cache", "sessions", chromedp.ByID),
		chromedp.Click("#run-form button.primary", chromedp.ByQuery),
		waitText(alice, "#status", "succeeded"),
		chromedp.Location(&runURL),
	); err != nil {
		t.Fatalf("alice's staging run: %v", err)
	}
	id := runURL[strings.LastIndex(runURL, "/")+1:]
	rr, err := s.srv.Store.RunGet(t.Context(), id)
	if err != nil {
		t.Fatalf("alice's run %q: %v", id, err)
	}
	day := rr.CreatedAt.UTC().Format("2006-01-02")

	dana := s.browser(t, "dana")
	dir := t.TempDir()
	done := make(chan string, 1)
	chromedp.ListenTarget(dana, func(ev any) {
		if p, ok := ev.(*browser.EventDownloadProgress); ok && p.State == browser.DownloadProgressStateCompleted {
			select {
			case done <- p.GUID:
			default:
			}
		}
	})
	var key, verified string
	err = chromedp.Run(dana,
		browser.SetDownloadBehavior(browser.SetDownloadBehaviorBehaviorAllowAndName).WithDownloadPath(dir).WithEventsEnabled(true),
		chromedp.Navigate(s.url+"/audit"),
		chromedp.Click("#verify", chromedp.ByID),
		chromedp.WaitVisible("#verify-result", chromedp.ByID),
		chromedp.Text("#verify-result", &verified, chromedp.ByID),
		chromedp.Text("#verifier-key", &key, chromedp.ByID),
	)
	if err != nil {
		screenshot(t, dana, "dana-audit")
		t.Fatalf("verify from the audit page: %v", err)
	}
	err = chromedp.Run(dana,
		chromedp.SetValue("#from", day, chromedp.ByID),
		chromedp.SetValue("#to", day, chromedp.ByID),
		chromedp.Click("#export", chromedp.ByID),
	)
	screenshot(t, dana, "dana-audit")
	if err != nil {
		t.Fatalf("export the evidence of %s: %v", day, err)
	}
	if !strings.Contains(verified, "Verified:") {
		t.Fatalf("verify now: %q", verified)
	}
	var guid string
	select {
	case guid = <-done:
	case <-dana.Done():
		t.Fatalf("waited for the evidence download of %s until the browser's deadline: %v", day, dana.Err())
	}
	bundle, err := os.ReadFile(filepath.Join(dir, guid))
	if err != nil {
		t.Fatal(err)
	}
	res, err := evidence.Verify(bundle, strings.TrimSpace(key))
	if err != nil || !res.OK() {
		t.Fatalf("downloaded bundle: %v %+v", err, res)
	}
	var runs []struct{ ID string }
	if err := json.Unmarshal(bundleFile(t, bundle, "runs.json"), &runs); err != nil {
		t.Fatalf("runs.json: %v", err)
	}
	if !slices.ContainsFunc(runs, func(r struct{ ID string }) bool { return r.ID == id }) {
		t.Fatalf("the bundle of %s lacks alice's run %s (requested %v): runs %+v", day, id, rr.CreatedAt, runs)
	}
	// The export itself is on the record, naming the bundle by its hash.
	evs, _ := s.srv.Store.AuditList(context.Background(), store.AuditListParams{After: -1, Type: "evidence.export"})
	sum := sha256.Sum256(bundle)
	if len(evs) != 1 || evs[0].ActorName != "dana" || !strings.Contains(string(evs[0].Details), hex.EncodeToString(sum[:])) {
		t.Fatalf("evidence.export events: %+v", evs)
	}
}

func TestRequesterPagesFitAPhone(t *testing.T) {
	s := newSite(t)
	ctx := s.browser(t, "alice")
	if err := chromedp.Run(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(3), chromedp.EmulateMobile)); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/", "/procedures/flush-cache", "/runs", "/inbox", "/account"} {
		var overflow int
		err := chromedp.Run(ctx,
			chromedp.Navigate(s.url+path),
			chromedp.WaitVisible("main", chromedp.ByQuery),
			chromedp.Evaluate(`document.documentElement.scrollWidth - window.innerWidth`, &overflow),
		)
		if err != nil {
			t.Fatal(err)
		}
		if overflow > 0 {
			screenshot(t, ctx, "phone-overflow")
			t.Errorf("%s is %dpx wider than a 390px phone screen", path, overflow)
		}
	}
	screenshot(t, ctx, "phone")
}
