package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/api"
	"github.com/airlockhq/airlock/internal/config"
	"github.com/airlockhq/airlock/internal/notify/slack/slacktest"
	"github.com/airlockhq/airlock/internal/secret"
	"github.com/airlockhq/airlock/internal/store"
)

// install proposes a definition as alice and has bob approve it (low
// risk: ops alone is the quorum).
func (d *demoEnv) install(t testing.TB, src string) {
	t.Helper()
	code, out, _ := d.call("POST", "/api/v1/versions", d.tok["alice"], api.ProposeRequest{Source: src})
	if code != 201 {
		t.Fatalf("propose: %d %v", code, out)
	}
	v := out["version"].(map[string]any)
	if code, out, _ := d.call("POST", "/api/v1/versions/"+v["id"].(string)+"/reviews", d.tok["bob"], api.ReviewRequest{Decision: "approve", Digest: v["digest"].(string)}); code != 201 || out["activated"] != true {
		t.Fatalf("approve: %d %v", code, out)
	}
}

const echoProc = `apiVersion: airlock/v1
kind: Procedure
name: echo-params
owner: payments
risk: low
parameters:
  - {name: s, type: string, max_length: 5000, allow_dash: true}  # passed whole: "-rf" is meant literally here
  - {name: n, type: int}
  - {name: b, type: bool}
  - {name: e, type: enum, values: ["a b", "$(id)", "x;y"]}
  - {name: m, type: multi-enum, values: ["p|q", "r&&s", "t"]}
steps:
  - name: argv
    exec: ["printf", "[%s]", "{{ .params.s }}", "{{ .params.n }}", "{{ .params.b }}", "{{ .params.e }}", "{{ .params.m }}"]
  - name: env
    script: |
      printf '<%s>' "$AIRLOCK_PARAM_S" "$AIRLOCK_PARAM_N" "$AIRLOCK_PARAM_B" "$AIRLOCK_PARAM_E" "$AIRLOCK_PARAM_M"
`

// TestInjectionCorpus passes hostile values through every parameter type
// and both step kinds: each arrives byte-exact as one argv element or one
// environment variable, and nothing else executes.
func TestInjectionCorpus(t *testing.T) {
	d := newDemoEnv(t, nil)
	d.install(t, echoProc)
	canary := filepath.Join(t.TempDir(), "pwned")
	corpus := []string{
		"; touch " + canary,
		"$(touch " + canary + ")",
		"`touch " + canary + "`",
		"&& touch " + canary,
		"| touch " + canary,
		"a\ntouch " + canary,
		"'; touch " + canary + "; '",
		`"; touch ` + canary + `; "`,
		"*", "/*", "~root", "$HOME", "${PATH}", "%s%s%n", "-rf", "--help",
		strings.Repeat("x", 4000),
		"tab\there", "\r\n", "ünïcødé ✓",
	}
	for _, v := range corpus {
		code, r := d.request(t, "bob", api.RunRequest{Procedure: "echo-params", Environment: "staging",
			Params: map[string]any{"s": v, "n": 7, "b": true, "e": "$(id)", "m": []string{"p|q", "r&&s"}}})
		if code != 201 {
			t.Fatalf("%q: %d %v", v, code, r)
		}
		final := d.waitRun(t, d.tok["bob"], r["id"].(string))
		out := d.output(t, d.tok["bob"], r["id"].(string))
		want := "[" + v + "][7][true][$(id)][p|q,r&&s]" + "<" + v + "><7><true><$(id)><p|q,r&&s>"
		if final["status"] != "succeeded" || out != want {
			t.Errorf("%q: status %v\n got %q\nwant %q", v, final["status"], out, want)
		}
	}
	if _, err := os.Stat(canary); err == nil {
		t.Fatal("an injected command ran")
	}
	// Invalid UTF-8 cannot arrive as sent (JSON would replace it): the
	// request is refused whole.
	body := []byte(`{"procedure":"echo-params","environment":"staging","params":{"s":"` + "\xff\xfe" + `x"}}`)
	req, _ := http.NewRequest("POST", d.url+"/api/v1/runs", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+d.tok["bob"])
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("invalid UTF-8: %d", resp.StatusCode)
	}
	// Values that cannot travel safely are refused with the parameter named.
	for _, c := range []struct {
		params map[string]any
		field  string
	}{
		{map[string]any{"s": "a\x00b"}, "params.s"},
		{map[string]any{"s": strings.Repeat("x", 5001)}, "params.s"},
		{map[string]any{"n": "7; id"}, "params.n"},
		{map[string]any{"e": "$(whoami)"}, "params.e"},
		{map[string]any{"m": []string{"t", "t"}}, "params.m"},
		{map[string]any{"b": "yes"}, "params.b"},
	} {
		code, out := d.request(t, "bob", api.RunRequest{Procedure: "echo-params", Environment: "staging", Params: c.params})
		if code != 400 || out["error"].(map[string]any)["field"] != c.field {
			t.Errorf("%v: %d %v", c.params, code, out)
		}
	}
}

const leakProc = `apiVersion: airlock/v1
kind: Procedure
name: leak-test
owner: payments
risk: low
parameters:
  - {name: password, type: secret, required: true}
steps:
  - name: print
    script: |
      echo "token=$API_TOKEN"
      printf '%s' "$API_TOKEN" | head -c 7; sleep 0.3; printf '%s\n' "$API_TOKEN" | tail -c +8
      printf '%s' "$API_TOKEN" | fold -w 3
      echo
      echo "password=$AIRLOCK_PARAM_PASSWORD"
      echo "$AIRLOCK_PARAM_PASSWORD" >&2
      exit 3
    secrets: {API_TOKEN: payments/api-token}
`

// TestSecretsNeverLeak: a secret and a secret parameter printed whole and
// split across writes appear nowhere: not in stored or streamed output,
// API responses, audit events or logs.
func TestSecretsNeverLeak(t *testing.T) {
	// Notifications are read for leaks too, on every channel: a webhook,
	// email, Slack (bob linked) and the owning team's Teams channel.
	rc, mb := newReceiver(t), newMailbox(t)
	fake := slacktest.New(t, "8f742231b10e8888abcd99yyyzzz85a5")
	var teamsMu sync.Mutex
	var teamsGot []string
	teamsHook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		teamsMu.Lock()
		teamsGot = append(teamsGot, string(b))
		teamsMu.Unlock()
	}))
	defer teamsHook.Close()
	d := newDemoEnv(t, func(c *config.Config) {
		rc.config(c)
		mb.config(c)
		urlFile := filepath.Join(c.Data, "teams.url")
		os.WriteFile(urlFile, []byte(teamsHook.URL), 0o600)
		c.Notify.Teams = []config.NotifyTeams{{Name: "payments", URLFile: urlFile}}
		c.Notify.Owners = []config.NotifyOwner{{Team: "payments", Teams: "payments"}}
		tok, sec := filepath.Join(c.Data, "slack-bot-token"), filepath.Join(c.Data, "slack-signing-secret")
		os.WriteFile(tok, []byte("xoxb-test-token\n"), 0o600)
		os.WriteFile(sec, []byte(fake.Secret+"\n"), 0o600)
		c.Notify.Slack = config.NotifySlack{BotTokenFile: tok, SigningSecretFile: sec, APIURL: fake.APIURL()}
	})
	linkSlack(t, d, fake, "bob", "UBOB")
	const token, password = "tok-9f8e7d6c5b4a", "pa55-w0rd-xyzzy"
	code, out, _ := d.call("PUT", "/api/v1/secrets/payments/api-token", d.tok["bob"], api.SecretRequest{Value: token, Scope: &secret.Scope{Teams: []string{"payments"}}})
	if code != 200 || strings.Contains(toJSON(out), token) {
		t.Fatalf("set secret: %d %v", code, out)
	}
	d.install(t, leakProc)
	code, r := d.request(t, "bob", api.RunRequest{Procedure: "leak-test", Environment: "staging", Params: map[string]any{"password": password}})
	if code != 201 {
		t.Fatalf("%d %v", code, r)
	}
	id := r["id"].(string)
	// Stream it live while it runs.
	req, _ := http.NewRequest("GET", d.url+"/api/v1/runs/"+id+"/output", nil)
	req.Header.Set("Authorization", "Bearer "+d.tok["bob"])
	req.Header.Set("Accept", "text/event-stream")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	streamed, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("reading the run's event stream until its end: %v", err)
	}
	final := d.waitRun(t, d.tok["bob"], id)
	stored := d.output(t, d.tok["bob"], id)
	if final["status"] != "failed" || !strings.Contains(stored, "token=[REDACTED]") || !strings.Contains(stored, "password=[REDACTED]") {
		t.Fatalf("run %v output %q", final["status"], stored)
	}
	var everything []string
	everything = append(everything, string(streamed), stored, toJSON(final))
	_, secrets, _ := d.call("GET", "/api/v1/secrets", d.tok["bob"], nil)
	everything = append(everything, toJSON(secrets))
	_, evs, _ := d.call("GET", "/api/v1/runs/"+id+"/events", d.tok["bob"], nil)
	everything = append(everything, toJSON(evs))
	all, _ := d.srv.Store.AuditList(context.Background(), store.AuditListParams{After: -1, Limit: 100000})
	for _, e := range all {
		everything = append(everything, string(e.Details), e.Subject)
	}
	chunks, _ := d.srv.Store.RunOutputList(context.Background(), id, 0, 100000)
	for _, c := range chunks {
		everything = append(everything, string(c.Data))
	}
	// What notifications carried: webhook bodies as received, and every
	// stored delivery's message, whatever its channel.
	rc.wait("run_finished", id)
	rc.mu.Lock()
	everything = append(everything, rc.raw...)
	rc.mu.Unlock()
	fake.Wait("bob told in Slack his run finished", func(c slacktest.Call) bool {
		return c.Method == "chat.postMessage" && strings.Contains(c.Form.Get("blocks"), id) && strings.Contains(c.Form.Get("text"), "failed")
	})
	for _, c := range fake.Calls() {
		everything = append(everything, c.Form.Encode(), toJSON(c.JSON))
	}
	waitUntil(t, 30*time.Second, "the run's end in the team's Teams channel", func() bool {
		teamsMu.Lock()
		defer teamsMu.Unlock()
		return strings.Contains(strings.Join(teamsGot, "\n"), id)
	})
	teamsMu.Lock()
	everything = append(everything, teamsGot...)
	teamsMu.Unlock()
	mb.to(t, 1, id, "X-Airlock-Event: run.finish")
	mb.mu.Lock()
	for _, m := range mb.mail {
		everything = append(everything, m.data, decoded(t, m.data))
	}
	mb.mu.Unlock()
	ds, _ := d.srv.Store.DeliveryList(context.Background(), store.DeliveryListParams{Limit: 100000})
	if len(ds) == 0 {
		t.Fatal("no notification was stored: the check below would prove nothing")
	}
	for _, dl := range ds {
		everything = append(everything, string(dl.Message), dl.LastError)
	}
	rec, _ := d.srv.Store.RunGet(context.Background(), id)
	if !strings.Contains(d.logs.String(), "POST /api/v1/runs") {
		t.Fatal("the server logged nothing: the log check below would prove nothing")
	}
	everything = append(everything, string(rec.Params), string(rec.SecretParams), d.logs.String())
	for _, s := range everything {
		for _, secret := range []string{token, password} {
			if strings.Contains(s, secret) {
				t.Fatalf("secret %q leaked in %q", secret, s)
			}
		}
	}
	// Whole and split, the token is masked; the 3-byte folded pieces are
	// too short to be the secret and stay (they are not the value).
	if strings.Count(stored, "[REDACTED]") < 4 {
		t.Fatalf("expected the token masked in every whole or split print:\n%s", stored)
	}
	if rec.SecretParams != nil {
		t.Fatal("secret parameters kept after the run")
	}
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// waitUntil waits, up to within, for ok, and fails naming what it waited
// for.
func waitUntil(t *testing.T, within time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
