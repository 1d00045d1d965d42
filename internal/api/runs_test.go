package api_test

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/api"
	"github.com/airlockhq/airlock/internal/config"
	"github.com/airlockhq/airlock/internal/demo"
	"github.com/airlockhq/airlock/internal/evidence"
	"github.com/airlockhq/airlock/internal/store"
)

// waitRun polls a run until it is final and returns it.
func (e *env) waitRun(t testing.TB, token, id string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, out, _ := e.call("GET", "/api/v1/runs/"+id, token, nil)
		if code != 200 {
			t.Fatalf("get run %s: %d %v", id, code, out)
		}
		if store.RunFinal(out["status"].(string)) {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited 30s for run %s to finish; it is still %s", id, out["status"])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *env) output(t testing.TB, token, id string) string {
	t.Helper()
	code, out, _ := e.call("GET", "/api/v1/runs/"+id+"/output", token, nil)
	if code != 200 {
		t.Fatalf("output: %d %v", code, out)
	}
	var b strings.Builder
	for _, c := range out["chunks"].([]any) {
		b.WriteString(c.(map[string]any)["data"].(string))
	}
	return b.String()
}

// demoEnv is a server with the demo policy, users and catalog; tokens by
// username.
type demoEnv struct {
	*env
	tok map[string]string
}

func newDemoEnv(t testing.TB, mutate func(*config.Config)) *demoEnv {
	e := newEnv(t, func(c *config.Config) {
		c.PolicyFile = filepath.Join(c.Data, "policy.cedar")
		os.WriteFile(c.PolicyFile, []byte(demo.Policy), 0o600)
		c.InventoryFile = filepath.Join(c.Data, "inventory.yaml")
		os.WriteFile(c.InventoryFile, []byte(demo.Inventory), 0o600)
		if mutate != nil {
			mutate(c)
		}
	})
	users, err := demo.Seed(context.Background(), demo.Services{Store: e.srv.Store, Identity: e.srv.Identity, Review: e.srv.Review})
	if err != nil {
		t.Fatal(err)
	}
	d := &demoEnv{env: e, tok: map[string]string{}}
	for _, u := range users {
		d.tok[u.Username] = e.token(u.Username, u.Password)
	}
	return d
}

func (d *demoEnv) request(t *testing.T, user string, req api.RunRequest) (int, map[string]any) {
	code, out, _ := d.call("POST", "/api/v1/runs", d.tok[user], req)
	return code, out
}

func TestRunLocallyWithAuditTrail(t *testing.T) {
	d := newDemoEnv(t, nil)
	code, out := d.request(t, "alice", api.RunRequest{Procedure: "flush-cache", Environment: "staging", Params: map[string]any{"cache": "sessions"}})
	if code != 201 || out["status"] != "queued" {
		t.Fatalf("alice runs flush-cache in staging: %d %v", code, out)
	}
	id := out["id"].(string)
	final := d.waitRun(t, d.tok["alice"], id)
	if final["status"] != "succeeded" {
		t.Fatalf("run: %v\n%s", final, d.output(t, d.tok["alice"], id))
	}
	text := d.output(t, d.tok["alice"], id)
	if !strings.Contains(text, "flushing the sessions cache") || !strings.Contains(text, "flushed") {
		t.Fatalf("output: %q", text)
	}
	sum := sha256.Sum256([]byte(text))
	if final["output_digest"] != "sha256:"+hex.EncodeToString(sum[:]) {
		t.Fatalf("output digest %v does not hash the output", final["output_digest"])
	}
	_, evs, _ := d.call("GET", "/api/v1/runs/"+id+"/events", d.tok["alice"], nil)
	var types []string
	for _, e := range evs["items"].([]any) {
		types = append(types, e.(map[string]any)["type"].(string))
	}
	if strings.Join(types, ",") != "run.request,run.start,run.step,run.finish" {
		t.Fatalf("events: %v", types)
	}
	last := evs["items"].([]any)[3].(map[string]any)
	details, _ := json.Marshal(last["details"])
	if !strings.Contains(string(details), final["output_digest"].(string)) {
		t.Fatalf("finish event lacks the output digest: %s", details)
	}
}

func TestRequestValidationNamesTheParameter(t *testing.T) {
	d := newDemoEnv(t, nil)
	before, _ := d.srv.Store.RunList(context.Background(), store.RunListParams{})
	for _, c := range []struct {
		params map[string]any
		field  string
	}{
		{map[string]any{"cache": "everything"}, "params.cache"},
		{map[string]any{}, "params.cache"},
		{map[string]any{"cache": "sessions", "extra": "x"}, "params.extra"},
		{map[string]any{"cache": "sessions\x00"}, "params.cache"},
	} {
		code, out := d.request(t, "alice", api.RunRequest{Procedure: "flush-cache", Environment: "staging", Params: c.params})
		if code != 400 || out["error"].(map[string]any)["field"] != c.field {
			t.Errorf("%v: %d %v", c.params, code, out)
		}
	}
	code, out := d.request(t, "alice", api.RunRequest{Procedure: "flush-cache", Environment: "moon", Params: map[string]any{"cache": "sessions"}})
	if code != 400 || out["error"].(map[string]any)["field"] != "environment" {
		t.Errorf("bad environment: %d %v", code, out)
	}
	after, _ := d.srv.Store.RunList(context.Background(), store.RunListParams{})
	if len(after) != len(before) {
		t.Fatal("a refused request stored a run")
	}
	// Not permitted at all: refused and audited.
	code, _ = d.request(t, "carol", api.RunRequest{Procedure: "flush-cache", Environment: "staging", Params: map[string]any{"cache": "sessions"}})
	if code != 403 {
		t.Fatalf("carol (security) runs: %d", code)
	}
}

func TestApprovalsAndSeparationOfDuties(t *testing.T) {
	d := newDemoEnv(t, nil)
	// alice may only request in production.
	code, a := d.request(t, "alice", api.RunRequest{Procedure: "flush-cache", Environment: "production", Params: map[string]any{"cache": "sessions"}})
	if code != 201 || a["status"] != "pending_approval" || a["approvals_required"].(float64) != 1 {
		t.Fatalf("alice requests in production: %d %v", code, a)
	}
	code, b := d.request(t, "alice", api.RunRequest{Procedure: "flush-cache", Environment: "production", Params: map[string]any{"cache": "catalog"}})
	if code != 201 {
		t.Fatal(code)
	}
	// Bob may run restart-service in production, but the procedure
	// demands an approval there, and bob may not approve his own run.
	code, own := d.request(t, "bob", api.RunRequest{Procedure: "restart-service", Environment: "production", Params: map[string]any{"service": "api"}})
	if code != 201 || own["status"] != "pending_approval" {
		t.Fatalf("bob requests restart in production: %d %v", code, own)
	}
	code, out, _ := d.call("POST", "/api/v1/runs/"+own["id"].(string)+"/approve", d.tok["bob"], api.DecisionRequest{Binding: own["binding"].(string)})
	if code != 403 || !strings.Contains(out["error"].(map[string]any)["message"].(string), "you requested this run; someone else must approve it") {
		t.Fatalf("self approval: %d %v", code, out)
	}
	// The approval of run A cannot be replayed onto run B.
	code, out, _ = d.call("POST", "/api/v1/runs/"+b["id"].(string)+"/approve", d.tok["bob"], api.DecisionRequest{Binding: a["binding"].(string)})
	if code != 409 || out["error"].(map[string]any)["field"] != "binding" {
		t.Fatalf("replayed approval: %d %v", code, out)
	}
	// Erin (noc) may not approve.
	code, _, _ = d.call("POST", "/api/v1/runs/"+a["id"].(string)+"/approve", d.tok["erin"], api.DecisionRequest{Binding: a["binding"].(string)})
	if code != 404 && code != 403 {
		t.Fatalf("erin approves: %d", code)
	}
	// Bob approves A: it runs.
	code, out, _ = d.call("POST", "/api/v1/runs/"+a["id"].(string)+"/approve", d.tok["bob"], api.DecisionRequest{Binding: a["binding"].(string), Comment: "ok"})
	if code != 200 || out["status"] != "queued" {
		t.Fatalf("bob approves A: %d %v", code, out)
	}
	if final := d.waitRun(t, d.tok["alice"], a["id"].(string)); final["status"] != "succeeded" || len(final["approvals"].([]any)) != 1 {
		t.Fatalf("A: %v", final)
	}
	// Bob denies B with a comment.
	code, out, _ = d.call("POST", "/api/v1/runs/"+b["id"].(string)+"/deny", d.tok["bob"], api.DecisionRequest{Comment: "not during the sale"})
	if code != 200 || out["status"] != "denied" {
		t.Fatalf("deny: %d %v", code, out)
	}
	denied, _ := d.srv.Store.AuditList(context.Background(), store.AuditListParams{After: -1, Type: "run.approve_denied"})
	if len(denied) != 2 {
		t.Fatalf("%d refused approvals audited, want 2", len(denied))
	}
}

func mustRead(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRunVisibility: alice may view her run A but not erin's run B: B,
// its output and its events are 404, like a run that does not exist.
func TestRunVisibility(t *testing.T) {
	d := newDemoEnv(t, nil)
	_, a := d.request(t, "alice", api.RunRequest{Procedure: "flush-cache", Environment: "staging", Params: map[string]any{"cache": "sessions"}})
	_, b := d.request(t, "erin", api.RunRequest{Procedure: "flush-cache", Environment: "staging", Params: map[string]any{"cache": "catalog"}})
	d.waitRun(t, d.tok["alice"], a["id"].(string))
	d.waitRun(t, d.tok["erin"], b["id"].(string))
	for _, suffix := range []string{"", "/output", "/events"} {
		if code, _, _ := d.call("GET", "/api/v1/runs/"+a["id"].(string)+suffix, d.tok["alice"], nil); code != 200 {
			t.Errorf("alice's own run%s: %d", suffix, code)
		}
		code, out, _ := d.call("GET", "/api/v1/runs/"+b["id"].(string)+suffix, d.tok["alice"], nil)
		code2, out2, _ := d.call("GET", "/api/v1/runs/run_doesnotexist"+suffix, d.tok["alice"], nil)
		if code != 404 || code2 != 404 || out["error"].(map[string]any)["message"] != out2["error"].(map[string]any)["message"] {
			t.Errorf("erin's run%s for alice: %d %v (missing run: %d %v)", suffix, code, out, code2, out2)
		}
	}
	_, list, _ := d.call("GET", "/api/v1/runs", d.tok["alice"], nil)
	for _, r := range list["items"].([]any) {
		if r.(map[string]any)["requester"] != "alice" {
			t.Errorf("alice's list shows %v", r)
		}
	}
	// dana (compliance) sees both.
	if code, _, _ := d.call("GET", "/api/v1/runs/"+b["id"].(string)+"/output", d.tok["dana"], nil); code != 200 {
		t.Errorf("dana: %d", code)
	}
}

func TestLiveOutputOverSSE(t *testing.T) {
	d := newDemoEnv(t, nil)
	_, r := d.request(t, "bob", api.RunRequest{Procedure: "restart-service", Environment: "staging", Params: map[string]any{"service": "worker"}})
	id := r["id"].(string)
	req, _ := http.NewRequest("GET", d.url+"/api/v1/runs/"+id+"/output", nil)
	req.Header.Set("Authorization", "Bearer "+d.tok["bob"])
	req.Header.Set("Accept", "text/event-stream")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	var events []string
	var data strings.Builder
	var sawRunning bool
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			events = append(events, strings.TrimPrefix(line, "event: "))
		case strings.HasPrefix(line, "data: ") && len(events) > 0 && events[len(events)-1] == "output":
			var c api.ChunkJSON
			json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &c)
			data.WriteString(c.Data)
		case strings.HasPrefix(line, "data: ") && strings.Contains(line, `"status":"running"`):
			sawRunning = true
		}
		if len(events) > 0 && events[len(events)-1] == "end" {
			break
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading the run's event stream until its end: %v (events so far: %v)", err, events)
	}
	if len(events) == 0 || events[len(events)-1] != "end" || !sawRunning {
		t.Fatalf("events: %v (saw running: %v)", events, sawRunning)
	}
	// The output arrived while the run ran: "draining" before "healthy",
	// sent as separate events (the run sleeps between them).
	if !strings.Contains(data.String(), "draining worker") || !strings.Contains(data.String(), "worker is healthy") {
		t.Fatalf("streamed output: %q", data.String())
	}
	if n := strings.Count(strings.Join(events, ","), "output"); n < 2 {
		t.Fatalf("output came in %d events, want it live (several)", n)
	}
}

// TestApprovalOfSupersededVersionRefused: a run requested on version 1
// whose procedure got version 2 meanwhile is refused approval up front,
// with why and what to do (it would be refused at start); it can still
// be denied. The requester is told why, not "not permitted", even
// though policy does not let her approve runs at all.
func TestApprovalOfSupersededVersionRefused(t *testing.T) {
	d := newDemoEnv(t, nil)
	code, out := d.request(t, "alice", api.RunRequest{Procedure: "flush-cache", Environment: "production", Params: map[string]any{"cache": "sessions"}})
	if code != 201 || out["status"] != "pending_approval" {
		t.Fatalf("request: %d %v", code, out)
	}
	id, binding := out["id"].(string), out["binding"].(string)
	code, res, _ := d.call("POST", "/api/v1/runs/"+id+"/approve", d.tok["alice"], api.DecisionRequest{Binding: binding})
	if code != 403 || !strings.Contains(res["error"].(map[string]any)["message"].(string), "you requested this run; someone else must approve it") {
		t.Fatalf("alice approves her own run: %d %v", code, res)
	}
	src, err := os.ReadFile(filepath.Join("..", "demo", "catalog", "flush-cache.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	d.install(t, string(src)+"  - name: again\n    script: echo flushed again\n")
	code, res, _ = d.call("POST", "/api/v1/runs/"+id+"/approve", d.tok["bob"], api.DecisionRequest{Binding: binding})
	if msg, _ := res["error"].(map[string]any)["message"].(string); code != 409 || !strings.Contains(msg, "superseded by version 2") {
		t.Fatalf("bob approves a run of a superseded version: %d %v", code, res)
	}
	if code, res, _ := d.call("POST", "/api/v1/runs/"+id+"/deny", d.tok["bob"], api.DecisionRequest{Comment: "superseded"}); code != 200 || res["status"] != "denied" {
		t.Fatalf("bob denies it: %d %v", code, res)
	}
}

// TestRefusalsSayWhy: a refusal names what the caller asked and that no
// policy allows it — never which policies exist or who else may.
func TestRefusalsSayWhy(t *testing.T) {
	d := newDemoEnv(t, nil)
	code, out := d.request(t, "dana", api.RunRequest{Procedure: "flush-cache", Environment: "staging", Params: map[string]any{"cache": "sessions"}})
	if msg, _ := out["error"].(map[string]any)["message"].(string); code != 403 || msg != "not permitted: no policy lets you run or request flush-cache in staging" {
		t.Fatalf("dana runs flush-cache: %d %v", code, out)
	}
	code, res, _ := d.call("GET", "/api/v1/audit/events", d.tok["alice"], nil)
	if msg, _ := res["error"].(map[string]any)["message"].(string); code != 403 || msg != "not permitted: no policy lets you read the audit log" {
		t.Fatalf("alice reads the audit log: %d %v", code, res)
	}
}

// TestTryRuns: alice tries a proposed, unreviewed version of her team's
// procedure in the sandbox: it runs, marked unreviewed in the API and
// the audit log, and the evidence lists it apart, never as a run of an
// approved version. It is refused outside try environments, to someone
// neither its author nor in its owner team, and for a version whose step
// names a secret.
func TestTryRuns(t *testing.T) {
	d := newDemoEnv(t, func(c *config.Config) {
		c.Environments = append(c.Environments, "sandbox")
		c.TryEnvironments = []string{"sandbox"}
	})
	src := mustRead(t, "../demo/catalog/rotate-logs.yaml") + "  - name: tried\n    script: echo trying version 2\n"
	code, out, _ := d.call("POST", "/api/v1/versions", d.tok["alice"], api.ProposeRequest{Source: src})
	if code != 201 {
		t.Fatalf("propose: %d %v", code, out)
	}
	code, r := d.request(t, "alice", api.RunRequest{Procedure: "rotate-logs", Environment: "sandbox", Version: 2})
	if code != 201 || r["status"] != "queued" || r["try"] != true || r["unreviewed"] != true {
		t.Fatalf("alice tries version 2 in the sandbox: %d %v", code, r)
	}
	final := d.waitRun(t, d.tok["alice"], r["id"].(string))
	if final["status"] != "succeeded" {
		t.Fatalf("the try run: %v", final)
	}
	evs, _ := d.srv.Store.AuditList(context.Background(), store.AuditListParams{After: -1, Type: "run.request", Subject: r["id"].(string)})
	if len(evs) != 1 || !strings.Contains(string(evs[0].Details), `"unreviewed":true`) {
		t.Fatalf("the request's audit event: %+v", evs)
	}
	for _, tc := range []struct {
		user, env string
		version   int
		code      int
		want      string
	}{
		{"alice", "staging", 2, 400, "runs only in a try environment (sandbox)"},
		{"erin", "sandbox", 2, 403, "only its author (alice) or its owner team (payments)"},
		{"alice", "sandbox", 9, 400, "has no version 9"},
	} {
		code, out := d.request(t, tc.user, api.RunRequest{Procedure: "rotate-logs", Environment: tc.env, Version: tc.version})
		if msg, _ := out["error"].(map[string]any)["message"].(string); code != tc.code || !strings.Contains(msg, tc.want) {
			t.Errorf("%s tries v%d in %s: %d %v, want %d %q", tc.user, tc.version, tc.env, code, out, tc.code, tc.want)
		}
	}
	// A version whose step names a secret is never tried.
	src = mustRead(t, "../demo/catalog/db-readonly-query.yaml") + "  - name: tried\n    script: echo again\n"
	if code, out, _ := d.call("POST", "/api/v1/versions", d.tok["alice"], api.ProposeRequest{Source: src}); code != 201 {
		t.Fatalf("propose: %d %v", code, out)
	}
	code, out = d.request(t, "alice", api.RunRequest{Procedure: "db-readonly-query", Environment: "sandbox", Version: 2, Params: map[string]any{"report": "stuck-settlements", "ticket": "OPS-1"}})
	if msg, _ := out["error"].(map[string]any)["message"].(string); code != 409 || !strings.Contains(msg, "names secrets, and a try run gets none") {
		t.Fatalf("a try of a version with secrets: %d %v", code, out)
	}
	// The evidence lists the try run apart from the approved runs.
	b := d.exportBundle(t, "dana", api.EvidenceRequest{From: "2000-01-01", To: "2100-01-01"})
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var sum evidence.Summary
	for _, f := range zr.File {
		if f.Name == "summary.json" {
			rc, _ := f.Open()
			json.NewDecoder(rc).Decode(&sum)
			rc.Close()
		}
	}
	if len(sum.TryRuns) != 1 || sum.TryRuns[0].Run != r["id"] {
		t.Fatalf("try runs in the evidence: %+v", sum.TryRuns)
	}
	for _, c := range sum.Controls {
		if c.ID == "approved-versions-only" && (c.Checked != 0 || len(c.Exceptions) != 0) {
			t.Fatalf("the try run counted for approved versions: %+v", c)
		}
	}
}

// TestTriggerIdempotencyKeysAreReserved: a client cannot take an event
// trigger's idempotency key ahead of the alert it belongs to.
func TestTriggerIdempotencyKeysAreReserved(t *testing.T) {
	d := newDemoEnv(t, nil)
	code, out, _ := d.call("POST", "/api/v1/runs", d.tok["alice"], api.RunRequest{Procedure: "flush-cache", Environment: "staging",
		Params: map[string]any{"cache": "sessions"}}, "Idempotency-Key", "trigger:trg_x:am:abc")
	if code != 400 || out["error"].(map[string]any)["field"] != "Idempotency-Key" {
		t.Fatalf("a trigger's key taken by a client: %d %v", code, out)
	}
}

// TestRunAndWait: a run request with Prefer: wait=N answers with the
// ended run, its nodes and its output when it ends within N seconds; a
// run that waits for people answers at once; a malformed preference is
// refused whole, requesting nothing.
func TestRunAndWait(t *testing.T) {
	d := newDemoEnv(t, nil)
	code, out, resp := d.call("POST", "/api/v1/runs", d.tok["alice"],
		api.RunRequest{Procedure: "flush-cache", Environment: "staging", Params: map[string]any{"cache": "sessions"}}, "Prefer", "wait=60")
	if code != 201 || out["status"] != "succeeded" || resp.Header.Get("Preference-Applied") != "wait=60" {
		t.Fatalf("a waited request of a short run: %d %v (Preference-Applied %q)", code, out, resp.Header.Get("Preference-Applied"))
	}
	var text strings.Builder
	for _, c := range out["output"].([]any) {
		text.WriteString(c.(map[string]any)["data"].(string))
	}
	if text.String() != d.output(t, d.tok["alice"], out["id"].(string)) || !strings.Contains(text.String(), "flushed") {
		t.Fatalf("output in the answer %q, stored %q", text.String(), d.output(t, d.tok["alice"], out["id"].(string)))
	}
	sum := sha256.Sum256([]byte(text.String()))
	if out["output_digest"] != "sha256:"+hex.EncodeToString(sum[:]) || out["output_more"] == true {
		t.Fatalf("output digest %v, more %v", out["output_digest"], out["output_more"])
	}
	if nodes, _ := out["nodes"].([]any); len(nodes) != 1 || nodes[0].(map[string]any)["status"] != "succeeded" {
		t.Fatalf("nodes: %v", out["nodes"])
	}
	// The ended run handed over in memory is the run as stored.
	_, stored, _ := d.call("GET", "/api/v1/runs/"+out["id"].(string), d.tok["alice"], nil)
	for _, k := range []string{"status", "finished_at", "output_digest", "output_bytes", "attempt", "nodes"} {
		if a, b := fmt.Sprint(out[k]), fmt.Sprint(stored[k]); a != b {
			t.Errorf("%s: %s in the answer, %s stored", k, a, b)
		}
	}
	// A run that ended before anyone awaited it is read (or, having
	// ended here a moment ago, handed over).
	r, nodes, err := d.srv.Runs.Await(context.Background(), &store.Run{ID: out["id"].(string)}, time.Minute)
	if err != nil || r.Status != "succeeded" || len(nodes) != 1 {
		t.Fatalf("awaiting an ended run: %v %v %v", r, nodes, err)
	}

	// Pending approval: nobody waits for people.
	code, out, _ = d.call("POST", "/api/v1/runs", d.tok["alice"],
		api.RunRequest{Procedure: "flush-cache", Environment: "production", Params: map[string]any{"cache": "sessions"}}, "Prefer", "wait=60")
	if code != 201 || out["status"] != "pending_approval" || out["output"] != nil {
		t.Fatalf("a waited request that needs approval: %d %v", code, out)
	}
	// A wait beyond the bound is the bound; parameters are ignored.
	code, out, resp = d.call("POST", "/api/v1/runs", d.tok["alice"],
		api.RunRequest{Procedure: "flush-cache", Environment: "staging", Params: map[string]any{"cache": "sessions"}}, "Prefer", "wait=18446744074; x=y")
	if code != 201 || out["status"] != "succeeded" || resp.Header.Get("Preference-Applied") != "wait=60" {
		t.Fatalf("Prefer: wait=18446744074; x=y: %d %v (Preference-Applied %q)", code, out, resp.Header.Get("Preference-Applied"))
	}

	before, _ := d.srv.Store.RunList(context.Background(), store.RunListParams{Limit: 500})
	for _, bad := range []string{"wait=soon", "wait=-1", "wait=", "wait=99999999999999999999999"} {
		code, out, _ = d.call("POST", "/api/v1/runs", d.tok["alice"],
			api.RunRequest{Procedure: "flush-cache", Environment: "staging", Params: map[string]any{"cache": "sessions"}}, "Prefer", bad)
		if code != 400 || out["error"].(map[string]any)["field"] != "Prefer" {
			t.Errorf("Prefer: %s: %d %v", bad, code, out)
		}
	}
	if after, _ := d.srv.Store.RunList(context.Background(), store.RunListParams{Limit: 500}); len(after) != len(before) {
		t.Fatalf("refused requests made runs: %d before, %d after", len(before), len(after))
	}
	// Other preferences are ignored (RFC 7240).
	if code, out, _ = d.call("POST", "/api/v1/runs", d.tok["alice"],
		api.RunRequest{Procedure: "flush-cache", Environment: "staging", Params: map[string]any{"cache": "sessions"}}, "Prefer", "return=minimal"); code != 201 || out["status"] != "queued" {
		t.Fatalf("Prefer: return=minimal: %d %v", code, out)
	}
}
