package identity

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// A token's scope limits it, beyond what policy allows its owner, to
// some actions, and within them to some procedures and environments.
// Each entry is ACTION, ACTION:PROCEDURE or ACTION:PROCEDURE@ENVIRONMENT;
// PROCEDURE may end with '*' to match a prefix. A token whose scope lets
// it act on a procedure may also see that procedure (view), and one that
// may run or request it may see its runs there (viewRun): nothing can be
// done to what cannot be seen. An empty scope limits nothing.

// ScopeActions are the actions a scope may name: the policy's.
var ScopeActions = []string{"view", "run", "request", "approveRun", "cancelRun", "viewRun", "propose", "review", "retire",
	"readAudit", "exportEvidence", "managePolicy", "manageNodes", "manageSecrets", "manageUsers", "try"}

// systemActions act on no procedure: a scope names them alone.
var systemActions = []string{"readAudit", "exportEvidence", "managePolicy", "manageNodes", "manageSecrets", "manageUsers"}

var scopeRE = regexp.MustCompile(`^([A-Za-z]+)(?::([a-z0-9][a-z0-9-]*\*?|\*)(?:@([a-z0-9][a-z0-9_-]*))?)?$`)

// ScopeEntry is one parsed entry.
type ScopeEntry struct {
	Action, Procedure, Environment string
}

// ParseScope checks a scope's entries and returns them parsed; the
// error names the entry and what was expected.
func ParseScope(scope []string) ([]ScopeEntry, error) {
	if len(scope) > 50 {
		return nil, fmt.Errorf("at most 50 entries")
	}
	var out []ScopeEntry
	for _, s := range scope {
		m := scopeRE.FindStringSubmatch(strings.TrimSpace(s))
		switch {
		case m == nil:
			return nil, fmt.Errorf("%q: expected ACTION, ACTION:PROCEDURE or ACTION:PROCEDURE@ENVIRONMENT", s)
		case !slices.Contains(ScopeActions, m[1]):
			return nil, fmt.Errorf("%q: %q is not an action (expected one of %s)", s, m[1], strings.Join(ScopeActions, ", "))
		case m[2] != "" && slices.Contains(systemActions, m[1]):
			return nil, fmt.Errorf("%q: %s is not about a procedure; name it alone", s, m[1])
		}
		out = append(out, ScopeEntry{Action: m[1], Procedure: m[2], Environment: m[3]})
	}
	return out, nil
}

// Permits reports whether the entry lets its token do action on
// procedure (empty for a system action) in env (empty when the action
// has none).
func (e ScopeEntry) Permits(action, procedure, env string) bool {
	switch {
	case e.Action == action:
	case action == "view" && !slices.Contains(systemActions, e.Action):
	case action == "viewRun" && (e.Action == "run" || e.Action == "request" || e.Action == "try" || e.Action == "cancelRun" || e.Action == "approveRun"):
	default:
		return false
	}
	if e.Procedure != "" && e.Procedure != "*" {
		if p, ok := strings.CutSuffix(e.Procedure, "*"); ok {
			if !strings.HasPrefix(procedure, p) {
				return false
			}
		} else if e.Procedure != procedure {
			return false
		}
	}
	return e.Environment == "" || env == "" && action == "view" || e.Environment == env
}
