package review

import (
	"strings"
	"testing"
)

func TestQuorum(t *testing.T) {
	q := DefaultQuorum()
	q["two-ops"] = []string{"ops", "ops"}
	bob := Approver{UserID: "bob", Groups: []string{"ops"}}
	carol := Approver{UserID: "carol", Groups: []string{"security"}}
	both := Approver{UserID: "olga", Groups: []string{"ops", "security"}}
	dana := Approver{UserID: "dana", Groups: []string{"compliance"}}
	cases := []struct {
		risk    string
		ap      []Approver
		met     bool
		missing string
	}{
		{"low", []Approver{bob}, true, ""},
		{"low", []Approver{carol}, false, "ops"},
		{"medium", []Approver{bob}, false, "security"},
		{"medium", []Approver{bob, carol}, true, ""},
		{"medium", []Approver{both}, false, "security"},          // a person counts once
		{"medium", []Approver{both, both}, false, "security"},    // twice is still once
		{"medium", []Approver{both, bob}, true, ""},              // olga fills security, bob ops
		{"medium", []Approver{bob, both}, true, ""},              // in either order
		{"high", []Approver{both, carol, dana}, true, ""},        // olga must take ops
		{"high", []Approver{both, dana}, false, "security"},      //
		{"two-ops", []Approver{bob, bob}, false, "ops"},          // one person, two slots
		{"two-ops", []Approver{bob, both}, true, ""},             //
		{"critical", []Approver{bob, carol, dana}, false, "(no"}, // unknown risk never passes
	}
	for _, c := range cases {
		met, missing := q.Evaluate(c.risk, c.ap)
		if met != c.met || !strings.HasPrefix(strings.Join(missing, ","), c.missing) {
			t.Errorf("%s %v: met %v missing %v; want %v %q", c.risk, c.ap, met, missing, c.met, c.missing)
		}
	}
	if !q.Eligible("medium", []string{"security"}) || q.Eligible("low", []string{"security"}) {
		t.Fatal("eligibility")
	}
}
