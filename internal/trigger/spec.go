package trigger

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/theory/jsonpath"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/procedure"
	"github.com/airlockhq/airlock/internal/store"
)

// Presets: how a payload splits into items (alerts, incidents), what
// the JSONPaths are evaluated against, and each item's dedup key.
const (
	// PresetGeneric: the whole body is one item; its dedup key is the
	// value at DedupKey, or the webhook-id header.
	PresetGeneric = "generic"
	// PresetAlertmanager: a Prometheus Alertmanager webhook (version
	// 4): each element of $.alerts is an item, its dedup key the
	// alert's fingerprint and startsAt; resolved alerts start nothing
	// unless OnResolved is "run".
	PresetAlertmanager = "alertmanager"
	// PresetPagerDuty: a PagerDuty V3 webhook: $.event is the item;
	// incident.triggered starts a run, incident.resolved only with
	// OnResolved "run", other event types nothing; its dedup key is
	// $.event.data.id.
	PresetPagerDuty = "pagerduty"
)

// OnResolved values.
const (
	ResolvedIgnore = "ignore"
	ResolvedRun    = "run"
)

// Rate limits per trigger, deliveries a minute.
const (
	DefaultRate = 10
	MaxRate     = 600
)

// Spec is a trigger's own definition (store.Standing.Spec). All of it
// is bound by the approvals.
type Spec struct {
	Preset string `json:"preset"`
	Auth   string `json:"auth"`
	// Mapping maps a procedure parameter to the RFC 9535 JSONPath that
	// selects its value in each item; parameters not mapped take their
	// defaults.
	Mapping map[string]string `json:"mapping"`
	// DedupKey is the JSONPath of a generic payload's dedup key.
	DedupKey      string `json:"dedup_key,omitempty"`
	OnResolved    string `json:"on_resolved"`
	RatePerMinute int    `json:"rate_per_minute"`
}

// SpecOf reads a trigger's spec.
func SpecOf(st *store.Standing) (Spec, error) {
	var s Spec
	if err := json.Unmarshal(st.Spec, &s); err != nil {
		return s, fmt.Errorf("trigger %s: spec: %w", st.Name, err)
	}
	return s, nil
}

const maxPathLen = 512

// Normalize fills the defaults and checks everything that does not need
// the procedure.
func (s *Spec) Normalize() error {
	switch s.Preset {
	case "":
		s.Preset = PresetGeneric
	case PresetGeneric, PresetAlertmanager, PresetPagerDuty:
	default:
		return airlock.FieldError("preset", "expected generic, alertmanager or pagerduty, got %q", s.Preset)
	}
	switch s.Auth {
	case "":
		s.Auth = AuthHMAC
	case AuthHMAC, AuthBearer:
	default:
		return airlock.FieldError("auth", "expected hmac (Standard Webhooks signatures) or bearer, got %q", s.Auth)
	}
	switch s.OnResolved {
	case "":
		s.OnResolved = ResolvedIgnore
	case ResolvedIgnore:
	case ResolvedRun:
		if s.Preset == PresetGeneric {
			return airlock.FieldError("on_resolved", "only the alertmanager and pagerduty presets know resolved events")
		}
	default:
		return airlock.FieldError("on_resolved", "expected ignore or run, got %q", s.OnResolved)
	}
	switch {
	case s.RatePerMinute == 0:
		s.RatePerMinute = DefaultRate
	case s.RatePerMinute < 0 || s.RatePerMinute > MaxRate:
		return airlock.FieldError("rate_per_minute", "expected 1 to %d deliveries a minute, got %d", MaxRate, s.RatePerMinute)
	}
	if s.DedupKey != "" {
		if s.Preset != PresetGeneric {
			return airlock.FieldError("dedup_key", "the %s preset has its own dedup key", s.Preset)
		}
		if _, err := parsePath("dedup_key", s.DedupKey); err != nil {
			return err
		}
	}
	if len(s.Mapping) > 100 {
		return airlock.FieldError("mapping", "at most 100 parameters")
	}
	for _, name := range sortedKeys(s.Mapping) {
		if _, err := parsePath("mapping."+name, s.Mapping[name]); err != nil {
			return err
		}
	}
	return nil
}

func parsePath(field, expr string) (*jsonpath.Path, error) {
	if len(expr) > maxPathLen {
		return nil, airlock.FieldError(field, "a JSONPath of at most %d characters", maxPathLen)
	}
	p, err := jsonpath.Parse(expr)
	if err != nil {
		return nil, airlock.FieldError(field, "%q is not an RFC 9535 JSONPath: %v", expr, err)
	}
	return p, nil
}

// check checks the mapping against a procedure definition: every
// mapped name a parameter and not a secret one, every required
// parameter without a default mapped.
func (s *Spec) check(def *procedure.Procedure) error {
	params := map[string]*procedure.Parameter{}
	var names []string
	for i := range def.Parameters {
		p := &def.Parameters[i]
		params[p.Name] = p
		names = append(names, p.Name)
	}
	for _, name := range sortedKeys(s.Mapping) {
		p, ok := params[name]
		switch {
		case !ok:
			return airlock.FieldError("mapping."+name, "%s has no parameter %q (it has: %s)", def.Name, name, strings.Join(names, ", "))
		case p.Type == procedure.TypeSecret:
			return airlock.FieldError("mapping."+name, "%s is a secret parameter: a trigger cannot fill it from a payload", name)
		}
	}
	for _, p := range def.Parameters {
		if _, mapped := s.Mapping[p.Name]; !mapped && p.Required && p.Default == nil {
			return airlock.FieldError("mapping", "%s requires parameter %q and it has no default: map it to a JSONPath", def.Name, p.Name)
		}
	}
	return nil
}

// Binding is what a trigger's approvals approve: the version digest,
// the environment, the spec (mapping, preset, authentication, resolved
// events, rate) and the service account its runs are requested as.
func Binding(digest, env string, spec Spec, accountID string) string {
	h := sha256.New()
	b, _ := json.Marshal(struct {
		Digest      string `json:"digest"`
		Environment string `json:"environment"`
		Spec        Spec   `json:"spec"`
		Account     string `json:"account_id"`
	}{digest, env, spec, accountID})
	h.Write(b) // encoding/json sorts map keys: the mapping hashes the same every time
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
