package procedure

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/airlockhq/airlock/internal/strictyaml"
)

var (
	nameRE      = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	teamRE      = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	paramNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)
	stepNameRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	labelRE     = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	envVarRE    = regexp.MustCompile(`^[A-Z_][A-Z0-9_]{0,127}$`)
	secretRefRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)*$`)
)

// Limits.
const (
	DefaultTimeout  = 10 * time.Minute
	MaxTimeout      = 24 * time.Hour
	MaxParallel     = 100
	MaxApprovals    = 5
	DefaultShell    = "/bin/sh"
	maxParams       = 50
	maxSteps        = 100
	maxScriptLength = 64 << 10
)

var paramTypes = []string{TypeString, TypeInt, TypeBool, TypeEnum, TypeMultiEnum, TypeSecret}

func validate(d *strictyaml.Decoder, p *Procedure, lines []string) {
	switch {
	case p.APIVersion == "":
		d.ErrorAt("apiVersion", "is required: expected %q", APIVersion)
	case p.APIVersion != APIVersion:
		d.ErrorAt("apiVersion", "expected %q, got %q", APIVersion, p.APIVersion)
	}
	switch {
	case p.Kind == "":
		d.ErrorAt("kind", "is required: expected %q", Kind)
	case p.Kind != Kind:
		d.ErrorAt("kind", "expected %q, got %q", Kind, p.Kind)
	}
	switch {
	case p.Name == "":
		d.ErrorAt("name", "is required")
	case !nameRE.MatchString(p.Name):
		d.ErrorAt("name", "expected lower-case letters, digits and '-', starting with a letter, at most 63 characters; got %q", p.Name)
	}
	switch {
	case p.Owner == "":
		d.ErrorAt("owner", "is required: the team that owns the procedure")
	case !teamRE.MatchString(p.Owner):
		d.ErrorAt("owner", "expected a team name (lower-case letters, digits, '.', '_', '-'), got %q", p.Owner)
	}
	switch p.Risk {
	case RiskLow, RiskMedium, RiskHigh:
	case "":
		d.ErrorAt("risk", "is required: expected low, medium or high")
	default:
		d.ErrorAt("risk", "expected low, medium or high, got %q", p.Risk)
	}

	params := map[string]int{}
	if len(p.Parameters) > maxParams {
		d.ErrorAt("parameters", "at most %d parameters", maxParams)
	}
	for i := range p.Parameters {
		path := fmt.Sprintf("parameters[%d]", i)
		prm := &p.Parameters[i]
		if j, dup := params[prm.Name]; dup && prm.Name != "" {
			d.ErrorAt(path+".name", "duplicate parameter %q (first at parameters[%d])", prm.Name, j)
		} else {
			params[prm.Name] = i
		}
		validateParam(d, path, prm)
	}

	secret := map[string]bool{}
	for _, prm := range p.Parameters {
		secret[prm.Name] = prm.Type == TypeSecret
	}
	refs := refChecker{d: d, params: params, secret: secret, hasTargets: p.Targets != nil}
	if t := p.Targets; t != nil {
		refs.check("targets.environment", t.Environment)
		for i, tag := range t.Tags {
			if !labelRE.MatchString(tag) {
				d.ErrorAt(fmt.Sprintf("targets.tags[%d]", i), "expected a tag (lower-case letters, digits, '.', '_', '-'), got %q", tag)
			}
		}
		for k, v := range t.Attributes {
			if !labelRE.MatchString(k) {
				d.ErrorAt("targets.attributes."+k, "expected an attribute name (lower-case letters, digits, '.', '_', '-')")
			}
			refs.check("targets.attributes."+k, v)
		}
		if t.Parallel < 0 || t.Parallel > MaxParallel {
			d.ErrorAt("targets.parallel", "expected 1 to %d, got %d", MaxParallel, t.Parallel)
		}
	}
	if a := p.Approval; a != nil {
		for i, env := range a.Environments {
			if !labelRE.MatchString(env) {
				d.ErrorAt(fmt.Sprintf("approval.environments[%d]", i), "expected an environment name, got %q", env)
			}
		}
		if a.Count < 0 || a.Count > MaxApprovals {
			d.ErrorAt("approval.count", "expected 1 to %d approvals, got %d", MaxApprovals, a.Count)
		}
	}
	if p.Timeout != 0 && (time.Duration(p.Timeout) < time.Second || time.Duration(p.Timeout) > MaxTimeout) {
		d.ErrorAt("timeout", "expected between 1s and %s, got %s", MaxTimeout, p.Timeout)
	}
	refs.check("lock", p.Lock)
	validateNotify(d, p.Notify)

	if len(p.Steps) == 0 {
		d.ErrorAt("steps", "is required: at least one step")
	}
	if len(p.Steps) > maxSteps {
		d.ErrorAt("steps", "at most %d steps", maxSteps)
	}
	steps := map[string]int{}
	for i := range p.Steps {
		validateStep(d, &refs, fmt.Sprintf("steps[%d]", i), &p.Steps[i], steps, i, p.Timeout, lines)
	}
}

func validateParam(d *strictyaml.Decoder, path string, p *Parameter) {
	switch {
	case p.Name == "":
		d.ErrorAt(path+".name", "is required")
	case !paramNameRE.MatchString(p.Name):
		d.ErrorAt(path+".name", "expected lower-case letters, digits and '_', starting with a letter; got %q", p.Name)
	}
	switch {
	case p.Type == "":
		d.ErrorAt(path+".type", "is required: expected one of %s", strings.Join(paramTypes, ", "))
		return
	case !slices.Contains(paramTypes, p.Type):
		d.ErrorAt(path+".type", "expected one of %s, got %q", strings.Join(paramTypes, ", "), p.Type)
		return
	}
	isEnum := p.Type == TypeEnum || p.Type == TypeMultiEnum
	isText := p.Type == TypeString || p.Type == TypeSecret
	switch {
	case isEnum && len(p.Values) == 0:
		d.ErrorAt(path+".values", "is required for %s: at least one value", p.Type)
	case !isEnum && p.Values != nil:
		d.ErrorAt(path+".values", "only enum and multi-enum parameters take values")
	}
	seen := map[string]bool{}
	for i, v := range p.Values {
		if seen[v] {
			d.ErrorAt(fmt.Sprintf("%s.values[%d]", path, i), "duplicate value %q", v)
		}
		seen[v] = true
	}
	if p.Pattern != "" {
		if !isText {
			d.ErrorAt(path+".pattern", "only string and secret parameters take a pattern")
		} else if _, err := compilePattern(p.Pattern); err != nil {
			d.ErrorAt(path+".pattern", "does not compile: %v", err)
		}
	}
	if (p.Min != nil || p.Max != nil) && p.Type != TypeInt {
		d.ErrorAt(path+".min", "only int parameters take min and max")
	} else if p.Min != nil && p.Max != nil && *p.Min > *p.Max {
		d.ErrorAt(path+".max", "must be at least min (%d), got %d", *p.Min, *p.Max)
	}
	if p.MinLength != nil || p.MaxLength != nil {
		switch {
		case !isText && p.Type != TypeMultiEnum:
			d.ErrorAt(path+".min_length", "only string, secret and multi-enum parameters take min_length and max_length")
		case p.MinLength != nil && *p.MinLength < 0:
			d.ErrorAt(path+".min_length", "must not be negative")
		case p.MaxLength != nil && *p.MaxLength < 0:
			d.ErrorAt(path+".max_length", "must not be negative")
		case p.MinLength != nil && p.MaxLength != nil && *p.MinLength > *p.MaxLength:
			d.ErrorAt(path+".max_length", "must be at least min_length (%d), got %d", *p.MinLength, *p.MaxLength)
		}
	}
	if p.Default != nil {
		if p.Type == TypeSecret {
			d.ErrorAt(path+".default", "secret parameters cannot have a default")
		} else if _, err := p.Coerce(p.Default.V); err != nil {
			d.ErrorAt(path+".default", "fails its own parameter's validation: %v", err)
		}
	}
}

func validateStep(d *strictyaml.Decoder, refs *refChecker, path string, s *Step, names map[string]int, i int, procTimeout Duration, lines []string) {
	switch {
	case s.Name == "":
		d.ErrorAt(path+".name", "is required")
	case !stepNameRE.MatchString(s.Name):
		d.ErrorAt(path+".name", "expected lower-case letters, digits, '_' and '-'; got %q", s.Name)
	default:
		if j, dup := names[s.Name]; dup {
			d.ErrorAt(path+".name", "duplicate step %q (first at steps[%d])", s.Name, j)
		} else {
			names[s.Name] = i
		}
	}
	switch {
	case s.Exec != nil && s.Script != "":
		d.ErrorAt(path+".script", "a step has exec or script, not both")
	case s.Exec == nil && s.Script == "":
		d.ErrorAt(path, "expected exec (an argv list) or script")
	case s.Exec != nil:
		if len(s.Exec) == 0 || s.Exec[0] == "" {
			d.ErrorAt(path+".exec", "expected a non-empty argv list, program first")
			break
		}
		if HasTemplate(s.Exec[0]) {
			d.ErrorAt(path+".exec[0]", "the program must be written out, not a template")
		}
		interp := Interpreter(s.Exec)
		for j, arg := range s.Exec[1:] {
			p := fmt.Sprintf("%s.exec[%d]", path, j+1)
			if interp != "" && HasTemplate(arg) {
				d.ErrorAt(p, "%s would parse this argument as code: no template may reach the arguments of a shell or an interpreter "+
					"(the list is in docs/procedures.md); use a script step and read parameters from $AIRLOCK_PARAM_<NAME>", interp)
				continue
			}
			refs.check(p, arg)
		}
		if s.Shell != "" {
			d.ErrorAt(path+".shell", "only script steps take a shell")
		}
	default:
		if len(s.Script) > maxScriptLength {
			d.ErrorAt(path+".script", "at most %d bytes", maxScriptLength)
		}
		if HasTemplate(s.Script) {
			line, col := templatePos(d.Node(path+".script"), s.Script, lines)
			d.ErrorPos(line, col, path+".script", "templates are not allowed in scripts; read parameters from $AIRLOCK_PARAM_<NAME> environment variables")
		}
		if s.Shell != "" && !strings.HasPrefix(s.Shell, "/") {
			d.ErrorAt(path+".shell", "expected an absolute path such as /bin/bash, got %q", s.Shell)
		}
	}
	for k, ref := range s.Secrets {
		switch {
		case !envVarRE.MatchString(k):
			d.ErrorAt(path+".secrets."+k, "expected an environment variable name (A-Z, 0-9, '_'), got %q", k)
		case strings.HasPrefix(k, "AIRLOCK_"):
			d.ErrorAt(path+".secrets."+k, "names starting with AIRLOCK_ are reserved")
		}
		if !secretRefRE.MatchString(ref) {
			d.ErrorAt(path+".secrets."+k, "expected a secret reference such as payments/api-token, got %q", ref)
		}
	}
	if s.Timeout != 0 {
		limit := procTimeout
		if limit == 0 {
			limit = Duration(DefaultTimeout)
		}
		if time.Duration(s.Timeout) < time.Second || s.Timeout > limit {
			d.ErrorAt(path+".timeout", "expected between 1s and the procedure's timeout (%s), got %s", limit, s.Timeout)
		}
	}
}

// templatePos finds the first template delimiter of a script in the
// source: block scalars (| and >) start on the line after their indicator.
func templatePos(n *yaml.Node, script string, lines []string) (int, int) {
	start := n.Line
	if n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		start++
	}
	end := min(len(lines), start+strings.Count(script, "\n")+1)
	for ln := start; ln <= end; ln++ {
		for _, delim := range []string{"{{", "}}"} {
			if c := strings.Index(lines[ln-1], delim); c >= 0 {
				return ln, c + 1
			}
		}
	}
	return n.Line, n.Column
}

// refChecker validates template references against the declared
// parameters.
type refChecker struct {
	d          *strictyaml.Decoder
	params     map[string]int
	secret     map[string]bool // secret-typed parameters
	hasTargets bool
}

func (r *refChecker) check(path, s string) {
	if s == "" || !HasTemplate(s) {
		return
	}
	segs, err := parseTemplate(s)
	if err != nil {
		r.d.ErrorAt(path, "%v", err)
		return
	}
	for _, seg := range segs {
		ref := seg.ref
		if ref == nil {
			continue
		}
		switch {
		case ref.Scope == "params":
			if _, ok := r.params[ref.Field]; !ok {
				r.d.ErrorAt(path, "%s: no parameter %q is declared", refString(ref), ref.Field)
			} else if r.secret[ref.Field] {
				r.d.ErrorAt(path, "%s is a secret parameter: secrets reach a step only as environment variables ($%s), never in a "+
					"template, where a command line (shown by ps) or a stored lock or target would carry them", refString(ref), "AIRLOCK_PARAM_"+strings.ToUpper(ref.Field))
			}
		case ref.Scope == "node" && !r.hasTargets:
			r.d.ErrorAt(path, "%s needs targets: a procedure without targets runs on the Airlock host", refString(ref))
		case ref.Scope == "node" && strings.HasPrefix(path, "targets"):
			r.d.ErrorAt(path, "%s: targets are chosen before there is a node", refString(ref))
		}
	}
}

func normalize(p *Procedure) {
	if p.Targets != nil {
		if p.Targets.Parallel == 0 {
			p.Targets.Parallel = 1
		}
		slices.Sort(p.Targets.Tags)
		p.Targets.Tags = slices.Compact(p.Targets.Tags)
	}
	if p.Approval != nil {
		if p.Approval.Count == 0 {
			p.Approval.Count = 1
		}
		slices.Sort(p.Approval.Environments)
		p.Approval.Environments = slices.Compact(p.Approval.Environments)
	}
	if p.Timeout == 0 {
		p.Timeout = Duration(DefaultTimeout)
	}
	normalizeNotify(p.Notify)
	for i := range p.Steps {
		if p.Steps[i].Script != "" && p.Steps[i].Shell == "" {
			p.Steps[i].Shell = DefaultShell
		}
	}
}

// interpreters are the programs that read code from their arguments
// (sh -c, python3 -c, perl -e, …), by base name; a version suffix
// (python3.11) counts too.
var interpreters = []string{"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "fish", "csh", "tcsh", "busybox",
	"python", "python2", "python3", "perl", "ruby", "node", "nodejs", "deno", "php", "lua", "luajit", "tclsh", "wish",
	"pwsh", "powershell", "awk", "gawk", "mawk", "nawk", "osascript", "Rscript", "R", "eval"}

// wrappers run the program that follows them (after their own options):
// env, sudo and the like are looked through.
var wrappers = map[string]int{"env": 0, "sudo": 0, "doas": 0, "nice": 0, "nohup": 0, "setsid": 0, "stdbuf": 0, "ionice": 0,
	"timeout": 1, "chrt": 1, "taskset": 1} // the number of positional arguments before the program

// Interpreter returns the shell or interpreter an exec list runs, looked
// up through paths and wrappers such as env (`env sh -ec …`), or "" when
// its program is neither. `env -S` (split a string into a command) counts
// as a shell.
func Interpreter(argv []string) string {
	for i := 0; i < len(argv); {
		base := path.Base(argv[i])
		if slices.Contains(interpreters, base) || slices.Contains(interpreters, strings.TrimRight(base, "0123456789.")) {
			return base
		}
		skip, wrapped := wrappers[base]
		if !wrapped {
			return ""
		}
		i++
		for i < len(argv) && (strings.HasPrefix(argv[i], "-") || (base == "env" && strings.Contains(argv[i], "="))) {
			if base == "env" && (argv[i] == "-S" || strings.HasPrefix(argv[i], "--split-string")) {
				return "env -S"
			}
			if base == "env" && (argv[i] == "-u" || argv[i] == "-C") || base == "sudo" && (argv[i] == "-u" || argv[i] == "-g") {
				i++ // the option's value
			}
			i++
		}
		i += skip
	}
	return ""
}
