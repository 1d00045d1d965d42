package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	svix "github.com/svix/svix-webhooks/go"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/api"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/authz"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/procedure"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/testenv"
)

// trgClock is the trigger tests' time: it moves only when told.
type trgClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *trgClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *trgClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// trgEnv is the demo (its policy: the NOC runs restart-service, which
// needs an approval in production) with a service account "am-bot"
// owned by and in the group noc, served over HTTP without run workers
// (runs stay where the request left them).
type trgEnv struct {
	t     *testing.T
	d     *testenv.Demo
	clock *trgClock
	url   string
	tok   map[string]string
}

func newTrgEnv(t *testing.T, driver string) *trgEnv {
	t.Helper()
	d := testenv.DemoServer(t, testenv.UseDriver(t, driver))
	c := &trgClock{t: time.Date(2031, 3, 3, 12, 0, 0, 0, time.UTC)}
	d.Now = c.Now
	hs := httptest.NewServer(d.Handler())
	t.Cleanup(hs.Close)
	e := &trgEnv{t: t, d: d, clock: c, url: hs.URL, tok: map[string]string{}}
	serviceAccount(t, d.Store, "am-bot", "noc", c.Now())
	for _, u := range []string{"alice", "bob", "carol", "erin"} {
		code, out := e.call("POST", "/api/v1/auth/token", "", api.LoginRequest{Username: u, Password: d.Passwords[u]}, nil)
		if code != 201 {
			t.Fatalf("login %s: %d %v", u, code, out)
		}
		e.tok[u] = out["token"].(string)
	}
	return e
}

// serviceAccount inserts a service account owned by team and in it.
func serviceAccount(t *testing.T, s store.Store, name, team string, now time.Time) *store.User {
	t.Helper()
	ctx := context.Background()
	u := &store.User{ID: airlock.NewID(airlock.PrefixUser, now), Username: name, Kind: store.AccountService, OwnerTeam: team, CreatedAt: now, UpdatedAt: now}
	err := s.Update(ctx, func(tx store.Tx) error {
		if err := tx.UserInsert(ctx, u); err != nil {
			return err
		}
		g, err := tx.GroupGetByName(ctx, team)
		if err != nil {
			return err
		}
		if err := tx.GroupMemberAdd(ctx, &store.GroupMember{GroupID: g.ID, UserID: u.ID, Source: store.MemberManual, CreatedAt: now}); err != nil {
			return err
		}
		return tx.AuditAppend(ctx, audit.New(ctx, now, audit.UserCreate, audit.System, u.ID, audit.Success, map[string]any{"username": name}))
	})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func (e *trgEnv) call(method, path, token string, body any, hdr map[string]string) (int, map[string]any) {
	e.t.Helper()
	code, out, _ := e.raw(method, path, token, body, hdr)
	return code, out
}

func (e *trgEnv) raw(method, path, token string, body any, hdr map[string]string) (int, map[string]any, *http.Response) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, _ := json.Marshal(b)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, e.url+path, rd)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out, resp
}

// propose proposes a trigger as erin and returns its binding and secret.
func (e *trgEnv) propose(req api.TriggerRequest) (binding, secret string) {
	e.t.Helper()
	code, out := e.call("POST", "/api/v1/triggers", e.tok["erin"], req, nil)
	if code != 201 {
		e.t.Fatalf("propose %s: %d %v", req.Name, code, out)
	}
	return out["trigger"].(map[string]any)["binding"].(string), out["secret"].(string)
}

func (e *trgEnv) approve(name, binding string) {
	e.t.Helper()
	code, out := e.call("POST", "/api/v1/triggers/"+name+"/approve", e.tok["bob"], api.DecisionRequest{Binding: binding, Comment: "ok"}, nil)
	if code != 200 || out["status"] != store.StandingActive {
		e.t.Fatalf("approve %s: %d %v", name, code, out)
	}
}

// signed sends body to a trigger signed with svix's own library (the
// Standard Webhooks reference), at the clock's time plus skew.
func (e *trgEnv) signed(name, secret, msgID string, body []byte, skew time.Duration) (int, map[string]any) {
	e.t.Helper()
	wh, err := svix.NewWebhook(secret)
	if err != nil {
		e.t.Fatal(err)
	}
	at := e.clock.Now().Add(skew)
	sig, err := wh.Sign(msgID, at, body)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.call("POST", "/api/v1/hooks/"+name, "", body, map[string]string{"webhook-id": msgID,
		"webhook-timestamp": strconv.FormatInt(at.Unix(), 10), "webhook-signature": sig})
}

func (e *trgEnv) events(typ string) []*store.AuditEvent {
	e.t.Helper()
	evs, err := e.d.Store.AuditList(context.Background(), store.AuditListParams{After: -1, Type: typ, Limit: 10000})
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}

func (e *trgEnv) runsOf(id string) []*store.Run {
	e.t.Helper()
	all, err := e.d.Store.RunList(context.Background(), store.RunListParams{Limit: 1000})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []*store.Run
	for _, r := range all {
		if r.StandingID == id {
			out = append(out, r)
		}
	}
	return out
}

func (e *trgEnv) stored(id string) (runs, events int) {
	e.t.Helper()
	evs, err := e.d.Store.StandingEventList(context.Background(), id, 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	return len(e.runsOf(id)), len(evs)
}

func alertmanager(status, fingerprint, service, ticket string) []byte {
	b, _ := json.Marshal(map[string]any{"version": "4", "groupKey": "{}:{alertname=\"ApiDown\"}", "status": status, "receiver": "airlock",
		"groupLabels": map[string]any{"alertname": "ApiDown"}, "commonLabels": map[string]any{}, "commonAnnotations": map[string]any{},
		"externalURL": "http://alertmanager:9093", "truncatedAlerts": 0,
		"alerts": []any{map[string]any{"status": status, "fingerprint": fingerprint, "startsAt": "2031-03-03T11:58:00Z",
			"endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prometheus:9090/graph",
			"labels":      map[string]any{"alertname": "ApiDown", "service": service, "severity": "page"},
			"annotations": map[string]any{"ticket": ticket, "summary": "the api is down"}}}})
	return b
}

var amMapping = map[string]string{"service": "$.labels.service", "ticket": "$.annotations.ticket"}

// TestAlertmanagerTrigger: an Alertmanager trigger signed with the
// Standard Webhooks scheme is proposed by a NOC member who owns its
// service account, refused to its proposer and to the account, approved
// by another; a firing alert starts one run (queued in staging), the same
// fingerprint sent again starts no other, and the resolved alert
// nothing. A forged signature, a stale timestamp and a payload whose
// ticket breaks the parameter's pattern are refused (401, 401, 400) and
// audited, and store nothing else. In production, where the procedure
// needs an approval, the alert opens a pending run. A new version of the
// procedure suspends the trigger. The secret is never read back.
func TestAlertmanagerTrigger(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			e := newTrgEnv(t, driver)
			ctx := context.Background()
			binding, secret := e.propose(api.TriggerRequest{Name: "api-down-staging", Procedure: "restart-service", Environment: "staging",
				Account: "am-bot", Preset: "alertmanager", Mapping: amMapping})
			if !strings.HasPrefix(secret, "whsec_") {
				t.Fatalf("secret %q", secret)
			}
			// Not before it is approved.
			if code, out := e.signed("api-down-staging", secret, "msg-0", alertmanager("firing", "fp1", "api", "OPS-1"), 0); code != 409 {
				t.Fatalf("a delivery to a pending trigger: %d %v", code, out)
			}
			// The proposer cannot approve it, nor a service account.
			if code, out := e.call("POST", "/api/v1/triggers/api-down-staging/approve", e.tok["erin"], api.DecisionRequest{Binding: binding}, nil); code != 403 {
				t.Fatalf("proposer approves: %d %v", code, out)
			}
			acct, _ := e.d.Store.UserGetByUsername(ctx, "am-bot")
			st, _ := e.d.Store.StandingGetByName(ctx, store.StandingTrigger, "api-down-staging")
			gs, _ := authz.GroupsOf(ctx, e.d.Store, acct.ID)
			if _, err := e.d.Standing.Decide(ctx, &identity.Principal{UserID: acct.ID, Username: acct.Username, Groups: gs},
				store.StandingTrigger, st.Name, "approve", binding, ""); airlock.ErrorKind(err) != airlock.Forbidden {
				t.Fatalf("the service account approves: %v", err)
			}
			e.approve("api-down-staging", binding)

			code, out := e.signed("api-down-staging", secret, "msg-1", alertmanager("firing", "fp1", "api", "OPS-1"), 0)
			items, _ := out["items"].([]any)
			if code != 202 || len(items) != 1 || items[0].(map[string]any)["outcome"] != "started" || items[0].(map[string]any)["run_status"] != store.RunQueued {
				t.Fatalf("firing: %d %v", code, out)
			}
			// Alertmanager sends it again (repeat_interval, another
			// replica of it), then resolved.
			code, out = e.signed("api-down-staging", secret, "msg-2", alertmanager("firing", "fp1", "api", "OPS-1"), 0)
			if code != 202 || out["items"].([]any)[0].(map[string]any)["outcome"] != "duplicate" {
				t.Fatalf("the same alert again: %d %v", code, out)
			}
			code, out = e.signed("api-down-staging", secret, "msg-3", alertmanager("resolved", "fp1", "api", "OPS-1"), 0)
			if code != 202 || out["items"].([]any)[0].(map[string]any)["outcome"] != "ignored" {
				t.Fatalf("resolved: %d %v", code, out)
			}
			runs := e.runsOf(st.ID)
			if len(runs) != 1 || runs[0].RequesterName != "am-bot" || runs[0].Status != store.RunQueued {
				t.Fatalf("runs: %+v", runs)
			}
			var p map[string]any
			_ = json.Unmarshal(runs[0].Params, &p)
			if p["service"] != "api" || p["ticket"] != "OPS-1" {
				t.Fatalf("run params %v", p)
			}
			if fires := e.events(audit.TriggerFire); len(fires) != 2 {
				t.Fatalf("trigger.fire events: %d, want 2 (started, ignored)", len(fires))
			}

			// Refusals: each refused, audited, and nothing else stored.
			nRuns, nEvents := e.stored(st.ID)
			refusedBefore := len(e.events(audit.TriggerRefused))
			forged := alertmanager("firing", "fp2", "api", "OPS-2")
			wh, _ := svix.NewWebhook("whsec_" + base64.StdEncoding.EncodeToString([]byte("not-the-trigger-secret-at-all!!!")))
			sig, _ := wh.Sign("msg-4", e.clock.Now(), forged)
			code, out = e.call("POST", "/api/v1/hooks/api-down-staging", "", forged, map[string]string{"webhook-id": "msg-4",
				"webhook-timestamp": strconv.FormatInt(e.clock.Now().Unix(), 10), "webhook-signature": sig})
			if code != 401 {
				t.Fatalf("forged signature: %d %v", code, out)
			}
			if code, out := e.signed("api-down-staging", secret, "msg-5", forged, -6*time.Minute); code != 401 || !strings.Contains(fmt.Sprint(out), "timestamp") {
				t.Fatalf("stale timestamp: %d %v", code, out)
			}
			for _, evil := range []string{"; rm -rf /", "$(id)"} {
				code, out := e.signed("api-down-staging", secret, "msg-6", alertmanager("firing", "fp3", "api", evil), 0)
				msg := fmt.Sprint(out)
				if code != 400 || !strings.Contains(msg, "alert 0") || !strings.Contains(msg, "ticket") {
					t.Fatalf("ticket %q: %d %v", evil, code, out)
				}
			}
			// A JSONPath that finds nothing is named.
			noService, _ := json.Marshal(map[string]any{"alerts": []any{map[string]any{"status": "firing", "fingerprint": "fp4",
				"startsAt": "2031-03-03T11:58:00Z", "labels": map[string]any{}, "annotations": map[string]any{}}}})
			if code, out := e.signed("api-down-staging", secret, "msg-7", noService, 0); code != 400 || !strings.Contains(fmt.Sprint(out), "$.labels.service found nothing") {
				t.Fatalf("no service label: %d %v", code, out)
			}
			if r, ev := e.stored(st.ID); r != nRuns || ev != nEvents {
				t.Fatalf("refusals stored runs %d→%d, events %d→%d", nRuns, r, nEvents, ev)
			}
			refused := e.events(audit.TriggerRefused)[refusedBefore:]
			reasons := map[string]bool{}
			for _, ev := range refused {
				var d map[string]any
				_ = json.Unmarshal(ev.Details, &d)
				reasons[fmt.Sprint(d["reason"])] = true
				if ev.Outcome != audit.Denied || ev.Subject != st.ID {
					t.Fatalf("refusal event %+v", ev)
				}
			}
			for _, want := range []string{"bad_signature", "stale_timestamp", "bad_payload"} {
				if !reasons[want] {
					t.Fatalf("refusal %s not audited: %v", want, reasons)
				}
			}

			// Production: the procedure needs an approval there; the
			// trigger can only open the request.
			pb, psecret := e.propose(api.TriggerRequest{Name: "api-down-production", Procedure: "restart-service", Environment: "production",
				Account: "am-bot", Preset: "alertmanager", Mapping: amMapping})
			e.approve("api-down-production", pb)
			code, out = e.signed("api-down-production", psecret, "msg-8", alertmanager("firing", "fp9", "worker", "OPS-9"), 0)
			if code != 202 || out["items"].([]any)[0].(map[string]any)["outcome"] != "requested" || out["items"].([]any)[0].(map[string]any)["run_status"] != store.RunPending {
				t.Fatalf("production: %d %v", code, out)
			}
			// The other trigger's secret does not open this one.
			if code, _ := e.signed("api-down-production", secret, "msg-9", alertmanager("firing", "fpx", "api", "OPS-1"), 0); code != 401 {
				t.Fatalf("another trigger's secret: %d", code)
			}

			// A new version of the procedure suspends both.
			newRestartVersion(t, e)
			if err := e.d.Standing.Pass(ctx); err != nil {
				t.Fatal(err)
			}
			code, out = e.call("GET", "/api/v1/triggers/api-down-staging", e.tok["erin"], nil, nil)
			if code != 200 || out["status"] != store.StandingSuspended || !strings.Contains(fmt.Sprint(out["status_reason"]), "version 2") {
				t.Fatalf("after a new version: %d %v", code, out)
			}
			if code, out := e.signed("api-down-staging", secret, "msg-10", alertmanager("firing", "fp5", "api", "OPS-5"), 0); code != 409 {
				t.Fatalf("a suspended trigger: %d %v", code, out)
			}
			if len(e.events(audit.TriggerSuspend)) != 2 {
				t.Fatal("suspensions not audited")
			}

			// The secret is never read back: not from the API, not in
			// the audit log.
			e.d.Triggers.Flush(ctx)
			key := strings.TrimPrefix(secret, "whsec_")
			for _, path := range []string{"/api/v1/triggers", "/api/v1/triggers/api-down-staging"} {
				code, out := e.call("GET", path, e.tok["bob"], nil, nil)
				b, _ := json.Marshal(out)
				if code != 200 || strings.Contains(string(b), key) {
					t.Fatalf("GET %s: %d, secret shown: %v", path, code, strings.Contains(string(b), key))
				}
			}
			all, _ := e.d.Store.AuditList(ctx, store.AuditListParams{After: -1, Limit: 100000})
			for _, ev := range all {
				b, _ := json.Marshal(ev)
				if strings.Contains(string(b), key) || strings.Contains(string(b), strings.TrimPrefix(psecret, "whsec_")) {
					t.Fatalf("audit event %s holds a trigger secret", ev.Type)
				}
			}
		})
	}
}

// newRestartVersion puts version 2 of restart-service in service.
func newRestartVersion(t *testing.T, e *trgEnv) {
	t.Helper()
	ctx := context.Background()
	data, err := os.ReadFile(filepath.Join("..", "demo", "catalog", "restart-service.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	data = append(data, []byte("  - name: again\n    script: echo again\n")...)
	srcs, err := procedure.Parse("restart-service.yaml", data)
	if err != nil || len(srcs) != 1 {
		t.Fatalf("parse: %v", err)
	}
	principal := func(name string) *identity.Principal {
		u, _ := e.d.Store.UserGetByUsername(ctx, name)
		gs, _ := authz.GroupsOf(ctx, e.d.Store, u.ID)
		return &identity.Principal{UserID: u.ID, Username: u.Username, Groups: gs}
	}
	res, err := e.d.Review.Propose(ctx, principal("alice"), srcs[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, who := range []string{"bob", "carol"} {
		if _, err := e.d.Review.Review(ctx, principal(who), res.Version.ID, res.Version.Digest, store.ReviewApprove, "ok"); err != nil {
			t.Fatal(err)
		}
	}
	if p, _ := e.d.Store.ProcedureGetByName(ctx, "restart-service"); p.ActiveVersionID != res.Version.ID {
		t.Fatal("the new version is not in service")
	}
}

// TestBearerTriggerAndRateLimit: a generic trigger authenticated by a
// bearer secret starts a run per new webhook-id; a wrong bearer is
// refused; past its rate the trigger answers 429 with Retry-After, and
// takes deliveries again a minute later.
func TestBearerTriggerAndRateLimit(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			e := newTrgEnv(t, driver)
			binding, secret := e.propose(api.TriggerRequest{Name: "flush-sessions", Procedure: "flush-cache", Environment: "staging",
				Account: "am-bot", Auth: "bearer", Mapping: map[string]string{"cache": "$.cache"}, RatePerMinute: 2})
			e.approve("flush-sessions", binding)
			send := func(id, bearer string) (int, map[string]any, *http.Response) {
				return e.raw("POST", "/api/v1/hooks/flush-sessions", "", []byte(`{"cache":"sessions"}`),
					map[string]string{"Authorization": "Bearer " + bearer, "webhook-id": id})
			}
			if code, out, _ := send("d1", secret+"x"); code != 401 {
				t.Fatalf("wrong bearer: %d %v", code, out)
			}
			if code, out, _ := send("d1", secret); code != 202 || out["items"].([]any)[0].(map[string]any)["outcome"] != "started" {
				t.Fatalf("bearer: %d %v", code, out)
			}
			e.clock.Add(10 * time.Second)
			if code, out, _ := send("d2", secret); code != 202 {
				t.Fatalf("second: %d %v", code, out)
			}
			e.clock.Add(10 * time.Second)
			code, out, resp := send("d3", secret)
			if code != 429 || resp.Header.Get("Retry-After") != "40" {
				t.Fatalf("over the rate: %d %v Retry-After %q", code, out, resp.Header.Get("Retry-After"))
			}
			st, _ := e.d.Store.StandingGetByName(context.Background(), store.StandingTrigger, "flush-sessions")
			if n := len(e.runsOf(st.ID)); n != 2 {
				t.Fatalf("runs: %d", n)
			}
			e.clock.Add(time.Minute)
			if code, out, _ := send("d3", secret); code != 202 {
				t.Fatalf("a minute later: %d %v", code, out)
			}
			reasons := map[string]bool{}
			for _, ev := range e.events(audit.TriggerRefused) {
				var d map[string]any
				_ = json.Unmarshal(ev.Details, &d)
				reasons[fmt.Sprint(d["reason"])] = true
			}
			if !reasons["bad_bearer"] || !reasons["rate_limited"] {
				t.Fatalf("refusals audited: %v", reasons)
			}
		})
	}
}
