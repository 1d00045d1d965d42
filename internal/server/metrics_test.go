package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/airlockhq/airlock/internal/api"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/testenv"
)

// TestMetricsOfRuns: a staging run that runs at once and a production
// run that waits for bob's approval, made through the API, show on
// /metrics as scraped over HTTP — the runs finished by procedure,
// environment and status, one request-to-start observation each, one
// approval wait (production only), a step duration per recorded step,
// the queue and approvals read from the database, audit appends timed,
// the checkpoint's age, store errors by kind — and the exposition passes
// Prometheus' linter. Counts only: no wall-clock duration is asserted.
func TestMetricsOfRuns(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			d := testenv.DemoServer(t, testenv.UseDriver(t, driver))
			url := d.Serve(t)
			alice, bob := apiToken(t, d, url, "alice"), apiToken(t, d, url, "bob")

			var staging, prod api.RunJSON
			call(t, alice, "POST", url+"/api/v1/runs", api.RunRequest{Procedure: "flush-cache", Environment: "staging",
				Params: map[string]any{"cache": "sessions"}}, &staging)
			call(t, alice, "POST", url+"/api/v1/runs", api.RunRequest{Procedure: "flush-cache", Environment: "production",
				Params: map[string]any{"cache": "sessions"}}, &prod)
			if staging.Status == store.RunPending || prod.Status != store.RunPending {
				t.Fatalf("staging %s, production %s: want staging to run at once and production to wait for approval", staging.Status, prod.Status)
			}
			m := scrape(t, url)
			if got := value(m, "airlock_runs", "status", "pending_approval"); got != 1 {
				t.Fatalf("airlock_runs{status=pending_approval} = %v before the approval, want 1", got)
			}
			call(t, bob, "POST", url+"/api/v1/runs/"+prod.ID+"/approve", api.DecisionRequest{Binding: prod.Binding, Comment: "ok"}, nil)
			steps := 0
			for _, id := range []string{staging.ID, prod.ID} {
				testenv.Eventually(t, "run "+id+" to end", func() bool {
					r, err := d.Store.RunGet(context.Background(), id)
					return err == nil && store.RunFinal(r.Status)
				})
				r, _ := d.Store.RunGet(context.Background(), id)
				if r.Status != store.RunSucceeded {
					t.Fatalf("run %s in %s: %s (%s)", id, r.Environment, r.Status, r.Error)
				}
				ss, err := d.Store.RunStepList(context.Background(), id)
				if err != nil {
					t.Fatal(err)
				}
				steps += len(ss)
			}
			if _, err := d.AuditLog.Checkpoint(context.Background()); err != nil {
				t.Fatal(err)
			}

			m = scrape(t, url)
			for _, c := range []struct {
				metric string
				labels []string
				want   float64
			}{
				{"airlock_runs_finished_total", []string{"procedure", "flush-cache", "environment", "staging", "status", "succeeded"}, 1},
				{"airlock_runs_finished_total", []string{"procedure", "flush-cache", "environment", "production", "status", "succeeded"}, 1},
				{"airlock_run_request_to_start_seconds", []string{"environment", "staging"}, 1},
				{"airlock_run_request_to_start_seconds", []string{"environment", "production"}, 1},
				{"airlock_run_approval_wait_seconds", []string{"environment", "production"}, 1},
				{"airlock_run_step_duration_seconds", []string{"procedure", "flush-cache", "step", "flush"}, float64(steps)},
				{"airlock_runs", []string{"status", "queued"}, 0},
				{"airlock_runs", []string{"status", "pending_approval"}, 0},
				{"airlock_runs", []string{"status", "running"}, 0},
				{"airlock_notify_deliveries", []string{"status", "dead"}, 0},
				{"airlock_audit_unsigned_events", nil, 0},
				{"airlock_store_stats_up", nil, 1},
			} {
				if got := value(m, c.metric, c.labels...); got != c.want {
					t.Errorf("%s%v = %v, want %v", c.metric, c.labels, got, c.want)
				}
			}
			if got := value(m, "airlock_run_approval_wait_seconds", "environment", "staging"); got != -1 {
				t.Errorf("a staging run that needed no approval was observed waiting for one (%v)", got)
			}
			if got := value(m, "airlock_audit_append_duration_seconds"); got < 6 {
				t.Errorf("audit appends timed: %v, want at least the two requests, the approval, the queueing and two starts", got)
			}
			if got := value(m, "airlock_audit_checkpoint_age_seconds"); got < 0 {
				t.Errorf("no checkpoint age after a checkpoint was signed")
			}
			for _, kind := range []string{"retry", "conn_lost", "unavailable", "full", "commit_unknown", "conflict"} {
				if got := value(m, "airlock_store_errors_total", "kind", kind); got < 0 {
					t.Errorf("no airlock_store_errors_total{kind=%q}", kind)
				}
			}
		})
	}
}

// scrape reads /metrics over HTTP, lints the airlock_* families with
// Prometheus' linter, and parses them.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var ours []*dto.MetricFamily
	for name, mf := range mfs {
		if strings.HasPrefix(name, "airlock_") {
			ours = append(ours, mf)
		}
	}
	problems, err := promlint.NewWithMetricFamilies(ours).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	return mfs
}

// value is the sample of metric with the given label pairs (a
// histogram's count), or -1 when there is none.
func value(mfs map[string]*dto.MetricFamily, metric string, labels ...string) float64 {
	mf := mfs[metric]
	if mf == nil {
		return -1
	}
next:
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return -1
}

// apiToken logs in as a demo user and returns an API token.
func apiToken(t *testing.T, d *testenv.Demo, url, user string) string {
	t.Helper()
	var tok api.NewTokenResponse
	call(t, "", "POST", url+"/api/v1/auth/token", api.LoginRequest{Username: user, Password: d.Passwords[user], TokenName: "metrics-test"}, &tok)
	return tok.Token
}

// call sends a JSON request with a bearer token and decodes the answer.
func call(t *testing.T, token, method, url string, in, out any) {
	t.Helper()
	b, _ := json.Marshal(in)
	req, _ := http.NewRequest(method, url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, body)
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatal(fmt.Errorf("%s %s: %w", method, url, err))
		}
	}
}
