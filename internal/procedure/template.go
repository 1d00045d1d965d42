package procedure

import (
	"fmt"
	"regexp"
	"strings"
)

// Templates are deliberately tiny: {{ .params.NAME }}, {{ .node.FIELD }},
// {{ .node.attributes.KEY }}, {{ .run.FIELD }} and {{ .environment }}.
// No functions, no pipelines, no conditionals: a reference names a value
// and substitution inserts it as one argv element or one string, never
// through a shell.

var (
	refRE      = regexp.MustCompile(`^\.(params|node|run|environment)(?:\.([A-Za-z0-9_]+))?(?:\.([A-Za-z0-9_.-]+))?$`)
	nodeFields = map[string]bool{"name": true, "address": true, "port": true, "user": true, "environment": true}
	runFields  = map[string]bool{"id": true, "requester": true, "environment": true}
)

// Ref is one template reference.
type Ref struct {
	Scope string // params | node | run | environment
	Field string
	Key   string // attribute key for node.attributes
}

// segment is literal text or a reference.
type segment struct {
	text string
	ref  *Ref
}

// parseTemplate splits s into literal text and references.
func parseTemplate(s string) ([]segment, error) {
	var out []segment
	for {
		i := strings.Index(s, "{{")
		if i < 0 {
			if strings.Contains(s, "}}") {
				return nil, fmt.Errorf("unmatched }}")
			}
			if s != "" {
				out = append(out, segment{text: s})
			}
			return out, nil
		}
		if strings.Contains(s[:i], "}}") {
			return nil, fmt.Errorf("unmatched }}")
		}
		if i > 0 {
			out = append(out, segment{text: s[:i]})
		}
		j := strings.Index(s[i:], "}}")
		if j < 0 {
			return nil, fmt.Errorf("unclosed {{")
		}
		expr := strings.TrimSpace(s[i+2 : i+j])
		ref, err := parseRef(expr)
		if err != nil {
			return nil, err
		}
		out = append(out, segment{ref: ref})
		s = s[i+j+2:]
	}
}

func parseRef(expr string) (*Ref, error) {
	m := refRE.FindStringSubmatch(expr)
	if m == nil {
		return nil, fmt.Errorf("{{ %s }} is not a reference; use {{ .params.NAME }}, {{ .node.name }}, {{ .run.id }} or {{ .environment }}", expr)
	}
	r := &Ref{Scope: m[1], Field: m[2], Key: m[3]}
	switch r.Scope {
	case "environment":
		if r.Field != "" {
			return nil, fmt.Errorf("{{ %s }}: .environment has no fields", expr)
		}
	case "params":
		if r.Field == "" || r.Key != "" {
			return nil, fmt.Errorf("{{ %s }}: expected {{ .params.NAME }}", expr)
		}
	case "node":
		if r.Field == "attributes" {
			if r.Key == "" {
				return nil, fmt.Errorf("{{ %s }}: expected {{ .node.attributes.KEY }}", expr)
			}
		} else if !nodeFields[r.Field] || r.Key != "" {
			return nil, fmt.Errorf("{{ %s }}: node has name, address, port, user, environment and attributes.KEY", expr)
		}
	case "run":
		if !runFields[r.Field] || r.Key != "" {
			return nil, fmt.Errorf("{{ %s }}: run has id, requester and environment", expr)
		}
	}
	return r, nil
}

// Vars are the values templates are expanded with.
type Vars struct {
	Params      map[string]string
	Environment string
	Run         map[string]string
	Node        map[string]string
	Attributes  map[string]string
}

// Expand substitutes the references in s. A reference to something
// absent is an error rather than an empty string.
func Expand(s string, v Vars) (string, error) {
	segs, err := parseTemplate(s)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, seg := range segs {
		if seg.ref == nil {
			b.WriteString(seg.text)
			continue
		}
		var val string
		var ok bool
		switch r := seg.ref; r.Scope {
		case "environment":
			val, ok = v.Environment, v.Environment != ""
		case "params":
			val, ok = v.Params[r.Field]
		case "run":
			val, ok = v.Run[r.Field]
		case "node":
			if r.Field == "attributes" {
				val, ok = v.Attributes[r.Key]
			} else {
				val, ok = v.Node[r.Field]
			}
		}
		if !ok {
			return "", fmt.Errorf("%s has no value here", refString(seg.ref))
		}
		b.WriteString(val)
	}
	return b.String(), nil
}

func refString(r *Ref) string {
	s := "." + r.Scope
	if r.Field != "" {
		s += "." + r.Field
	}
	if r.Key != "" {
		s += "." + r.Key
	}
	return "{{ " + s + " }}"
}

// HasTemplate reports whether s contains template syntax.
func HasTemplate(s string) bool { return strings.Contains(s, "{{") || strings.Contains(s, "}}") }
