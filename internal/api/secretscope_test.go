package api_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/airlockhq/airlock/internal/api"
	"github.com/airlockhq/airlock/internal/store"
)

// putScopedSecret stores a secret as bob, with the teams that may use it.
func (d *demoEnv) putScopedSecret(t *testing.T, name, value string, teams ...string) map[string]any {
	t.Helper()
	body := map[string]any{"value": value, "scope": map[string]any{"teams": teams}}
	code, out, _ := d.call("PUT", "/api/v1/secrets/"+name, d.tok["bob"], body)
	if code != 200 {
		t.Fatalf("bob stores %s for teams %v: %d %v", name, teams, code, out)
	}
	return out
}

const borrowProc = `apiVersion: airlock/v1
kind: Procedure
name: borrow-key
owner: payments
risk: low
steps:
  - name: use
    script: |
      echo "using the key"
    secrets:
      KEY: growth/api-key
`

// TestProposalNamingAnotherTeamsSecretIsRefused: a payments procedure
// whose step names the growth team's secret does not validate; the
// error points at the reference's line and column, and nothing is
// stored. Scoped to the procedure, the same definition is accepted.
func TestProposalNamingAnotherTeamsSecretIsRefused(t *testing.T) {
	d := newDemoEnv(t, nil)
	d.putScopedSecret(t, "growth/api-key", "growth-key-123456", "growth")
	code, out, _ := d.call("POST", "/api/v1/versions", d.tok["alice"], api.ProposeRequest{Source: borrowProc, File: "borrow-key.yaml"})
	e, _ := out["error"].(map[string]any)
	msg, _ := e["message"].(string)
	if code != 400 || e["field"] != "source" || !strings.HasPrefix(msg, "borrow-key.yaml:11:12: steps[0].secrets.KEY: ") ||
		!strings.Contains(msg, "may not use secret growth/api-key") || !strings.Contains(msg, "airlock secrets scope growth/api-key --team payments") {
		t.Fatalf("alice proposes a payments procedure using growth's secret: %d %v", code, out)
	}
	if _, err := d.srv.Store.ProcedureGetByName(t.Context(), "borrow-key"); err == nil {
		t.Fatal("the refused proposal created the procedure")
	}

	// The secret's managers let this one procedure use it (audited).
	code, out, _ = d.call("PATCH", "/api/v1/secrets/growth/api-key", d.tok["bob"], map[string]any{"scope": map[string]any{"teams": []string{"growth"}, "procedures": []string{"borrow-key"}}})
	if code != 200 {
		t.Fatalf("bob scopes growth/api-key to borrow-key too: %d %v", code, out)
	}
	evs := d.events("secret.scope")
	if len(evs) != 1 || evs[0].ActorName != "bob" || evs[0].Subject != "growth/api-key" || !strings.Contains(string(evs[0].Details), `"procedures":["borrow-key"]`) {
		t.Fatalf("scope change audited as %v", evs)
	}
	// Only those who manage secrets may scope them.
	if code, _, _ := d.call("PATCH", "/api/v1/secrets/growth/api-key", d.tok["alice"], map[string]any{"scope": map[string]any{"teams": []string{"payments"}}}); code != 403 {
		t.Fatalf("alice widens a secret's scope: %d", code)
	}
	d.install(t, borrowProc)
}

const reportProc = `apiVersion: airlock/v1
kind: Procedure
name: nightly-report
owner: payments
risk: low
steps:
  - name: report
    script: |
      test -n "$REPORT_KEY" && echo "report ran with the key"
    secrets:
      REPORT_KEY: payments/report-key
`

// TestRunRefusedAtStartAfterTheScopeNarrowed: a run approved while the
// secret's scope covered its procedure is refused when it starts after
// the scope was narrowed — with a clear error and a secret.use_denied
// event, the step never run — and a new request is refused at once.
// Widened again, the procedure runs and its step gets the secret.
func TestRunRefusedAtStartAfterTheScopeNarrowed(t *testing.T) {
	d := newDemoEnv(t, nil)
	const value = "report-key-7f3a9c"
	d.putScopedSecret(t, "payments/report-key", value, "payments")
	d.install(t, reportProc)

	// alice may only request it in production: bob approves it later.
	code, r := d.request(t, "alice", api.RunRequest{Procedure: "nightly-report", Environment: "production"})
	if code != 201 || r["status"] != store.RunPending {
		t.Fatalf("alice requests nightly-report in production: %d %v", code, r)
	}
	// Meanwhile the key is taken away from payments.
	code, out, _ := d.call("PATCH", "/api/v1/secrets/payments/report-key", d.tok["bob"], map[string]any{"scope": map[string]any{"teams": []string{"finance"}}})
	if code != 200 {
		t.Fatalf("bob narrows the scope: %d %v", code, out)
	}
	id := r["id"].(string)
	if code, out, _ := d.call("POST", "/api/v1/runs/"+id+"/approve", d.tok["bob"], api.DecisionRequest{Binding: r["binding"].(string)}); code != 200 {
		t.Fatalf("bob approves the run: %d %v", code, out)
	}
	final := d.waitRun(t, d.tok["alice"], id)
	reason, _ := final["error"].(string)
	if final["status"] != store.RunFailed || !strings.Contains(reason, "refused at start: step report names secret payments/report-key, which nightly-report (team payments) may not use") {
		t.Fatalf("the run after the scope narrowed: %v %q", final["status"], reason)
	}
	text := d.output(t, d.tok["alice"], id)
	if strings.Contains(text, "report ran") || strings.Contains(text, value) || !strings.Contains(text, "refused at start") {
		t.Fatalf("output of the refused run: %q", text)
	}
	var denied []*store.AuditEvent
	for _, ev := range d.events("secret.use_denied") {
		if ev.Subject == id {
			denied = append(denied, ev)
		}
	}
	if len(denied) != 1 || denied[0].Outcome != "denied" {
		t.Fatalf("secret.use_denied events for the run: %v", denied)
	}
	var details map[string]any
	json.Unmarshal(denied[0].Details, &details)
	if details["secret"] != "payments/report-key" || details["step"] != "report" || details["procedure"] != "nightly-report" || details["missing"] != false {
		t.Fatalf("secret.use_denied details: %v", details)
	}

	// A new request is refused at once, saying why.
	code, out = d.request(t, "bob", api.RunRequest{Procedure: "nightly-report", Environment: "staging"})
	if e, _ := out["error"].(map[string]any); code != 409 || !strings.Contains(e["message"].(string), "may not use secret payments/report-key") {
		t.Fatalf("a request after the scope narrowed: %d %v", code, out)
	}

	// The allowed case: scoped to the procedure by name, it runs and its
	// step gets the value (redacted from the output).
	if code, out, _ := d.call("PATCH", "/api/v1/secrets/payments/report-key", d.tok["bob"], map[string]any{"scope": map[string]any{"procedures": []string{"nightly-*"}}}); code != 200 {
		t.Fatalf("bob scopes the key to nightly-*: %d %v", code, out)
	}
	code, out = d.request(t, "bob", api.RunRequest{Procedure: "nightly-report", Environment: "staging"})
	if code != 201 {
		t.Fatalf("bob runs nightly-report: %d %v", code, out)
	}
	final = d.waitRun(t, d.tok["bob"], out["id"].(string))
	if text := d.output(t, d.tok["bob"], out["id"].(string)); final["status"] != store.RunSucceeded || !strings.Contains(text, "report ran with the key") {
		t.Fatalf("the run in scope: %v %q", final["status"], text)
	}
}

// TestNewSecretIsUsableByNoProcedure: a secret stored without a scope
// (the web form, an older client) may be used by no procedure until it
// is given one; replacing its value keeps its scope.
func TestNewSecretIsUsableByNoProcedure(t *testing.T) {
	d := newDemoEnv(t, nil)
	code, out, _ := d.call("PUT", "/api/v1/secrets/payments/report-key", d.tok["bob"], map[string]any{"value": "first-value-123"})
	if code != 200 || toJSON(out["scope"]) != `{"procedures":[],"teams":[]}` {
		t.Fatalf("a secret put without a scope: %d %v", code, out)
	}
	code, out, _ = d.call("POST", "/api/v1/versions", d.tok["alice"], api.ProposeRequest{Source: reportProc})
	if code != 400 || !strings.Contains(toJSON(out), "may not use secret payments/report-key") {
		t.Fatalf("proposing a procedure naming an unscoped secret: %d %v", code, out)
	}
	d.putScopedSecret(t, "payments/report-key", "second-value-456", "payments")
	code, out, _ = d.call("PUT", "/api/v1/secrets/payments/report-key", d.tok["bob"], map[string]any{"value": "third-value-789"})
	if code != 200 || toJSON(out["scope"]) != `{"procedures":[],"teams":["payments"]}` || out["scope_updated_by"] != "bob" {
		t.Fatalf("replacing the value changed the scope: %d %v", code, out)
	}
	d.install(t, reportProc)
}
