package web

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// policyProblem is one problem in a policy draft as the policy page
// shows it beside the editor: where (line, column, and that line of the
// draft), what in plain words, and the parser's own words.
type policyProblem struct {
	Line, Column int
	Policy       string // the policy's @id, when known
	Message      string
	Original     string
	Source       string // the draft's line
	Caret        string // spaces up to the column, for a marker under Source
}

var (
	problemRE = regexp.MustCompile(`^(.*?):(\d+):(\d+): (?:policy (\S+): )?(.*)$`)
	// The Cedar parser's words: `"X": exact got Y want Z` and friends.
	exactRE    = regexp.MustCompile(`^"(.*)": exact got (.*?) want (.*)$`)
	primaryRE  = regexp.MustCompile(`^"(.*)": invalid primary$`)
	effectRE   = regexp.MustCompile(`^"(.*)": unexpected effect: (.*)$`)
	actionRE   = regexp.MustCompile("^unrecognized action `(.*)`$")
	unclosedRE = regexp.MustCompile(`literal not terminated`)
)

// policyProblems reads the problems of a refused draft from the
// compiler's message (one "file:line:col: message" a line) and the
// draft itself; nil when the message has no position.
func policyProblems(msg, draft string) []policyProblem {
	lines := strings.Split(draft, "\n")
	var out []policyProblem
	for _, l := range strings.Split(msg, "\n") {
		m := problemRE.FindStringSubmatch(strings.TrimSpace(l))
		if m == nil {
			continue
		}
		line, _ := strconv.Atoi(m[2])
		col, _ := strconv.Atoi(m[3])
		orig := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(m[5]), "parser error: "))
		p := policyProblem{Line: line, Column: col, Policy: m[4], Original: orig, Message: plainPolicyError(orig)}
		if line >= 1 && line <= len(lines) {
			p.Source = strings.TrimRight(lines[line-1], "\r")
			if col >= 1 && col <= len(p.Source)+1 {
				p.Caret = strings.Repeat(" ", col-1) + "^"
			}
		} else if line == len(lines)+1 {
			p.Source = "(the end of the text)"
		}
		out = append(out, p)
	}
	return out
}

// plainPolicyError says a parser message in words; one it does not know
// is returned as it is.
func plainPolicyError(msg string) string {
	token := func(s string) string {
		if s == "" {
			return "the end of the text"
		}
		return "“" + s + "”"
	}
	switch {
	case exactRE.MatchString(msg):
		m := exactRE.FindStringSubmatch(msg)
		got := m[2]
		if got == "" {
			got = m[1]
		}
		s := fmt.Sprintf("expected “%s” here, found %s", m[3], token(got))
		if m[3] == ";" {
			s += ": every policy ends with a semicolon"
		}
		return s
	case primaryRE.MatchString(msg):
		return fmt.Sprintf("expected a value here (a name, an entity, a string or a number), found %s", token(primaryRE.FindStringSubmatch(msg)[1]))
	case effectRE.MatchString(msg):
		return fmt.Sprintf("a policy starts with permit or forbid, not “%s”", effectRE.FindStringSubmatch(msg)[2])
	case actionRE.MatchString(msg):
		return fmt.Sprintf("there is no action %s: the actions are listed under “Ask the policy in force”", actionRE.FindStringSubmatch(msg)[1])
	case unclosedRE.MatchString(msg):
		return "a string is not closed: a double quote (\") is missing"
	case strings.HasPrefix(msg, "unable to find an applicable action"):
		return "no action this policy names applies to the kinds of principal and resource it names"
	}
	return msg
}
