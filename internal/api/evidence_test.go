package api_test

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/api"
	"github.com/airlockhq/airlock/internal/config"
	"github.com/airlockhq/airlock/internal/demo"
	"github.com/airlockhq/airlock/internal/evidence"
)

func (d *demoEnv) exportBundle(t *testing.T, user string, req api.EvidenceRequest) []byte {
	t.Helper()
	b, _ := json.Marshal(req)
	hr, _ := http.NewRequest("POST", d.url+"/api/v1/evidence", bytes.NewReader(b))
	hr.Header.Set("Authorization", "Bearer "+d.tok[user])
	hr.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/zip" {
		t.Fatalf("export: %d %s", resp.StatusCode, body)
	}
	return body
}

// TestEvidenceBundle scripts a day of activity on the demo, exports the
// day's bundle as dana, verifies it offline, checks its summary against
// the hand-written testdata/evidence-day.txt, and flips a byte in every
// file to see verification name it.
func TestEvidenceBundle(t *testing.T) {
	d := newDemoEnv(t, nil)
	day0 := time.Now().UTC().Add(-time.Minute)
	// Runs: alice in staging; alice's production request denied; erin's
	// production restart approved; bob tries to approve his own.
	_, r1 := d.request(t, "alice", api.RunRequest{Procedure: "flush-cache", Environment: "staging", Params: map[string]any{"cache": "sessions"}})
	d.waitRun(t, d.tok["alice"], r1["id"].(string))
	_, r2 := d.request(t, "alice", api.RunRequest{Procedure: "flush-cache", Environment: "production", Params: map[string]any{"cache": "catalog"}})
	d.call("POST", "/api/v1/runs/"+r2["id"].(string)+"/deny", d.tok["bob"], api.DecisionRequest{Comment: "not during the sale"})
	_, r3 := d.request(t, "erin", api.RunRequest{Procedure: "restart-service", Environment: "production", Params: map[string]any{"service": "api"}})
	d.call("POST", "/api/v1/runs/"+r3["id"].(string)+"/approve", d.tok["bob"], api.DecisionRequest{Binding: r3["binding"].(string), Comment: "ok"})
	d.waitRun(t, d.tok["erin"], r3["id"].(string))
	_, r4 := d.request(t, "bob", api.RunRequest{Procedure: "rotate-logs", Environment: "staging"})
	d.waitRun(t, d.tok["bob"], r4["id"].(string))
	_, r5 := d.request(t, "bob", api.RunRequest{Procedure: "restart-service", Environment: "production", Params: map[string]any{"service": "worker"}})
	d.call("POST", "/api/v1/runs/"+r5["id"].(string)+"/approve", d.tok["bob"], api.DecisionRequest{Binding: r5["binding"].(string)})
	// carol may not run anything.
	d.request(t, "carol", api.RunRequest{Procedure: "rotate-logs", Environment: "staging"})
	// A policy change under dual control, with a self-approval attempt.
	_, pol, _ := d.call("POST", "/api/v1/policies", d.tok["bob"], api.ProposePolicyRequest{Text: demo.Policy + "\n// reviewed 2026-11\n", Description: "note the review"})
	d.call("POST", "/api/v1/policies/"+pol["id"].(string)+"/approve", d.tok["bob"], api.PolicyDecisionRequest{})
	if code, out, _ := d.call("POST", "/api/v1/policies/"+pol["id"].(string)+"/approve", d.tok["carol"], api.PolicyDecisionRequest{Comment: "ok"}); code != 200 {
		t.Fatalf("carol approves the policy: %d %v", code, out)
	}
	// A new user under dual control, with a self-approval attempt.
	_, uc, _ := d.call("POST", "/api/v1/users", d.tok["bob"], api.CreateUserRequest{Username: "frank", Groups: []string{"qa"}})
	ucID := uc["change"].(map[string]any)["id"].(string)
	d.call("POST", "/api/v1/user-changes/"+ucID+"/approve", d.tok["bob"], api.UserChangeDecisionRequest{})
	if code, out, _ := d.call("POST", "/api/v1/user-changes/"+ucID+"/approve", d.tok["carol"], api.UserChangeDecisionRequest{}); code != 200 {
		t.Fatalf("carol approves frank: %d %v", code, out)
	}

	// Only auditors export.
	if code, _, _ := d.call("POST", "/api/v1/evidence", d.tok["alice"], api.EvidenceRequest{From: "2026-01-01", To: "2030-01-01"}); code != 403 {
		t.Fatalf("alice exports: %d", code)
	}
	bundle := d.exportBundle(t, "dana", api.EvidenceRequest{From: day0.Format(time.RFC3339), To: time.Now().UTC().Add(time.Minute).Format(time.RFC3339)})
	_, keyResp, _ := d.call("GET", "/api/v1/audit/key", d.tok["dana"], nil)
	key := keyResp["key"].(string)
	res, err := evidence.Verify(bundle, key)
	if err != nil || !res.OK() || res.Runs != 5 || res.Events < 20 {
		t.Fatalf("verify: %+v %v", res, err)
	}

	// The summary against the hand-written expectation.
	zr, _ := zip.NewReader(bytes.NewReader(bundle), int64(len(bundle)))
	files := map[string][]byte{}
	for _, f := range zr.File {
		rc, _ := f.Open()
		files[f.Name], _ = io.ReadAll(rc)
		rc.Close()
	}
	var sum evidence.Summary
	json.Unmarshal(files["summary.json"], &sum)
	var got []string
	for _, c := range sum.Controls {
		if c.ID != "procedure-review-quorum" && c.ID != "audit-log-integrity" {
			got = append(got, fmt.Sprintf("%s: checked %d", c.ID, c.Checked))
		}
		got = append(got, fmt.Sprintf("%s: exceptions %d", c.ID, len(c.Exceptions)))
		for _, e := range c.Exceptions {
			got = append(got, fmt.Sprintf("%s: exception: %s", c.ID, e.Detail))
		}
		var attempts []string
		for _, a := range c.Attempts {
			attempts = append(attempts, fmt.Sprintf("%s: attempt: %s", c.ID, a.Detail))
		}
		sort.Strings(attempts)
		got = append(got, attempts...)
	}
	wantFile, _ := os.ReadFile("testdata/evidence-day.txt")
	var want []string
	for _, l := range strings.Split(string(wantFile), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			want = append(want, l)
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("summary:\n%s\n\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !bytes.Contains(files["report.html"], []byte("SOC 2 CC8.1")) || !bytes.Contains(files["report.html"], []byte("you requested this run; someone else must approve it")) {
		t.Fatal("report lacks the control mapping or the refused attempt")
	}

	// Flip one byte in each file: verification fails naming that file.
	for name := range files {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		for _, f := range zr.File {
			b := append([]byte(nil), files[f.Name]...)
			if f.Name == name && len(b) > 0 {
				b[len(b)/2] ^= 0x01
			}
			w, _ := zw.Create(f.Name)
			w.Write(b)
		}
		zw.Close()
		res, err := evidence.Verify(buf.Bytes(), key)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		named := false
		for _, p := range res.Problems {
			named = named || p.File == name || (name == "manifest.json" && p.File == "manifest.json")
		}
		if res.OK() || !named {
			t.Errorf("flipping a byte of %s: %+v", name, res.Problems)
		}
	}
	// Another key does not verify it.
	if res, _ := evidence.Verify(bundle, strings.Replace(key, key[len(key)-8:], "AAAAAAAA", 1)); res != nil && res.OK() {
		t.Fatal("verified with the wrong key")
	}
}

// TestOutputRetention prunes output after its retention; the run keeps
// its digest, the pruning is audited, and a bundle still verifies.
func TestOutputRetention(t *testing.T) {
	d := newDemoEnv(t, func(c *config.Config) {
		c.Runs.OutputRetention = 200 * time.Millisecond
		c.Runs.HeartbeatInterval = 100 * time.Millisecond
		c.Runs.HeartbeatTimeout = 2 * time.Second
	})
	from := time.Now().UTC().Add(-time.Minute)
	_, r := d.request(t, "alice", api.RunRequest{Procedure: "flush-cache", Environment: "staging", Params: map[string]any{"cache": "sessions"}})
	final := d.waitRun(t, d.tok["alice"], r["id"].(string))
	deadline := time.Now().Add(10 * time.Second)
	for d.output(t, d.tok["alice"], r["id"].(string)) != "" {
		if time.Now().After(deadline) {
			t.Fatal("waited 10s for the run's output to be pruned (retention 200ms)")
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, again, _ := d.call("GET", "/api/v1/runs/"+r["id"].(string), d.tok["alice"], nil)
	if again["output_digest"] != final["output_digest"] || again["output_bytes"] != final["output_bytes"] {
		t.Fatalf("pruning lost the digest: %v", again)
	}
	_, evs, _ := d.call("GET", "/api/v1/audit/events?type=run.output_prune", d.tok["dana"], nil)
	if len(evs["items"].([]any)) == 0 {
		t.Fatal("pruning not audited")
	}
	bundle := d.exportBundle(t, "dana", api.EvidenceRequest{From: from.Format(time.RFC3339), To: time.Now().UTC().Add(time.Minute).Format(time.RFC3339)})
	_, keyResp, _ := d.call("GET", "/api/v1/audit/key", d.tok["dana"], nil)
	if res, err := evidence.Verify(bundle, keyResp["key"].(string)); err != nil || !res.OK() {
		t.Fatalf("bundle with pruned output: %+v %v", res, err)
	}
}

// TestEvidenceForOneRun exports one run's bundle over the API: it
// verifies offline and names the run; a run with a period is refused
// naming the field, and a run the caller may not see is not found.
func TestEvidenceForOneRun(t *testing.T) {
	d := newDemoEnv(t, nil)
	_, r1 := d.request(t, "alice", api.RunRequest{Procedure: "flush-cache", Environment: "staging", Params: map[string]any{"cache": "sessions"}})
	id := r1["id"].(string)
	d.waitRun(t, d.tok["alice"], id)
	bundle := d.exportBundle(t, "dana", api.EvidenceRequest{Run: id})
	_, keyResp, _ := d.call("GET", "/api/v1/audit/key", d.tok["dana"], nil)
	res, err := evidence.Verify(bundle, keyResp["key"].(string))
	if err != nil || !res.OK() || res.Runs != 1 {
		t.Fatalf("verify: %+v %v", res, err)
	}
	zr, _ := zip.NewReader(bytes.NewReader(bundle), int64(len(bundle)))
	named := false
	for _, f := range zr.File {
		if f.Name == "manifest.json" {
			rc, _ := f.Open()
			b, _ := io.ReadAll(rc)
			rc.Close()
			named = strings.Contains(string(b), `"run": "`+id+`"`)
		}
	}
	if !named {
		t.Error("the manifest does not name the run")
	}
	if code, out, _ := d.call("POST", "/api/v1/evidence", d.tok["dana"], api.EvidenceRequest{Run: id, From: "2026-01-01"}); code != 400 || out["error"].(map[string]any)["field"] != "run" {
		t.Fatalf("run with a period: %d %v", code, out)
	}
	if code, _, _ := d.call("POST", "/api/v1/evidence", d.tok["dana"], api.EvidenceRequest{Run: "run_doesnotexist"}); code != 404 {
		t.Fatalf("unknown run: %d", code)
	}
}
