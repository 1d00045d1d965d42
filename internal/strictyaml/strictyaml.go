// Package strictyaml decodes YAML (gopkg.in/yaml.v3) into Go values
// strictly: unknown fields, duplicate keys, wrong types and bad values are
// errors that carry the file, line, column and field path, and decoding
// collects all of them rather than stopping at the first.
//
// Struct fields are named by their `yaml` tag. time.Duration decodes from
// strings like "30m". A type may take over its own decoding by
// implementing Unmarshaler.
package strictyaml

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Error is one problem at one place.
type Error struct {
	File   string
	Line   int
	Column int
	Path   string // field path, e.g. database.driver or steps[2].exec
	Msg    string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteByte(':')
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "%d:%d:", e.Line, e.Column)
	}
	if b.Len() > 0 {
		b.WriteByte(' ')
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is a list of problems; it is what Decode returns.
type Errors []*Error

func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Unmarshaler is implemented by types that decode themselves. They report
// problems through d.Errorf.
type Unmarshaler interface {
	UnmarshalStrictYAML(d *Decoder, n *yaml.Node, path string)
}

// Decoder carries the file name, the collected errors and the node each
// decoded path came from, so that checks made after decoding can still
// point at a line and column.
type Decoder struct {
	File  string
	errs  Errors
	nodes map[string]*yaml.Node
}

// NewDecoder returns a decoder for values from file.
func NewDecoder(file string) *Decoder {
	return &Decoder{File: file, nodes: map[string]*yaml.Node{}}
}

// Errors returns what has been recorded so far, or nil.
func (d *Decoder) Errors() error {
	if len(d.errs) == 0 {
		return nil
	}
	return d.errs
}

// Count is how many errors were recorded so far.
func (d *Decoder) Count() int { return len(d.errs) }

// Covered drops the errors recorded after the first n whose path is the
// path of one of the first n, lies under it or above it: a check made
// after decoding repeats nothing decoding already said about a value,
// nor what a value it could not decode (a misspelt field) caused.
func (d *Decoder) Covered(n int) {
	kept := d.errs[:n]
	for _, e := range d.errs[n:] {
		covered := false
		for _, f := range d.errs[:n] {
			if f.Path != "" && (e.Path == f.Path || under(e.Path, f.Path)) || e.Path != "" && under(f.Path, e.Path) {
				covered = true
				break
			}
		}
		if !covered {
			kept = append(kept, e)
		}
	}
	d.errs = kept
	sort.SliceStable(d.errs, func(i, j int) bool { return d.errs[i].Line < d.errs[j].Line })
}

// under reports whether path lies below parent.
func under(path, parent string) bool {
	return strings.HasPrefix(path, parent+".") || strings.HasPrefix(path, parent+"[")
}

// ErrorPos records an error at an explicit line and column.
func (d *Decoder) ErrorPos(line, col int, path, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.File, Line: line, Column: col, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// ErrorAt records an error at the node decoded for path, or at the
// nearest enclosing path that was decoded.
func (d *Decoder) ErrorAt(path, format string, args ...any) {
	d.Errorf(d.Node(path), path, format, args...)
}

// Node returns the node decoded at path or, when there is none (a field
// left out), at the nearest enclosing path.
func (d *Decoder) Node(path string) *yaml.Node {
	for p := path; ; {
		if n, ok := d.nodes[p]; ok {
			return n
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			return d.nodes[""]
		}
		p = p[:i]
	}
}

// Errorf records an error at n.
func (d *Decoder) Errorf(n *yaml.Node, path, format string, args ...any) {
	e := &Error{File: d.File, Path: path, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	d.errs = append(d.errs, e)
}

// Decode parses data and decodes its single document into v (a pointer).
// An empty document leaves v unchanged.
func Decode(file string, data []byte, v any) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return Errors{syntaxError(file, err)}
	}
	if len(doc.Content) == 0 {
		return nil
	}
	d := NewDecoder(file)
	d.Value(doc.Content[0], reflect.ValueOf(v).Elem(), "")
	if len(d.errs) > 0 {
		return d.errs
	}
	return nil
}

// SyntaxError turns a yaml.v3 parse error into an Error with the line.
func SyntaxError(file string, err error) *Error { return syntaxError(file, err) }

// syntaxError turns yaml.v3's "yaml: line N: msg" into an Error.
func syntaxError(file string, err error) *Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	e := &Error{File: file, Msg: msg}
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, tail, ok := strings.Cut(rest, ": "); ok {
			if n, err := strconv.Atoi(num); err == nil {
				e.Line, e.Column, e.Msg = n, 1, tail
			}
		}
	}
	return e
}

var (
	durationType    = reflect.TypeFor[time.Duration]()
	unmarshalerType = reflect.TypeFor[Unmarshaler]()
)

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "an alias or anchor"
}

// Value decodes n into v, recording errors under path.
func (d *Decoder) Value(n *yaml.Node, v reflect.Value, path string) {
	if d.nodes != nil {
		d.nodes[path] = n
	}
	if n.Kind == yaml.AliasNode {
		d.Errorf(n, path, "aliases are not allowed")
		return
	}
	if v.CanAddr() && v.Addr().Type().Implements(unmarshalerType) {
		v.Addr().Interface().(Unmarshaler).UnmarshalStrictYAML(d, n, path)
		return
	}
	if v.Type() == durationType {
		dur, err := time.ParseDuration(n.Value)
		if n.Kind != yaml.ScalarNode || err != nil {
			d.Errorf(n, path, "expected a duration such as 30s, 15m or 12h, got %s", kindName(n))
			return
		}
		v.SetInt(int64(dur))
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.Value(n, v.Elem(), path)
	case reflect.Struct:
		d.structValue(n, v, path)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.Errorf(n, path, "expected a mapping, got %s", kindName(n))
			return
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
		seen := map[string]*yaml.Node{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if d.duplicate(seen, k, path) {
				continue
			}
			elem := reflect.New(v.Type().Elem()).Elem()
			d.Value(val, elem, join(path, k.Value))
			v.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), elem)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.Errorf(n, path, "expected a list, got %s", kindName(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.Value(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.String:
		if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
			d.Errorf(n, path, "expected a string, got %s", kindName(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			d.Errorf(n, path, "expected true or false, got %s", kindName(n))
			return
		}
		v.SetBool(n.Value == "true")
	case reflect.Int, reflect.Int64, reflect.Int32:
		i, err := strconv.ParseInt(n.Value, 10, 64)
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || err != nil || v.OverflowInt(i) {
			d.Errorf(n, path, "expected an integer, got %s", kindName(n))
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		f, err := strconv.ParseFloat(n.Value, 64)
		if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") || err != nil {
			d.Errorf(n, path, "expected a number, got %s", kindName(n))
			return
		}
		v.SetFloat(f)
	default:
		d.Errorf(n, path, "cannot decode into %s", v.Type())
	}
}

func (d *Decoder) duplicate(seen map[string]*yaml.Node, k *yaml.Node, path string) bool {
	if prev, ok := seen[k.Value]; ok {
		d.Errorf(k, join(path, k.Value), "duplicate key (first at line %d)", prev.Line)
		return true
	}
	seen[k.Value] = k
	return false
}

// Fields returns the yaml names of a struct type's fields.
func Fields(t reflect.Type) []string {
	var names []string
	for i := range t.NumField() {
		if name := fieldName(t.Field(i)); name != "" {
			names = append(names, name)
		}
	}
	return names
}

func fieldName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" || name == "" {
		return ""
	}
	return name
}

func (d *Decoder) structValue(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		if n.Tag == "!!null" {
			return
		}
		d.Errorf(n, path, "expected a mapping, got %s", kindName(n))
		return
	}
	t := v.Type()
	index := map[string]int{}
	for i := range t.NumField() {
		if name := fieldName(t.Field(i)); name != "" {
			index[name] = i
		}
	}
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if d.duplicate(seen, k, path) {
			continue
		}
		fi, ok := index[k.Value]
		if !ok {
			d.Errorf(k, join(path, k.Value), "unknown field (known: %s)", strings.Join(Fields(t), ", "))
			continue
		}
		d.Value(val, v.Field(fi), join(path, k.Value))
	}
}

// IsErrors reports whether err is a list of decoding errors.
func IsErrors(err error) bool {
	var es Errors
	return errors.As(err, &es)
}
