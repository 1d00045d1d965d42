// Package policy is Airlock's use of Cedar (github.com/cedar-policy/cedar-go):
// the schema, compiling and validating policy text against it, building
// the entities of a request, deciding, explaining, and the access review.
// Default deny: nothing is allowed unless a policy permits it and none
// forbids it.
//
// It is pure: it must not import net/http, database/sql or os/exec. The
// authz package feeds it from the store.
package policy

import (
	_ "embed"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	cedar "github.com/cedar-policy/cedar-go"
	xast "github.com/cedar-policy/cedar-go/x/exp/ast"
	"github.com/cedar-policy/cedar-go/x/exp/schema"
	"github.com/cedar-policy/cedar-go/x/exp/schema/validate"
)

// Actions.
const (
	ActionView           = "view"
	ActionRun            = "run"
	ActionRequest        = "request"
	ActionApproveRun     = "approveRun"
	ActionCancelRun      = "cancelRun"
	ActionViewRun        = "viewRun"
	ActionPropose        = "propose"
	ActionReview         = "review"
	ActionRetire         = "retire"
	ActionReadAudit      = "readAudit"
	ActionExportEvidence = "exportEvidence"
	ActionManagePolicy   = "managePolicy"
	ActionManageNodes    = "manageNodes"
	ActionManageSecrets  = "manageSecrets"
	ActionManageUsers    = "manageUsers"
	// ActionTry: run a proposed, unreviewed version of a procedure in a
	// try environment (its author or owner team only; Airlock checks
	// that too).
	ActionTry = "try"
)

// Actions lists every action.
var Actions = []string{ActionView, ActionRun, ActionRequest, ActionApproveRun, ActionCancelRun, ActionViewRun, ActionPropose, ActionReview, ActionRetire, ActionReadAudit, ActionExportEvidence, ActionManagePolicy, ActionManageNodes, ActionManageSecrets, ActionManageUsers, ActionTry}

//go:embed schema.cedarschema
var schemaTemplate string

// ParamTypes maps a parameter name to its Cedar type: Long, String, Bool
// or Set<String>.
type ParamTypes map[string]string

// SchemaText returns the Cedar schema with the given parameter types.
func SchemaText(params ParamTypes) string {
	names := make([]string, 0, len(params))
	for n := range params {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for i, n := range names {
		if i > 0 {
			b.WriteString("\n\t")
		}
		fmt.Fprintf(&b, "%s?: %s,", n, params[n])
	}
	return strings.Replace(schemaTemplate, "%PARAMS%", b.String(), 1)
}

// Error is a problem in policy text, with its position.
type Error struct {
	File   string
	Line   int
	Column int
	Policy string // the policy's @id, when known
	Msg    string
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%s:%d:%d: ", e.File, e.Line, e.Column)
	if e.Policy != "" {
		s += "policy " + e.Policy + ": "
	}
	return s + e.Msg
}

// Errors lists every problem found.
type Errors []*Error

func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Set is a compiled, validated policy set.
type Set struct {
	ps   *cedar.PolicySet
	ids  []string
	text string
}

var (
	idRE        = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	parseErrPos = regexp.MustCompile(`<input>:(\d+):(\d+)`)
	forActionRE = regexp.MustCompile(` for Action::"[A-Za-z]+"`)
)

// Compile parses text, requires every policy to carry a unique @id
// annotation (IDs are what explanations and audit events name), and
// validates each policy against the schema. All problems are returned.
func Compile(file, text string, params ParamTypes) (*Set, error) {
	v, err := validator(params)
	if err != nil {
		return nil, err
	}
	return compile(file, text, v)
}

// Load compiles text that was validated when it was approved, without
// schema validation: a later change of the catalog's parameters must not
// stop the policy in force from loading. IDs are still required.
func Load(file, text string) (*Set, error) { return compile(file, text, nil) }

// MaxText and MaxNesting bound what reaches the Cedar parser, which
// recurses once per nesting level: a policy of half a million nested
// parentheses overflowed the Go stack and killed the server. Real
// policies are far inside both.
const (
	MaxText    = 1 << 20
	MaxNesting = 64
)

// bounded refuses text past MaxText bytes or with brackets nested deeper
// than MaxNesting, naming the line and column, before it is parsed.
func bounded(file, text string) error {
	if len(text) > MaxText {
		return Errors{&Error{File: file, Line: 1, Column: 1, Msg: fmt.Sprintf("policy text is %d bytes; at most %d are accepted", len(text), MaxText)}}
	}
	depth, line, col := 0, 1, 0
	inString, escaped, inComment := false, false, false
	for i := 0; i < len(text); i++ {
		c := text[i]
		col++
		switch {
		case c == '\n':
			line, col, inComment = line+1, 0, false
			continue
		case inComment:
			continue
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '/':
			if i+1 < len(text) && text[i+1] == '/' {
				inComment = true
			}
		case '(', '[', '{':
			if depth++; depth > MaxNesting {
				return Errors{&Error{File: file, Line: line, Column: col, Msg: fmt.Sprintf("brackets nested deeper than %d levels", MaxNesting)}}
			}
		case ')', ']', '}':
			depth--
		}
	}
	return nil
}

func compile(file, text string, v *validate.Validator) (*Set, error) {
	if err := bounded(file, text); err != nil {
		return nil, err
	}
	raw, err := cedar.NewPolicySetFromBytes(file, []byte(text))
	if err != nil {
		e := &Error{File: file, Line: 1, Column: 1, Msg: err.Error()}
		if m := parseErrPos.FindStringSubmatch(err.Error()); m != nil {
			fmt.Sscan(m[1], &e.Line)
			fmt.Sscan(m[2], &e.Column)
			e.Msg = strings.TrimSpace(parseErrPos.ReplaceAllString(err.Error(), ""))
			e.Msg = strings.TrimPrefix(strings.TrimPrefix(e.Msg, "parser error: parse error at"), " ")
		}
		return nil, Errors{e}
	}
	type entry struct {
		id  string
		pos cedar.Position
		p   *cedar.Policy
	}
	var entries []entry
	for _, p := range raw.All() {
		entries = append(entries, entry{p: p, pos: p.Position(), id: string(p.Annotations()["id"])})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].pos.Offset < entries[j].pos.Offset })
	var errs Errors
	set := &Set{ps: cedar.NewPolicySet(), text: text}
	seen := map[string]cedar.Position{}
	for _, e := range entries {
		at := &Error{File: file, Line: e.pos.Line, Column: e.pos.Column, Policy: e.id}
		switch {
		case e.id == "":
			at.Msg = `needs an @id("…") annotation: explanations and audit events name policies by it`
			errs = append(errs, at)
			continue
		case !idRE.MatchString(e.id):
			at.Msg = "@id must be lower-case letters, digits, '.', '_' and '-'"
			errs = append(errs, at)
			continue
		}
		if first, dup := seen[e.id]; dup {
			at.Msg = fmt.Sprintf("duplicate @id (first at line %d)", first.Line)
			errs = append(errs, at)
			continue
		}
		seen[e.id] = e.pos
		if v == nil {
			set.ps.Add(cedar.PolicyID(e.id), e.p)
			set.ids = append(set.ids, e.id)
			continue
		}
		if err := v.Policy(e.id, (*xast.Policy)(e.p.AST())); err != nil {
			// The validator repeats a problem once per action it applies
			// to; report each problem once.
			var msgs []string
			for _, line := range strings.Split(err.Error(), "\n") {
				line = strings.TrimPrefix(line, "for policy `"+e.id+"`, ")
				line = forActionRE.ReplaceAllString(line, "")
				if !slices.Contains(msgs, line) {
					msgs = append(msgs, line)
				}
			}
			for _, m := range msgs {
				errs = append(errs, &Error{File: file, Line: e.pos.Line, Column: e.pos.Column, Policy: e.id, Msg: m})
			}
			continue
		}
		set.ps.Add(cedar.PolicyID(e.id), e.p)
		set.ids = append(set.ids, e.id)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return set, nil
}

func validator(params ParamTypes) (*validate.Validator, error) {
	var s schema.Schema
	if err := s.UnmarshalCedar([]byte(SchemaText(params))); err != nil {
		return nil, fmt.Errorf("policy schema: %w", err)
	}
	rs, err := s.Resolve()
	if err != nil {
		return nil, fmt.Errorf("policy schema: %w", err)
	}
	return validate.New(rs), nil
}

// IDs lists the policy IDs in file order.
func (s *Set) IDs() []string { return slices.Clone(s.ids) }

// Text is the source the set was compiled from.
func (s *Set) Text() string { return s.text }

// Effect returns "permit" or "forbid" for a policy ID, and its source
// text, for explanations.
func (s *Set) Policy(id string) (effect, text string, ok bool) {
	p := s.ps.Get(cedar.PolicyID(id))
	if p == nil {
		return "", "", false
	}
	effect = "permit"
	if p.Effect() == cedar.Forbid {
		effect = "forbid"
	}
	return effect, string(p.MarshalCedar()), true
}
