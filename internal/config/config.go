// Package config is Airlock's one configuration struct: defaults, the YAML
// file, AIRLOCK_* environment variables and flags, in rising precedence,
// and a Validate that names the bad field. Every key is documented with
// its default in docs/configuration.md.
package config

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/airlockhq/airlock/internal/notify"
	"github.com/airlockhq/airlock/internal/sso"
	"github.com/airlockhq/airlock/internal/strictyaml"
)

// Config is the server configuration.
type Config struct {
	Listen    string   `yaml:"listen"`
	Data      string   `yaml:"data"`
	PublicURL string   `yaml:"public_url"`
	Database  Database `yaml:"database"`
	TLS       TLS      `yaml:"tls"`
	Log       Log      `yaml:"log"`
	Session   Session  `yaml:"session"`
	Tokens    Tokens   `yaml:"tokens"`
	Login     Login    `yaml:"login"`
	// AdminGroup members manage users, groups and tokens.
	AdminGroup string `yaml:"admin_group"`
	Review     Review `yaml:"review"`
	// PolicyFile is the Cedar policy installed at first start; later
	// changes go through proposal and a second admin's approval.
	PolicyFile string `yaml:"policy_file"`
	// Environments are the zones nodes live in and policies talk about.
	Environments []string `yaml:"environments"`
	// TryEnvironments are environments (of Environments) where a
	// procedure's author or owner team may run a proposed, unreviewed
	// version: sandboxes, never given secrets.
	TryEnvironments []string `yaml:"try_environments"`
	// InventoryFile lists nodes; it is synced into the store at start.
	InventoryFile   string        `yaml:"inventory_file"`
	Secrets         Secrets       `yaml:"secrets"`
	Runs            Runs          `yaml:"runs"`
	Schedules       Schedules     `yaml:"schedules"`
	Audit           Audit         `yaml:"audit"`
	OIDC            sso.Config    `yaml:"oidc"`
	Notify          Notify        `yaml:"notify"`
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
}

// Notify configures notifications (docs/notifications.md). With no
// channel configured nothing is queued.
type Notify struct {
	Email    NotifyEmail     `yaml:"email"`
	Slack    NotifySlack     `yaml:"slack"`
	Teams    []NotifyTeams   `yaml:"teams"`
	Webhooks []NotifyWebhook `yaml:"webhooks"`
	// Owners route the notifications of a team's procedures to the
	// team's own places (a chat channel, a mailing list, a webhook).
	Owners []NotifyOwner `yaml:"owners"`
	// ExpiryWarning: how long before a pending run's approval expires
	// its approvers and requester are reminded; 0 sends no reminder.
	ExpiryWarning time.Duration `yaml:"expiry_warning"`
	// MaxAttempts and MaxBackoff bound retries: the wait doubles from a
	// second up to MaxBackoff; after MaxAttempts the delivery is a dead
	// letter.
	MaxAttempts int           `yaml:"max_attempts"`
	MaxBackoff  time.Duration `yaml:"max_backoff"`
	// Lease is how long a replica holds a delivery it is sending before
	// another may send it again (after a crash).
	Lease time.Duration `yaml:"lease"`
}

// NotifyEmail is an SMTP server to send email through.
type NotifyEmail struct {
	Host string `yaml:"host"` // empty: no email
	Port int    `yaml:"port"` // default 587 (starttls), 465 (tls), 25 (none)
	// TLS: starttls (default, required), tls (implicit, port 465) or none
	// (only for a relay on localhost).
	TLS          string `yaml:"tls"`
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`
	From         string `yaml:"from"`
}

// NotifySlack is a Slack app (or a Slack-compatible server).
type NotifySlack struct {
	// BotTokenFile holds the bot token (xoxb-…) that posts messages;
	// SigningSecretFile the secret Slack signs interactions with.
	BotTokenFile      string `yaml:"bot_token_file"`
	SigningSecretFile string `yaml:"signing_secret_file"`
	// APIURL is Slack's Web API (default https://slack.com/api/).
	APIURL string `yaml:"api_url"`
}

// NotifyTeams is a Microsoft Teams incoming webhook, by name.
type NotifyTeams struct {
	Name    string `yaml:"name"`
	URLFile string `yaml:"url_file"` // the webhook URL is a credential
}

// NotifyWebhook is an HTTP endpoint that receives events signed per the
// Standard Webhooks scheme.
type NotifyWebhook struct {
	Name       string   `yaml:"name"`
	URL        string   `yaml:"url"`
	SecretFile string   `yaml:"secret_file"` // whsec_… (base64 after the prefix)
	Kinds      []string `yaml:"kinds"`       // empty: every kind
}

// NotifyOwner routes a team's procedures' notifications.
type NotifyOwner struct {
	Team     string   `yaml:"team"`
	Email    []string `yaml:"email"`
	Slack    string   `yaml:"slack"` // a channel ID
	Teams    string   `yaml:"teams"` // a notify.teams name
	Webhooks []string `yaml:"webhooks"`
	Kinds    []string `yaml:"kinds"` // empty: every kind
}

// Database selects the storage driver.
type Database struct {
	Driver   string `yaml:"driver"` // sqlite | postgres
	URL      string `yaml:"url"`    // postgres only
	MaxConns int    `yaml:"max_conns"`
}

// TLS enables HTTPS when both files are set.
type TLS struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// Review sets the sign-off each risk class needs: the groups listed must
// each approve through a different person (a group listed twice needs two
// people from it).
type Review struct {
	QuorumLow    []string `yaml:"quorum_low"`
	QuorumMedium []string `yaml:"quorum_medium"`
	QuorumHigh   []string `yaml:"quorum_high"`
}

// Secrets configures the master key that seals secrets at rest. Without
// either setting, a key is generated in the data directory at first start.
type Secrets struct {
	MasterKeyFile string `yaml:"master_key_file"`
	MasterKey     string `yaml:"master_key"`
}

// Audit configures the tamper-evident log.
type Audit struct {
	// KeyFile holds the checkpoint signing key (created at first start).
	KeyFile string `yaml:"key_file"`
	// Origin names the log in its checkpoints.
	Origin string `yaml:"origin"`
	// CheckpointEvents and CheckpointInterval: a checkpoint is signed when
	// this many events have been appended since the last, or this much
	// time has passed with new events.
	CheckpointEvents   int           `yaml:"checkpoint_events"`
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
	// CheckpointFile, when set, receives every signed checkpoint
	// (appended), so that a copy lives outside the database.
	CheckpointFile string `yaml:"checkpoint_file"`
	// CheckpointWebhook, when set, receives every signed checkpoint as a
	// text/plain POST.
	CheckpointWebhook string `yaml:"checkpoint_webhook"`
}

// Runs tunes execution.
type Runs struct {
	Workers           int           `yaml:"workers"`
	ApprovalTTL       time.Duration `yaml:"approval_ttl"`
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`
	HeartbeatTimeout  time.Duration `yaml:"heartbeat_timeout"`
	MaxOutputBytes    int           `yaml:"max_output_bytes"`
	MaxAttempts       int           `yaml:"max_attempts"`
	// OutputRetention prunes run output this long after the run ended;
	// zero keeps it. The output digest (and the audit trail) stay.
	OutputRetention time.Duration `yaml:"output_retention"`
}

// Schedules tunes the scheduler of schedules and triggers.
type Schedules struct {
	// Interval: how often each replica looks for due ticks and checks
	// that what was approved still holds.
	Interval time.Duration `yaml:"interval"`
	// Grace: a tick first seen later than this after its time was missed
	// (the server was down); the schedule's missed-tick rule applies.
	Grace time.Duration `yaml:"grace"`
}

// Log configures structured logging.
type Log struct {
	Format string `yaml:"format"` // text | json
	Level  string `yaml:"level"`  // debug | info | warn | error
}

// Session configures browser sessions.
type Session struct {
	IdleTimeout     time.Duration `yaml:"idle_timeout"`
	AbsoluteTimeout time.Duration `yaml:"absolute_timeout"`
}

// Tokens configures API tokens.
type Tokens struct {
	DefaultTTL time.Duration `yaml:"default_ttl"`
	MaxTTL     time.Duration `yaml:"max_ttl"`
}

// Login configures failed-login throttling (see identity.ThrottleConfig).
type Login struct {
	PairFailures       int           `yaml:"pair_failures"`
	MaxAccountFailures int           `yaml:"max_account_failures"`
	MaxAddressFailures int           `yaml:"max_address_failures"`
	MaxDelay           time.Duration `yaml:"max_delay"`
	Window             time.Duration `yaml:"window"`
	AuditWindow        time.Duration `yaml:"audit_window"`
}

// Default returns the defaults.
func Default() Config {
	return Config{
		Listen:       "127.0.0.1:8080",
		Data:         "./airlock-data",
		Database:     Database{Driver: "sqlite", MaxConns: 16},
		Log:          Log{Format: "text", Level: "info"},
		Session:      Session{IdleTimeout: 30 * time.Minute, AbsoluteTimeout: 12 * time.Hour},
		Tokens:       Tokens{DefaultTTL: 90 * 24 * time.Hour, MaxTTL: 366 * 24 * time.Hour},
		Login:        Login{PairFailures: 3, MaxAccountFailures: 100, MaxAddressFailures: 20, MaxDelay: 15 * time.Minute, Window: 24 * time.Hour, AuditWindow: time.Minute},
		AdminGroup:   "admins",
		Environments: []string{"staging", "production"},
		Audit:        Audit{Origin: "airlock", CheckpointEvents: 1000, CheckpointInterval: time.Minute},
		Runs: Runs{Workers: 8, ApprovalTTL: 24 * time.Hour, HeartbeatInterval: 2 * time.Second, HeartbeatTimeout: 20 * time.Second,
			MaxOutputBytes: 10 << 20, MaxAttempts: 3},
		Schedules: Schedules{Interval: 5 * time.Second, Grace: 5 * time.Minute},
		Review: Review{QuorumLow: []string{"ops"}, QuorumMedium: []string{"ops", "security"},
			QuorumHigh: []string{"ops", "security", "compliance"}},
		OIDC: sso.Config{GroupsClaim: "groups", UsernameClaim: "preferred_username"},
		Notify: Notify{ExpiryWarning: time.Hour, MaxAttempts: 12, MaxBackoff: time.Hour, Lease: time.Minute,
			Slack: NotifySlack{APIURL: "https://slack.com/api/"}},
		ShutdownTimeout: 30 * time.Second,
	}
}

// Load returns the defaults overlaid with the file at path (if path is not
// empty) and then with AIRLOCK_* variables from environ.
func Load(path string, environ []string) (Config, error) {
	cfg := Default()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("config file: %w", err)
		}
		if err := strictyaml.Decode(path, data, &cfg); err != nil {
			return cfg, err
		}
	}
	if err := applyEnv(&cfg, environ); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// EnvName returns the environment variable for a dotted key path.
func EnvName(key string) string {
	return "AIRLOCK_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// Keys lists every configuration key (dotted) in declaration order.
func Keys() []string {
	var keys []string
	walk(reflect.ValueOf(&Config{}).Elem(), "", func(key string, _ reflect.Value) { keys = append(keys, key) })
	return keys
}

func walk(v reflect.Value, prefix string, fn func(key string, v reflect.Value)) {
	t := v.Type()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		key := name
		if prefix != "" {
			key = prefix + "." + name
		}
		f := v.Field(i)
		if f.Kind() == reflect.Struct && f.Type() != reflect.TypeFor[time.Duration]() {
			walk(f, key, fn)
			continue
		}
		fn(key, f)
	}
}

func applyEnv(cfg *Config, environ []string) error {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "AIRLOCK_") {
			env[k] = v
		}
	}
	var err error
	walk(reflect.ValueOf(cfg).Elem(), "", func(key string, f reflect.Value) {
		name := EnvName(key)
		val, ok := env[name]
		if !ok || err != nil {
			return
		}
		if e := setFromString(f, val); e != nil {
			err = fmt.Errorf("%s (%s): %v", name, key, e)
		}
	})
	return err
}

func setFromString(f reflect.Value, s string) error {
	switch {
	case f.Type() == reflect.TypeFor[time.Duration]():
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("expected a duration such as 30s, 15m or 12h, got %q", s)
		}
		f.SetInt(int64(d))
	case f.Kind() == reflect.String:
		f.SetString(s)
	case f.Kind() == reflect.Int:
		n, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("expected an integer, got %q", s)
		}
		f.SetInt(int64(n))
	case f.Kind() == reflect.Slice && f.Type().Elem().Kind() != reflect.String:
		return fmt.Errorf("a list of settings: set it in the configuration file")
	case f.Kind() == reflect.Slice:
		var items []string
		for p := range strings.SplitSeq(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				items = append(items, p)
			}
		}
		f.Set(reflect.ValueOf(items))
	case f.Kind() == reflect.Map:
		m := map[string]string{}
		for p := range strings.SplitSeq(s, ",") {
			k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
			if !ok {
				return fmt.Errorf("expected comma-separated key=value pairs, got %q", s)
			}
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
		f.Set(reflect.ValueOf(m))
	default:
		return fmt.Errorf("unsupported type %s", f.Type())
	}
	return nil
}

// FieldError is a validation error naming the key.
type FieldError struct {
	Key string
	Msg string
}

func (e *FieldError) Error() string { return e.Key + ": " + e.Msg }

// Validate checks the configuration and returns the first problem, naming
// its key and what was expected.
func (c *Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return &FieldError{"listen", fmt.Sprintf("expected host:port such as 127.0.0.1:8080, got %q", c.Listen)}
	}
	if c.Data == "" {
		return &FieldError{"data", "expected a directory path"}
	}
	switch c.Database.Driver {
	case "sqlite":
	case "postgres":
		if c.Database.URL == "" {
			return &FieldError{"database.url", "expected a postgres:// URL when database.driver is postgres"}
		}
	default:
		return &FieldError{"database.driver", fmt.Sprintf("expected sqlite or postgres, got %q", c.Database.Driver)}
	}
	if c.Database.MaxConns < 1 {
		return &FieldError{"database.max_conns", "expected a positive integer"}
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		return &FieldError{"tls", "expected both tls.cert and tls.key, or neither"}
	}
	if c.TLS.Cert != "" {
		for _, f := range []struct{ key, path string }{{"tls.cert", c.TLS.Cert}, {"tls.key", c.TLS.Key}} {
			if _, err := os.Stat(f.path); err != nil {
				return &FieldError{f.key, fmt.Sprintf("expected a readable PEM file: %v", err)}
			}
		}
		if _, err := tls.LoadX509KeyPair(c.TLS.Cert, c.TLS.Key); err != nil {
			return &FieldError{"tls.cert", fmt.Sprintf("expected a PEM certificate matching tls.key: %v", err)}
		}
	}
	if !slices.Contains([]string{"text", "json"}, c.Log.Format) {
		return &FieldError{"log.format", fmt.Sprintf("expected text or json, got %q", c.Log.Format)}
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		return &FieldError{"log.level", fmt.Sprintf("expected debug, info, warn or error, got %q", c.Log.Level)}
	}
	for _, f := range []struct {
		key string
		d   time.Duration
	}{
		{"session.idle_timeout", c.Session.IdleTimeout}, {"session.absolute_timeout", c.Session.AbsoluteTimeout},
		{"tokens.default_ttl", c.Tokens.DefaultTTL}, {"tokens.max_ttl", c.Tokens.MaxTTL},
		{"login.window", c.Login.Window}, {"login.max_delay", c.Login.MaxDelay}, {"shutdown_timeout", c.ShutdownTimeout},
	} {
		if f.d <= 0 {
			return &FieldError{f.key, "expected a positive duration"}
		}
	}
	if c.Login.AuditWindow < 0 {
		return &FieldError{"login.audit_window", "expected a duration, 0 to audit every failed login by itself"}
	}
	if c.Session.IdleTimeout > c.Session.AbsoluteTimeout {
		return &FieldError{"session.idle_timeout", "expected at most session.absolute_timeout"}
	}
	if c.Tokens.DefaultTTL > c.Tokens.MaxTTL {
		return &FieldError{"tokens.default_ttl", "expected at most tokens.max_ttl"}
	}
	if c.AdminGroup == "" {
		return &FieldError{"admin_group", "expected a group name"}
	}
	for _, f := range []struct {
		key    string
		groups []string
	}{{"review.quorum_low", c.Review.QuorumLow}, {"review.quorum_medium", c.Review.QuorumMedium}, {"review.quorum_high", c.Review.QuorumHigh}} {
		if len(f.groups) == 0 {
			return &FieldError{f.key, "expected at least one group whose approval the risk class needs"}
		}
		for _, g := range f.groups {
			if !groupRE.MatchString(g) {
				return &FieldError{f.key, fmt.Sprintf("expected group names, got %q", g)}
			}
		}
	}
	if len(c.Environments) == 0 {
		return &FieldError{"environments", "expected at least one environment name, e.g. staging, production"}
	}
	for _, e := range c.Environments {
		if !groupRE.MatchString(e) {
			return &FieldError{"environments", fmt.Sprintf("expected environment names (lower-case letters, digits, '.', '_', '-'), got %q", e)}
		}
	}
	for _, e := range c.TryEnvironments {
		if !slices.Contains(c.Environments, e) {
			return &FieldError{"try_environments", fmt.Sprintf("expected environments listed in environments (%s), got %q", strings.Join(c.Environments, ", "), e)}
		}
	}
	if c.PolicyFile != "" {
		if _, err := os.Stat(c.PolicyFile); err != nil {
			return &FieldError{"policy_file", fmt.Sprintf("expected a readable Cedar policy file: %v", err)}
		}
	}
	for _, f := range []struct {
		key string
		n   int
	}{{"runs.workers", c.Runs.Workers}, {"runs.max_output_bytes", c.Runs.MaxOutputBytes}, {"runs.max_attempts", c.Runs.MaxAttempts}} {
		if f.n < 1 {
			return &FieldError{f.key, "expected a positive integer"}
		}
	}
	for _, f := range []struct {
		key string
		d   time.Duration
	}{{"runs.approval_ttl", c.Runs.ApprovalTTL}, {"runs.heartbeat_interval", c.Runs.HeartbeatInterval}, {"runs.heartbeat_timeout", c.Runs.HeartbeatTimeout},
		{"schedules.interval", c.Schedules.Interval}, {"schedules.grace", c.Schedules.Grace}} {
		if f.d <= 0 {
			return &FieldError{f.key, "expected a positive duration"}
		}
	}
	if c.Runs.HeartbeatTimeout < 2*c.Runs.HeartbeatInterval {
		return &FieldError{"runs.heartbeat_timeout", "expected at least twice runs.heartbeat_interval"}
	}
	if c.Audit.CheckpointEvents < 1 {
		return &FieldError{"audit.checkpoint_events", "expected a positive integer"}
	}
	if c.Audit.CheckpointInterval <= 0 {
		return &FieldError{"audit.checkpoint_interval", "expected a positive duration"}
	}
	if c.Audit.Origin == "" || strings.ContainsAny(c.Audit.Origin, "\n+ ") {
		return &FieldError{"audit.origin", "expected a name without spaces, '+' or newlines"}
	}
	if w := c.Audit.CheckpointWebhook; w != "" && !strings.HasPrefix(w, "https://") && !strings.HasPrefix(w, "http://") {
		return &FieldError{"audit.checkpoint_webhook", fmt.Sprintf("expected an http(s) URL, got %q", w)}
	}
	if c.InventoryFile != "" {
		if _, err := os.Stat(c.InventoryFile); err != nil {
			return &FieldError{"inventory_file", fmt.Sprintf("expected a readable YAML inventory: %v", err)}
		}
	}
	if c.Secrets.MasterKeyFile != "" && c.Secrets.MasterKey != "" {
		return &FieldError{"secrets", "expected secrets.master_key_file or secrets.master_key, not both"}
	}
	if c.OIDC.Issuer != "" {
		if c.OIDC.ClientID == "" {
			return &FieldError{"oidc.client_id", "expected the client ID registered with the provider"}
		}
		if c.OIDC.RedirectURL == "" && c.PublicURL == "" {
			return &FieldError{"oidc.redirect_url", "expected a callback URL (or set public_url)"}
		}
	}
	return c.Notify.validate()
}

func (n *Notify) validate() error {
	kinds := func(key string, ks []string) error {
		for _, k := range ks {
			if !slices.Contains(notify.Kinds, k) {
				return &FieldError{key, fmt.Sprintf("expected kinds among %s, got %q", strings.Join(notify.Kinds, ", "), k)}
			}
		}
		return nil
	}
	if e := n.Email; e.Host != "" {
		switch e.TLS {
		case "", "starttls", "tls", "none":
		default:
			return &FieldError{"notify.email.tls", fmt.Sprintf("expected starttls, tls or none, got %q", e.TLS)}
		}
		if _, err := mail.ParseAddress(e.From); err != nil {
			return &FieldError{"notify.email.from", fmt.Sprintf("expected the sender's address, got %q", e.From)}
		}
		if e.Port < 0 || e.Port > 65535 {
			return &FieldError{"notify.email.port", fmt.Sprintf("expected a port, got %d", e.Port)}
		}
	}
	if (n.Slack.BotTokenFile == "") != (n.Slack.SigningSecretFile == "") && n.Slack.BotTokenFile == "" {
		return &FieldError{"notify.slack.bot_token_file", "expected the bot token too: approvals from Slack answer through it"}
	}
	names := map[string]bool{}
	for i, t := range n.Teams {
		key := fmt.Sprintf("notify.teams[%d]", i)
		if t.Name == "" || t.URLFile == "" {
			return &FieldError{key, "expected a name and a url_file"}
		}
		names["teams:"+t.Name] = true
	}
	for i, w := range n.Webhooks {
		key := fmt.Sprintf("notify.webhooks[%d]", i)
		switch {
		case w.Name == "" || names["webhook:"+w.Name]:
			return &FieldError{key + ".name", "expected a name of its own"}
		case !strings.HasPrefix(w.URL, "https://") && !strings.HasPrefix(w.URL, "http://"):
			return &FieldError{key + ".url", fmt.Sprintf("expected an http(s) URL, got %q", w.URL)}
		case w.SecretFile == "":
			return &FieldError{key + ".secret_file", "expected a file holding the signing secret (whsec_…)"}
		}
		if err := kinds(key+".kinds", w.Kinds); err != nil {
			return err
		}
		names["webhook:"+w.Name] = true
	}
	for i, o := range n.Owners {
		key := fmt.Sprintf("notify.owners[%d]", i)
		if o.Team == "" {
			return &FieldError{key + ".team", "expected the owning team's name"}
		}
		if o.Teams != "" && !names["teams:"+o.Teams] {
			return &FieldError{key + ".teams", fmt.Sprintf("expected the name of a notify.teams entry, got %q", o.Teams)}
		}
		for _, w := range o.Webhooks {
			if !names["webhook:"+w] {
				return &FieldError{key + ".webhooks", fmt.Sprintf("expected names of notify.webhooks entries, got %q", w)}
			}
		}
		for _, a := range o.Email {
			if _, err := mail.ParseAddress(a); err != nil {
				return &FieldError{key + ".email", fmt.Sprintf("expected email addresses, got %q", a)}
			}
		}
		if err := kinds(key+".kinds", o.Kinds); err != nil {
			return err
		}
	}
	switch {
	case n.ExpiryWarning < 0:
		return &FieldError{"notify.expiry_warning", "expected a duration, 0 for no reminder"}
	case n.MaxAttempts < 1:
		return &FieldError{"notify.max_attempts", "expected a positive integer"}
	case n.MaxBackoff < time.Second:
		return &FieldError{"notify.max_backoff", "expected a duration of a second or more"}
	case n.Lease < time.Second:
		return &FieldError{"notify.lease", "expected a duration of a second or more"}
	}
	return nil
}

var groupRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// DatabasePath is the SQLite file inside the data directory.
func (c *Config) DatabasePath() string { return filepath.Join(c.Data, "airlock.db") }
