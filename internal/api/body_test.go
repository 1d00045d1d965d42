package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/airlockhq/airlock/internal/api"
)

// post sends body as is and returns the status and the error message.
func (e *env) post(path, token, body string) (int, string) {
	e.t.Helper()
	req, _ := http.NewRequest("POST", e.url+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out api.ErrorBody
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out.Error.Message
}

// A request body arrives as sent or not at all: data after the object,
// a body that is not an object, and a lone surrogate escape (which
// encoding/json would turn into U+FFFD) are refused with 400 naming the
// problem, before anything is done with the request.
func TestRequestBodyMustBeOneObjectAsSent(t *testing.T) {
	e := newEnv(t, nil)
	pw := e.user("alice", "dev", "payments")
	login := `{"username":"alice","password":"` + pw + `"}`
	if code, msg := e.post("/api/v1/auth/token", "", login+" \r\n\t"); code != 201 {
		t.Fatalf("a login with trailing whitespace: %d %s", code, msg)
	}
	for _, c := range []struct{ body, want string }{
		{login + `{"username":"mallory"}`, "unexpected data after the JSON value"},
		{login + `x`, "unexpected data after the JSON value"},
		{login + `}`, "unexpected data after the JSON value"},
		{`null`, "expected a JSON object, not null"},
		{" null\n", "expected a JSON object, not null"},
		{``, "request body is empty: expected a JSON object"},
		{" \n", "request body is empty: expected a JSON object"},
		{`[` + login + `]`, "expected a JSON object, not an array"},
		{`{"username":"alice\ud800","password":"x"}`, `\ud800 at byte 18 is half of a UTF-16 surrogate pair`},
		{`{"username":"alice","password":"\udfff"}`, `\udfff at byte 32 is half of a UTF-16 surrogate pair`},
	} {
		code, msg := e.post("/api/v1/auth/token", "", c.body)
		if code != 400 || !strings.Contains(msg, c.want) {
			t.Errorf("%q: %d %q, want 400 and %q", c.body, code, msg, c.want)
		}
	}
	// An authenticated endpoint refuses the same, and stores nothing.
	alice := e.token("alice", pw)
	src, _ := json.Marshal(api.ProposeRequest{Source: restartV1})
	for _, body := range []string{"null", string(src) + string(src), strings.Replace(string(src), "restart-api", `restart-api\ud83d`, 1)} {
		if code, msg := e.post("/api/v1/versions", alice, body); code != 400 {
			t.Errorf("propose %.40q: %d %s", body, code, msg)
		}
	}
	_, list, _ := e.call("GET", "/api/v1/procedures", alice, nil)
	if n := len(list["items"].([]any)); n != 0 {
		t.Fatalf("refused proposals left %d procedures", n)
	}
}

// An empty procedure definition is a validation error at line 1, not a
// request to propose nothing.
func TestProposeEmptyDefinition(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.token("alice", e.user("alice", "dev", "payments"))
	for _, src := range []string{"", "# to do\n", "---\n"} {
		code, out, _ := e.call("POST", "/api/v1/versions", alice, api.ProposeRequest{Source: src, File: "ops/new.yaml"})
		er, _ := out["error"].(map[string]any)
		if code != 400 || er["field"] != "source" || er["message"] != "ops/new.yaml:1:1: the file is empty: expected a procedure" {
			t.Errorf("%q: %d %v", src, code, out)
		}
	}
}
