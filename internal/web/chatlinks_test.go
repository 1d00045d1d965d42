package web_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/store"
)

var linkCommand = regexp.MustCompile(`<code id="link-command" class="wrap">/airlock link ([A-Z0-9-]+)</code>`)

// TestChatLinksFromTheAccountPage: the account page issues a one-time
// link code, lists the linked chat accounts, and unlinks them — only
// one's own — each step audited.
func TestChatLinksFromTheAccountPage(t *testing.T) {
	s := startServer(t)
	bob := s.visitor(t, "bob")
	code, body := bob.post("/account/chat-links/code", url.Values{"csrf_token": {bob.csrf()}})
	m := linkCommand.FindStringSubmatch(body)
	if code != http.StatusOK || m == nil {
		t.Fatalf("link code: %d %.500s", code, body)
	}
	// What Slack's signed /airlock link CODE does.
	acct := identity.ChatAccount{Provider: "slack", TeamID: "T1", ExternalID: "UBOB"}
	if u, err := s.srv.Identity.LinkChat(t.Context(), acct, strings.ToLower(m[1])); err != nil || u.Username != "bob" {
		t.Fatalf("link with the page's code: %v %v", u, err)
	}
	if _, body = bob.get("/account"); !strings.Contains(body, "<code>UBOB</code>") || strings.Contains(body, m[1]) {
		t.Fatalf("the account page does not list the link, or shows the code again: %.2000s", body)
	}
	// Erin cannot unlink bob's account.
	erin := s.visitor(t, "erin")
	if code, _ := erin.post("/account/chat-links/slack/T1/UBOB/unlink", url.Values{"csrf_token": {erin.csrf()}}); code != http.StatusNotFound {
		t.Fatalf("erin unlinks bob's Slack account: %d", code)
	}
	// Not without the CSRF token either.
	if code, _ := bob.post("/account/chat-links/slack/T1/UBOB/unlink", url.Values{}); code != http.StatusForbidden {
		t.Fatalf("unlink without CSRF token: %d", code)
	}
	bob.post("/account/chat-links/slack/T1/UBOB/unlink", url.Values{"csrf_token": {bob.csrf()}})
	if _, body = bob.get("/account"); strings.Contains(body, "UBOB") || !strings.Contains(body, "No linked chat accounts") {
		t.Fatal("the link is still listed after unlinking")
	}
	for typ, want := range map[string]int{audit.ChatLinkCode: 1, audit.ChatLink: 1, audit.ChatUnlink: 1} {
		evs, _ := s.srv.Store.AuditList(t.Context(), store.AuditListParams{After: -1, Type: typ})
		if len(evs) != want || evs[0].ActorName != "bob" {
			t.Errorf("%s events: %d, want %d by bob", typ, len(evs), want)
		}
	}
}
