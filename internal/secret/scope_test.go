package secret_test

import (
	"slices"
	"testing"

	"github.com/airlockhq/airlock/internal/secret"
)

func TestScopePermits(t *testing.T) {
	sc := secret.Scope{Teams: []string{"payments"}, Procedures: []string{"db-*", "send-report"}}
	for _, c := range []struct {
		procedure, owner string
		want             bool
	}{
		{"restart-api", "payments", true},
		{"restart-api", "growth", false},
		{"db-report", "growth", true},
		{"db-", "growth", true},
		{"dbx", "growth", false},
		{"send-report", "growth", true},
		{"send-report-2", "growth", false},
		{"x", "", false},
	} {
		if got := sc.Permits(c.procedure, c.owner); got != c.want {
			t.Errorf("%s (team %s): %v, want %v", c.procedure, c.owner, got, c.want)
		}
	}
	if (secret.Scope{}).Permits("anything", "payments") {
		t.Error("the empty scope permits a procedure")
	}
}

func TestScopeNormalize(t *testing.T) {
	got, err := secret.Scope{Teams: []string{"b", "a", "b"}, Procedures: []string{"z", "db-*", "z"}}.Normalize()
	if err != nil || !slices.Equal(got.Teams, []string{"a", "b"}) || !slices.Equal(got.Procedures, []string{"db-*", "z"}) {
		t.Fatalf("%+v %v", got, err)
	}
	for _, c := range []struct {
		sc    secret.Scope
		field string
	}{
		{secret.Scope{Procedures: []string{"*"}}, "scope.procedures[0]"},
		{secret.Scope{Procedures: []string{"ok", "Bad Name"}}, "scope.procedures[1]"},
		{secret.Scope{Procedures: []string{"a*b"}}, "scope.procedures[0]"},
		{secret.Scope{Teams: []string{"payments", "../x"}}, "scope.teams[1]"},
	} {
		_, err := c.sc.Normalize()
		se, ok := err.(*secret.ScopeError)
		if !ok || se.Field != c.field {
			t.Errorf("%+v: %v, want an error at %s", c.sc, err, c.field)
		}
	}
}
