package api_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	svix "github.com/svix/svix-webhooks/go"

	"github.com/airlockhq/airlock/internal/api"
	"github.com/airlockhq/airlock/internal/config"
	"github.com/airlockhq/airlock/internal/notify"
	"github.com/airlockhq/airlock/internal/notify/webhook"
)

const hookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// receiver is a webhook endpoint that checks every signature with an
// independent implementation and keeps what it was sent.
type receiver struct {
	t    *testing.T
	srv  *httptest.Server
	mu   sync.Mutex
	got  []webhook.Payload
	ids  map[string]int
	raw  []string
	code int
}

func newReceiver(t *testing.T) *receiver {
	wh, err := svix.NewWebhook(hookSecret)
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{t: t, ids: map[string]int{}, code: http.StatusOK}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if err := wh.Verify(body, req.Header); err != nil {
			t.Errorf("webhook signature: %v", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var p webhook.Payload
		if err := json.Unmarshal(body, &p); err != nil {
			t.Errorf("webhook body %s: %v", body, err)
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		r.raw = append(r.raw, string(body))
		if r.code/100 == 2 {
			r.got = append(r.got, p)
			r.ids[req.Header.Get("webhook-id")]++
		}
		w.WriteHeader(r.code)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// config adds the receiver to a server's configuration as webhook "ci".
func (r *receiver) config(c *config.Config) {
	file := filepath.Join(r.t.TempDir(), "hook.secret")
	os.WriteFile(file, []byte(hookSecret+"\n"), 0o600)
	c.Notify.Webhooks = append(c.Notify.Webhooks, config.NotifyWebhook{Name: "ci", URL: r.srv.URL, SecretFile: file})
}

// wait waits until a payload of kind about subject arrived and returns
// it.
func (r *receiver) wait(kind, subject string) webhook.Payload {
	r.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r.mu.Lock()
		for _, p := range r.got {
			if p.Type == kind && (subject == "" || p.Data["subject"] == subject) {
				r.mu.Unlock()
				return p
			}
		}
		var kinds []string
		for _, p := range r.got {
			kinds = append(kinds, fmt.Sprintf("%s(%v)", p.Type, p.Data["subject"]))
		}
		r.mu.Unlock()
		if time.Now().After(deadline) {
			r.t.Fatalf("waited 30s for a %s webhook about %s; got %v", kind, subject, kinds)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWebhookFollowsARun: a production request, its approval, start and
// end each reach a signed webhook, with what will run where and a link;
// the approval's message names who may act (the run's approvers).
func TestWebhookFollowsARun(t *testing.T) {
	rc := newReceiver(t)
	d := newDemoEnv(t, rc.config)
	code, r := d.request(t, "alice", api.RunRequest{Procedure: "flush-cache", Environment: "production", Params: map[string]any{"cache": "catalog"},
		Reason: "stale prices"})
	if code != 201 || r["status"] != "pending_approval" {
		t.Fatalf("request: %d %v", code, r)
	}
	id := r["id"].(string)
	p := rc.wait("approval_needed", id)
	data := p.Data
	if data["procedure"] != "flush-cache" || data["environment"] != "production" || data["requester"] != "alice" ||
		data["reason"] != "stale prices" || data["link"] != d.url+"/runs/"+id || data["event"] != "run.request" {
		t.Fatalf("approval_needed payload: %v", data)
	}
	if params, _ := data["params"].(map[string]any); params["cache"] != "catalog" {
		t.Fatalf("params: %v", data["params"])
	}
	if code, out, _ := d.call("POST", "/api/v1/runs/"+id+"/approve", d.tok["bob"], api.DecisionRequest{Binding: r["binding"].(string)}); code != 200 {
		t.Fatalf("approve: %d %v", code, out)
	}
	if p := rc.wait("approval_decided", id); !strings.Contains(p.Data["title"].(string), "bob approved") {
		t.Fatalf("approval_decided: %v", p.Data)
	}
	rc.wait("run_started", id)
	if p := rc.wait("run_finished", id); p.Data["status"] != "succeeded" {
		t.Fatalf("run_finished: %v", p.Data)
	}
	// A run that runs at once tells nobody it waits.
	_, r2 := d.request(t, "alice", api.RunRequest{Procedure: "flush-cache", Environment: "staging", Params: map[string]any{"cache": "sessions"}})
	rc.wait("run_finished", r2["id"].(string))
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, p := range rc.got {
		if p.Type == "approval_needed" && p.Data["subject"] == r2["id"] {
			t.Fatal("a run that needed no approval was announced as waiting for one")
		}
	}
	for id, n := range rc.ids {
		if n != 1 {
			t.Errorf("message %s delivered %d times", id, n)
		}
	}
}

// TestDeadLetterThenRetry: an endpoint that keeps failing does not hold
// up the run; its deliveries become dead letters admins see with the
// last error, and a retry (audited) sends them once the endpoint is
// back. Only admins see or retry deliveries.
func TestDeadLetterThenRetry(t *testing.T) {
	rc := newReceiver(t)
	rc.code = http.StatusServiceUnavailable
	d := newDemoEnv(t, func(c *config.Config) {
		rc.config(c)
		c.Notify.MaxAttempts, c.Notify.MaxBackoff = 2, time.Second
	})
	_, r := d.request(t, "alice", api.RunRequest{Procedure: "flush-cache", Environment: "staging", Params: map[string]any{"cache": "sessions"}})
	if final := d.waitRun(t, d.tok["alice"], r["id"].(string)); final["status"] != "succeeded" {
		t.Fatalf("the run, with its webhook failing: %v", final["status"])
	}
	// The run's deliveries (the demo's own history notifies too).
	var dead []map[string]any
	deadline := time.Now().Add(30 * time.Second)
	for len(dead) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("waited 30s for the run's two deliveries to become dead letters; have %v", dead)
		}
		time.Sleep(50 * time.Millisecond)
		_, out, _ := d.call("GET", "/api/v1/notify/deliveries?status=dead&limit=1000", d.tok["bob"], nil)
		items, _ := out["items"].([]any)
		dead = nil
		for _, it := range items {
			if m := it.(map[string]any); m["subject"] == r["id"] {
				dead = append(dead, m)
			}
		}
	}
	first := dead[0]
	if first["attempts"] != float64(2) || !strings.Contains(first["last_error"].(string), "503") || first["channel"] != "webhook:ci" {
		t.Fatalf("dead letter: %v", first)
	}
	if code, _, _ := d.call("GET", "/api/v1/notify/deliveries", d.tok["alice"], nil); code != 403 {
		t.Fatalf("alice lists deliveries: %d", code)
	}
	if code, _, _ := d.call("POST", "/api/v1/notify/deliveries/"+first["id"].(string)+"/retry", d.tok["alice"], nil); code != 403 {
		t.Fatalf("alice retries: %d", code)
	}
	rc.mu.Lock()
	rc.code = http.StatusOK
	rc.mu.Unlock()
	if code, out, _ := d.call("POST", "/api/v1/notify/deliveries/"+first["id"].(string)+"/retry", d.tok["bob"], nil); code != 200 || out["status"] != "pending" {
		t.Fatalf("bob retries: %d %v", code, out)
	}
	if code, _, _ := d.call("POST", "/api/v1/notify/deliveries/"+first["id"].(string)+"/retry", d.tok["bob"], nil); code != 409 {
		t.Fatalf("retrying what is not dead: %d", code)
	}
	rc.wait(first["kind"].(string), r["id"].(string))
	if evs := d.events("notify.retry"); len(evs) != 1 || evs[0].ActorName != "bob" {
		t.Fatalf("retry audited: %v", evs)
	}
}

// TestNotifyTestAndChoices: an admin sends a test message through a
// channel (audited); everyone reads and changes their own choices, and
// a bad one is refused whole.
func TestNotifyTestAndChoices(t *testing.T) {
	rc := newReceiver(t)
	d := newDemoEnv(t, rc.config)
	if code, out, _ := d.call("POST", "/api/v1/notify/test", d.tok["bob"], api.NotifyTestRequest{Channel: "webhook:ci"}); code != 202 {
		t.Fatalf("test: %d %v", code, out)
	}
	if p := rc.wait("test", "webhook:ci"); p.Data["requested_by"] != "bob" {
		t.Fatalf("test payload: %v", p.Data)
	}
	if code, out, _ := d.call("POST", "/api/v1/notify/test", d.tok["bob"], api.NotifyTestRequest{Channel: "webhook:nope"}); code != 400 || out["error"].(map[string]any)["field"] != "channel" {
		t.Fatalf("test through an unknown channel: %d %v", code, out)
	}
	if code, _, _ := d.call("POST", "/api/v1/notify/test", d.tok["alice"], api.NotifyTestRequest{Channel: "webhook:ci"}); code != 403 {
		t.Fatalf("alice sends a test: %d", code)
	}
	if evs := d.events("notify.test"); len(evs) != 1 || evs[0].ActorName != "bob" {
		t.Fatalf("tests audited: %v", evs)
	}
	code, out, _ := d.call("PUT", "/api/v1/me/notifications", d.tok["alice"], api.SubscriptionsRequest{Subscriptions: []notify.Choice{
		{Kind: "run_finished", Channel: "email", Enabled: false}, {Kind: "everything", Channel: "email"}}})
	if code != 400 || out["error"].(map[string]any)["field"] != "kind" {
		t.Fatalf("a bad choice: %d %v", code, out)
	}
	code, out, _ = d.call("PUT", "/api/v1/me/notifications", d.tok["alice"], api.SubscriptionsRequest{Subscriptions: []notify.Choice{
		{Kind: "run_finished", Channel: "email", Enabled: false}}})
	if code != 200 || toJSON(out["channels"]) != `["webhook:ci"]` {
		t.Fatalf("choices: %d %v", code, out)
	}
	subs, _ := d.srv.Store.SubscriptionList(t.Context(), d.userID(t, "alice"))
	if len(subs) != 1 || subs[0].Enabled {
		t.Fatalf("stored choices: %+v", subs)
	}
}

func (d *demoEnv) userID(t *testing.T, name string) string {
	t.Helper()
	u, err := d.srv.Store.UserGetByUsername(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	return u.ID
}

// jsonFields lists the JSON names of a struct's fields, embedded ones
// included.
func jsonFields(t reflect.Type) map[string]bool {
	out := map[string]bool{}
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous {
			for k := range jsonFields(f.Type) {
				out[k] = true
			}
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		out[name] = true
	}
	return out
}

// TestWebhookPayloadsAreDocumented: the OpenAPI document describes a
// webhook for every kind, and what a run's webhooks carry is what the
// schema says, field for field.
func TestWebhookPayloadsAreDocumented(t *testing.T) {
	b, err := api.OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Webhooks map[string]any `json:"webhooks"`
	}
	json.Unmarshal(b, &doc)
	for _, k := range append(notify.Kinds, notify.KindTest) {
		if doc.Webhooks["notification."+k] == nil {
			t.Errorf("no webhook schema for %s", k)
		}
	}
	rc := newReceiver(t)
	d := newDemoEnv(t, rc.config)
	_, r := d.request(t, "alice", api.RunRequest{Procedure: "flush-cache", Environment: "staging", Params: map[string]any{"cache": "sessions"}})
	p := rc.wait("run_finished", r["id"].(string))
	fields := jsonFields(reflect.TypeFor[api.WebhookRun]())
	for k := range p.Data {
		if !fields[k] {
			t.Errorf("run_finished carries %q, which the schema does not describe", k)
		}
	}
	for k := range fields {
		if _, ok := p.Data[k]; !ok && k != "text" {
			t.Errorf("the schema describes %q, which run_finished lacks", k)
		}
	}
}

// TestProcedureRoutesItsNotifications: a procedure's notify: rules, as
// reviewed, send its notifications to its own places — here a webhook the
// configuration otherwise sends only policy changes to; an unknown name
// is refused when the version is proposed.
func TestProcedureRoutesItsNotifications(t *testing.T) {
	ops := newReceiver(t)
	d := newDemoEnv(t, func(c *config.Config) {
		ops.config(c)
		c.Notify.Webhooks[0].Name, c.Notify.Webhooks[0].Kinds = "ops", []string{"policy_needed"}
	})
	src := strings.Replace(echoProc, "steps:", "notify:\n  - kinds: [run_finished]\n    webhooks: [ops]\nsteps:", 1)
	if code, out, _ := d.call("POST", "/api/v1/versions", d.tok["alice"], api.ProposeRequest{Source: strings.Replace(src, "[ops]", "[nope]", 1)}); code != 400 ||
		!strings.Contains(errMessage(out), "nope") {
		t.Fatalf("an unknown webhook name: %d %v", code, out)
	}
	d.install(t, src)
	_, r := d.request(t, "alice", api.RunRequest{Procedure: "echo-params", Environment: "staging",
		Params: map[string]any{"s": "x", "n": 1, "b": true, "e": "a b", "m": []string{"t"}}})
	if p := ops.wait("run_finished", r["id"].(string)); p.Data["procedure"] != "echo-params" {
		t.Fatalf("payload: %v", p.Data)
	}
	ops.mu.Lock()
	defer ops.mu.Unlock()
	for _, p := range ops.got {
		if p.Type != "run_finished" {
			t.Errorf("the ops webhook got a %s notification: neither its configuration nor the procedure asked for it", p.Type)
		}
	}
}

// TestOwnersRouteTheirProceduresNotifications: notify.owners sends a
// team's procedures' notifications of the kinds it lists to the team's
// places — here a webhook the configuration otherwise sends only policy
// changes to.
func TestOwnersRouteTheirProceduresNotifications(t *testing.T) {
	team := newReceiver(t)
	d := newDemoEnv(t, func(c *config.Config) {
		team.config(c)
		c.Notify.Webhooks[0].Name, c.Notify.Webhooks[0].Kinds = "payments-team", []string{"policy_needed"}
		c.Notify.Owners = []config.NotifyOwner{{Team: "payments", Webhooks: []string{"payments-team"}, Kinds: []string{"run_finished"}}}
	})
	_, r := d.request(t, "alice", api.RunRequest{Procedure: "flush-cache", Environment: "staging", Params: map[string]any{"cache": "sessions"}})
	team.wait("run_finished", r["id"].(string))
	team.mu.Lock()
	defer team.mu.Unlock()
	for _, p := range team.got {
		if p.Type != "run_finished" {
			t.Errorf("the team's webhook got a %s notification it did not ask for", p.Type)
		}
	}
}

// TestExpiringThenExpired: a pending request is recalled to its
// approvers and requester once before it expires (within
// notify.expiry_warning), and they are told when it expired unapproved.
func TestExpiringThenExpired(t *testing.T) {
	rc := newReceiver(t)
	d := newDemoEnv(t, func(c *config.Config) {
		rc.config(c)
		c.Runs.ApprovalTTL = 3 * time.Second // within the hour's warning at once
	})
	_, r := d.request(t, "alice", api.RunRequest{Procedure: "flush-cache", Environment: "production", Params: map[string]any{"cache": "catalog"}})
	id := r["id"].(string)
	if p := rc.wait("approval_expiring", id); !strings.Contains(p.Data["title"].(string), "expires at") {
		t.Fatalf("approval_expiring: %v", p.Data)
	}
	if p := rc.wait("approval_expired", id); !strings.Contains(p.Data["title"].(string), "expired unapproved") {
		t.Fatalf("approval_expired: %v", p.Data)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	n := 0
	for _, p := range rc.got {
		if p.Type == "approval_expiring" && p.Data["subject"] == id {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d reminders, want one", n)
	}
}
