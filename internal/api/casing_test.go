package api_test

import (
	"encoding/json"
	"regexp"
	"sort"
	"testing"

	"github.com/airlockhq/airlock/internal/api"
)

// TestEveryJSONFieldIsSnakeCase walks every schema of the OpenAPI
// document — request and response bodies, webhook payloads — and
// fails on any property not in snake_case (RunID, ExitCode, ActorID
// once leaked from Go types).
func TestEveryJSONFieldIsSnakeCase(t *testing.T) {
	b, err := api.OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Components struct {
			Schemas map[string]any `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	snake := regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
	var bad []string
	checked := 0
	var walk func(where string, v any)
	walk = func(where string, v any) {
		switch x := v.(type) {
		case map[string]any:
			if props, ok := x["properties"].(map[string]any); ok {
				for name, p := range props {
					checked++
					if !snake.MatchString(name) {
						bad = append(bad, where+"."+name)
					}
					walk(where+"."+name, p)
				}
			}
			for k, c := range x {
				if k != "properties" {
					walk(where, c)
				}
			}
		case []any:
			for _, c := range x {
				walk(where, c)
			}
		}
	}
	for name, s := range doc.Components.Schemas {
		walk(name, s)
	}
	if checked < 200 {
		t.Fatalf("only %d properties in %d schemas: the walk found too little to check", checked, len(doc.Components.Schemas))
	}
	if _, ok := doc.Components.Schemas["AuditEventJSON"]; !ok {
		t.Fatal("no AuditEventJSON schema: the audit events' type is not in the document")
	}
	sort.Strings(bad)
	for _, b := range bad {
		t.Errorf("not snake_case: %s", b)
	}
}
