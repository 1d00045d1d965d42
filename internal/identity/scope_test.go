package identity_test

import (
	"strings"
	"testing"

	"github.com/airlockhq/airlock/internal/identity"
)

func TestParseScope(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string // error substring; empty: valid
	}{
		{"propose", ""}, {"run:flush-cache@staging", ""}, {"run:payments-*", ""}, {"view:*", ""}, {"readAudit", ""},
		{"deploy", "not an action"}, {"run:Flush", "expected ACTION"}, {"readAudit:x", "not about a procedure"},
		{"run:a@", "expected ACTION"}, {"run:a b", "expected ACTION"}, {"", "expected ACTION"},
	} {
		_, err := identity.ParseScope([]string{c.in})
		if (err == nil) != (c.want == "") || err != nil && !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.in, err, c.want)
		}
	}
	es, _ := identity.ParseScope([]string{"run:payments-*@staging", "propose"})
	for _, c := range []struct {
		action, proc, env string
		want              bool
	}{
		{"run", "payments-flush", "staging", true}, {"run", "payments-flush", "production", false}, {"run", "growth-x", "staging", false},
		{"viewRun", "payments-flush", "staging", true}, {"view", "anything", "", true}, {"propose", "anything", "", true},
		{"approveRun", "payments-flush", "staging", false}, {"readAudit", "", "", false},
	} {
		got := false
		for _, e := range es {
			got = got || e.Permits(c.action, c.proc, c.env)
		}
		if got != c.want {
			t.Errorf("%s %s@%s: %v, want %v", c.action, c.proc, c.env, got, c.want)
		}
	}
}
