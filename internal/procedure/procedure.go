// Package procedure owns the procedure definition: the file format
// (apiVersion airlock/v1, kind Procedure), its strict decoding with
// positioned errors, validation, parameter values, the canonical form and
// its SHA-256 digest.
//
// It is pure: no network, no database, no process execution. It must not
// import net/http, database/sql or os/exec.
package procedure

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/airlockhq/airlock/internal/strictyaml"
)

// APIVersion and Kind identify a procedure document.
const (
	APIVersion = "airlock/v1"
	Kind       = "Procedure"
)

// Risk classes; each maps to a review quorum in the configuration.
const (
	RiskLow    = "low"
	RiskMedium = "medium"
	RiskHigh   = "high"
)

// Parameter types.
const (
	TypeString    = "string"
	TypeInt       = "int"
	TypeBool      = "bool"
	TypeEnum      = "enum"
	TypeMultiEnum = "multi-enum"
	TypeSecret    = "secret"
)

// Procedure is one definition. Field order is the canonical order.
type Procedure struct {
	APIVersion  string       `yaml:"apiVersion" json:"apiVersion"`
	Kind        string       `yaml:"kind" json:"kind"`
	Name        string       `yaml:"name" json:"name"`
	Title       string       `yaml:"title,omitempty" json:"title,omitempty"`
	Description string       `yaml:"description,omitempty" json:"description,omitempty"`
	Owner       string       `yaml:"owner" json:"owner"`
	Risk        string       `yaml:"risk" json:"risk"`
	Idempotent  bool         `yaml:"idempotent,omitempty" json:"idempotent,omitempty"`
	Parameters  []Parameter  `yaml:"parameters,omitempty" json:"parameters,omitempty"`
	Targets     *Targets     `yaml:"targets,omitempty" json:"targets,omitempty"`
	Approval    *Approval    `yaml:"approval,omitempty" json:"approval,omitempty"`
	Timeout     Duration     `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	Lock        string       `yaml:"lock,omitempty" json:"lock,omitempty"`
	Notify      []NotifyRule `yaml:"notify,omitempty" json:"notify,omitempty"`
	Steps       []Step       `yaml:"steps" json:"steps"`
}

// Parameter is one typed input.
type Parameter struct {
	Name        string   `yaml:"name" json:"name"`
	Type        string   `yaml:"type" json:"type"`
	Description string   `yaml:"description,omitempty" json:"description,omitempty"`
	Required    bool     `yaml:"required,omitempty" json:"required,omitempty"`
	Default     *Literal `yaml:"default,omitempty" json:"default,omitempty"`
	Values      []string `yaml:"values,omitempty" json:"values,omitempty"`
	Pattern     string   `yaml:"pattern,omitempty" json:"pattern,omitempty"`
	Min         *int64   `yaml:"min,omitempty" json:"min,omitempty"`
	Max         *int64   `yaml:"max,omitempty" json:"max,omitempty"`
	MinLength   *int     `yaml:"min_length,omitempty" json:"min_length,omitempty"`
	MaxLength   *int     `yaml:"max_length,omitempty" json:"max_length,omitempty"`
	// AllowDash lets a value begin with '-' although the parameter is a
	// whole exec argument, where a program would read it as an option.
	AllowDash bool `yaml:"allow_dash,omitempty" json:"allow_dash,omitempty"`
}

var wholeParam = regexp.MustCompile(`^\{\{\s*\.params\.([A-Za-z0-9_]+)\s*\}\}$`)

// WholeArgParams names the parameters that some exec step passes as a
// whole argument before any "--": a value of theirs beginning with '-'
// would be read as an option.
func (p *Procedure) WholeArgParams() map[string]bool {
	out := map[string]bool{}
	for _, st := range p.Steps {
		for i := 1; i < len(st.Exec) && st.Exec[i] != "--"; i++ {
			if m := wholeParam.FindStringSubmatch(st.Exec[i]); m != nil {
				out[m[1]] = true
			}
		}
	}
	return out
}

// Targets selects the nodes a run executes on. A procedure without
// targets runs on the Airlock host itself (the local executor).
type Targets struct {
	// Environment the nodes must be in; may be a template such as
	// "{{ .params.environment }}". Empty: the run's environment.
	Environment string            `yaml:"environment,omitempty" json:"environment,omitempty"`
	Tags        []string          `yaml:"tags,omitempty" json:"tags,omitempty"`
	Attributes  map[string]string `yaml:"attributes,omitempty" json:"attributes,omitempty"`
	Parallel    int               `yaml:"parallel,omitempty" json:"parallel,omitempty"`
}

// Approval says where runs need a four-eyes approval.
type Approval struct {
	Environments []string `yaml:"environments,omitempty" json:"environments,omitempty"`
	Count        int      `yaml:"count,omitempty" json:"count,omitempty"`
}

// Step is one exec or script step.
type Step struct {
	Name string `yaml:"name" json:"name"`
	// Exec is an argv; templates are substituted per element, never
	// through a shell.
	Exec []string `yaml:"exec,omitempty" json:"exec,omitempty"`
	// Script is run by Shell; it sees parameters only as AIRLOCK_PARAM_*
	// environment variables.
	Script          string            `yaml:"script,omitempty" json:"script,omitempty"`
	Shell           string            `yaml:"shell,omitempty" json:"shell,omitempty"`
	Secrets         map[string]string `yaml:"secrets,omitempty" json:"secrets,omitempty"`
	Timeout         Duration          `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	ContinueOnError bool              `yaml:"continue_on_error,omitempty" json:"continue_on_error,omitempty"`
}

// Duration is a time.Duration written as "10m".
type Duration time.Duration

// UnmarshalStrictYAML implements strictyaml.Unmarshaler.
func (d *Duration) UnmarshalStrictYAML(dec *strictyaml.Decoder, n *yaml.Node, path string) {
	v, err := time.ParseDuration(n.Value)
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" || err != nil {
		dec.Errorf(n, path, "expected a duration such as 90s, 10m or 1h30m, got %s", describe(n))
		return
	}
	*d = Duration(v)
}

func (d Duration) String() string { return time.Duration(d).String() }

// IsZero lets omitempty drop an unset duration.
func (d Duration) IsZero() bool { return d == 0 }

// MarshalYAML writes the canonical spelling ("10m0s").
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// MarshalText writes the canonical spelling ("10m0s").
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Literal is a parameter default: a string, an integer, a boolean or a
// list of strings, as written.
type Literal struct {
	V any
}

// UnmarshalStrictYAML implements strictyaml.Unmarshaler.
func (l *Literal) UnmarshalStrictYAML(dec *strictyaml.Decoder, n *yaml.Node, path string) {
	switch {
	case n.Kind == yaml.ScalarNode && n.Tag == "!!str":
		l.V = n.Value
	case n.Kind == yaml.ScalarNode && n.Tag == "!!int":
		var i int64
		if _, err := fmt.Sscan(n.Value, &i); err != nil {
			dec.Errorf(n, path, "expected an integer that fits in 64 bits, got %s", describe(n))
			return
		}
		l.V = i
	case n.Kind == yaml.ScalarNode && n.Tag == "!!bool":
		l.V = n.Value == "true"
	case n.Kind == yaml.SequenceNode:
		list := []string{}
		for i, item := range n.Content {
			if item.Kind != yaml.ScalarNode || item.Tag != "!!str" {
				dec.Errorf(item, fmt.Sprintf("%s[%d]", path, i), "expected a string, got %s", describe(item))
				continue
			}
			list = append(list, item.Value)
		}
		l.V = list
	default:
		dec.Errorf(n, path, "expected a string, an integer, true/false or a list of strings, got %s", describe(n))
	}
}

// MarshalYAML writes the value.
func (l *Literal) MarshalYAML() (any, error) { return l.V, nil }

// MarshalJSON writes the value.
func (l *Literal) MarshalJSON() ([]byte, error) { return jsonMarshal(l.V) }

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	if n.Tag == "!!null" {
		return "nothing"
	}
	return fmt.Sprintf("%q", n.Value)
}

// Source is a decoded procedure with where it came from.
type Source struct {
	File      string
	Line      int // line of the document's first key
	Procedure *Procedure
	// dec remembers the node each path was decoded from, so that checks
	// made after parsing (against stored state) point at a line too.
	dec *strictyaml.Decoder
}

// ErrorAt returns an error about the field at path (such as
// steps[1].secrets.API_TOKEN) with its file, line and column, as
// validation errors have them.
func (s *Source) ErrorAt(path, format string, args ...any) *strictyaml.Error {
	e := &strictyaml.Error{File: s.File, Path: path, Msg: fmt.Sprintf(format, args...)}
	if s.dec != nil {
		if n := s.dec.Node(path); n != nil {
			e.Line, e.Column = n.Line, n.Column
		}
	}
	return e
}

// Parse decodes and validates every procedure document in data (YAML,
// documents separated by ---). It returns the valid procedures and an
// error listing every problem in every document, each with file, line,
// column and field path.
func Parse(file string, data []byte) ([]*Source, error) {
	if err := emptyFile(file, data); err != nil {
		return nil, err
	}
	lines := strings.Split(string(data), "\n")
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	var out []*Source
	var errs strictyaml.Errors
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			errs = append(errs, strictyaml.SyntaxError(file, err))
			break
		}
		if len(doc.Content) == 0 {
			continue
		}
		root := doc.Content[0]
		d := strictyaml.NewDecoder(file)
		var p Procedure
		d.Value(root, reflect.ValueOf(&p).Elem(), "")
		// Every problem in one pass: the checks run on what decoded,
		// without repeating what decoding said about a value.
		decoded := d.Count()
		validate(d, &p, lines)
		d.Covered(decoded)
		if err := d.Errors(); err != nil {
			errs = append(errs, err.(strictyaml.Errors)...)
			continue
		}
		normalize(&p)
		out = append(out, &Source{File: file, Line: root.Line, Procedure: &p, dec: d})
	}
	if len(errs) > 0 {
		return out, errs
	}
	return out, nil
}
