package authz

import (
	"fmt"
	"slices"
	"strings"
)

// DefaultPolicy is installed at first start when no policy file is
// configured. It lets everyone see the catalog and follow their own runs,
// teams propose and retire their procedures, the review groups review,
// and the admin group administer. It lets nobody run anything: who may
// run what where is a decision for the people who own the policy.
func DefaultPolicy(adminGroup string, reviewGroups []string) string {
	groups := slices.Clone(reviewGroups)
	slices.Sort(groups)
	groups = slices.Compact(groups)
	refs := make([]string, len(groups))
	for i, g := range groups {
		refs[i] = fmt.Sprintf("Group::%q", g)
	}
	return fmt.Sprintf(`// Airlock's default policy. Nobody may run procedures until an admin
// proposes, and a second admin approves, a policy that says who may run
// what where. See docs/policy.md.

@id("everyone-views-catalog")
permit (principal, action == Action::"view", resource);

@id("requesters-follow-their-runs")
permit (principal, action in [Action::"viewRun", Action::"cancelRun"], resource)
when { resource.requester == principal };

@id("teams-own-their-procedures")
permit (principal, action in [Action::"propose", Action::"retire"], resource)
when { principal.groups.contains(resource.owner) };

@id("reviewers-review")
permit (principal, action == Action::"review", resource)
when { principal in [%s] };

@id("admins-administer")
permit (
  principal in Group::%q,
  action in [Action::"managePolicy", Action::"manageUsers", Action::"manageNodes", Action::"manageSecrets",
             Action::"readAudit", Action::"exportEvidence", Action::"retire"],
  resource
);
`, strings.Join(refs, ", "), adminGroup)
}
