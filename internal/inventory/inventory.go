// Package inventory owns nodes: their definition in an inventory file or
// through the API, validation (including the pinned SSH host key), and
// target resolution — which nodes a run of a procedure in an environment
// executes on.
package inventory

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/airlockhq/airlock/internal/procedure"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/strictyaml"
)

// Node is a node as written in an inventory file or an API body.
type Node struct {
	Name        string            `yaml:"name" json:"name"`
	Address     string            `yaml:"address" json:"address"`
	Port        int               `yaml:"port" json:"port,omitempty"`
	User        string            `yaml:"user" json:"user,omitempty"`
	Environment string            `yaml:"environment" json:"environment"`
	Tags        []string          `yaml:"tags" json:"tags,omitempty"`
	Attributes  map[string]string `yaml:"attributes" json:"attributes,omitempty"`
	// HostKey pins the node's SSH host key (authorized_keys format, as in
	// ssh-keyscan output without the host name).
	HostKey string `yaml:"host_key" json:"host_key,omitempty"`
	// Credential names the secret with the SSH private key or password.
	Credential string `yaml:"credential" json:"credential,omitempty"`
	// Transport is ssh (default) or local: a local node runs its steps on
	// the Airlock host, as that node.
	Transport string `yaml:"transport" json:"transport,omitempty"`
}

// File is an inventory file.
type File struct {
	Nodes []Node `yaml:"nodes"`
}

var (
	nameRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	labelRE = nameRE
)

// Validate checks a node against the known environments and returns
// problems naming the field.
func (n *Node) Validate(environments []string) []string {
	var errs []string
	bad := func(field, format string, args ...any) { errs = append(errs, field+": "+fmt.Sprintf(format, args...)) }
	if !nameRE.MatchString(n.Name) {
		bad("name", "expected lower-case letters, digits, '.', '_' and '-', got %q", n.Name)
	}
	if !slices.Contains(environments, n.Environment) {
		bad("environment", "expected one of %s, got %q", strings.Join(environments, ", "), n.Environment)
	}
	for _, t := range n.Tags {
		if !labelRE.MatchString(t) {
			bad("tags", "expected tags of lower-case letters, digits, '.', '_' and '-', got %q", t)
		}
	}
	for k := range n.Attributes {
		if !labelRE.MatchString(k) {
			bad("attributes", "expected attribute names of lower-case letters, digits, '.', '_' and '-', got %q", k)
		}
	}
	switch n.Transport {
	case "", store.TransportSSH:
		if n.Address == "" {
			bad("address", "is required for SSH nodes")
		}
		if n.Port < 0 || n.Port > 65535 {
			bad("port", "expected 1-65535, got %d", n.Port)
		}
		if n.User == "" {
			bad("user", "is required for SSH nodes")
		}
		if n.HostKey == "" {
			bad("host_key", "is required for SSH nodes: pin the node's host key (ssh-keyscan -t ed25519 HOST)")
		} else if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(n.HostKey)); err != nil {
			bad("host_key", "expected a public key such as \"ssh-ed25519 AAAA…\": %v", err)
		}
		if n.Credential == "" {
			bad("credential", "is required for SSH nodes: the name of the secret holding the private key or password")
		}
	case store.TransportLocal:
	default:
		bad("transport", "expected ssh or local, got %q", n.Transport)
	}
	return errs
}

// Store converts a validated node for storage.
func (n *Node) Store(source string) *store.Node {
	t := n.Transport
	if t == "" {
		t = store.TransportSSH
	}
	port := n.Port
	if port == 0 && t == store.TransportSSH {
		port = 22
	}
	tags := slices.Clone(n.Tags)
	sort.Strings(tags)
	return &store.Node{Name: n.Name, Address: n.Address, Port: port, User: n.User, Environment: n.Environment,
		Tags: slices.Compact(tags), Attributes: n.Attributes, HostKey: strings.TrimSpace(n.HostKey), Credential: n.Credential,
		Transport: t, Source: source}
}

// FromStore converts a stored node for API output.
func FromStore(s *store.Node) Node {
	return Node{Name: s.Name, Address: s.Address, Port: s.Port, User: s.User, Environment: s.Environment, Tags: s.Tags,
		Attributes: s.Attributes, HostKey: s.HostKey, Credential: s.Credential, Transport: s.Transport}
}

// LoadFile reads and validates an inventory file; problems carry line
// and column when the YAML is at fault, the node and field otherwise.
func LoadFile(path string, environments []string) ([]Node, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f File
	if err := strictyaml.Decode(path, b, &f); err != nil {
		return nil, err
	}
	var errs []string
	seen := map[string]bool{}
	for i, n := range f.Nodes {
		for _, e := range n.Validate(environments) {
			errs = append(errs, fmt.Sprintf("%s: nodes[%d] (%s).%s", path, i, n.Name, e))
		}
		if seen[n.Name] {
			errs = append(errs, fmt.Sprintf("%s: nodes[%d]: duplicate node %q", path, i, n.Name))
		}
		seen[n.Name] = true
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return f.Nodes, nil
}

// Local is the pseudo-node of procedures without targets: the Airlock
// host itself.
func Local(env string) *store.Node {
	return &store.Node{Name: "airlock", Environment: env, Transport: store.TransportLocal}
}

// Resolve picks the nodes a run of def in env with params executes on.
// Without targets, the run executes on the Airlock host. The nodes must
// be in the run's environment, carry every tag and match every
// attribute; none matching is an error, as is a targets.environment that
// resolves to another environment than the run's.
func Resolve(def *procedure.Procedure, env string, params map[string]string, nodes []*store.Node) ([]*store.Node, error) {
	t := def.Targets
	if t == nil {
		return []*store.Node{Local(env)}, nil
	}
	vars := procedure.Vars{Params: params, Environment: env, Run: map[string]string{"environment": env}}
	want := env
	if t.Environment != "" {
		e, err := procedure.Expand(t.Environment, vars)
		if err != nil {
			return nil, fmt.Errorf("targets.environment: %w", err)
		}
		if e != env {
			return nil, fmt.Errorf("targets.environment resolves to %q but the run is for %q", e, env)
		}
	}
	attrs := map[string]string{}
	for k, v := range t.Attributes {
		e, err := procedure.Expand(v, vars)
		if err != nil {
			return nil, fmt.Errorf("targets.attributes.%s: %w", k, err)
		}
		attrs[k] = e
	}
	var out []*store.Node
	for _, n := range nodes {
		if n.Environment != want {
			continue
		}
		ok := true
		for _, tag := range t.Tags {
			if !slices.Contains(n.Tags, tag) {
				ok = false
			}
		}
		for k, v := range attrs {
			if n.Attributes[k] != v {
				ok = false
			}
		}
		if ok {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no node in %s has tags [%s] and attributes %v", env, strings.Join(t.Tags, ", "), attrs)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
