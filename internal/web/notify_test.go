package web_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/config"
	"github.com/airlockhq/airlock/internal/store"
)

// TestAdminPageNotifications: admins see the channels and the dead
// letters with their last error, send a test message and send a dead
// letter again; others may do neither.
func TestAdminPageNotifications(t *testing.T) {
	var mu sync.Mutex
	code, bodies := http.StatusServiceUnavailable, []string{}
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if code == http.StatusOK {
			bodies = append(bodies, string(b))
		}
		w.WriteHeader(code)
	}))
	defer recv.Close()
	secret := filepath.Join(t.TempDir(), "hook.secret")
	os.WriteFile(secret, []byte("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), 0o600)
	s := startServer(t, func(c *config.Config) {
		c.Notify.Webhooks = []config.NotifyWebhook{{Name: "ci", URL: recv.URL, SecretFile: secret}}
		c.Notify.MaxAttempts, c.Notify.MaxBackoff = 1, time.Second
	})
	bob := s.visitor(t, "bob")
	// The demo's own history notifies; with the endpoint failing and one
	// attempt allowed, its messages become dead letters.
	var page string
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(page, `id="dead-letters"`) {
		if time.Now().After(deadline) {
			t.Fatalf("waited 30s for dead letters on bob's admin page: %.3000s", page)
		}
		time.Sleep(50 * time.Millisecond)
		_, page = bob.get("/admin/notifications")
	}
	if !strings.Contains(page, "<code>webhook:ci</code>") || !strings.Contains(page, "503 Service Unavailable") {
		t.Fatalf("admin page: %.3000s", page)
	}
	id := regexp.MustCompile(`/admin/notify/deliveries/(ntf_[0-9a-z]+)/retry`).FindStringSubmatch(page)[1]
	alice := s.visitor(t, "alice")
	for path, form := range map[string]url.Values{"/admin/notify/test": {"channel": {"webhook:ci"}}, "/admin/notify/deliveries/" + id + "/retry": {}} {
		form.Set("csrf_token", alice.csrf())
		if c, _ := alice.post(path, form); c != http.StatusForbidden && c != http.StatusNotFound {
			t.Errorf("alice POST %s: %d", path, c)
		}
	}
	mu.Lock()
	code = http.StatusOK
	mu.Unlock()
	if c, body := bob.post("/admin/notify/deliveries/"+id+"/retry", url.Values{"csrf_token": {bob.csrf()}}); c != http.StatusOK || !strings.Contains(body, "is queued again") {
		t.Fatalf("retry: %d %.300s", c, body)
	}
	if c, body := bob.post("/admin/notify/test", url.Values{"csrf_token": {bob.csrf()}, "channel": {"webhook:ci"}}); c != http.StatusOK || !strings.Contains(body, "test message is on its way") {
		t.Fatalf("test: %d %.300s", c, body)
	}
	waitUntil(t, 30*time.Second, "the retried message and the test message at the receiver", func() error {
		mu.Lock()
		defer mu.Unlock()
		all := strings.Join(bodies, "\n")
		if !strings.Contains(all, `"type":"test"`) {
			return fmt.Errorf("no test message among %d", len(bodies))
		}
		if d, _ := s.srv.Store.DeliveryGet(t.Context(), id); d.Status != store.DeliveryDelivered {
			return fmt.Errorf("the retried delivery is %s", d.Status)
		}
		return nil
	})
}

func waitUntil(t *testing.T, within time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s: %v", within, what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAccountNotificationChoices: the account page lists every kind on
// every channel that reaches a person (Slack here), on until changed;
// the form keeps what is ticked and turns off the rest it showed.
func TestAccountNotificationChoices(t *testing.T) {
	slackAPI := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"ok":true}`))
	}))
	defer slackAPI.Close()
	token := filepath.Join(t.TempDir(), "bot.token")
	os.WriteFile(token, []byte("xoxb-test"), 0o600)
	s := startServer(t, func(c *config.Config) {
		c.Notify.Slack.BotTokenFile, c.Notify.Slack.APIURL = token, slackAPI.URL+"/"
	})
	alice := s.visitor(t, "alice")
	_, page := alice.get("/account")
	if !strings.Contains(page, `value="approval_needed:slack" checked`) || !strings.Contains(page, `value="run_finished:slack" checked`) {
		t.Fatalf("account page choices: %.3000s", page)
	}
	code, page := alice.post("/account/notifications", url.Values{"csrf_token": {alice.csrf()}, "on": {"run_finished:slack"}})
	if code != http.StatusOK || !strings.Contains(page, "choices are saved") {
		t.Fatalf("save: %d %.300s", code, page)
	}
	if !strings.Contains(page, `value="run_finished:slack" checked`) || strings.Contains(page, `value="approval_decided:slack" checked`) {
		t.Fatalf("after saving: %.3000s", page)
	}
	u, _ := s.srv.Store.UserGetByUsername(t.Context(), "alice")
	subs, _ := s.srv.Store.SubscriptionList(t.Context(), u.ID)
	on := 0
	for _, x := range subs {
		if x.Enabled {
			on++
			if x.Kind != "run_finished" {
				t.Errorf("%s on", x.Kind)
			}
		}
	}
	if on != 1 || len(subs) < 10 {
		t.Fatalf("stored choices: %d on of %d", on, len(subs))
	}
}
