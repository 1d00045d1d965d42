package policy_test

import (
	"os"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/airlockhq/airlock/internal/policy"
)

var demoParams = policy.ParamTypes{"service": "String", "cache": "String", "keep_days": "Long", "report": "String",
	"limit": "Long", "ticket": "String", "flag": "String", "enabled": "Bool", "percentage": "Long"}

func demoSet(t *testing.T) *policy.Set {
	t.Helper()
	text, err := os.ReadFile("../demo/policy.cedar")
	if err != nil {
		t.Fatal(err)
	}
	set, err := policy.Compile("policy.cedar", string(text), demoParams)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

type corpus struct {
	Users      map[string][]string `yaml:"users"`
	Procedures map[string]struct {
		Owner   string `yaml:"owner"`
		Risk    string `yaml:"risk"`
		Retired bool   `yaml:"retired"`
	} `yaml:"procedures"`
	Cases []struct {
		User      string `yaml:"user"`
		Action    string `yaml:"action"`
		Procedure string `yaml:"procedure"`
		Env       string `yaml:"env"`
		Run       *struct {
			ID, Requester, Procedure, Env string
		} `yaml:"run"`
		Version *struct {
			ID, Procedure, Author string
		} `yaml:"version"`
		Params   map[string]any `yaml:"params"`
		Allowed  bool           `yaml:"allowed"`
		Policies []string       `yaml:"policies"`
	} `yaml:"cases"`
}

// TestDecisionCorpus drives the authorizer with testdata/decisions.yaml.
func TestDecisionCorpus(t *testing.T) {
	set := demoSet(t)
	b, err := os.ReadFile("testdata/decisions.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c corpus
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	if len(c.Cases) < 30 {
		t.Fatalf("only %d cases", len(c.Cases))
	}
	proc := func(name string) policy.Procedure {
		p, ok := c.Procedures[name]
		if !ok {
			t.Fatalf("corpus names unknown procedure %q", name)
		}
		return policy.Procedure{Name: name, Owner: p.Owner, Risk: p.Risk, Retired: p.Retired}
	}
	for i, k := range c.Cases {
		req := policy.Request{Principal: policy.Principal{Username: k.User, Groups: c.Users[k.User]}, Action: k.Action,
			Context: policy.Context{Environment: k.Env, Params: k.Params}}
		switch {
		case k.Run != nil:
			req.Resource.Run = &policy.RunInfo{ID: k.Run.ID, Requester: k.Run.Requester, Environment: k.Run.Env, Procedure: proc(k.Run.Procedure)}
			req.Context.Environment = k.Run.Env
		case k.Version != nil:
			req.Resource.Version = &policy.Version{ID: k.Version.ID, Author: k.Version.Author, Procedure: proc(k.Version.Procedure)}
		case k.Procedure != "":
			p := proc(k.Procedure)
			req.Resource.Procedure = &p
		}
		d := set.Decide(req)
		if d.Allowed != k.Allowed || strings.Join(d.Policies, ",") != strings.Join(k.Policies, ",") || len(d.Errors) > 0 {
			t.Errorf("case %d (%s %s %s %s): got allowed=%v policies=%v errors=%v; want allowed=%v policies=%v",
				i, k.User, k.Action, k.Procedure, k.Env, d.Allowed, d.Policies, d.Errors, k.Allowed, k.Policies)
		}
	}
}

func TestParamsInContext(t *testing.T) {
	text := `@id("ops-batch")
permit (principal in Group::"ops", action == Action::"run", resource);
@id("batch-limit-in-production")
forbid (principal, action in [Action::"run", Action::"request"], resource)
when { context.environment == "production" && context.params has batch && context.params.batch > 5 };
`
	set, err := policy.Compile("p.cedar", text, policy.ParamTypes{"batch": "Long"})
	if err != nil {
		t.Fatal(err)
	}
	p := policy.Procedure{Name: "scale", Owner: "t", Risk: "low"}
	ask := func(env string, batch int64) policy.Decision {
		return set.Decide(policy.Request{Principal: policy.Principal{Username: "bob", Groups: []string{"ops"}}, Action: policy.ActionRun,
			Resource: policy.Resource{Procedure: &p}, Context: policy.Context{Environment: env, Params: map[string]any{"batch": batch}}})
	}
	if d := ask("production", 5); !d.Allowed {
		t.Fatalf("batch 5: %+v", d)
	}
	if d := ask("production", 6); d.Allowed || d.Policies[0] != "batch-limit-in-production" {
		t.Fatalf("batch 6 in production: %+v", d)
	}
	if d := ask("staging", 9); !d.Allowed {
		t.Fatalf("batch 9 in staging: %+v", d)
	}
}

func TestCompileErrorsHavePositions(t *testing.T) {
	cases := []struct{ text, want string }{
		{"permit (principal, action, resource);\n", `p.cedar:1:1: needs an @id("…") annotation`},
		{"@id(\"a\")\npermit (principal, action, resource);\n@id(\"a\")\nforbid (principal, action, resource);\n", "p.cedar:3:1: policy a: duplicate @id (first at line 1)"},
		{"@id(\"x\")\npermit (principal, action == Action::\"run\", resource)\nwhen { resource.colour == \"red\" };\n", "p.cedar:1:1: policy x: attribute `colour` on entity type `Procedure` not found"},
		{"@id(\"x\")\npermit (principal, action == Action::\"fly\", resource);\n", "p.cedar:1:1: policy x: unrecognized action `Action::\"fly\"`"},
		{"@id(\"x\")\npermit (principal, action, resource) when { context.params.batch > 1 };\n", "p.cedar:1:1: policy x: unable to guarantee safety of access to optional attribute `params.batch`"},
		{"@id(\"x\")\npermit (principal, action, resource\n", "p.cedar:3:1:"},
	}
	for _, c := range cases {
		_, err := policy.Compile("p.cedar", c.text, policy.ParamTypes{"batch": "Long"})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want %q", c.text, err, c.want)
		}
	}
}

func FuzzCompile(f *testing.F) {
	text, _ := os.ReadFile("../demo/policy.cedar")
	f.Add(string(text))
	f.Add("@id(\"x\")\npermit (principal, action, resource) when { context.params has batch };")
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = policy.Compile("f.cedar", s, demoParams)
	})
}

// TestPoliciesSeeOtherUsersGroups: a policy may ask about the groups of
// the run's requester or the version's author, not only the principal's.
func TestPoliciesSeeOtherUsersGroups(t *testing.T) {
	text := `@id("ops-approve-dev-runs")
permit (principal in Group::"ops", action == Action::"approveRun", resource)
when { resource.requester in Group::"dev" };
@id("security-reviews-contractors")
permit (principal in Group::"security", action == Action::"review", resource)
when { resource.author in Group::"contractors" };
`
	set, err := policy.Compile("p.cedar", text, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := policy.Procedure{Name: "flush", Owner: "t", Risk: "low"}
	approve := func(groups ...string) bool {
		return set.Decide(policy.Request{Principal: policy.Principal{Username: "bob", Groups: []string{"ops"}}, Action: policy.ActionApproveRun,
			Resource: policy.Resource{Run: &policy.RunInfo{ID: "run_1", Requester: "alice", RequesterGroups: groups, Environment: "production", Procedure: p}},
			Context:  policy.Context{Environment: "production"}}).Allowed
	}
	if !approve("dev") || approve("qa") || approve() {
		t.Fatal("the requester's groups are not what the policy sees")
	}
	review := func(groups ...string) bool {
		return set.Decide(policy.Request{Principal: policy.Principal{Username: "carol", Groups: []string{"security"}}, Action: policy.ActionReview,
			Resource: policy.Resource{Version: &policy.Version{ID: "pv_1", Author: "zed", AuthorGroups: groups, Risk: "low", Status: "proposed", Procedure: p}}}).Allowed
	}
	if !review("contractors") || review("dev") {
		t.Fatal("the author's groups are not what the policy sees")
	}
}

// TestTextIsBoundedBeforeParsing: policy text that would exhaust the
// parser — half a million nested parentheses overflowed the Go stack and
// killed the server — is refused before it is parsed, naming where;
// brackets in strings and comments do not count.
func TestTextIsBoundedBeforeParsing(t *testing.T) {
	deep := "@id(\"x\")\npermit (principal, action, resource) when { " + strings.Repeat("(", 520000) + "true" + strings.Repeat(")", 520000) + " };\n"
	_, err := policy.Compile("p.cedar", deep, nil)
	if err == nil || !strings.Contains(err.Error(), "p.cedar:2:") || !strings.Contains(err.Error(), "nested deeper than 64 levels") {
		t.Fatalf("deeply nested text: %v", err)
	}
	if _, err := policy.Compile("p.cedar", strings.Repeat(" ", policy.MaxText+1), nil); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Fatalf("text past the size bound: %v", err)
	}
	fine := "// " + strings.Repeat("(", 100) + "\n@id(\"x\")\npermit (principal, action, resource) when { principal.username != \"" +
		strings.Repeat("[", 100) + "\\\"\" };\n"
	if _, err := policy.Compile("p.cedar", fine, nil); err != nil {
		t.Fatalf("brackets in a comment or a string counted: %v", err)
	}
}
