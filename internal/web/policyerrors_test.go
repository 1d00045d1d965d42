package web

import (
	"strings"
	"testing"
)

// TestPolicyProblems: the compiler's positions and the Cedar parser's
// common messages become a line, a column, the draft's line and words.
func TestPolicyProblems(t *testing.T) {
	draft := "@id(\"a\")\npermit (principal action, resource);\n"
	for _, c := range []struct {
		msg, want string
		line, col int
	}{
		{`what-if policy:3:1:  "": exact got  want ;`, "expected “;” here, found the end of the text: every policy ends with a semicolon", 3, 1},
		{`what-if policy:2:25:  ",": exact got action want ,`, "expected “,” here, found “action”", 2, 25},
		{`what-if policy:2:63:  ";": invalid primary`, "expected a value here (a name, an entity, a string or a number), found “;”", 2, 63},
		{`what-if policy:2:9:  "(": unexpected effect: permitt`, "a policy starts with permit or forbid, not “permitt”", 2, 9},
		{`what-if policy:2:45: parser error: : literal not terminated`, "a string is not closed: a double quote (\") is missing", 2, 45},
		{"what-if policy:3:1: policy b: unrecognized action `Action::\"nope\"`", "there is no action Action::\"nope\": the actions are listed under “Ask the policy in force”", 3, 1},
		{`text:1:1: needs an @id("…") annotation`, `needs an @id("…") annotation`, 1, 1},
	} {
		ps := policyProblems(c.msg, draft)
		if len(ps) != 1 {
			t.Fatalf("%q: %d problems", c.msg, len(ps))
		}
		p := ps[0]
		if p.Message != c.want || p.Line != c.line || p.Column != c.col {
			t.Errorf("%q:\n got %d:%d %q\nwant %d:%d %q", c.msg, p.Line, p.Column, p.Message, c.line, c.col, c.want)
		}
		if p.Original == "" || strings.Contains(p.Original, "what-if policy") {
			t.Errorf("%q: original %q", c.msg, p.Original)
		}
	}
	p := policyProblems(`x:2:19: "action": exact got action want ,`, draft)[0]
	if p.Source != "permit (principal action, resource);" || p.Caret != strings.Repeat(" ", 18)+"^" {
		t.Errorf("source %q caret %q", p.Source, p.Caret)
	}
	if ps := policyProblems("no position here", draft); ps != nil {
		t.Errorf("a message without a position: %+v", ps)
	}
}
