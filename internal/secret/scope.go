package secret

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Scope says which procedures may name a secret in a step's `secrets:`:
// those owned by one of Teams, and those named in Procedures (an entry
// ending in '*' matches every name with that prefix). The zero Scope lets
// no procedure use the secret; it can still be a node's SSH credential,
// which Airlock uses itself and no step ever sees.
type Scope struct {
	Teams      []string `json:"teams"`
	Procedures []string `json:"procedures"`
}

var (
	scopeTeamRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	scopeProcRE = regexp.MustCompile(`^([a-z][a-z0-9-]{0,62}\*?|\*)$`)
)

// MaxScopeEntries bounds the entries of a scope.
const MaxScopeEntries = 100

// Normalize sorts and deduplicates the entries and checks them: team
// names as procedures' owners are spelled, procedure names or prefixes
// ending in '*'. A lone "*" (every procedure) is refused: a secret that
// every procedure may read is what scopes exist to prevent. The error
// names the offending field ("scope.teams[1]").
func (s Scope) Normalize() (Scope, error) {
	out := Scope{Teams: []string{}, Procedures: []string{}}
	if len(s.Teams)+len(s.Procedures) > MaxScopeEntries {
		return out, &ScopeError{Field: "scope", Msg: fmt.Sprintf("at most %d entries", MaxScopeEntries)}
	}
	for i, t := range s.Teams {
		if !scopeTeamRE.MatchString(t) {
			return out, &ScopeError{Field: fmt.Sprintf("scope.teams[%d]", i),
				Msg: fmt.Sprintf("expected a team name as a procedure's owner is written (lower-case letters, digits, '.', '_', '-'), got %q", t)}
		}
		out.Teams = append(out.Teams, t)
	}
	for i, p := range s.Procedures {
		switch {
		case p == "*":
			return out, &ScopeError{Field: fmt.Sprintf("scope.procedures[%d]", i),
				Msg: "\"*\" would let every procedure read the secret; name the teams or procedures that need it"}
		case !scopeProcRE.MatchString(p):
			return out, &ScopeError{Field: fmt.Sprintf("scope.procedures[%d]", i),
				Msg: fmt.Sprintf("expected a procedure name, or a name prefix ending in '*' (db-*), got %q", p)}
		}
		out.Procedures = append(out.Procedures, p)
	}
	slices.Sort(out.Teams)
	slices.Sort(out.Procedures)
	out.Teams, out.Procedures = slices.Compact(out.Teams), slices.Compact(out.Procedures)
	return out, nil
}

// ScopeError is a scope entry that does not validate.
type ScopeError struct {
	Field string
	Msg   string
}

func (e *ScopeError) Error() string { return e.Field + ": " + e.Msg }

// Empty reports whether the scope lets no procedure use the secret.
func (s Scope) Empty() bool { return len(s.Teams) == 0 && len(s.Procedures) == 0 }

// Permits reports whether the procedure named procedure, owned by team
// owner, may name the secret in a step.
func (s Scope) Permits(procedure, owner string) bool {
	if owner != "" && slices.Contains(s.Teams, owner) {
		return true
	}
	for _, p := range s.Procedures {
		if prefix, ok := strings.CutSuffix(p, "*"); ok {
			if prefix != "" && strings.HasPrefix(procedure, prefix) {
				return true
			}
		} else if p == procedure {
			return true
		}
	}
	return false
}

// String describes the scope for messages: "teams payments; procedures
// db-*", or "no procedure".
func (s Scope) String() string {
	var parts []string
	if len(s.Teams) > 0 {
		parts = append(parts, "teams "+strings.Join(s.Teams, ", "))
	}
	if len(s.Procedures) > 0 {
		parts = append(parts, "procedures "+strings.Join(s.Procedures, ", "))
	}
	if len(parts) == 0 {
		return "no procedure"
	}
	return strings.Join(parts, "; ")
}
