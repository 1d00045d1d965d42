package procedure

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// compilePattern compiles a parameter pattern, anchored: a pattern must
// match the whole value, so "[0-9]+" cannot be satisfied by "1; rm -rf /".
func compilePattern(p string) (*regexp.Regexp, error) {
	if _, err := regexp.Compile(p); err != nil {
		return nil, err
	}
	return regexp.Compile(`^(?:` + p + `)$`)
}

// Rules are a parameter's checks as a web form's script applies them
// before submitting, with the very messages Coerce reports: Coerce
// formats its errors from Messages. In a message, the last "%q" stands
// for the value, quoted as strconv.Quote quotes it.
type Rules struct {
	Type      string            `json:"type"`
	Required  bool              `json:"required,omitempty"`
	Min       *int64            `json:"min,omitempty"`
	Max       *int64            `json:"max,omitempty"`
	MinLength *int              `json:"min_length,omitempty"`
	MaxLength *int              `json:"max_length,omitempty"`
	Pattern   string            `json:"pattern,omitempty"`
	Values    []string          `json:"values,omitempty"`
	Messages  map[string]string `json:"messages"`
}

// MsgRequired is the message for a required parameter left out.
const MsgRequired = "is required"

// Rules returns the parameter's checks and their messages.
func (p *Parameter) Rules() Rules {
	m := map[string]string{"required": MsgRequired}
	switch p.Type {
	case TypeInt:
		m["integer"] = "expected an integer, got %q"
		if p.Min != nil {
			m["min"] = fmt.Sprintf("must be at least %d", *p.Min)
		}
		if p.Max != nil {
			m["max"] = fmt.Sprintf("must be at most %d", *p.Max)
		}
	case TypeEnum:
		m["enum"] = "expected one of " + strings.Join(p.Values, ", ") + ", got %q"
	case TypeMultiEnum:
		if p.MinLength != nil {
			m["min_length"] = fmt.Sprintf("choose at least %d", *p.MinLength)
		}
		if p.MaxLength != nil {
			m["max_length"] = fmt.Sprintf("choose at most %d", *p.MaxLength)
		}
	case TypeString, TypeSecret:
		if p.MinLength != nil {
			m["min_length"] = fmt.Sprintf("must be at least %d characters", *p.MinLength)
		}
		if p.MaxLength != nil {
			m["max_length"] = fmt.Sprintf("must be at most %d characters", *p.MaxLength)
		}
		if p.Pattern != "" {
			m["pattern"] = "must match " + p.Pattern + ", got %q"
			if p.Type == TypeSecret { // the value is never echoed
				m["pattern"] = "does not match the required pattern"
			}
		}
	}
	return Rules{Type: p.Type, Required: p.Required, Min: p.Min, Max: p.Max, MinLength: p.MinLength,
		MaxLength: p.MaxLength, Pattern: p.Pattern, Values: p.Values, Messages: m}
}

// message is the named message of p's rules with v in place of the
// last %q.
func (p *Parameter) message(name string, v string) error {
	m := p.Rules().Messages[name]
	if i := strings.LastIndex(m, "%q"); i >= 0 {
		m = m[:i] + strconv.Quote(v) + m[i+2:]
	}
	return errors.New(m)
}

// Coerce turns a raw value (from JSON: string, float64, bool, []any; or a
// string from a form or the CLI) into the parameter's typed value
// (string, int64, bool or []string) and checks it against the
// parameter's rules. The error says what was expected.
func (p *Parameter) Coerce(raw any) (any, error) {
	switch p.Type {
	case TypeString, TypeSecret, TypeEnum:
		s, ok := raw.(string)
		if !ok {
			return nil, fmt.Errorf("expected a string")
		}
		return s, p.checkString(s)
	case TypeInt:
		var i int64
		switch v := raw.(type) {
		case int64:
			i = v
		case int:
			i = int64(v)
		case float64:
			if v != math.Trunc(v) || math.Abs(v) > 1<<53 {
				return nil, fmt.Errorf("expected an integer")
			}
			i = int64(v)
		case string:
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return nil, p.message("integer", v)
			}
			i = n
		default:
			return nil, fmt.Errorf("expected an integer")
		}
		if p.Min != nil && i < *p.Min {
			return nil, p.message("min", "")
		}
		if p.Max != nil && i > *p.Max {
			return nil, p.message("max", "")
		}
		return i, nil
	case TypeBool:
		switch v := raw.(type) {
		case bool:
			return v, nil
		case string:
			switch v {
			case "true":
				return true, nil
			case "false":
				return false, nil
			}
		}
		return nil, fmt.Errorf("expected true or false")
	case TypeMultiEnum:
		var list []string
		switch v := raw.(type) {
		case []string:
			list = v
		case []any:
			for _, item := range v {
				s, ok := item.(string)
				if !ok {
					return nil, fmt.Errorf("expected a list of strings")
				}
				list = append(list, s)
			}
		case string:
			for s := range strings.SplitSeq(v, ",") {
				if s = strings.TrimSpace(s); s != "" {
					list = append(list, s)
				}
			}
		default:
			return nil, fmt.Errorf("expected a list of strings")
		}
		seen := map[string]bool{}
		for _, s := range list {
			if !slices.Contains(p.Values, s) {
				return nil, fmt.Errorf("%q is not one of %s", s, strings.Join(p.Values, ", "))
			}
			if seen[s] {
				return nil, fmt.Errorf("%q is listed twice", s)
			}
			seen[s] = true
		}
		if p.MinLength != nil && len(list) < *p.MinLength {
			return nil, p.message("min_length", "")
		}
		if p.MaxLength != nil && len(list) > *p.MaxLength {
			return nil, p.message("max_length", "")
		}
		if list == nil {
			list = []string{}
		}
		return list, nil
	}
	return nil, fmt.Errorf("unknown type %q", p.Type)
}

func (p *Parameter) checkString(s string) error {
	if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
		return fmt.Errorf("must be valid UTF-8 text without NUL characters")
	}
	if p.Type == TypeEnum {
		if !slices.Contains(p.Values, s) {
			return p.message("enum", s)
		}
		return nil
	}
	n := utf8.RuneCountInString(s)
	if p.MinLength != nil && n < *p.MinLength {
		return p.message("min_length", "")
	}
	if p.MaxLength != nil && n > *p.MaxLength {
		return p.message("max_length", "")
	}
	if p.Pattern != "" {
		re, err := compilePattern(p.Pattern)
		if err != nil {
			return fmt.Errorf("pattern does not compile: %v", err)
		}
		if !re.MatchString(s) {
			return p.message("pattern", s)
		}
	}
	return nil
}
