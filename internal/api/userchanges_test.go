package api_test

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/api"
	"github.com/airlockhq/airlock/internal/demo"
	"github.com/airlockhq/airlock/internal/evidence"
)

// TestOneAdminCannotDefeatFourEyes replays issue 14's third finding
// against the demo over HTTP. On b98c677 bob created bobby in security
// and ops at once, signed in as bobby, and bobby completed a review
// quorum with bob, approved bob's production run and — as a second admin
// bobadmin — bob's policy change; the evidence report showed nothing.
// Now: bob's user changes wait for another admin; once carol is fooled
// into approving them, the accounts still count as bob for every
// approval they give, and each refusal is audited and reported.
func TestOneAdminCannotDefeatFourEyes(t *testing.T) {
	d := newDemoEnv(t, nil)
	day0 := time.Now().UTC().Add(-time.Minute)
	propose := func(who string, req api.CreateUserRequest) string {
		t.Helper()
		code, out, _ := d.call("POST", "/api/v1/users", d.tok[who], req)
		if code != 202 || out["one_time_password"] != nil {
			t.Fatalf("%s proposes %s: %d %v (want 202, and no password for the author)", who, req.Username, code, out)
		}
		return out["change"].(map[string]any)["id"].(string)
	}
	// bob alone: the change waits, his own approval is refused, and no
	// bobby can sign in.
	uc := propose("bob", api.CreateUserRequest{Username: "bobby", Groups: []string{"security", "ops"}})
	code, out, _ := d.call("POST", "/api/v1/user-changes/"+uc+"/approve", d.tok["bob"], api.UserChangeDecisionRequest{})
	if code != 403 || !strings.Contains(errMessage(out), "second admin") {
		t.Fatalf("bob approves his own user change: %d %v", code, out)
	}
	if code, _, _ := d.call("POST", "/api/v1/auth/token", "", api.LoginRequest{Username: "bobby", Password: "anything-at-all"}); code != 401 {
		t.Fatalf("bobby signs in before approval: %d", code)
	}
	// Enabling and group membership are proposals too.
	if code, out, _ := d.call("POST", "/api/v1/groups/admins/members", d.tok["bob"], api.MemberRequest{Username: "erin"}); code != 202 {
		t.Fatalf("bob adds erin to admins: %d %v", code, out)
	}
	if _, me, _ := d.call("GET", "/api/v1/me", d.tok["erin"], nil); strings.Contains(strings.Join(toStrings(me["groups"]), ","), "admins") {
		t.Fatal("erin is an admin before anyone approved it")
	}

	// carol approves (she was told bobby is a new hire): the password
	// goes to her, never to bob.
	bobby := d.approveUser(t, "carol", uc, "bobby")
	ub := propose("bob", api.CreateUserRequest{Username: "bobadmin", Groups: []string{"admins"}})
	bobadmin := d.approveUser(t, "carol", ub, "bobadmin")

	// bobby completes a review quorum with bob: refused.
	code, out, _ = d.call("POST", "/api/v1/versions", d.tok["alice"], api.ProposeRequest{Source: strings.Replace(restartV1, "name: restart-api", "name: restart-api-2", 1)})
	if code != 201 {
		t.Fatalf("alice proposes: %d %v", code, out)
	}
	v := out["version"].(map[string]any)
	review := api.ReviewRequest{Decision: "approve", Digest: v["digest"].(string)}
	if code, out, _ := d.call("POST", "/api/v1/versions/"+v["id"].(string)+"/reviews", d.tok["bob"], review); code != 201 || out["activated"] == true {
		t.Fatalf("bob reviews: %d %v", code, out)
	}
	code, out, _ = d.call("POST", "/api/v1/versions/"+v["id"].(string)+"/reviews", bobby, review)
	if code != 403 || !strings.Contains(errMessage(out), "created by bob") {
		t.Fatalf("bobby completes the quorum with bob: %d %v", code, out)
	}

	// bobby approves bob's production run: refused.
	_, run := d.request(t, "bob", api.RunRequest{Procedure: "restart-service", Environment: "production", Params: map[string]any{"service": "worker"}})
	if run["status"] != "pending_approval" {
		t.Fatalf("bob's production run: %v", run)
	}
	code, out, _ = d.call("POST", "/api/v1/runs/"+run["id"].(string)+"/approve", bobby, api.DecisionRequest{Binding: run["binding"].(string)})
	if code != 403 || !strings.Contains(errMessage(out), "created by bob") {
		t.Fatalf("bobby approves bob's run: %d %v", code, out)
	}

	// bobadmin approves bob's policy change, and bob's next user change:
	// refused.
	_, pol, _ := d.call("POST", "/api/v1/policies", d.tok["bob"], api.ProposePolicyRequest{Text: demo.Policy + "\n// bob's\n", Description: "bob's"})
	code, out, _ = d.call("POST", "/api/v1/policies/"+pol["id"].(string)+"/approve", bobadmin, api.PolicyDecisionRequest{Comment: "ok"})
	if code != 403 || !strings.Contains(errMessage(out), "created by bob") {
		t.Fatalf("bobadmin approves bob's policy: %d %v", code, out)
	}
	ue := propose("bob", api.CreateUserRequest{Username: "bobby3", Groups: []string{"ops"}})
	code, out, _ = d.call("POST", "/api/v1/user-changes/"+ue+"/approve", bobadmin, api.UserChangeDecisionRequest{})
	if code != 403 || !strings.Contains(errMessage(out), "created by bob") {
		t.Fatalf("bobadmin approves bob's user change: %d %v", code, out)
	}
	for path, status := range map[string]string{"/api/v1/runs/" + run["id"].(string): "pending_approval", "/api/v1/policies/" + pol["id"].(string): "proposed",
		"/api/v1/user-changes/" + ue: "pending", "/api/v1/versions/" + v["id"].(string): "proposed"} {
		if _, out, _ := d.call("GET", path, d.tok["carol"], nil); out["status"] != status {
			t.Errorf("%s after the refusals: %v, want %s", path, out["status"], status)
		}
	}

	// The evidence report: no exception (nothing got through), every
	// refusal listed.
	bundle := d.exportBundle(t, "dana", api.EvidenceRequest{From: day0.Format(time.RFC3339), To: time.Now().UTC().Add(time.Minute).Format(time.RFC3339)})
	_, keyResp, _ := d.call("GET", "/api/v1/audit/key", d.tok["dana"], nil)
	res, err := evidence.Verify(bundle, keyResp["key"].(string))
	if err != nil || !res.OK() {
		t.Fatalf("verify: %+v %v", res, err)
	}
	sum := summaryOf(t, bundle)
	attempts := map[string]int{}
	for _, c := range sum.Controls {
		if len(c.Exceptions) != 0 {
			t.Errorf("%s: exceptions %v", c.ID, c.Exceptions)
		}
		for _, a := range c.Attempts {
			if strings.Contains(a.Detail, "created by bob") || strings.Contains(a.Detail, "second admin") {
				attempts[c.ID]++
			}
		}
	}
	for _, id := range []string{"four-eyes-runs", "procedure-review-quorum", "policy-dual-control", "user-dual-control"} {
		if attempts[id] == 0 {
			t.Errorf("%s lists no refused attempt of bob's accounts: %v", id, attempts)
		}
	}
}

// approveUser approves a user change as who, signs the new user in with
// the one-time password, sets a password and returns a token.
func (d *demoEnv) approveUser(t *testing.T, who, change, username string) string {
	t.Helper()
	code, out, _ := d.call("POST", "/api/v1/user-changes/"+change+"/approve", d.tok[who], api.UserChangeDecisionRequest{Comment: "new hire"})
	otp, _ := out["one_time_password"].(string)
	if code != 200 || otp == "" {
		t.Fatalf("%s approves %s: %d %v", who, username, code, out)
	}
	tok := d.token(username, otp)
	if code, out, _ := d.call("POST", "/api/v1/auth/password", tok, api.PasswordRequest{CurrentPassword: otp, NewPassword: username + "-chosen-password"}); code != 204 {
		t.Fatalf("%s sets a password: %d %v", username, code, out)
	}
	return tok
}

func errMessage(out map[string]any) string {
	e, _ := out["error"].(map[string]any)
	m, _ := e["message"].(string)
	return m
}

func toStrings(v any) []string {
	var out []string
	l, _ := v.([]any)
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

func summaryOf(t *testing.T, bundle []byte) evidence.Summary {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(bundle), int64(len(bundle)))
	if err != nil {
		t.Fatal(err)
	}
	var sum evidence.Summary
	for _, f := range zr.File {
		if f.Name == "summary.json" {
			rc, _ := f.Open()
			err = json.NewDecoder(rc).Decode(&sum)
			rc.Close()
		}
	}
	if err != nil || len(sum.Controls) == 0 {
		t.Fatalf("summary.json: %v", err)
	}
	return sum
}
