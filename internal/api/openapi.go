package api

import (
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/invopop/jsonschema"
)

// OpenAPI returns the API's OpenAPI 3.1 document, made from the route
// table: every route with its summary, path and query parameters, the
// policy action that guards it (x-airlock-action), its request and
// response bodies as JSON Schema (reflected from the Go types the
// handlers read and write), and the error body every route can answer
// with.
func OpenAPI() ([]byte, error) {
	r := &jsonschema.Reflector{Anonymous: true, AllowAdditionalProperties: true, Namer: schemaName}
	defs := map[string]*jsonschema.Schema{}
	ref := func(v any) *jsonschema.Schema {
		s := r.Reflect(v)
		for name, d := range s.Definitions {
			defs[name] = d
		}
		return &jsonschema.Schema{Ref: s.Ref}
	}
	errResp := map[string]any{"description": "An error: its kind (code), message, the field it is about, and the request ID",
		"content": map[string]any{"application/json": map[string]any{"schema": ref(ErrorBody{})}}}
	paths := map[string]map[string]any{}
	for _, rt := range Routes() {
		op := map[string]any{"summary": rt.Summary, "operationId": operationID(rt), "tags": []string{tag(rt.Path)}}
		if rt.Action != "" {
			op["x-airlock-action"] = rt.Action
		}
		if rt.Public {
			op["security"] = []any{}
		}
		var params []map[string]any
		for _, m := range pathParam.FindAllStringSubmatch(rt.Path, -1) {
			params = append(params, map[string]any{"name": strings.TrimSuffix(m[1], "..."), "in": "path", "required": true, "schema": map[string]string{"type": "string"}})
		}
		for _, q := range rt.Query {
			params = append(params, map[string]any{"name": q, "in": "query", "schema": map[string]string{"type": "string"}})
		}
		if params != nil {
			op["parameters"] = params
		}
		if rt.In != nil {
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{"schema": ref(rt.In)}}}
		}
		code := rt.Code
		if code == 0 {
			code = http.StatusNoContent
			if rt.Out != nil || rt.Produces != "" {
				code = http.StatusOK
			}
		}
		ok := map[string]any{"description": http.StatusText(code)}
		content := map[string]any{}
		if rt.Out != nil {
			content["application/json"] = map[string]any{"schema": ref(rt.Out)}
		}
		if rt.Produces != "" {
			content[rt.Produces] = map[string]any{"schema": map[string]string{"type": "string"}}
		}
		if len(content) > 0 {
			ok["content"] = content
		}
		op["responses"] = map[string]any{strconv.Itoa(code): ok, "default": errResp}
		path := strings.ReplaceAll(rt.Path, "...}", "}")
		if paths[path] == nil {
			paths[path] = map[string]any{}
		}
		paths[path][strings.ToLower(rt.Method)] = op
	}
	webhooks := map[string]any{}
	for kind, payload := range webhookKinds() {
		webhooks["notification."+kind] = map[string]any{"post": map[string]any{
			"summary":     "A " + kind + " notification, signed per Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature)",
			"requestBody": map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{"schema": ref(payload)}}},
			"responses":   map[string]any{"2XX": map[string]any{"description": "Received; any other answer is retried (408, 429, 5xx) or a dead letter"}},
		}}
	}
	doc := map[string]any{
		"openapi":  "3.1.0",
		"webhooks": webhooks,
		"info": map[string]any{"title": "Airlock API", "version": "v1",
			"description": "Self-service operations with reviewed procedures, policy, approvals and a tamper-evident audit log. " +
				"Authenticate with an API token (Authorization: Bearer) or a browser session (cookie plus the X-CSRF-Token header on state changes)."},
		"paths": paths,
		"components": map[string]any{
			"schemas": defs,
			"securitySchemes": map[string]any{
				"token":   map[string]any{"type": "http", "scheme": "bearer"},
				"session": map[string]any{"type": "apiKey", "in": "cookie", "name": "airlock_session"},
			},
		},
		"security": []any{map[string]any{"token": []string{}}, map[string]any{"session": []string{}}},
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	// The reflector refers to definitions as JSON Schema does; OpenAPI
	// keeps them under components.
	return []byte(strings.ReplaceAll(string(b), `"#/$defs/`, `"#/components/schemas/`)), nil
}

var (
	pathParam = regexp.MustCompile(`\{([a-z_.]+)\}`)
	// pkgPath matches a package path before a type name ("*github.com/…/store.").
	pkgPath = regexp.MustCompile(`\*?[A-Za-z0-9_.\-/]+\.`)
)

// schemaName names a component schema: the type name, with the type
// arguments of a generic type spelled into it (ListResponse_RunJSON).
func schemaName(t reflect.Type) string {
	name := pkgPath.ReplaceAllString(t.Name(), "")
	return strings.NewReplacer("[", "_", "]", "", ",", "_", " ", "").Replace(name)
}

// operationID is method and path in camel case: "GET /api/v1/runs/{id}"
// becomes getRunsId.
func operationID(rt Route) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(rt.Method))
	for _, part := range strings.FieldsFunc(strings.TrimPrefix(rt.Path, "/api/v1"), func(r rune) bool {
		return r == '/' || r == '{' || r == '}' || r == '-' || r == '.' || r == '_'
	}) {
		b.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	return b.String()
}

// tag groups operations by the first segment after /api/v1.
func tag(path string) string {
	parts := strings.Split(strings.TrimPrefix(path, "/api/v1/"), "/")
	if strings.HasPrefix(path, "/auth/oidc") {
		return "auth"
	}
	return parts[0]
}

var openapiDoc struct {
	once sync.Once
	b    []byte
	err  error
}

func (h *Handler) openapi(w http.ResponseWriter, r *http.Request) {
	openapiDoc.once.Do(func() { openapiDoc.b, openapiDoc.err = OpenAPI() })
	b, err := openapiDoc.b, openapiDoc.err
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}
