package procedure

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"gopkg.in/yaml.v3"
)

func jsonMarshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// Canonical returns the canonical form of a validated, normalized
// definition: JSON with object keys in lexicographic order, no
// insignificant whitespace, no HTML escaping, defaults made explicit and
// set-like lists (tags, approval environments) sorted. Key order,
// comments, quoting and whitespace in the file do not change it.
func (p *Procedure) Canonical() []byte {
	b, err := jsonMarshal(p)
	if err != nil {
		panic("procedure: canonical: " + err.Error()) // only Airlock's own types
	}
	var generic any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&generic); err != nil {
		panic("procedure: canonical: " + err.Error())
	}
	out, err := jsonMarshal(generic) // maps marshal with sorted keys
	if err != nil {
		panic("procedure: canonical: " + err.Error())
	}
	return out
}

// Digest is "sha256:" and the hex SHA-256 of the canonical form. It
// identifies a version; approvals bind to it.
func (p *Procedure) Digest() string {
	sum := sha256.Sum256(p.Canonical())
	return "sha256:" + hex.EncodeToString(sum[:])
}

// YAML renders the definition in canonical field order, the form
// reviewers read and diff.
func (p *Procedure) YAML() string {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(p); err != nil {
		panic("procedure: yaml: " + err.Error())
	}
	return b.String()
}

// FromCanonical decodes a stored canonical form.
func FromCanonical(b []byte) (*Procedure, error) {
	var p Procedure
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// UnmarshalText reads a duration written by MarshalText.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = Duration(v)
	return err
}

// UnmarshalJSON reads a default written by MarshalJSON.
func (l *Literal) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return err
	}
	switch x := v.(type) {
	case json.Number:
		i, err := x.Int64()
		if err != nil {
			return err
		}
		l.V = i
	case []any:
		list := make([]string, 0, len(x))
		for _, item := range x {
			s, ok := item.(string)
			if !ok {
				return fmt.Errorf("default list holds a %T", item)
			}
			list = append(list, s)
		}
		l.V = list
	default:
		l.V = x
	}
	return nil
}
