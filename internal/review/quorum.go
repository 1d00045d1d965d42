package review

import (
	"slices"
)

// Quorum maps a risk class to the groups whose sign-off it needs. A group
// listed twice needs two different people from it.
type Quorum map[string][]string

// DefaultQuorum is low: ops; medium: ops and security; high: ops,
// security and compliance.
func DefaultQuorum() Quorum {
	return Quorum{
		"low":    {"ops"},
		"medium": {"ops", "security"},
		"high":   {"ops", "security", "compliance"},
	}
}

// Approver is one person's approval with the groups they held when they
// gave it.
type Approver struct {
	UserID string
	Groups []string
}

// Evaluate reports whether the approvals meet the quorum for risk, and
// which required groups are still missing. A person counts once: each
// approver fills at most one required slot, even when they belong to
// several required groups (bipartite matching of slots to people).
func (q Quorum) Evaluate(risk string, approvals []Approver) (met bool, missing []string) {
	slots := q[risk]
	if len(slots) == 0 {
		// An unknown or unconfigured risk class can never be approved.
		return false, []string{"(no quorum configured for risk " + risk + ")"}
	}
	var people []Approver
	seen := map[string]bool{}
	for _, a := range approvals {
		if a.UserID == "" || seen[a.UserID] {
			continue
		}
		seen[a.UserID] = true
		people = append(people, a)
	}
	owner := make([]int, len(people)) // person -> slot+1, 0 = free
	slotOf := make([]int, len(slots)) // slot -> person+1
	var try func(slot int, visited []bool) bool
	try = func(slot int, visited []bool) bool {
		for i, p := range people {
			if visited[i] || !slices.Contains(p.Groups, slots[slot]) {
				continue
			}
			visited[i] = true
			if owner[i] == 0 || try(owner[i]-1, visited) {
				owner[i] = slot + 1
				slotOf[slot] = i + 1
				return true
			}
		}
		return false
	}
	for s := range slots {
		try(s, make([]bool, len(people)))
	}
	for s, p := range slotOf {
		if p == 0 {
			missing = append(missing, slots[s])
		}
	}
	return len(missing) == 0, missing
}

// Eligible reports whether someone in groups may review a version of
// this risk: they must belong to at least one group its quorum names.
func (q Quorum) Eligible(risk string, groups []string) bool {
	for _, g := range q[risk] {
		if slices.Contains(groups, g) {
			return true
		}
	}
	return false
}
