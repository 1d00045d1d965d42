package server_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/procedure"
	"github.com/airlockhq/airlock/internal/run"
	"github.com/airlockhq/airlock/internal/testenv"
)

// TestParameterIsNotReadAsAnOption: a parameter passed alone as an exec
// argument is refused when its value begins with '-' (`ls -d
// {{ .params.path }}` with path=--version), naming the field — unless
// the parameter allows it or a "--" comes before it.
func TestParameterIsNotReadAsAnOption(t *testing.T) {
	d := testenv.DemoServer(t)
	ctx := context.Background()
	alice, bob := principal(t, d, "alice"), principal(t, d, "bob")
	for _, c := range []struct{ name, argv, allow string }{
		{"list-plain", `["ls", "-d", "{{ .params.path }}"]`, ""},
		{"list-allowed", `["ls", "-d", "{{ .params.path }}"]`, ", allow_dash: true"},
		{"list-after-dashes", `["ls", "-d", "--", "{{ .params.path }}"]`, ""},
		{"list-embedded", `["ls", "-d", "./{{ .params.path }}"]`, ""},
	} {
		src := fmt.Sprintf("apiVersion: airlock/v1\nkind: Procedure\nname: %s\nowner: payments\nrisk: low\nparameters:\n  - {name: path, type: string%s}\nsteps:\n  - name: list\n    exec: %s\n", c.name, c.allow, c.argv)
		procs, err := procedure.Parse(c.name+".yaml", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		res, err := d.Review.Propose(ctx, alice, procs[0])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.Review.Review(ctx, bob, res.Version.ID, res.Version.Digest, "approve", "ok"); err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{"--version", "-rf"} {
			_, err := d.Runs.Plan(ctx, alice, run.RequestParams{Procedure: c.name, Environment: "staging", Params: map[string]any{"path": v}})
			refused := err != nil
			if want := c.name == "list-plain"; refused != want {
				t.Fatalf("%s with path=%s: refused=%v (%v), want refused=%v", c.name, v, refused, err, want)
			}
			if refused {
				var e *airlock.Error
				if !errors.As(err, &e) || e.Field != "params.path" || !strings.Contains(e.Message, "read it as an option") {
					t.Fatalf("%s with path=%s: %v; want a field error naming params.path", c.name, v, err)
				}
			}
		}
		if _, err := d.Runs.Plan(ctx, alice, run.RequestParams{Procedure: c.name, Environment: "staging", Params: map[string]any{"path": "/tmp"}}); err != nil {
			t.Fatalf("%s with path=/tmp: %v", c.name, err)
		}
	}
}
