package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/api"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/config"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/notify/slack"
	"github.com/airlockhq/airlock/internal/notify/slack/slacktest"
	"github.com/airlockhq/airlock/internal/store"
)

// TestTeamsCardShowsRequesterTextAsText: a requester's reason reaches
// the approvers' Teams channel as an Adaptive Card fact; Teams renders
// markdown in Fact.Value and TextBlock (Microsoft: "Markdown is supported
// in Adaptive Card TextBlock, Fact.Title and Fact.Value"), so the
// requester could put a link of their choosing in a card Airlock posts —
// a phishing link beside the real "Open in Airlock". Escaped, it shows as
// text.
func TestTeamsCardShowsRequesterTextAsText(t *testing.T) {
	var mu sync.Mutex
	var cards []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		cards = append(cards, string(b))
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	defer hook.Close()
	d := newDemoEnv(t, func(c *config.Config) {
		f := filepath.Join(c.Data, "teams-url")
		os.WriteFile(f, []byte(hook.URL+"/workflows/x?sig=secret"), 0o600)
		c.Notify.Teams = []config.NotifyTeams{{Name: "payments", URLFile: f}}
		c.Notify.Owners = []config.NotifyOwner{{Team: "payments", Teams: "payments", Kinds: []string{"approval_needed"}}}
	})
	const evil = "[Approve in Airlock](https://airlock-login.evil.example/sso)"
	code, r := d.request(t, "alice", api.RunRequest{Procedure: "flush-cache", Environment: "production",
		Params: map[string]any{"cache": "catalog"}, Reason: "**URGENT** " + evil})
	if code != 201 || r["status"] != "pending_approval" {
		t.Fatalf("request: %d %v", code, r)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		got := strings.Join(cards, "\n")
		mu.Unlock()
		if strings.Contains(got, r["id"].(string)) {
			if strings.Contains(got, "[Approve in Airlock](https://airlock-login.evil.example") {
				t.Fatalf("the requester's markdown link reaches the Teams card as is:\n%s", got)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no Teams card about %s: %q", r["id"], got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSlackRepliesGoOnlyToSlack: a signed interaction names the
// response_url Airlock replies to. Only Slack signs, but were any URL
// taken, the signing secret would be all that stands between anyone and
// a POST from Airlock's network position to internal services: the reply
// goes only to Slack (hooks.slack.com) or the configured Slack-compatible
// API host.
func TestSlackRepliesGoOnlyToSlack(t *testing.T) {
	d, fake := newSlackEnv(t)
	linkSlack(t, d, fake, "bob", "UBOB")
	var hit atomic.Int32
	internal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hit.Add(1) }))
	defer internal.Close()
	payload, _ := json.Marshal(map[string]any{
		"type": "block_actions", "team": map[string]any{"id": "T1"}, "user": map[string]any{"id": "UBOB", "team_id": "T1"},
		"api_app_id": "A1", "response_url": internal.URL + "/admin/internal-only", "trigger_id": "t1",
		"container": map[string]any{"type": "message", "message_ts": "1700000000.000100"},
		"actions": []map[string]any{{"type": "button", "block_id": "airlock.actions", "action_id": slack.ActionApprove, "value": "run_nope sha256:00",
			"action_ts": strconv.FormatInt(time.Now().Unix(), 10)}},
	})
	req := fake.Signed(url.Values{"payload": {string(payload)}}, time.Now())
	if status, _ := slacktest.Send(t, d.url+"/api/v1/chat/slack/interactions", req); status != 200 {
		t.Fatalf("click: %d", status)
	}
	d.srv.Slack.Wait()
	if n := hit.Load(); n != 0 {
		t.Fatalf("Airlock POSTed its reply to %s (%d times): response_url is not restricted to Slack", internal.URL, n)
	}
}

// TestSlackLinksGoWithRevokedTokens: a Slack link is a credential — the
// linked Slack user approves and denies as the Airlock user. Someone who
// held bob's session for a moment links their own Slack account; bob then
// changes his password revoking every token ("a password thought stolen
// may have been used to make some"): the Slack link goes with them, as it
// does when the account is disabled (re-enabled users start afresh).
func TestSlackLinksGoWithRevokedTokens(t *testing.T) {
	d, fake := newSlackEnv(t)
	ctx := context.Background()
	// The intruder, with bob's session, links a Slack account of theirs.
	linkSlack(t, d, fake, "bob", "UINTRUDER")
	// bob's password is known here so that he can change it.
	bob, err := d.srv.Store.UserGetByUsername(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	const oldPw = "bob-old-password-1"
	if err := d.srv.Store.Update(ctx, func(tx store.Tx) error {
		u, err := tx.UserGetByID(ctx, bob.ID)
		if err != nil {
			return err
		}
		u.PasswordHash = identity.HashPassword(oldPw)
		if err := tx.UserUpdate(ctx, u); err != nil {
			return err
		}
		return tx.AuditAppend(ctx, audit.New(ctx, time.Now().UTC(), "test.setup", audit.System, bob.ID, audit.Success, nil))
	}); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := d.call("POST", "/api/v1/auth/password", d.tok["bob"], api.PasswordRequest{CurrentPassword: oldPw,
		NewPassword: "bob-new-password-2", RevokeTokens: true}); code != 204 {
		t.Fatalf("bob changes his password, revoking everything: %d %v", code, out)
	}
	if _, err := d.srv.Identity.ChatPrincipal(ctx, identity.ChatAccount{Provider: "slack", TeamID: "T1", ExternalID: "UINTRUDER"}); err == nil {
		t.Error("after bob changed his password revoking all his tokens, the intruder's Slack account still acts as bob")
	}
	if ls, _ := d.srv.Store.ChatLinkList(ctx, bob.ID); len(ls) != 0 {
		t.Errorf("bob's chat links after a password change that revoked every token: %d", len(ls))
	}
}
