package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/airlockhq/airlock/internal/api"
	"github.com/airlockhq/airlock/internal/testenv"
)

// TestOpenAPIDescribesWhatIsServed checks the generated document against
// the route table (every route, its parameters, every reference
// resolving) and, more to the point, validates real responses of a demo
// server against the response schemas the document gives for them: a
// schema that drifted from what a handler writes fails here.
func TestOpenAPIDescribesWhatIsServed(t *testing.T) {
	b, err := api.OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	paths := doc["paths"].(map[string]any)
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	for _, rt := range api.Routes() {
		p := strings.ReplaceAll(rt.Path, "...}", "}")
		op, ok := paths[p].(map[string]any)[strings.ToLower(rt.Method)].(map[string]any)
		if !ok {
			t.Errorf("%s %s is not in the document", rt.Method, rt.Path)
			continue
		}
		if op["summary"] != rt.Summary {
			t.Errorf("%s %s: summary %q", rt.Method, p, op["summary"])
		}
		if strings.Count(p, "{") != countParams(op, "path") {
			t.Errorf("%s %s: path parameters do not match", rt.Method, p)
		}
	}
	for _, ref := range refs.FindAllStringSubmatch(string(b), -1) {
		if schemas[ref[1]] == nil {
			t.Errorf("reference to a missing schema %q", ref[1])
		}
	}

	c := jsonschema.NewCompiler()
	res, _ := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err := c.AddResource("airlock.json", res); err != nil {
		t.Fatal(err)
	}
	schemaFor := func(path, method string, code int) *jsonschema.Schema {
		t.Helper()
		op := paths[path].(map[string]any)[method].(map[string]any)
		resp := op["responses"].(map[string]any)[fmt.Sprint(code)].(map[string]any)
		ref := resp["content"].(map[string]any)["application/json"].(map[string]any)["schema"].(map[string]any)["$ref"].(string)
		s, err := c.Compile("airlock.json" + ref)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		return s
	}

	d := testenv.DemoServer(t)
	url := d.Serve(t)
	token := func(user string) string {
		body, _ := json.Marshal(api.LoginRequest{Username: user, Password: d.Passwords[user]})
		resp, err := client.Post(url+"/api/v1/auth/token", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct{ Token string }
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return out.Token
	}
	call := func(tok, method, path string, body any) (int, []byte) {
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, url+path, rd)
		req.Header.Set("Authorization", "Bearer "+tok)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, raw
	}
	check := func(tok, method, path, route string, body any, want int) []byte {
		t.Helper()
		code, raw := call(tok, method, path, body)
		if code != want {
			t.Fatalf("%s %s: %d %s", method, path, code, raw)
		}
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		if err := schemaFor(route, strings.ToLower(method), want).Validate(v); err != nil {
			t.Errorf("%s %s does not match its schema: %v\n%.600s", method, path, err, raw)
		}
		return raw
	}
	alice, bob := token("alice"), token("bob")
	raw := check(alice, "POST", "/api/v1/runs", "/api/v1/runs", api.RunRequest{Procedure: "flush-cache", Environment: "staging",
		Params: map[string]any{"cache": "sessions"}}, http.StatusCreated)
	var run struct{ ID string }
	_ = json.Unmarshal(raw, &run)
	for _, g := range []struct{ path, route string }{
		{"/api/v1/me", "/api/v1/me"},
		{"/api/v1/tokens", "/api/v1/tokens"},
		{"/api/v1/users", "/api/v1/users"},
		{"/api/v1/procedures", "/api/v1/procedures"},
		{"/api/v1/procedures/toggle-feature-flag", "/api/v1/procedures/{name}"},
		{"/api/v1/procedures/toggle-feature-flag/versions", "/api/v1/procedures/{name}/versions"},
		{"/api/v1/versions", "/api/v1/versions"},
		{"/api/v1/policies", "/api/v1/policies"},
		{"/api/v1/policy/schema", "/api/v1/policy/schema"},
		{"/api/v1/policy/access-review", "/api/v1/policy/access-review"},
		{"/api/v1/runs", "/api/v1/runs"},
		{"/api/v1/runs/" + run.ID, "/api/v1/runs/{id}"},
		{"/api/v1/runs/" + run.ID + "/output", "/api/v1/runs/{id}/output"},
		{"/api/v1/runs/" + run.ID + "/events", "/api/v1/runs/{id}/events"},
		{"/api/v1/nodes", "/api/v1/nodes"},
		{"/api/v1/secrets", "/api/v1/secrets"},
		{"/api/v1/audit/checkpoint", "/api/v1/audit/checkpoint"},
		{"/api/v1/audit/events?limit=20", "/api/v1/audit/events"},
		{"/api/v1/audit/proof/inclusion?index=0", "/api/v1/audit/proof/inclusion"},
	} {
		check(bob, "GET", g.path, g.route, nil, http.StatusOK)
	}
}

var refs = regexp.MustCompile(`"#/components/schemas/([^"]+)"`)

func countParams(op map[string]any, in string) int {
	n := 0
	ps, _ := op["parameters"].([]any)
	for _, p := range ps {
		if p.(map[string]any)["in"] == in {
			n++
		}
	}
	return n
}
