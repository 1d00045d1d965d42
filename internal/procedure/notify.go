package procedure

import (
	"fmt"
	"net/mail"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/airlockhq/airlock/internal/strictyaml"
)

// NotifyRule sends a procedure's notifications of some kinds to places
// of its own: a mailing list, a Slack channel, a Microsoft Teams webhook
// and webhooks, the last two by their names in the server's
// configuration. The rules are part of the definition, so a change of
// targets changes the digest and is reviewed like any other change.
type NotifyRule struct {
	// Kinds are notification kinds (notify.Kinds); empty: every kind.
	Kinds []string `yaml:"kinds,omitempty" json:"kinds,omitempty"`
	// Email holds plain addresses (no display names).
	Email []string `yaml:"email,omitempty" json:"email,omitempty"`
	// Slack is a channel ID (C… or G…), not a name: names change.
	Slack string `yaml:"slack,omitempty" json:"slack,omitempty"`
	// Teams names a notify.teams entry of the server's configuration.
	Teams string `yaml:"teams,omitempty" json:"teams,omitempty"`
	// Webhooks name notify.webhooks entries of the server's configuration.
	Webhooks []string `yaml:"webhooks,omitempty" json:"webhooks,omitempty"`
}

// NotifyKinds are the kinds a rule may name. They are notify.Kinds (a
// test keeps the two lists equal): the notify package reads procedures,
// so this one cannot import it, and it would bring the store with it.
var NotifyKinds = []string{"approval_needed", "approval_decided", "run_started", "run_finished", "approval_expiring",
	"approval_expired", "review_needed", "review_decided", "policy_needed", "user_change_needed", "standing_needed", "standing_changed"}

// Limits of notify: rules.
const (
	MaxNotifyRules   = 10
	MaxNotifyTargets = 20 // over all rules: addresses, channels and names
)

var slackChannelRE = regexp.MustCompile(`^[CG][A-Z0-9]{8,}$`)

// wants reports whether the rule is for kind.
func (r NotifyRule) wants(kind string) bool {
	return len(r.Kinds) == 0 || slices.Contains(r.Kinds, kind)
}

// targets counts the places the rule sends to.
func (r NotifyRule) targets() int {
	n := len(r.Email) + len(r.Webhooks)
	if r.Slack != "" {
		n++
	}
	if r.Teams != "" {
		n++
	}
	return n
}

// NotifyTargets returns the rules that send notifications of kind: those
// naming it and those naming no kind at all.
func (p *Procedure) NotifyTargets(kind string) []NotifyRule {
	var out []NotifyRule
	for _, r := range p.Notify {
		if r.wants(kind) {
			out = append(out, r)
		}
	}
	return out
}

func validateNotify(d *strictyaml.Decoder, rules []NotifyRule) {
	if len(rules) > MaxNotifyRules {
		d.ErrorAt("notify", "at most %d rules, got %d", MaxNotifyRules, len(rules))
	}
	total := 0
	for i, r := range rules {
		path := fmt.Sprintf("notify[%d]", i)
		total += r.targets()
		if r.targets() == 0 {
			d.ErrorAt(path, "expected at least one target: email, slack, teams or webhooks")
		}
		if r.Kinds != nil && len(r.Kinds) == 0 {
			d.ErrorAt(path+".kinds", "expected at least one kind; leave kinds out for every kind")
		}
		for j, k := range r.Kinds {
			if !slices.Contains(NotifyKinds, k) {
				d.ErrorAt(fmt.Sprintf("%s.kinds[%d]", path, j), "expected one of %s, got %q", strings.Join(NotifyKinds, ", "), k)
			}
		}
		for j, a := range r.Email {
			if addr, err := mail.ParseAddress(a); err != nil || addr.Name != "" || addr.Address != a {
				d.ErrorAt(fmt.Sprintf("%s.email[%d]", path, j), "expected a plain email address such as payments-oncall@example.com, got %q", a)
			}
		}
		if r.Slack != "" && !slackChannelRE.MatchString(r.Slack) {
			d.ErrorAt(path+".slack", "expected a Slack channel ID such as C0123ABCDEF (a channel's name can change, its ID cannot), got %q", r.Slack)
		}
		if r.Teams != "" && !nameRE.MatchString(r.Teams) {
			d.ErrorAt(path+".teams", "expected the name of a notify.teams entry (lower-case letters, digits and '-', starting with a letter), got %q", r.Teams)
		}
		for j, w := range r.Webhooks {
			if !nameRE.MatchString(w) {
				d.ErrorAt(fmt.Sprintf("%s.webhooks[%d]", path, j), "expected the name of a notify.webhooks entry (lower-case letters, digits and '-', starting with a letter), got %q", w)
			}
		}
	}
	if total > MaxNotifyTargets {
		d.ErrorAt("notify", "at most %d targets over all rules, got %d", MaxNotifyTargets, total)
	}
}

// normalizeNotify sorts the set-like lists of each rule and drops
// repeats, so that their order in the file does not change the digest.
func normalizeNotify(rules []NotifyRule) {
	for i := range rules {
		r := &rules[i]
		for _, l := range []*[]string{&r.Kinds, &r.Email, &r.Webhooks} {
			slices.Sort(*l)
			*l = slices.Compact(*l)
		}
	}
}

// KnownTargets are the notification targets a server's configuration
// defines, by name.
type KnownTargets struct {
	Teams    []string // notify.teams names
	Webhooks []string // notify.webhooks names
}

// CheckTargets returns an error for every notify.teams or notify.webhooks
// name the rules give that known lacks, at its line and column, saying
// which names exist. The file alone cannot tell (`airlock procedure
// validate` works offline): the server checks when a version is proposed.
func (s *Source) CheckTargets(known KnownTargets) strictyaml.Errors {
	var errs strictyaml.Errors
	for i, r := range s.Procedure.Notify {
		path := fmt.Sprintf("notify[%d]", i)
		if r.Teams != "" && !slices.Contains(known.Teams, r.Teams) {
			errs = append(errs, s.ErrorAt(path+".teams", "no notify.teams entry named %q in the server's configuration (%s)",
				r.Teams, configured(known.Teams)))
		}
		// The list is sorted since parsing: report each name at its own
		// place, in the file's order.
		at, names := path+".webhooks", r.Webhooks
		if s.dec != nil && len(names) > 0 {
			if n := s.dec.Node(at); n != nil && n.Kind == yaml.SequenceNode {
				names = nil
				for _, item := range n.Content {
					names = append(names, item.Value)
				}
			}
		}
		reported := map[string]bool{}
		for j, w := range names {
			if slices.Contains(known.Webhooks, w) || reported[w] {
				continue
			}
			reported[w] = true
			errs = append(errs, s.ErrorAt(fmt.Sprintf("%s[%d]", at, j), "no notify.webhooks entry named %q in the server's configuration (%s)",
				w, configured(known.Webhooks)))
		}
	}
	return errs
}

func configured(names []string) string {
	if len(names) == 0 {
		return "none is configured"
	}
	return "configured: " + strings.Join(names, ", ")
}
