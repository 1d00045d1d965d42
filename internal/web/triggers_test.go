package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/authz"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/trigger"
)

// proposeTrigger has erin propose an Alertmanager trigger of
// restart-service in staging, run as a service account of the NOC, and
// returns its secret.
func proposeTrigger(t *testing.T, s *site, name string) string {
	t.Helper()
	ctx := context.Background()
	if _, err := s.srv.Store.UserGetByUsername(ctx, "am-bot"); err != nil {
		now := s.srv.Standing.Now().UTC()
		u := &store.User{ID: airlock.NewID(airlock.PrefixUser, now), Username: "am-bot", Kind: store.AccountService, OwnerTeam: "noc", CreatedAt: now, UpdatedAt: now}
		err := s.srv.Store.Update(ctx, func(tx store.Tx) error {
			if err := tx.UserInsert(ctx, u); err != nil {
				return err
			}
			g, err := tx.GroupGetByName(ctx, "noc")
			if err != nil {
				return err
			}
			if err := tx.GroupMemberAdd(ctx, &store.GroupMember{GroupID: g.ID, UserID: u.ID, Source: store.MemberManual, CreatedAt: now}); err != nil {
				return err
			}
			return tx.AuditAppend(ctx, audit.New(ctx, now, audit.UserCreate, audit.System, u.ID, audit.Success, map[string]any{"username": u.Username}))
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	erin, err := s.srv.Store.UserGetByUsername(ctx, "erin")
	if err != nil {
		t.Fatal(err)
	}
	gs, _ := authz.GroupsOf(ctx, s.srv.Store, erin.ID)
	_, secret, err := s.srv.Triggers.Propose(ctx, &identity.Principal{UserID: erin.ID, Username: erin.Username, Groups: gs}, trigger.Request{
		Name: name, Procedure: "restart-service", Environment: "staging", Account: "am-bot",
		Spec: trigger.Spec{Preset: trigger.PresetAlertmanager, Auth: trigger.AuthBearer,
			Mapping: map[string]string{"service": "$.labels.service", "ticket": "$.annotations.ticket"}}})
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

// TestTriggerPagesAndApproval: the triggers list and a trigger's page
// show its mapping, binding and status and never its secret; erin, who
// proposed it, is told someone else must approve; bob approves it with
// the page's form (not without its CSRF token), and it is active; a
// delivery shows on the page. Both pages pass the accessibility audit
// and fit a 390px phone.
func TestTriggerPagesAndApproval(t *testing.T) {
	s := startServer(t)
	secret := proposeTrigger(t, s, "api-down")
	erin, bob := s.visitor(t, "erin"), s.visitor(t, "bob")

	code, body := erin.get("/triggers/api-down")
	if code != 200 || !strings.Contains(body, "You proposed this trigger") || strings.Contains(body, `id="approve"`) {
		t.Fatalf("erin's view: %d %.400s", code, body)
	}
	code, body = bob.get("/triggers")
	if code != 200 || !strings.Contains(body, `href="/triggers/api-down"`) || !strings.Contains(body, "pending_approval") {
		t.Fatalf("list: %d", code)
	}
	code, body = bob.get("/triggers/api-down")
	m := bindingField.FindStringSubmatch(body)
	if code != 200 || m == nil || !strings.Contains(body, "$.labels.service") || !strings.Contains(body, "/api/v1/hooks/api-down") {
		t.Fatalf("bob's view: %d", code)
	}
	for _, b := range []string{body, func() string { _, l := bob.get("/triggers"); return l }()} {
		if strings.Contains(b, strings.TrimPrefix(secret, "whsec_")) {
			t.Fatal("a page shows the trigger's secret")
		}
	}
	if code, _ := bob.post("/triggers/api-down/approve", url.Values{"binding": {m[1]}}); code != http.StatusForbidden {
		t.Fatalf("approve without CSRF: %d", code)
	}
	code, body = bob.post("/triggers/api-down/approve", url.Values{"csrf_token": {bob.csrf()}, "binding": {m[1]}, "comment": {"fine"}})
	if code != 200 || !strings.Contains(body, `id="status" class="status status-active"`) {
		t.Fatalf("approve: %d %.400s", code, body)
	}
	req, _ := http.NewRequest("POST", s.url+"/api/v1/hooks/api-down", strings.NewReader(
		`{"alerts":[{"status":"firing","fingerprint":"f1","startsAt":"2031-01-01T00:00:00Z","labels":{"service":"api"},"annotations":{"ticket":"OPS-7"}}]}`))
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 202 {
		t.Fatalf("delivery: %v %v", err, resp)
	}
	resp.Body.Close()
	if _, body := bob.get("/triggers/api-down"); !strings.Contains(body, "f1:2031-01-01T00:00:00Z") || !strings.Contains(body, `href="/runs/run_`) {
		t.Fatal("the delivery is not on the page")
	}

	alloc := headless(t)
	s.alloc = alloc
	script := axeScript(t)
	ctx := s.browser(t, "bob")
	if err := chromedp.Run(ctx, page.SetBypassCSP(true)); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/triggers", "/triggers/api-down"} {
		axeAudit(t, ctx, script, s.url+path, "bob "+path)
	}
	if err := chromedp.Run(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(3), chromedp.EmulateMobile)); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/triggers", "/triggers/api-down"} {
		var width int
		if err := chromedp.Run(ctx, chromedp.Navigate(s.url+path), waitText(ctx, "h1", "rigger"),
			chromedp.Evaluate(`document.documentElement.scrollWidth`, &width)); err != nil {
			t.Fatal(err)
		}
		if width > 390 {
			screenshot(t, ctx, "trigger-phone-overflow")
			t.Errorf("%s is %dpx wide on a 390px phone screen", path, width)
		}
	}
}
