package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/config"
)

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "airlock.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPrecedence(t *testing.T) {
	p := write(t, "listen: 0.0.0.0:9000\nsession:\n  idle_timeout: 10m\noidc:\n  group_map: {a: b}\n")
	cfg, err := config.Load(p, []string{"AIRLOCK_LISTEN=127.0.0.1:7000", "AIRLOCK_LOG_FORMAT=json", "AIRLOCK_OIDC_SCOPES=openid,email", "PATH=/bin"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:7000" || cfg.Session.IdleTimeout != 10*time.Minute || cfg.Log.Format != "json" ||
		cfg.OIDC.GroupMap["a"] != "b" || strings.Join(cfg.OIDC.Scopes, " ") != "openid email" || cfg.Data != "./airlock-data" {
		t.Fatalf("%+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestBadConfigNamesField(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		file, env, want string
	}{
		{"lisen: x\n", "", "lisen: unknown field"},
		{"session:\n  idle_timeout: 5\n", "", "session.idle_timeout: expected a duration"},
		{"database:\n  driver: mysql\n", "", "database.driver: expected sqlite or postgres"},
		{"database:\n  driver: postgres\n", "", "database.url: expected a postgres:// URL"},
		{"tls:\n  cert: " + dir + "/missing.pem\n  key: " + dir + "/missing.key\n", "", "tls.cert: expected a readable PEM file"},
		{"tls:\n  cert: x\n", "", "tls: expected both"},
		{"", "AIRLOCK_LOGIN_MAX_ACCOUNT_FAILURES=lots", "AIRLOCK_LOGIN_MAX_ACCOUNT_FAILURES (login.max_account_failures): expected an integer"},
		{"log: {format: xml}\n", "", "log.format: expected text or json"},
		{"", "AIRLOCK_NOTIFY_WEBHOOKS=https://x", "AIRLOCK_NOTIFY_WEBHOOKS (notify.webhooks): a list of settings: set it in the configuration file"},
		{"notify: {email: {host: smtp.example.com}}\n", "", "notify.email.from: expected the sender's address"},
		{"notify: {webhooks: [{name: ci, url: ftp://x, secret_file: /s}]}\n", "", "notify.webhooks[0].url: expected an http(s) URL"},
		{"notify: {webhooks: [{name: ci, url: https://x, secret_file: /s, kinds: [everything]}]}\n", "", "notify.webhooks[0].kinds: expected kinds among"},
		{"notify: {owners: [{team: payments, webhooks: [nope]}]}\n", "", "notify.owners[0].webhooks: expected names of notify.webhooks entries"},
	}
	for _, c := range cases {
		cfg, err := config.Load(write(t, c.file), []string{c.env})
		if err == nil {
			err = cfg.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("config %q env %q: got %v, want %q", c.file, c.env, err, c.want)
		}
	}
}

func TestEveryKeyHasEnvName(t *testing.T) {
	keys := config.Keys()
	if len(keys) < 20 {
		t.Fatalf("only %d keys: %v", len(keys), keys)
	}
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if !strings.Contains(string(doc), "`"+k+"`") || !strings.Contains(string(doc), config.EnvName(k)) {
			t.Errorf("docs/configuration.md does not document %s (%s)", k, config.EnvName(k))
		}
	}
}
