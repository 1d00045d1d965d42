package run

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/procedure"
	"github.com/airlockhq/airlock/internal/store"
)

// coerce validates raw parameter values against the definition: every
// value typed and checked, required ones present, defaults filled,
// unknown names refused. It returns the plain and the secret values
// apart. The error names the parameter.
func coerce(def *procedure.Procedure, raw map[string]any) (plain, secrets map[string]any, err error) {
	plain, secrets = map[string]any{}, map[string]any{}
	known := map[string]bool{}
	whole := def.WholeArgParams()
	for i := range def.Parameters {
		prm := &def.Parameters[i]
		known[prm.Name] = true
		field := "params." + prm.Name
		v, given := raw[prm.Name]
		if given && v == nil {
			given = false
		}
		if !given {
			switch {
			case prm.Default != nil:
				v = prm.Default.V
			case prm.Required:
				return nil, nil, airlock.FieldError(field, procedure.MsgRequired)
			default:
				continue
			}
		}
		typed, err := prm.Coerce(v)
		if err != nil {
			return nil, nil, airlock.FieldError(field, "%v", err)
		}
		if whole[prm.Name] && !prm.AllowDash && strings.HasPrefix(str(typed), "-") {
			return nil, nil, airlock.FieldError(field, "%q begins with '-': %s passes it as a whole argument, where the program would read it "+
				"as an option; the procedure must declare allow_dash: true for the parameter, or put \"--\" before it", str(typed), def.Name)
		}
		if prm.Type == procedure.TypeSecret {
			secrets[prm.Name] = typed
		} else {
			plain[prm.Name] = typed
		}
	}
	var unknown []string
	for k := range raw {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, nil, airlock.FieldError("params."+unknown[0], "%s has no parameter %q (it has: %s)", def.Name, unknown[0], paramNames(def))
	}
	return plain, secrets, nil
}

func paramNames(def *procedure.Procedure) string {
	var names []string
	for _, p := range def.Parameters {
		names = append(names, p.Name)
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// str renders a typed value for templates and environment variables.
func str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case bool:
		return strconv.FormatBool(x)
	case []string:
		return strings.Join(x, ",")
	}
	return fmt.Sprint(v)
}

func render(m map[string]any) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = str(v)
	}
	return out
}

// EnvName is the variable a parameter reaches scripts as.
func EnvName(param string) string { return "AIRLOCK_PARAM_" + strings.ToUpper(param) }

// binding is what an approval approves: the version digest, the
// environment, the (non-secret) parameters and the targets as resolved
// — each node's name, address, port, user, transport and pinned host
// key, so that a node changed after the approval does not receive the
// run. Secret parameters are fixed at request time and never leave the
// run, so they are not part of it (a hash of a weak secret would leak
// it).
func binding(digest, env string, params map[string]any, nodes []*store.Node) string {
	type bound struct {
		Name      string `json:"name"`
		Address   string `json:"address"`
		Port      int    `json:"port"`
		User      string `json:"user"`
		Transport string `json:"transport"`
		HostKey   string `json:"host_key"`
	}
	targets := make([]bound, len(nodes))
	for i, n := range nodes {
		targets[i] = bound{n.Name, n.Address, n.Port, n.User, n.Transport, n.HostKey}
	}
	b, _ := json.Marshal(struct {
		Digest  string         `json:"digest"`
		Env     string         `json:"environment"`
		Params  map[string]any `json:"params"`
		Targets []bound        `json:"targets"`
	}{digest, env, params, targets})
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// bindingByName is the binding of runs requested before it named the
// nodes' addresses: their names only.
func bindingByName(digest, env string, params map[string]any, targets []string) string {
	b, _ := json.Marshal(struct {
		Digest  string         `json:"digest"`
		Env     string         `json:"environment"`
		Params  map[string]any `json:"params"`
		Targets []string       `json:"targets"`
	}{digest, env, params, targets})
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}
